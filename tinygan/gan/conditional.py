"""Training a conditional GAN G(z, y) / D(x, y) with the Keras stacked recipe, labels added.

One step, exactly :class:`~tinygan.gan.stacked.StackedGANTrainer`'s with a label beside every image:

  1. D learns on a half batch of real images *with their true labels* (target real) and a half
     batch of G(z, y) for random labels y (target 0): zero D's gradients, backward the real half,
     backward the fake half (the two add up), one optimizer step on the mean loss.  The halves go
     through D separately, so BatchNorm normalises each with its own statistics.
  2. G learns through the frozen D on a full batch of G(z, y) with fresh random labels, target
     real: G is rewarded when D believes "this is a real face *of age y*".

Random labels for generated images are drawn with probabilities ``fake_label_probs`` (uniform by
default).  Real batches should carry labels with the same distribution, otherwise D can judge the
label instead of the face: see :class:`tinygan.aging.BalancedBatches`.
"""
from __future__ import annotations

import numpy as np

from ..backend import Backend, get_backend
from ..losses import binary_cross_entropy_with_logits
from ..models.conditional import ConditionalDiscriminator, ConditionalGenerator
from ..sequential import frozen
from .stacked import G_LOSSES, StepStats, check_g_loss, generator_loss


class ConditionalStackedGANTrainer:
    """Trains a :class:`ConditionalGenerator` G(z, y) and a :class:`ConditionalDiscriminator` D(x, y).

    ``train_step(real, labels)``: ``real`` (N, C, H, W) on the backend, ``labels`` (N,) class ids
    (host or device).  ``g_loss``, ``real_label`` and ``seed`` as in StackedGANTrainer;
    ``fake_label_probs`` (K,): the probabilities of the random labels given to generated images.
    """

    G_LOSSES = G_LOSSES

    def __init__(self, generator: ConditionalGenerator, discriminator: ConditionalDiscriminator,
                 g_optimizer, d_optimizer, backend: Backend | str = "numpy",
                 g_loss: str = "non_saturating", real_label: float = 1.0, seed: int = 0,
                 fake_label_probs=None):
        if generator.n_classes != discriminator.n_classes:
            raise ValueError(f"generator has {generator.n_classes} classes, discriminator "
                             f"{discriminator.n_classes}")
        check_g_loss(g_loss)
        self.G, self.D = generator, discriminator
        self.g_opt, self.d_opt = g_optimizer, d_optimizer
        self.backend = get_backend(backend)
        self.latent_dim, self.n_classes = generator.latent_dim, generator.n_classes
        self.g_loss_kind, self.real_label = g_loss, float(real_label)
        k = self.n_classes
        p = np.full(k, 1.0 / k) if fake_label_probs is None else np.asarray(fake_label_probs, np.float64)
        if p.shape != (k,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ValueError(f"fake_label_probs must be {k} non-negative probabilities summing to 1, got {p}")
        self.fake_label_probs = p
        # Host noise generator: its state is a small dict a checkpoint can store (see StackedGANTrainer).
        self.noise_rng = np.random.default_rng(seed)
        self.steps = 0

    def sample_latent(self, n: int):
        """(z (n, latent_dim) on the backend, labels (n,) int64 on the host), from the noise generator."""
        z = self.noise_rng.standard_normal((n, self.latent_dim))
        labels = self.noise_rng.choice(self.n_classes, size=n, p=self.fake_label_probs)
        return self.backend.asarray(z), labels

    def discriminator_step(self, real, labels):
        """One optimizer step of D on (``real``, ``labels``), target real, and as many G(z, y), target 0."""
        z, fake_labels = self.sample_latent(real.shape[0])
        fake = self.G.forward(z, fake_labels, training=True)
        self.D.zero_grad()
        logits_real = self.D.forward(real, labels, training=True)
        loss_real, grad = binary_cross_entropy_with_logits(logits_real, self.real_label)
        self.D.backward(0.5 * grad)                     # D's loss is the mean of the two halves'
        logits_fake = self.D.forward(fake, fake_labels, training=True)
        loss_fake, grad = binary_cross_entropy_with_logits(logits_fake, 0.0)
        self.D.backward(0.5 * grad)
        self.d_opt.step(self.D.trainable_parameters())
        return 0.5 * (loss_real + loss_fake), (logits_real > 0).mean(), (logits_fake < 0).mean()

    def generator_step(self, n: int):
        """One optimizer step of G through the frozen D on ``n`` fresh samples with random labels."""
        with frozen(self.D):
            z, labels = self.sample_latent(n)
            fake = self.G.forward(z, labels, training=True)
            logits = self.D.forward(fake, labels, training=True)
            loss, grad = generator_loss(logits, self.g_loss_kind)
            self.G.zero_grad()
            self.G.backward(self.D.backward(grad))
            self.g_opt.step(self.G.trainable_parameters())
        return loss

    def train_step(self, real, labels) -> StepStats:
        """D on the half batch (``real``, ``labels``) plus as many fakes, then G on 2 * len(real)."""
        if labels is None or len(labels) != real.shape[0]:
            raise ValueError(f"train_step: need one label per real image ({real.shape[0]}), got "
                             f"{None if labels is None else len(labels)}")
        d_loss, acc_real, acc_fake = self.discriminator_step(real, labels)
        g_loss = self.generator_step(2 * real.shape[0])
        self.steps += 1
        return StepStats(d_loss, g_loss, acc_real, acc_fake)

    def generate(self, z, labels, training: bool = False):
        """G(z, labels), in inference mode by default."""
        return self.G.forward(z, labels, training)

    # -- checkpointing: the same state as StackedGANTrainer's ----------------------------------
    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "g_opt": self.g_opt.state_dict(), "d_opt": self.d_opt.state_dict(),
                "noise_rng": self.noise_rng.bit_generator.state, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"], source="checkpoint's generator")
        self.D.load_state_dict(state["D"], source="checkpoint's discriminator")
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        self.noise_rng.bit_generator.state = state["noise_rng"]
        self.steps = int(state["steps"])
