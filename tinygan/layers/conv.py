"""2-D convolution and its adjoint, the transposed convolution, both through im2col."""
from __future__ import annotations

import numpy as np

from ..initializers import get_initializer
from .base import Layer
from .im2col import col2im, conv_output_size, im2col


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _nchw_to_rows(a):
    """(N, C, H, W) -> (N*H*W, C): one row per pixel, the layout im2col's matrix product uses."""
    n, c, h, w = a.shape
    return a.transpose(0, 2, 3, 1).reshape(n * h * w, c)


def _rows_to_nchw(rows, n, h, w):
    xp_rows = rows.reshape(n, h, w, -1).transpose(0, 3, 1, 2)
    return xp_rows.copy() if not xp_rows.flags.c_contiguous else xp_rows


class Conv2D(Layer):
    """Cross-correlation, as in every framework.  x (N, C_in, H, W) -> (N, C_out, Ho, Wo);
    W (C_out, C_in, kh, kw), b (C_out,);  Ho = (H + 2*padding - kh) // stride + 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=4, stride: int = 1,
                 padding: int = 0, use_bias: bool = True, init="normal", rng=None,
                 name: str | None = None):
        super().__init__(name)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kh, self.kw = _pair(kernel_size)
        self.stride, self.padding = int(stride), int(padding)
        rng = rng if rng is not None else np.random.default_rng()
        k = self.kh * self.kw
        w = get_initializer(init)((self.out_channels, self.in_channels, self.kh, self.kw),
                                  self.in_channels * k, self.out_channels * k, rng)
        self._add_param("W", w.astype(np.float32))
        if use_bias:
            self._add_param("b", np.zeros(self.out_channels, np.float32))

    def forward(self, x, training=True):
        self._check_input(x, (self.in_channels, None, None))
        n, _, h, w = x.shape
        if h + 2 * self.padding < self.kh or w + 2 * self.padding < self.kw:
            from ..errors import ShapeError
            raise ShapeError(f"Conv2D '{self.name}': input {tuple(x.shape)} is smaller than the "
                             f"{self.kh}x{self.kw} kernel even with padding {self.padding}")
        self.x_shape = x.shape
        self.cols, (ho, wo) = im2col(x, self.kh, self.kw, self.stride, self.padding)
        y = self.cols @ self.params["W"].reshape(self.out_channels, -1).T   # (N*Ho*Wo, C_out)
        if "b" in self.params:
            y += self.params["b"]
        return _rows_to_nchw(y, n, ho, wo)

    def backward(self, grad):
        dy = _nchw_to_rows(grad)                                            # (N*Ho*Wo, C_out)
        w2 = self.params["W"].reshape(self.out_channels, -1)
        if self.trainable:
            self.grads["W"][...] = (dy.T @ self.cols).reshape(self.params["W"].shape)
            if "b" in self.params:
                self.grads["b"][...] = dy.sum(axis=0)
        return col2im(dy @ w2, self.x_shape, self.kh, self.kw, self.stride, self.padding)

    def output_shape(self, input_shape):
        _, h, w = input_shape
        return (self.out_channels, conv_output_size(h, self.kh, self.stride, self.padding),
                conv_output_size(w, self.kw, self.stride, self.padding))


class Conv2DTranspose(Layer):
    """The adjoint of Conv2D (what its backward does to gradients), used to upsample.
    x (N, C_in, H, W) -> (N, C_out, Ho, Wo);  W (C_in, C_out, kh, kw) as in PyTorch, b (C_out,);
    Ho = (H - 1)*stride - 2*padding + kh + output_padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=4, stride: int = 1,
                 padding: int = 0, output_padding: int = 0, use_bias: bool = True,
                 init="normal", rng=None, name: str | None = None):
        super().__init__(name)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kh, self.kw = _pair(kernel_size)
        self.stride, self.padding, self.output_padding = int(stride), int(padding), int(output_padding)
        if not 0 <= self.output_padding < max(self.stride, 1):
            raise ValueError(f"Conv2DTranspose '{name}': output_padding must be in [0, stride), "
                             f"got {output_padding} with stride {stride}")
        rng = rng if rng is not None else np.random.default_rng()
        k = self.kh * self.kw
        w = get_initializer(init)((self.in_channels, self.out_channels, self.kh, self.kw),
                                  self.in_channels * k, self.out_channels * k, rng)
        self._add_param("W", w.astype(np.float32))
        if use_bias:
            self._add_param("b", np.zeros(self.out_channels, np.float32))

    def _out_hw(self, h, w):
        return ((h - 1) * self.stride - 2 * self.padding + self.kh + self.output_padding,
                (w - 1) * self.stride - 2 * self.padding + self.kw + self.output_padding)

    def forward(self, x, training=True):
        self._check_input(x, (self.in_channels, None, None))
        n, _, h, w = x.shape
        ho, wo = self._out_hw(h, w)
        if ho < 1 or wo < 1:
            from ..errors import ShapeError
            raise ShapeError(f"Conv2DTranspose '{self.name}': input {tuple(x.shape)} gives an "
                             f"empty output ({ho}x{wo}) with padding {self.padding}")
        self.x_rows = _nchw_to_rows(x)                                      # (N*H*W, C_in)
        cols = self.x_rows @ self.params["W"].reshape(self.in_channels, -1)  # (N*H*W, C_out*kh*kw)
        # col2im onto the output: the same scatter Conv2D's backward does with its gradient.
        y = col2im(cols, (n, self.out_channels, ho, wo), self.kh, self.kw, self.stride, self.padding)
        if "b" in self.params:
            y += self.params["b"].reshape(1, -1, 1, 1)
        self.in_shape = x.shape
        return y

    def backward(self, grad):
        n, _, h, w = self.in_shape
        dcols, _ = im2col(grad, self.kh, self.kw, self.stride, self.padding)  # (N*H*W, C_out*kh*kw)
        w2 = self.params["W"].reshape(self.in_channels, -1)
        if self.trainable:
            self.grads["W"][...] = (self.x_rows.T @ dcols).reshape(self.params["W"].shape)
            if "b" in self.params:
                self.grads["b"][...] = grad.sum(axis=(0, 2, 3))
        return _rows_to_nchw(dcols @ w2.T, n, h, w)

    def output_shape(self, input_shape):
        _, h, w = input_shape
        return (self.out_channels, *self._out_hw(h, w))
