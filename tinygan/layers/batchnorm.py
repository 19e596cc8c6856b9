"""Batch normalisation (Ioffe & Szegedy, 2015) for dense (N, F) and image (N, C, H, W) inputs."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..errors import ShapeError
from .base import Layer


class BatchNorm(Layer):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta per feature.  x (N, F) or (N, F, H, W) -> y same shape.

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

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) not in (1, 3) or input_shape[0] != self.num_features:
            raise ShapeError(f"BatchNorm '{self.name}': expected samples of shape ({self.num_features},) or "
                             f"({self.num_features}, H, W), got {input_shape}")
        return input_shape

    def _per_feature(self, x):
        """x (N, F) or (N, F, H, W) -> a (N, F, P) view, P = 1 or H*W: one code path for both, with
        the statistics taken over axes 0 and 2."""
        F = self.num_features
        if x.ndim == 2:
            self._check_input(x, (F,))
        elif x.ndim == 4:
            self._check_input(x, (F, None, None))
        else:
            raise ShapeError(f"BatchNorm '{self.name}': expected input of shape (N, {F}) or (N, {F}, H, W), "
                             f"got {tuple(x.shape)}")
        return x.reshape(x.shape[0], F, -1)

    def forward(self, x, training=True):
        xp = get_array_module(x)
        x3 = self._per_feature(x)                                 # (N, F, P)
        gamma, beta = self.params["gamma"].reshape(-1, 1), self.params["beta"].reshape(-1, 1)
        if training:
            m = x3.shape[0] * x3.shape[2]                         # values per feature
            if m < 2:
                raise ShapeError(f"BatchNorm '{self.name}': training mode needs more than one value per "
                                 f"feature to compute a variance, got input of shape {tuple(x.shape)}")
            mean = x3.mean(axis=(0, 2))
            var = ((x3 - mean.reshape(-1, 1)) ** 2).mean(axis=(0, 2))      # biased
            if self.trainable:
                self._update_running_statistics(mean, var, m)
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        inv_std = 1 / xp.sqrt(var + self.eps)
        xhat = (x3 - mean.reshape(-1, 1)) * inv_std.reshape(-1, 1)
        self.saved = (xhat, inv_std, training)
        return (gamma * xhat + beta).reshape(x.shape)

    def _update_running_statistics(self, mean, var, m):
        """running = momentum * running + (1 - momentum) * batch, with the unbiased variance."""
        mom = self.momentum
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        rm *= mom
        rm += (1 - mom) * mean
        rv *= mom
        rv += ((1 - mom) * m / (m - 1)) * var

    def backward(self, grad):
        xhat, inv_std, batch_statistics = self.saved_for_backward()
        dy = grad.reshape(xhat.shape)
        if self.trainable:
            self.grads["gamma"] += (dy * xhat).sum(axis=(0, 2))
            self.grads["beta"] += dy.sum(axis=(0, 2))
        dxhat = dy * self.params["gamma"].reshape(-1, 1)
        inv_std = inv_std.reshape(-1, 1)
        if not batch_statistics:                       # running statistics: a fixed affine map
            return (dxhat * inv_std).reshape(grad.shape)
        # The batch's mean and variance depend on every x as well:
        # dx = inv_std / m * (m dxhat - sum(dxhat) - xhat sum(dxhat xhat)), sums per feature.
        m = xhat.shape[0] * xhat.shape[2]
        sum_dxhat = dxhat.sum(axis=(0, 2), keepdims=True)
        sum_dxhat_xhat = (dxhat * xhat).sum(axis=(0, 2), keepdims=True)
        dx = inv_std / m * (m * dxhat - sum_dxhat - xhat * sum_dxhat_xhat)
        return dx.reshape(grad.shape)
