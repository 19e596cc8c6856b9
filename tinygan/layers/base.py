"""The Layer contract shared by every layer.

    y  = layer.forward(x, training)   # keeps what backward needs in layer.saved (a tuple)
    layer.zero_grad()                 # before a backward whose gradients you will use
    dx = layer.backward(dy)           # returns dL/dx and ADDS dL/dparams into layer.grads

Parameters and their gradients live side by side in two dicts with the same keys
(``params["W"]`` and ``grads["W"]``); non-trained state such as BatchNorm's running mean lives in
``buffers``.  Gradients accumulate, as in PyTorch: two backward passes (a real and a fake half
batch, say) leave the sum of their gradients, and ``zero_grad`` starts afresh.  A frozen layer
(``trainable = False``) still returns dL/dx but adds nothing to its gradients.
Shapes are per sample in ``output_shape`` (no batch axis), with images NCHW.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, to_numpy
from ..errors import ShapeError


class Layer:
    def __init__(self, name: str | None = None):
        self.name = name                  # Sequential names unnamed layers after their position
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self.saved = None                 # what forward keeps for backward (see saved_for_backward)
        # A frozen layer still returns its input gradient; it only skips its parameter
        # gradients (no one will use them) and the optimizer never updates it.
        self.trainable = True

    # -- the two passes -------------------------------------------------------------------
    def forward(self, x, training: bool = True):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def saved_for_backward(self) -> tuple:
        """What the last forward kept for backward; a clear error if there was no forward."""
        if self.saved is None:
            raise RuntimeError(f"{type(self).__name__} '{self.name}': backward called before forward")
        return self.saved

    def __call__(self, x, training: bool = True):
        return self.forward(x, training)

    def output_shape(self, input_shape: tuple) -> tuple:
        """Per-sample output shape for a per-sample input shape (no batch axis)."""
        return tuple(input_shape)

    # -- helpers for subclasses -----------------------------------------------------------
    def _add_param(self, key, value):
        self.params[key] = value
        self.grads[key] = np.zeros_like(value)

    def _check_input(self, x, expected: tuple):
        """Raise ShapeError unless x is (N, *expected); None in ``expected`` matches any size."""
        got = tuple(x.shape)
        ok = len(got) == len(expected) + 1 and all(e is None or e == g for e, g in zip(expected, got[1:]))
        if not ok:
            want = "(N, " + ", ".join("*" if e is None else str(e) for e in expected) + ")"
            raise ShapeError(f"{type(self).__name__} '{self.name}': expected input of shape {want}, "
                             f"got {got}")

    # -- moving between backends and precisions -------------------------------------------
    def _map_arrays(self, fn):
        for d in (self.params, self.grads, self.buffers):
            for k in d:
                d[k] = fn(d[k])

    def to(self, xp):
        """Move parameters, gradients and buffers onto the array module ``xp`` (numpy or cupy)."""
        if xp is np:
            self._map_arrays(to_numpy)
        else:
            self._map_arrays(xp.asarray)
        return self

    def astype(self, dtype):
        self._map_arrays(lambda a: a.astype(dtype))
        return self

    def zero_grad(self):
        """Set every gradient to zero, in place (optimizers hold references to these arrays)."""
        for g in self.grads.values():
            g[...] = 0

    @property
    def xp(self):
        arrays = list(self.params.values()) + list(self.buffers.values())
        return get_array_module(*arrays) if arrays else np

    def num_params(self) -> int:
        return int(sum(int(np.prod(p.shape)) for p in self.params.values()))

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"
