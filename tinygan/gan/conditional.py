"""Training a conditional GAN with the Keras stacked-model recipe, and label-balanced real batches.

:class:`ConditionalStackedGANTrainer` runs exactly :class:`~tinygan.gan.stacked.StackedGANTrainer`'s
step, with labels:

  1. D learns on a half batch of real images *with their true labels* (target real) and a half
     batch of G(z, y) for random labels y (target 0), the halves through D separately;
  2. G learns through the frozen D on a full batch of G(z, y) with fresh random labels, target
     real: G is rewarded when D believes "this is a real face *of age y*".

To reuse the parent's step without copying it, the labels travel *with the data*, in the very
form the networks' first concatenation gives them: the parent's "noise" is ``[z | onehot(y)]``
(N, latent_dim + K), which is exactly the conditional generator network's input, and the images
handed to D are ``[x | label maps]`` (N, C + K, H, W), exactly the conditional discriminator
network's input.  Two small adapters let the parent call the inner networks on these packed
arrays; the parent never needs to know that there are labels.  (A hook in StackedGANTrainer,
e.g. ``sample_latent(n) -> (z, labels)`` and ``discriminate(x, labels)``, would make the packing
unnecessary.)

Random labels for generated images are drawn with probabilities ``fake_label_probs`` (uniform by
default).  Real batches should carry labels with the *same* distribution, otherwise D can learn
"this label is rarer among real images, so this image is probably fake" instead of looking at
the face; :class:`BalancedBatches` draws every real batch with equal counts per class.
"""
from __future__ import annotations

import numpy as np

from ..backend import Backend, get_array_module, get_backend
from ..models.conditional import ConditionalDiscriminator, ConditionalGenerator, LabelConcat, one_hot
from .stacked import StackedGANTrainer, StepStats


class _PackedGenerator:
    """[z | onehot(y)] (N, L + K) -> [G(z, y) | label maps of y] (N, C + K, H, W), for the parent trainer."""

    def __init__(self, generator: ConditionalGenerator):
        self.cg = generator
        self.maps = LabelConcat(generator.n_classes, "maps", name="packed_label_maps")

    def forward(self, zy, training=True):
        images = self.cg.net.forward(zy, training)             # the net's input *is* [z | onehot(y)]
        self.maps.labels = zy[:, self.cg.latent_dim:]
        return self.maps.forward(images, training)

    def backward(self, grad):
        # Only the image channels lead back into G; the label maps were data.
        return self.cg.net.backward(self.maps.backward(grad))

    def trainable_parameters(self):
        return self.cg.trainable_parameters()

    def state_dict(self):
        return self.cg.state_dict()

    def load_state_dict(self, state, source="state"):
        self.cg.load_state_dict(state, source)


class _PackedDiscriminator:
    """[x | label maps] (N, C + K, H, W) -> logits (N, 1): the conditional D's network itself."""

    def __init__(self, discriminator: ConditionalDiscriminator):
        self.cd = discriminator

    def forward(self, packed, training=True):
        return self.cd.net.forward(packed, training)

    def backward(self, grad):
        return self.cd.net.backward(grad)

    @property
    def trainable(self):
        return self.cd.trainable

    @trainable.setter
    def trainable(self, value):
        self.cd.trainable = value

    def trainable_parameters(self):
        return self.cd.trainable_parameters()

    def state_dict(self):
        return self.cd.state_dict()

    def load_state_dict(self, state, source="state"):
        self.cd.load_state_dict(state, source)


class ConditionalStackedGANTrainer(StackedGANTrainer):
    """Trains a :class:`ConditionalGenerator` G(z, y) and :class:`ConditionalDiscriminator` D(x, y).

    ``train_step(real, labels)``: ``real`` (N, C, H, W) on the backend, ``labels`` (N,) class ids
    (host or device).  Other arguments as in StackedGANTrainer; ``fake_label_probs`` (K,) are the
    probabilities of the random labels given to generated images (default uniform).
    ``trainer.generator`` / ``trainer.discriminator`` are the conditional models;
    ``trainer.G`` / ``trainer.D`` are the packed adapters the parent's step runs on.
    """

    def __init__(self, generator: ConditionalGenerator, discriminator: ConditionalDiscriminator,
                 g_optimizer, d_optimizer, backend: Backend | str = "numpy",
                 g_loss: str = "non_saturating", real_label: float = 1.0, seed: int = 0,
                 fake_label_probs=None):
        if generator.n_classes != discriminator.n_classes:
            raise ValueError(f"generator has {generator.n_classes} classes, discriminator {discriminator.n_classes}")
        super().__init__(_PackedGenerator(generator), _PackedDiscriminator(discriminator), g_optimizer,
                         d_optimizer, latent_dim=generator.latent_dim, backend=backend, g_loss=g_loss,
                         real_label=real_label, seed=seed)
        self.generator, self.discriminator = generator, discriminator
        self.n_classes = generator.n_classes
        k = self.n_classes
        p = np.full(k, 1.0 / k) if fake_label_probs is None else np.asarray(fake_label_probs, dtype=np.float64)
        if p.shape != (k,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ValueError(f"fake_label_probs must be {k} non-negative probabilities summing to 1, got {p}")
        self.fake_label_probs = p
        self._real_maps = LabelConcat(k, "maps", name="real_label_maps")

    # -- what the parent calls -----------------------------------------------------------------
    def _draw(self, n: int):
        """Host z (n, latent_dim) and labels (n,) from the noise generator (checkpointed state)."""
        z = self.noise_rng.standard_normal((n, self.latent_dim))
        labels = self.noise_rng.choice(self.n_classes, size=n, p=self.fake_label_probs)
        return z, labels

    def sample_latent(self, n: int):
        """(z (n, latent_dim) on the backend, labels (n,) int64 on the host)."""
        z, labels = self._draw(n)
        return self.backend.asarray(z), labels

    def sample_noise(self, n: int):
        """The parent's "noise": [z | onehot(y)] for random labels y, one host->device copy."""
        z, labels = self._draw(n)
        return self.backend.asarray(np.concatenate([z, np.eye(self.n_classes)[labels]], axis=1))

    def pack_real(self, real, labels):
        """[real | label maps of ``labels``] (N, C + K, H, W): D's network input for real images."""
        self._real_maps.labels = one_hot(self.backend.asarray(labels, dtype=np.int64), self.n_classes,
                                         xp=get_array_module(real), dtype=real.dtype)
        return self._real_maps.forward(real)

    # -- the conditional API -------------------------------------------------------------------
    def train_step(self, real, labels) -> StepStats:
        """D on the half batch (``real``, ``labels``) plus as many fakes, then G on 2 * len(real)."""
        if labels is None or len(labels) != real.shape[0]:
            raise ValueError(f"train_step: need one label per real image ({real.shape[0]}), got "
                             f"{None if labels is None else len(labels)}")
        return super().train_step(self.pack_real(real, labels))

    def generate(self, z, labels, training: bool = False):
        """G(z, labels) in inference mode by default."""
        return self.generator.forward(z, labels, training)


class BalancedBatches:
    """Real batches with equal counts of every class: ``next_batch() -> (x, labels)``.

    One seeded, shuffled :class:`~tinygan.data.Minibatches` per class, each giving
    ``batch_size // n_classes`` images (``batch_size`` must be a multiple of the class count).
    A rare class is therefore revisited more often (CelebA "not young": about 3.5 times as often
    as a "young" face); an "epoch" here is one pass over the largest class.

    ``data``: a FaceDataset or an (N, C, H, W) array; ``labels`` (N,) integer class ids.
    Labels come back as a host int64 array (they are tiny; the trainer moves them).
    """

    def __init__(self, data, labels, batch_size: int, n_classes: int = 2, seed: int = 0, backend=None):
        from ..data.batches import Minibatches
        labels = np.asarray(labels).astype(np.int64)
        if len(labels) != len(data):
            raise ValueError(f"BalancedBatches: {len(labels)} labels for {len(data)} samples")
        if batch_size % n_classes:
            raise ValueError(f"BalancedBatches: batch_size {batch_size} is not a multiple of {n_classes} classes")
        self.per_class = batch_size // n_classes
        self.n_classes, self.batch_size = n_classes, batch_size
        self.index = [np.flatnonzero(labels == k) for k in range(n_classes)]
        for k, idx in enumerate(self.index):
            if len(idx) < self.per_class:
                raise ValueError(f"BalancedBatches: class {k} has {len(idx)} samples, fewer than the "
                                 f"{self.per_class} each batch needs")
        self.data = data
        self.iters = [Minibatches(np.arange(len(idx)), self.per_class, seed=seed + 1000 * k)
                      for k, idx in enumerate(self.index)]
        self.backend = get_backend(backend if backend is not None else "numpy")
        self.class_counts = [len(i) for i in self.index]

    def __len__(self) -> int:
        """Batches per pass over the largest class."""
        return max(len(it) for it in self.iters)

    def next_indices(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.concatenate([self.index[k][it.next_indices()] for k, it in enumerate(self.iters)])
        labels = np.repeat(np.arange(self.n_classes), self.per_class)
        return idx, labels

    def next_batch(self):
        idx, labels = self.next_indices()
        if hasattr(self.data, "batch"):
            x = self.data.batch(idx, self.backend)
        else:
            from ..data.batches import uint8_to_float
            raw = self.data[idx]
            x = uint8_to_float(raw, self.backend) if raw.dtype == np.uint8 else self.backend.asarray(raw)
        return x, labels

    def state_dict(self) -> dict:
        return {f"class{k}": it.state_dict() for k, it in enumerate(self.iters)}

    def load_state_dict(self, state: dict) -> None:
        for k, it in enumerate(self.iters):
            it.load_state_dict(state[f"class{k}"])
