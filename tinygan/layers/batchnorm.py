"""Batch normalisation (Ioffe & Szegedy, 2015) for dense (N, F) and image (N, C, H, W) inputs."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..errors import ShapeError
from .base import Layer


class BatchNorm(Layer):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta per feature.   x (N, F) or (N, F, H, W) -> y same shape.

    Statistics are taken over every axis but the feature axis: over the batch for dense input
    (N, F), over batch and pixels for NCHW images (one mean/variance per channel).

    * ``training=True`` normalises with the batch mean and the biased batch variance (as the
      paper and PyTorch do) and, if the layer is ``trainable``, updates the running estimates
      ``running = momentum * running + (1 - momentum) * batch``.  That is the Keras convention:
      Keras ``momentum=0.9`` equals PyTorch ``momentum=0.1``.  As in PyTorch the running variance
      is fed the *unbiased* batch variance (times m / (m - 1), m = values per feature).
    * ``training=False`` normalises with the running estimates: a fixed affine map.

    A frozen BatchNorm (``trainable = False``) in training mode still normalises with batch
    statistics but leaves its running averages alone.  That is what a stacked GAN needs: when the
    generator is trained through a frozen discriminator, the discriminator must behave exactly as
    it does while it is itself trained (batch statistics, so its gradient is the one of the
    function it learned), yet these generator-step passes are not the discriminator's data and
    must not move its running averages (they change only when the discriminator trains).  Frozen
    layers still return the input gradient but skip gamma/beta gradients.

    Params ``gamma`` (ones), ``beta`` (zeros); buffers ``running_mean`` (zeros), ``running_var`` (ones).
    """

    def __init__(self, num_features: int, momentum: float = 0.9, eps: float = 1e-5,
                 name: str | None = None):
        super().__init__(name)
        self.num_features = int(num_features)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self._add_param("gamma", np.ones(self.num_features, np.float32))
        self._add_param("beta", np.zeros(self.num_features, np.float32))
        self.buffers["running_mean"] = np.zeros(self.num_features, np.float32)
        self.buffers["running_var"] = np.ones(self.num_features, np.float32)
        self._cache = None

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) not in (1, 3) or input_shape[0] != self.num_features:
            raise ShapeError(f"BatchNorm '{self.name}': expected samples of shape ({self.num_features},) or "
                             f"({self.num_features}, H, W), got {input_shape}")
        return input_shape

    def _layout(self, x):
        """Reduction axes and the broadcast shape of per-feature vectors for this input."""
        F = self.num_features
        if x.ndim == 2:
            self._check_input(x, (F,))
            return (0,), (1, F)
        if x.ndim == 4:
            self._check_input(x, (F, None, None))
            return (0, 2, 3), (1, F, 1, 1)
        raise ShapeError(f"BatchNorm '{self.name}': expected input of shape (N, {F}) or (N, {F}, H, W), "
                         f"got {tuple(x.shape)}")

    def forward(self, x, training=True):
        xp = get_array_module(x)
        axes, bshape = self._layout(x)
        gamma = self.params["gamma"].reshape(bshape)
        beta = self.params["beta"].reshape(bshape)
        if not training:
            inv_std = 1 / xp.sqrt(self.buffers["running_var"] + self.eps)
            scale = gamma * inv_std.reshape(bshape)
            shift = beta - self.buffers["running_mean"].reshape(bshape) * scale
            # Keep x (a reference, no copy) to recompute xhat in backward only if gamma needs it.
            self._cache = ("eval", x, inv_std.reshape(bshape), axes, bshape)
            return x * scale + shift

        m = x.size // self.num_features  # values per feature
        if m < 2:
            raise ShapeError(f"BatchNorm '{self.name}': training mode needs more than one value per feature "
                             f"to compute a variance, got input of shape {tuple(x.shape)}")
        mean = x.mean(axis=axes, keepdims=True)
        xhat = x - mean
        var = (xhat * xhat).mean(axis=axes, keepdims=True)
        inv_std = 1 / xp.sqrt(var + self.eps)
        xhat *= inv_std
        self._cache = ("train", xhat, inv_std, axes, bshape)
        if self.trainable:
            mom = self.momentum
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= mom
            rm += (1 - mom) * mean.reshape(-1)
            rv *= mom
            rv += ((1 - mom) * m / (m - 1)) * var.reshape(-1)
        return gamma * xhat + beta

    def backward(self, grad):
        if self._cache is None:
            raise RuntimeError(f"BatchNorm '{self.name}': backward called before forward")
        mode, saved, inv_std, axes, bshape = self._cache
        gamma = self.params["gamma"].reshape(bshape)
        if mode == "eval":
            # y = x * gamma * inv_std + const: a per-feature affine map.
            if self.trainable:
                xhat = (saved - self.buffers["running_mean"].reshape(bshape)) * inv_std
                self.grads["gamma"][...] = (grad * xhat).sum(axis=axes).reshape(-1)
                self.grads["beta"][...] = grad.sum(axis=axes).reshape(-1)
            return grad * (gamma * inv_std)

        xhat = saved
        m = xhat.size // self.num_features
        sum_dy = grad.sum(axis=axes, keepdims=True)
        sum_dy_xhat = (grad * xhat).sum(axis=axes, keepdims=True)
        if self.trainable:
            self.grads["gamma"][...] = sum_dy_xhat.reshape(-1)
            self.grads["beta"][...] = sum_dy.reshape(-1)
        # dx = gamma / (m std) * (m dy - sum(dy) - xhat sum(dy xhat)), reductions per feature.
        dx = grad * m
        dx -= sum_dy
        dx -= xhat * sum_dy_xhat
        dx *= gamma * (inv_std / m)
        return dx
