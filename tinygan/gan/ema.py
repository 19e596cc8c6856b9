"""An exponential moving average of the generator's weights (Karras et al.; Yazici et al. 2019).

GAN weights oscillate around a good solution; their running average sits nearer its centre and
usually samples better.  The average lives in a copy of the generator used only for sampling:

    avg <- decay * avg + (1 - decay) * current          after every generator step

BatchNorm's running statistics are copied, not averaged: they belong to the current weights.
They do not fit the averaged weights, so before sampling call ``recalibrate_batchnorm``, which
measures them afresh on the average itself ("standing statistics", as BigGAN does).
"""
from __future__ import annotations

import copy

from ..sequential import trainable_set


class GeneratorEMA:
    def __init__(self, generator, decay: float = 0.999, start_step: int = 0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.start_step = float(decay), int(start_step)
        self.model = copy.deepcopy(generator)
        self.model.name = f"{generator.name}_ema"
        self.updates = 0

    def update(self, generator) -> None:
        # Before start_step the average just follows (copies) the generator: early weights are noise.
        d = self.decay if self.updates >= self.start_step else 0.0
        for avg_layer, layer in zip(self.model.layers, generator.layers):
            for k, p in layer.params.items():
                a = avg_layer.params[k]
                a *= d
                a += (1.0 - d) * p
            for k, b in layer.buffers.items():
                avg_layer.buffers[k][...] = b
        self.updates += 1

    def recalibrate_batchnorm(self, noise_batches) -> None:
        """Re-estimate the average's BatchNorm running statistics from its own outputs.

        Runs each noise batch through the average in training mode with the momentum set so the
        running value becomes the plain mean over the batches (momentum k/(k+1) at batch k).
        The next ``update`` copies G's statistics back; call this right before sampling.
        """
        norms = [layer for layer in self.model.layers if "running_mean" in layer.buffers]
        momenta = [layer.momentum for layer in norms]
        # BatchNorm updates its running statistics only while trainable.
        with trainable_set(self.model, True):
            try:
                for k, z in enumerate(noise_batches):
                    for layer in norms:
                        layer.momentum = k / (k + 1)
                    self.model.forward(z, training=True)
            finally:
                for layer, m in zip(norms, momenta):
                    layer.momentum = m

    def model_for_sampling(self, noise_batches):
        """The average, its BatchNorm statistics recalibrated on ``noise_batches`` (noise that
        training never draws), ready to sample from."""
        self.recalibrate_batchnorm(noise_batches)
        return self.model

    def state_dict(self) -> dict:
        return {"weights": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["weights"], source="checkpoint's generator average")
        self.updates = int(state["updates"])
