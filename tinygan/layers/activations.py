"""Elementwise activations.  Each keeps only what its backward needs: a boolean mask (ReLU,
LeakyReLU, 1 byte per element) or its own output (Tanh, Sigmoid, whose derivatives are
functions of the output)."""
from __future__ import annotations

from ..backend import get_array_module
from ..parallel import for_each_range
from .base import Layer


def stable_sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for any x: exp is only ever taken of -|x| <= 0.

    Split by sign: x >= 0 -> 1 / (1 + e), x < 0 -> e / (1 + e), with e = exp(-|x|) in (0, 1].
    Unlike 0.5 * (1 + tanh(x / 2)) this keeps full relative precision for very negative x
    (tiny but non-zero outputs instead of exact 0).
    """
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    d = 1 + e
    return xp.where(x >= 0, 1 / d, e / d)


def _before_forward(layer):
    return RuntimeError(f"{type(layer).__name__} '{layer.name}': backward called before forward")


class ReLU(Layer):
    """y = max(x, 0).   x (N, *) -> y (N, *) same shape."""

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self.mask = None

    def forward(self, x, training=True):
        xp = get_array_module(x)
        self.mask, y = xp.empty(x.shape, dtype=bool), xp.empty_like(x)

        def rows(s):
            xp.greater(x[s], 0, out=self.mask[s])
            xp.maximum(x[s], 0, out=y[s])

        for_each_range(rows, x.shape[0], x.size, xp)        # a share of the batch per core
        return y

    def backward(self, grad):
        if self.mask is None:
            raise _before_forward(self)
        xp = get_array_module(grad)
        dx = xp.empty_like(grad)
        for_each_range(lambda s: xp.multiply(grad[s], self.mask[s], out=dx[s]), grad.shape[0],
                       grad.size, xp)
        return dx


class LeakyReLU(Layer):
    """y = x if x > 0 else alpha * x.   x (N, *) -> y (N, *) same shape."""

    def __init__(self, alpha: float = 0.2, name: str | None = None):
        super().__init__(name)
        self.alpha = float(alpha)
        self.mask = None

    def forward(self, x, training=True):
        xp = get_array_module(x)
        self.mask, y = xp.empty(x.shape, dtype=bool), xp.empty_like(x)
        # max(x, alpha x) is x for x > 0 and alpha x below when alpha <= 1 (min when alpha > 1):
        # two streaming passes, where xp.where's per-element branch on a random mask is ~10x slower.
        larger = xp.maximum if self.alpha <= 1 else xp.minimum

        def rows(s):
            xp.greater(x[s], 0, out=self.mask[s])
            xp.multiply(x[s], self.alpha, out=y[s])
            larger(x[s], y[s], out=y[s])

        for_each_range(rows, x.shape[0], x.size, xp)        # a share of the batch per core
        return y

    def backward(self, grad):
        if self.mask is None:
            raise _before_forward(self)
        xp = get_array_module(grad)
        dx = xp.empty_like(grad)

        def rows(s):
            # dx = grad * slope, slope = 1 where x > 0 else alpha, built in place from the mask.
            d = dx[s]
            d[...] = self.mask[s]
            d *= 1 - self.alpha
            d += self.alpha
            d *= grad[s]

        for_each_range(rows, grad.shape[0], grad.size, xp)
        return dx


class Tanh(Layer):
    """y = tanh(x), dy/dx = 1 - y^2.   x (N, *) -> y (N, *) same shape."""

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self.y = None

    def forward(self, x, training=True):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, grad):
        if self.y is None:
            raise _before_forward(self)
        return grad * (1 - self.y * self.y)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)) (overflow-free), dy/dx = y (1 - y).   x (N, *) -> y (N, *) same shape."""

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self.y = None

    def forward(self, x, training=True):
        self.y = stable_sigmoid(x)
        return self.y

    def backward(self, grad):
        if self.y is None:
            raise _before_forward(self)
        return grad * self.y * (1 - self.y)
