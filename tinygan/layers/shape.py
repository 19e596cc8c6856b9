"""Layers that only change the shape of each sample: Reshape and Flatten (no copy when contiguous)."""
from __future__ import annotations

import math

from ..errors import ShapeError
from .base import Layer


class Reshape(Layer):
    """x (N, *in) -> y (N, *target_shape), with prod(in) == prod(target); one entry may be -1."""

    def __init__(self, target_shape, name: str | None = None):
        super().__init__(name)
        self.target_shape = tuple(int(s) for s in target_shape)
        if sum(s == -1 for s in self.target_shape) > 1 or any(s < -1 or s == 0 for s in self.target_shape):
            raise ValueError(f"Reshape '{name}': target_shape {self.target_shape} must hold positive sizes "
                             "and at most one -1")

    def output_shape(self, input_shape):
        size = math.prod(input_shape)
        known = math.prod(s for s in self.target_shape if s != -1)
        if -1 in self.target_shape:
            ok = size % known == 0
            out = tuple(size // known if s == -1 else s for s in self.target_shape)
        else:
            ok = size == known
            out = self.target_shape
        if not ok:
            raise ShapeError(f"Reshape '{self.name}': cannot reshape samples of shape {tuple(input_shape)} "
                             f"({size} values) to {self.target_shape}")
        return out

    def forward(self, x, training=True):
        self.saved = (x.shape,)
        return x.reshape((x.shape[0],) + self.output_shape(x.shape[1:]))

    def backward(self, grad):
        x_shape, = self.saved_for_backward()
        return grad.reshape(x_shape)


class Flatten(Layer):
    """x (N, *in) -> y (N, prod(in))."""

    def __init__(self, name: str | None = None):
        super().__init__(name)

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=True):
        self.saved = (x.shape,)
        return x.reshape(x.shape[0], -1)

    def backward(self, grad):
        x_shape, = self.saved_for_backward()
        return grad.reshape(x_shape)
