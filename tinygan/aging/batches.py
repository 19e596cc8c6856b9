"""Label-balanced batches: every real batch holds as many faces of each class (age) as of any other.

With 78 % young faces in CelebA, plain shuffled batches would show D "old" far less often among
real faces than among generated ones (which get uniformly random labels), and D could learn "this
label is rarer among real images, so this image is probably fake" instead of looking at the face.
The age classifier is trained on balanced batches too, so its threshold 0 is not biased toward
"young".
"""
from __future__ import annotations

import numpy as np

from ..backend import get_backend
from ..data.batches import Minibatches, uint8_to_float
from ..errors import ConfigError, DataError, ShapeError


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
        labels = np.asarray(labels).astype(np.int64)
        if len(labels) != len(data):
            raise ShapeError(f"BalancedBatches: {len(labels)} labels for {len(data)} samples")
        if batch_size % n_classes:
            raise ConfigError(f"BalancedBatches: batch size {batch_size} is not a multiple of the "
                              f"{n_classes} classes")
        self.per_class = batch_size // n_classes
        self.n_classes, self.batch_size = n_classes, batch_size
        self.index = [np.flatnonzero(labels == k) for k in range(n_classes)]
        for k, idx in enumerate(self.index):
            if len(idx) < self.per_class:
                raise DataError(f"BalancedBatches: class {k} has {len(idx)} samples, fewer than the "
                                f"{self.per_class} each batch needs; use a smaller batch or more data")
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
            raw = self.data[idx]
            x = uint8_to_float(raw, self.backend) if raw.dtype == np.uint8 else self.backend.asarray(raw)
        return x, labels

    def state_dict(self) -> dict:
        return {f"class{k}": it.state_dict() for k, it in enumerate(self.iters)}

    def load_state_dict(self, state: dict) -> None:
        for k, it in enumerate(self.iters):
            it.load_state_dict(state[f"class{k}"])
