"""Fully connected layer."""
from __future__ import annotations

import numpy as np

from ..initializers import get_initializer
from .base import Layer


class Dense(Layer):
    """y = x @ W + b.   x (N, in_features) -> y (N, out_features); W (in, out), b (out,)."""

    def __init__(self, in_features: int, out_features: int, use_bias: bool = True,
                 init="glorot", rng=None, name: str | None = None):
        super().__init__(name)
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = rng if rng is not None else np.random.default_rng()
        w = get_initializer(init)((self.in_features, self.out_features),
                                  self.in_features, self.out_features, rng)
        self._add_param("W", w.astype(np.float32))
        if use_bias:
            self._add_param("b", np.zeros(self.out_features, np.float32))

    def forward(self, x, training=True):
        self._check_input(x, (self.in_features,))
        self.saved = (x,)
        y = x @ self.params["W"]
        if "b" in self.params:
            y += self.params["b"]
        return y

    def backward(self, grad):
        x, = self.saved_for_backward()
        if self.trainable:
            self.grads["W"] += x.T @ grad
            if "b" in self.params:
                self.grads["b"] += grad.sum(axis=0)
        return grad @ self.params["W"].T

    def output_shape(self, input_shape):
        return (self.out_features,)
