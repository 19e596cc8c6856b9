"""Batch normalisation (Ioffe & Szegedy, 2015) for dense (N, F) and image (N, C, H, W) inputs."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..errors import ShapeError
from ..parallel import for_each_range
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
        x3 = self._per_feature(x)
        if not training:
            inv_std = 1 / xp.sqrt(self.buffers["running_var"] + self.eps)
            scale = (self.params["gamma"] * inv_std).reshape(-1, 1)
            shift = self.params["beta"].reshape(-1, 1) - self.buffers["running_mean"].reshape(-1, 1) * scale
            # Keep x (a reference, no copy) to recompute xhat in backward only if gamma needs it.
            self._cache = ("eval", x3, inv_std)
            y = x3 * scale
            y += shift
            return y.reshape(x.shape)

        m = x3.shape[0] * x3.shape[2]  # values per feature
        if m < 2:
            raise ShapeError(f"BatchNorm '{self.name}': training mode needs more than one value per feature "
                             f"to compute a variance, got input of shape {tuple(x.shape)}")
        mean, var, inv_std = (xp.empty(self.num_features, dtype=x3.dtype) for _ in range(3))
        xc = xp.empty_like(x3)                                   # centred; xhat = xc * inv_std
        y = xp.empty_like(x3)
        gamma, beta = self.params["gamma"], self.params["beta"]

        def features(f):                                         # features are independent
            mean[f] = x3[:, f].sum(axis=(0, 2)) / m
            xp.subtract(x3[:, f], mean[f].reshape(-1, 1), out=xc[:, f])
            # einsum sums the products over batch and pixels without materialising xc * xc.
            var[f] = xp.einsum("nfp,nfp->f", xc[:, f], xc[:, f]) / m   # biased, two-pass
            inv_std[f] = 1 / xp.sqrt(var[f] + self.eps)
            xp.multiply(xc[:, f], (gamma[f] * inv_std[f]).reshape(-1, 1), out=y[:, f])
            y[:, f] += beta[f].reshape(-1, 1)

        for_each_range(features, self.num_features, x3.size, xp)  # a share of features per core
        # Backward gets xc and folds inv_std into its per-feature factors: one full pass fewer
        # than scaling xc into xhat here.
        self._cache = ("train", xc, inv_std)
        if self.trainable:
            mom = self.momentum
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= mom
            rm += (1 - mom) * mean
            rv *= mom
            rv += ((1 - mom) * m / (m - 1)) * var
        return y.reshape(x.shape)

    def backward(self, grad):
        if self._cache is None:
            raise RuntimeError(f"BatchNorm '{self.name}': backward called before forward")
        xp = get_array_module(grad)
        mode, saved, inv_std = self._cache
        dy = grad.reshape(saved.shape)
        gamma = self.params["gamma"]
        if mode == "eval":
            # y = x * gamma * inv_std + const: a per-feature affine map.
            if self.trainable:
                xhat = (saved - self.buffers["running_mean"].reshape(-1, 1)) * inv_std.reshape(-1, 1)
                self.grads["gamma"][...] = xp.einsum("nfp,nfp->f", dy, xhat)
                self.grads["beta"][...] = dy.sum(axis=(0, 2))
            return (dy * (gamma * inv_std).reshape(-1, 1)).reshape(grad.shape)

        xc = saved                                               # xhat = xc * inv_std
        m = xc.shape[0] * xc.shape[2]
        sum_dy = xp.empty_like(inv_std)
        sum_dy_xhat = xp.empty_like(inv_std)
        dx = xp.empty_like(xc)

        def features(f):
            sum_dy[f] = dy[:, f].sum(axis=(0, 2))
            sum_dy_xhat[f] = xp.einsum("nfp,nfp->f", dy[:, f], xc[:, f]) * inv_std[f]
            # dx = gamma / (m std) * (m dy - sum(dy) - xhat sum(dy xhat)), reductions per
            # feature, built in one output array (in-place steps, no full-size temporaries).
            xp.multiply(xc[:, f], (-sum_dy_xhat[f] * inv_std[f] / m).reshape(-1, 1), out=dx[:, f])
            dx[:, f] += dy[:, f]
            dx[:, f] -= (sum_dy[f] / m).reshape(-1, 1)
            dx[:, f] *= (gamma[f] * inv_std[f]).reshape(-1, 1)

        for_each_range(features, self.num_features, xc.size, xp)
        if self.trainable:
            self.grads["gamma"][...] = sum_dy_xhat
            self.grads["beta"][...] = sum_dy
        return dx.reshape(grad.shape)
