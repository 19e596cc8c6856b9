"""Sequential: a list of layers run forward in order and backward in reverse."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from . import kernels
from .backend import Backend, get_array_module, to_numpy
from .errors import CheckpointError, ShapeError
from .io import load_npz, save_npz_atomic


@contextmanager
def trainable_set(model, trainable: bool):
    """Set ``model.trainable`` (anything with that switch) for a with-block, then restore it."""
    was = model.trainable
    model.trainable = trainable
    try:
        yield model
    finally:
        model.trainable = was


def frozen(model):
    """Freeze ``model`` for a with-block, then restore it.

    Inside, the model still passes input gradients but computes no parameter gradients, and its
    BatchNorm layers leave their running averages alone even in training mode."""
    return trainable_set(model, False)


class Sequential:
    """Chains layers.  ``forward(x, training)`` -> output; ``backward(grad)`` -> input gradient,
    with each layer's parameter gradients added into its ``grads`` (``zero_grad()`` clears them).
    Each layer runs through tinygan.kernels: its fast pass where one exists, else its own code.

    Freezing: ``model.trainable = False`` freezes every layer (they still pass gradients to their
    inputs, so a generator can learn *through* a frozen discriminator, but they compute no
    parameter gradients and are left out of ``trainable_parameters``); ``model.trainable = True``
    restores each layer's own flag.
    """

    def __init__(self, layers, input_shape=None, name: str = "model"):
        self.layers = list(layers)
        self.name = name
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self._trainable = True
        self._layer_flags = None
        seen = set()
        for i, layer in enumerate(self.layers):
            if layer.name is None:
                layer.name = f"{type(layer).__name__.lower()}_{i}"
            if layer.name in seen:
                raise ValueError(f"{name}: two layers are named {layer.name!r}; names key the saved weights")
            seen.add(layer.name)

    # -- passes -----------------------------------------------------------------------------
    def forward(self, x, training: bool = True):
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            expected = ", ".join(map(str, self.input_shape))
            raise ShapeError(f"{self.name}: expected input of shape (N, {expected}), "
                             f"got {tuple(x.shape)}")
        for layer in self.layers:
            x = kernels.forward(layer, x, training)
        return x

    __call__ = forward

    def backward(self, grad):
        """dL/dinput; every layer ADDS its parameter gradients (call zero_grad() first)."""
        for layer in reversed(self.layers):
            grad = kernels.backward(layer, grad)
        return grad

    # -- parameters and freezing ------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool):
        value = bool(value)
        if value == self._trainable:
            return
        if not value:
            self._layer_flags = [layer.trainable for layer in self.layers]
            for layer in self.layers:
                layer.trainable = False
        else:
            for layer, flag in zip(self.layers, self._layer_flags):
                layer.trainable = flag
        self._trainable = value

    def parameters(self):
        """All (key, param, grad) triples, key = 'layer.param'."""
        return [(f"{layer.name}.{k}", p, layer.grads[k])
                for layer in self.layers for k, p in layer.params.items()]

    def trainable_parameters(self):
        return [(f"{layer.name}.{k}", p, layer.grads[k])
                for layer in self.layers if layer.trainable for k, p in layer.params.items()]

    def zero_grad(self):
        """Set every layer's gradients to zero (before a backward whose gradients you will use)."""
        for layer in self.layers:
            layer.zero_grad()

    def num_params(self, trainable_only: bool = False) -> int:
        return sum(layer.num_params() for layer in self.layers if layer.trainable or not trainable_only)

    # -- backends -----------------------------------------------------------------------------
    def to(self, backend):
        """Move every array to ``backend`` (a Backend, 'numpy'/'cupy', or an array module)."""
        if isinstance(backend, str):
            from .backend import get_backend
            backend = get_backend(backend)
        xp = backend.xp if isinstance(backend, Backend) else backend
        for layer in self.layers:
            layer.to(xp)
        if isinstance(backend, Backend):
            self.astype(backend.dtype)
        return self

    def astype(self, dtype):
        for layer in self.layers:
            layer.astype(dtype)
        return self

    @property
    def xp(self):
        for layer in self.layers:
            if layer.params or layer.buffers:
                return layer.xp
        return np

    # -- inspection ---------------------------------------------------------------------------
    def output_shapes(self, input_shape=None):
        shape = tuple(input_shape or self.input_shape or ())
        if not shape:
            raise ValueError(f"{self.name}: give input_shape to the model or to summary()")
        shapes = []
        for layer in self.layers:
            shape = tuple(layer.output_shape(shape))
            shapes.append(shape)
        return shapes

    def summary(self, input_shape=None) -> str:
        """A Keras-style table: layer (type), output shape, parameter count."""
        shapes = self.output_shapes(input_shape)
        rows = [(f"{layer.name} ({type(layer).__name__})" + ("" if layer.trainable else " [frozen]"),
                 "(None, " + ", ".join(map(str, s)) + ")", f"{layer.num_params():,}")
                for layer, s in zip(self.layers, shapes)]
        head = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(r[i]) for r in rows + [head]) + 2 for i in range(3)]

        def line(r):
            return "".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()

        total, trainable = self.num_params(), self.num_params(trainable_only=True)
        bar = "=" * sum(widths)
        out = [f'Model: "{self.name}"', bar, line(head), bar] + [line(r) for r in rows] + [bar,
               f"Total params: {total:,}", f"Trainable params: {trainable:,}",
               f"Non-trainable params: {total - trainable:,}"]
        return "\n".join(out)

    # -- weights --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Host copies of every parameter and buffer: {'layer.W': array, 'layer.running_mean': ...}."""
        state = {}
        for layer in self.layers:
            for k, v in list(layer.params.items()) + list(layer.buffers.items()):
                state[f"{layer.name}.{k}"] = to_numpy(v).copy()
        return state

    def load_state_dict(self, state: dict, source: str = "state") -> None:
        expected = {}
        for layer in self.layers:
            for store in (layer.params, layer.buffers):
                for k in store:
                    expected[f"{layer.name}.{k}"] = (store, k)
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise CheckpointError(f"{self.name}: {source} does not fit this model: "
                                  f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                                  f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        for key, (store, k) in expected.items():
            if tuple(state[key].shape) != tuple(store[k].shape):
                raise CheckpointError(f"{self.name}: {source} has {key} of shape {tuple(state[key].shape)}, "
                                      f"the model expects {tuple(store[k].shape)}")
        for key, (store, k) in expected.items():
            xp = get_array_module(store[k])
            store[k][...] = xp.asarray(state[key], dtype=store[k].dtype)

    def save_weights(self, path) -> None:
        """Parameters and buffers to a .npz, written atomically."""
        save_npz_atomic(path, self.state_dict())

    def load_weights(self, path) -> None:
        self.load_state_dict(load_npz(path), source=f"weights file {path}")

    def __repr__(self):
        return f"Sequential(name={self.name!r}, layers={len(self.layers)})"
