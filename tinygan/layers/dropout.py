"""Inverted dropout."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .base import Layer


class Dropout(Layer):
    """Zero each element with probability ``rate`` and scale the rest by 1/(1-rate) in training;
    identity at inference.   x (N, *) -> y (N, *) same shape.

    Inverted dropout keeps E[y] = x in training, so inference needs no rescaling.  The keep-mask is
    drawn on the host from a ``numpy.random.Generator`` seeded at construction and then moved to
    the input's backend (one byte per element): the same seed gives the same masks on NumPy and
    CuPy, at the cost of a small host-to-device copy per forward.
    """

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None):
        super().__init__(name)
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout '{name}': rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.rng = np.random.default_rng(seed)

    def forward(self, x, training=True):
        if not training or self.rate == 0.0:
            self.saved = (None,)                   # no mask: the identity
            return x
        xp = get_array_module(x)
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
        scaled_mask = xp.asarray(keep).astype(x.dtype) * (1.0 / (1.0 - self.rate))
        self.saved = (scaled_mask,)
        return x * scaled_mask

    def backward(self, grad):
        scaled_mask, = self.saved_for_backward()
        return grad if scaled_mask is None else grad * scaled_mask
