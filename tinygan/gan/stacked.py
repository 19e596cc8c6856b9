"""The Keras recipe for training a GAN with a frozen discriminator inside a stacked model.

One step:
  1. D learns: a half batch of real images labelled 1 and a half batch of G's images labelled 0.
     The two halves go through D *separately*, so BatchNorm normalises each with its own batch
     statistics (a mixed batch would let D tell them apart by the statistics alone).
     As in PyTorch: zero D's gradients, backward the real half, backward the fake half (the
     gradients add up), one optimizer step on the mean loss.
  2. G learns through the stacked model G -> D with D frozen: a full batch of fresh noise, the
     generated images labelled 1 ("fool D").  Frozen D still returns input gradients (that is how
     G learns), but its weights do not move and its BatchNorm layers normalise with the batch
     statistics without updating their running averages.

G's loss is the non-saturating -log D(G(z)) by default; ``g_loss="saturating"`` is the original
minimax log(1 - D(G(z))), whose gradient vanishes exactly when D wins (early in training).

Data parallelism (``communicator``, see :mod:`tinygan.distributed`): every rank builds the same
trainer and calls each step with its own shard of the global batch.  Four lines differ from one
process: the weights start as rank 0's, each rank draws its own noise, the gradients are averaged
over the ranks right before every optimizer step, and BatchNorm's running averages are rank 0's
after every step.  With the default one-process communicator each of these is a no-op.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import Backend, get_backend, to_numpy
from ..distributed.communicator import SingleProcess, check_world_size
from ..losses import binary_cross_entropy_with_logits
from ..sequential import frozen


@dataclass
class StepStats:
    """Per-step numbers, kept as 0-d device arrays so a step never waits on the GPU; ``as_floats``
    syncs once."""
    d_loss: object
    g_loss: object
    d_acc_real: object
    d_acc_fake: object

    def as_floats(self) -> dict:
        return {k: float(to_numpy(v)) for k, v in self.__dict__.items()}


G_LOSSES = ("non_saturating", "saturating")


def check_g_loss(kind: str) -> str:
    """``kind`` if it names one of G's losses, else a ValueError listing them."""
    if kind not in G_LOSSES:
        raise ValueError(f"g_loss must be one of {G_LOSSES}, got {kind!r}")
    return kind


def generator_loss(logits, kind: str):
    """G's loss on D's logits for its fakes, and the gradient w.r.t. the logits."""
    if kind == "non_saturating":
        return binary_cross_entropy_with_logits(logits, 1.0)                # -log D(G(z))
    # log(1 - D(G(z))) = -BCE(logits, 0): minimising it maximises D's error directly
    loss, grad = binary_cross_entropy_with_logits(logits, 0.0)
    return -loss, -grad


class StackedGANTrainer:
    """Trains ``generator`` (z -> image) and ``discriminator`` (image -> logit (N, 1)).

    real label ``real_label`` (1.0, or 0.9 for one-sided label smoothing: only D's real targets
    are softened, so D stays uncertain about real images but G still aims at 1).
    communicator  the ranks of a data-parallel run (:mod:`tinygan.distributed`); None: one process.
    """

    G_LOSSES = G_LOSSES

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, latent_dim: int = 100,
                 backend: Backend | str = "numpy", g_loss: str = "non_saturating",
                 real_label: float = 1.0, seed: int = 0, communicator=None):
        check_g_loss(g_loss)
        self.G, self.D = generator, discriminator
        self.g_opt, self.d_opt = g_optimizer, d_optimizer
        self.latent_dim = int(latent_dim)
        self.backend = get_backend(backend)
        self.g_loss_kind, self.real_label = g_loss, float(real_label)
        self.comm = SingleProcess() if communicator is None else communicator
        # Noise comes from a host generator: its state is a small dict that a checkpoint can
        # store, so a resumed run draws exactly the noise an uninterrupted one would.  Each rank
        # has its own stream; rank 0's is ``seed``'s, the one a single process draws.
        self.noise_rng = np.random.default_rng(self.comm.rank_seed(seed))
        self.steps = 0
        self.comm.broadcast_parameters(self.G, self.D)     # every rank starts from rank 0's weights

    # -- pieces ----------------------------------------------------------------------------------
    def sample_noise(self, n: int):
        return self.backend.asarray(self.noise_rng.standard_normal((n, self.latent_dim)))

    def generate(self, z, training: bool = False):
        return self.G.forward(z, training)

    def discriminator_step(self, real):
        """One optimizer step of D on ``real`` (label real_label) and as many generated images (label 0)."""
        n = real.shape[0]
        fake = self.G.forward(self.sample_noise(n), training=True)
        self.D.trainable = True
        self.D.zero_grad()
        # D's loss is the mean of the two halves' losses: each half's gradient is weighted by 0.5
        # and the two backward passes add up in D's gradients.
        logits_real = self.D.forward(real, training=True)
        loss_real, grad = binary_cross_entropy_with_logits(logits_real, self.real_label)
        self.D.backward(0.5 * grad)
        logits_fake = self.D.forward(fake, training=True)
        loss_fake, grad = binary_cross_entropy_with_logits(logits_fake, 0.0)
        self.D.backward(0.5 * grad)
        params = self.D.trainable_parameters()
        self.comm.average_gradients(params)      # data parallel: the mean over the ranks' shards
        self.d_opt.step(params)
        acc_real = (logits_real > 0).mean()
        acc_fake = (logits_fake < 0).mean()
        return 0.5 * (loss_real + loss_fake), acc_real, acc_fake

    def generator_step(self, n: int):
        """One optimizer step of G through the frozen D on a full batch of ``n`` fresh samples.

        G's step ends a training step, so here every rank also takes rank 0's BatchNorm running
        averages (each rank's moved with its own shard's statistics)."""
        with frozen(self.D):
            self.G.zero_grad()
            fake = self.G.forward(self.sample_noise(n), training=True)
            logits = self.D.forward(fake, training=True)
            loss, grad = generator_loss(logits, self.g_loss_kind)
            self.G.backward(self.D.backward(grad))
            params = self.G.trainable_parameters()
            self.comm.average_gradients(params)
            self.g_opt.step(params)
        self.comm.broadcast_buffers(self.G, self.D)
        return loss

    def train_step(self, real) -> StepStats:
        """D on the half batch ``real`` plus as many fakes, then G on a full batch (2 * len(real)).

        In a data-parallel run ``real`` is this rank's shard of the global half batch."""
        d_loss, acc_real, acc_fake = self.discriminator_step(real)
        g_loss = self.generator_step(2 * real.shape[0])
        self.steps += 1
        return StepStats(d_loss, g_loss, acc_real, acc_fake)

    # -- checkpointing -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs besides the data iterator: weights, optimizer moments and
        step counts, the noise generator's state and the step counter.

        Also the number of ranks and every rank's noise state (``noise_rng`` is rank 0's): in a
        data-parallel run this is a collective that every rank calls, and all get the same dict."""
        rank_noise = self.comm.allgather_object(self.noise_rng.bit_generator.state)
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "g_opt": self.g_opt.state_dict(), "d_opt": self.d_opt.state_dict(),
                "noise_rng": rank_noise[0], "steps": self.steps,
                "world_size": self.comm.size, "rank_noise_rng": rank_noise}

    def load_state_dict(self, state: dict) -> None:
        """Load ``state``; CheckpointError if it was written by a run on another number of ranks
        (each rank's noise and share of every batch depend on that number)."""
        check_world_size(int(state.get("world_size", 1)), self.comm.size)
        self.G.load_state_dict(state["G"], source="checkpoint's generator")
        self.D.load_state_dict(state["D"], source="checkpoint's discriminator")
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        rank_noise = state.get("rank_noise_rng") or [state["noise_rng"]]   # older checkpoints: one
        self.noise_rng.bit_generator.state = rank_noise[self.comm.rank]
        self.steps = int(state["steps"])
