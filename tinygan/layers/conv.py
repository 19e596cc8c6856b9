"""2-D convolution and its adjoint, the transposed convolution, both as one matrix product.

Conv2D gathers every window of the input into a column (im2col, see tinygan/kernels/im2col.py)
and multiplies by the filters; its backward scatters the window gradients back (col2im).
Conv2DTranspose is the same pair the other way round: its forward is Conv2D's backward and
its backward is Conv2D's forward.  Activations inside are (C, N*H*W) matrices, one row per
channel; images_to_matrix / matrix_to_images convert from and to NCHW.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..initializers import get_initializer
from ..kernels.im2col import col2im, conv_output_size, im2col, images_to_matrix, matrix_to_images
from .base import Layer


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


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

    def _output_hw(self, x):
        """(Ho, Wo) for input x, after checking its shape."""
        self._check_input(x, (self.in_channels, None, None))
        h, w = x.shape[2:]
        if h + 2 * self.padding < self.kh or w + 2 * self.padding < self.kw:
            raise ShapeError(f"Conv2D '{self.name}': input {tuple(x.shape)} is smaller than the "
                             f"{self.kh}x{self.kw} kernel even with padding {self.padding}")
        return self.output_shape(x.shape[1:])[1:]

    def forward(self, x, training=True):
        ho, wo = self._output_hw(x)
        W2 = self.params["W"].reshape(self.out_channels, -1)              # (C_out, C_in*kh*kw)
        cols = im2col(x, self.kh, self.kw, self.stride, self.padding)     # (C_in*kh*kw, N*Ho*Wo)
        y = W2 @ cols                                                     # (C_out, N*Ho*Wo)
        if "b" in self.params:
            y += self.params["b"].reshape(-1, 1)
        self.saved = (cols, x.shape)
        return matrix_to_images(y, x.shape[0], ho, wo)

    def backward(self, grad):
        cols, x_shape = self.saved_for_backward()
        W2 = self.params["W"].reshape(self.out_channels, -1)
        dY = images_to_matrix(grad)                                       # (C_out, N*Ho*Wo)
        if self.trainable:
            dW = dY @ cols.T                                              # (C_out, C_in*kh*kw)
            self.grads["W"] += dW.reshape(self.params["W"].shape)
            if "b" in self.params:
                self.grads["b"] += dY.sum(axis=1)
        dcols = W2.T @ dY                                                 # (C_in*kh*kw, N*Ho*Wo)
        dX = col2im(dcols, x_shape, self.kh, self.kw, self.stride, self.padding)
        return dX

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

    def _output_shape_of(self, x):
        """(N, C_out, Ho, Wo) for input x, after checking its shape."""
        self._check_input(x, (self.in_channels, None, None))
        ho, wo = self._out_hw(*x.shape[2:])
        if ho < 1 or wo < 1:
            raise ShapeError(f"Conv2DTranspose '{self.name}': input {tuple(x.shape)} gives an "
                             f"empty output ({ho}x{wo}) with padding {self.padding}")
        return (x.shape[0], self.out_channels, ho, wo)

    def forward(self, x, training=True):
        y_shape = self._output_shape_of(x)
        W2 = self.params["W"].reshape(self.in_channels, -1)               # (C_in, C_out*kh*kw)
        X = images_to_matrix(x)                                           # (C_in, N*H*W)
        cols = W2.T @ X                                                   # (C_out*kh*kw, N*H*W)
        y = col2im(cols, y_shape, self.kh, self.kw, self.stride, self.padding)
        if "b" in self.params:
            y += self.params["b"].reshape(1, -1, 1, 1)
        self.saved = (X, x.shape)
        return y

    def backward(self, grad):
        X, x_shape = self.saved_for_backward()
        W2 = self.params["W"].reshape(self.in_channels, -1)
        dcols = im2col(grad, self.kh, self.kw, self.stride, self.padding)  # (C_out*kh*kw, N*H*W)
        if self.trainable:
            dW = X @ dcols.T                                              # (C_in, C_out*kh*kw)
            self.grads["W"] += dW.reshape(self.params["W"].shape)
            if "b" in self.params:
                self.grads["b"] += grad.sum(axis=(0, 2, 3))
        dX = W2 @ dcols                                                   # (C_in, N*H*W)
        n, _, h, w = x_shape
        return matrix_to_images(dX, n, h, w)

    def output_shape(self, input_shape):
        _, h, w = input_shape
        return (self.out_channels, *self._out_hw(h, w))
