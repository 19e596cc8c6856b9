"""Elementwise activations.  Each keeps only what its backward needs: where the input was
positive (ReLU, LeakyReLU, a boolean mask) or its own output (Tanh, Sigmoid, whose derivatives
are functions of the output)."""
from __future__ import annotations

from ..backend import get_array_module
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


class ReLU(Layer):
    """y = max(x, 0).   x (N, *) -> y (N, *) same shape."""

    def forward(self, x, training=True):
        positive = x > 0
        self.saved = (positive,)
        return get_array_module(x).maximum(x, 0)

    def backward(self, grad):
        positive, = self.saved_for_backward()
        return grad * positive


class LeakyReLU(Layer):
    """y = x if x > 0 else alpha * x.   x (N, *) -> y (N, *) same shape."""

    def __init__(self, alpha: float = 0.2, name: str | None = None):
        super().__init__(name)
        self.alpha = float(alpha)

    def forward(self, x, training=True):
        positive = x > 0
        self.saved = (positive,)
        return get_array_module(x).where(positive, x, self.alpha * x)

    def backward(self, grad):
        positive, = self.saved_for_backward()
        return get_array_module(grad).where(positive, grad, self.alpha * grad)


class Tanh(Layer):
    """y = tanh(x), dy/dx = 1 - y^2.   x (N, *) -> y (N, *) same shape."""

    def forward(self, x, training=True):
        y = get_array_module(x).tanh(x)
        self.saved = (y,)
        return y

    def backward(self, grad):
        y, = self.saved_for_backward()
        return grad * (1 - y * y)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)) (overflow-free), dy/dx = y (1 - y).   x (N, *) -> y (N, *) same shape."""

    def forward(self, x, training=True):
        y = stable_sigmoid(x)
        self.saved = (y,)
        return y

    def backward(self, grad):
        y, = self.saved_for_backward()
        return grad * y * (1 - y)
