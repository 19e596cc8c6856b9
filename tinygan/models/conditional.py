"""A conditional DCGAN (Mirza & Osindero, 2014): G(z, y) and D(x, y) for a class label y.

The label enters each network by concatenation, the simplest way that works:

* the generator sees ``[z | onehot(y)]``: its input vector grows from ``latent_dim`` to
  ``latent_dim + n_classes`` entries;
* the discriminator sees its image with ``n_classes`` extra channels, the *label maps*: channel
  k is 1 everywhere if the label is k, else 0.  Every filter of D's first convolution can then
  weigh "is this face old?" together with the pixels.

Both networks are the DCGAN of :mod:`tinygan.models.dcgan` with extra input channels (ordinary
:class:`~tinygan.sequential.Sequential` stacks); :class:`ConditionalGenerator` and
:class:`ConditionalDiscriminator` are thin wrappers that run a :class:`LabelConcat` layer in
front of them.  Concatenation has no parameters and its backward just slices: the gradient of
``[a | b]`` with respect to ``a`` is the matching slice of the incoming gradient; the label part
is dropped (labels are data, not something we differentiate).

Labels may be integer class ids (N,) or rows of class weights (N, n_classes); the latter lets
you feed in-between labels such as (0.5, 0.5), which the networks never saw in training.
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..backend import get_array_module
from ..errors import ShapeError
from ..layers import Layer
from ..sequential import Sequential
from .dcgan import dcgan_discriminator, dcgan_generator


def one_hot(labels, n_classes: int, xp=None, dtype=np.float32):
    """Integer labels (N,) -> (N, n_classes) one-hot rows; (N, n_classes) weights pass through.

    ``xp`` is the array module of the result (default: the labels' own).  Works on NumPy and CuPy
    (``eye(K)[labels]`` is a gather both support).
    """
    xp = xp or get_array_module(labels)
    labels = xp.asarray(labels)
    if labels.ndim == 2:
        if labels.shape[1] != n_classes:
            raise ShapeError(f"label weights must have shape (N, {n_classes}), got {tuple(labels.shape)}")
        return labels.astype(dtype, copy=False)
    if labels.ndim != 1:
        raise ShapeError(f"labels must be class ids (N,) or weights (N, {n_classes}), "
                         f"got shape {tuple(labels.shape)}")
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"class ids must be integers or booleans, got dtype {labels.dtype}; pass "
                        f"(N, {n_classes}) float rows for soft labels")
    return xp.eye(n_classes, dtype=dtype)[labels]


class LabelConcat(Layer):
    """Appends the current labels to its input.  Set ``layer.labels`` ((N, K) one-hot) first.

    ``mode="vector"``: x (N, D) -> (N, D + K).
    ``mode="maps"``:   x (N, C, H, W) -> (N, C + K, H, W), label k as a constant channel.
    Backward returns the slice of the gradient that belongs to x; the labels get none.
    """

    def __init__(self, n_classes: int, mode: str = "vector", name: str | None = None):
        super().__init__(name)
        if mode not in ("vector", "maps"):
            raise ValueError(f"LabelConcat '{name}': mode must be 'vector' or 'maps', got {mode!r}")
        self.n_classes, self.mode = int(n_classes), mode
        self.labels = None

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.mode == "vector":
            return (input_shape[0] + self.n_classes,)
        return (input_shape[0] + self.n_classes,) + input_shape[1:]

    def forward(self, x, training=True):
        if self.labels is None:
            raise RuntimeError(f"LabelConcat '{self.name}': set .labels (N, {self.n_classes}) before forward")
        xp = get_array_module(x)
        y = self.labels
        if tuple(y.shape) != (x.shape[0], self.n_classes):
            raise ShapeError(f"LabelConcat '{self.name}': labels of shape {tuple(y.shape)} do not fit a "
                             f"batch of {x.shape[0]}; expected ({x.shape[0]}, {self.n_classes})")
        y = xp.asarray(y, dtype=x.dtype)
        self.saved = (x.shape[1],)
        if self.mode == "vector":
            if x.ndim != 2:
                raise ShapeError(f"LabelConcat '{self.name}' (vector): expected input (N, D), "
                                 f"got {tuple(x.shape)}")
            return xp.concatenate([x, y], axis=1)
        if x.ndim != 4:
            raise ShapeError(f"LabelConcat '{self.name}' (maps): expected input (N, C, H, W), "
                             f"got {tuple(x.shape)}")
        n, _, h, w = x.shape
        maps = xp.broadcast_to(y.reshape(n, self.n_classes, 1, 1), (n, self.n_classes, h, w))
        return xp.concatenate([x, maps], axis=1)

    def backward(self, grad):
        width, = self.saved_for_backward()
        # A contiguous copy: later layers (Conv2D's im2col) expect C-ordered arrays.
        return get_array_module(grad).ascontiguousarray(grad[:, :width])


class _Conditional:
    """What both wrappers share: the Sequential-like surface that trainers and optimizers use."""

    def __init__(self, net: Sequential, n_classes: int, mode: str, name: str):
        self.net = net
        self.n_classes = int(n_classes)
        self.concat = LabelConcat(n_classes, mode, name=f"{name}_label_concat")
        self.name = name

    def _set_labels(self, labels, x):
        self.concat.labels = one_hot(labels, self.n_classes, xp=get_array_module(x), dtype=x.dtype)

    def forward(self, x, labels, training: bool = True):
        self._set_labels(labels, x)
        return self.net.forward(self.concat.forward(x, training), training)

    __call__ = forward

    def backward(self, grad):
        """dL/dx for the last forward's input x (the label part of the gradient is dropped)."""
        return self.concat.backward(self.net.backward(grad))

    # -- the Sequential surface, delegated --------------------------------------------------
    @property
    def layers(self):
        return self.net.layers

    @property
    def trainable(self) -> bool:
        return self.net.trainable

    @trainable.setter
    def trainable(self, value: bool):
        self.net.trainable = value

    def parameters(self):
        return self.net.parameters()

    def trainable_parameters(self):
        return self.net.trainable_parameters()

    def zero_grad(self):
        self.net.zero_grad()

    def num_params(self, trainable_only: bool = False) -> int:
        return self.net.num_params(trainable_only)

    def to(self, backend):
        self.net.to(backend)
        return self

    def astype(self, dtype):
        self.net.astype(dtype)
        return self

    @property
    def xp(self):
        return self.net.xp

    def state_dict(self) -> dict:
        return self.net.state_dict()

    def load_state_dict(self, state: dict, source: str = "state") -> None:
        self.net.load_state_dict(state, source)

    def save_weights(self, path) -> None:
        """Parameters and buffers to a .npz, written atomically (Sequential.save_weights)."""
        self.net.save_weights(path)

    def load_weights(self, path) -> None:
        self.net.load_weights(path)

    def summary(self) -> str:
        return f"{type(self).__name__}: label concat ({self.concat.mode}, {self.n_classes} classes) ->\n" \
               + self.net.summary()

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, n_classes={self.n_classes}, net={self.net!r})"


class ConditionalGenerator(_Conditional):
    """G(z, y): z (N, latent_dim), labels (N,) ids or (N, K) weights -> images (N, C, S, S) in [-1, 1]."""

    def __init__(self, net: Sequential, latent_dim: int, n_classes: int = 2, name: str = "cond_generator"):
        super().__init__(net, n_classes, "vector", name)
        self.latent_dim = int(latent_dim)
        if net.input_shape is not None and net.input_shape != (self.latent_dim + self.n_classes,):
            raise ShapeError(f"{name}: the network takes {net.input_shape}, but z of {latent_dim} plus "
                             f"{n_classes} label entries gives ({self.latent_dim + self.n_classes},)")

    @property
    def image_shape(self) -> tuple:
        return tuple(self.net.output_shapes()[-1])


class ConditionalDiscriminator(_Conditional):
    """D(x, y): images (N, C, S, S), labels (N,) ids or (N, K) weights -> logits (N, 1)."""

    def __init__(self, net: Sequential, channels: int = 3, n_classes: int = 2,
                 name: str = "cond_discriminator"):
        super().__init__(net, n_classes, "maps", name)
        self.channels = int(channels)
        self._feature_layers = []               # the layers of the last features() call
        if net.input_shape is not None and net.input_shape[0] != self.channels + self.n_classes:
            raise ShapeError(f"{name}: the network takes {net.input_shape[0]} channels, but {channels} "
                             f"image channels plus {n_classes} label maps gives "
                             f"{self.channels + self.n_classes}")

    def features(self, x, labels, n_layers: int, training: bool = False):
        """Activations after the first ``n_layers`` layers of D (for feature matching)."""
        self._set_labels(labels, x)
        h = self.concat.forward(x, training)
        self._feature_layers = self.net.layers[:n_layers]
        for layer in self._feature_layers:
            h = kernels.forward(layer, h, training)
        return h

    def features_backward(self, grad):
        """dL/dx for the last :meth:`features` call."""
        for layer in reversed(self._feature_layers):
            grad = kernels.backward(layer, grad)
        return self.concat.backward(grad)


# -- builders: the DCGAN with extra input channels ------------------------------------------------

def conditional_generator(latent_dim: int = 100, n_classes: int = 2, image_size: int = 64,
                          base_filters: int = 64, channels: int = 3,
                          seed: int | None = 0) -> ConditionalGenerator:
    """The paper's DCGAN generator (:func:`~tinygan.models.dcgan.dcgan_generator`) on ``[z | onehot(y)]``:
    its 1x1 input map has ``latent_dim + n_classes`` channels.  At 64x64 the layers are exactly
    :func:`~tinygan.models.dcgan.dcgan64_generator`'s; at 32x32 the first stage has 4f channels."""
    net = dcgan_generator(latent_dim + n_classes, image_size, base_filters, channels, "paper", seed,
                          name=f"cdcgan{image_size}_generator")
    return ConditionalGenerator(net, latent_dim, n_classes)


def conditional_discriminator(n_classes: int = 2, image_size: int = 64, base_filters: int = 64,
                              channels: int = 3, seed: int | None = 1) -> ConditionalDiscriminator:
    """The paper's DCGAN discriminator on the image plus ``n_classes`` label maps (extra input channels)."""
    net = dcgan_discriminator(image_size, base_filters, channels + n_classes, "paper", seed,
                              name=f"cdcgan{image_size}_discriminator")
    return ConditionalDiscriminator(net, channels, n_classes)


def build_conditional_gan(image_size: int = 64, latent_dim: int = 100, n_classes: int = 2,
                          base_filters: int = 64, channels: int = 3, seed: int = 0):
    """(ConditionalGenerator, ConditionalDiscriminator): the paper's DCGAN at ``image_size`` (32, 64, ...)."""
    return (conditional_generator(latent_dim, n_classes, image_size, base_filters, channels, seed),
            conditional_discriminator(n_classes, image_size, base_filters, channels, seed + 1))
