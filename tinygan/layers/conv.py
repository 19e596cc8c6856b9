"""2-D convolution and its adjoint, the transposed convolution, both through im2col.

Both use the transposed im2col matrix (``im2col_t``: one *column* per window, see im2col.py) and
hold activations as (C, N*H*W) matrices: the matrix products then read and write whole image
planes, and NCHW <-> (C, N*H*W) only swaps N and C, a copy of whole planes rather than an
element-by-element transpose."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..initializers import get_initializer
from ..parallel import map_parts, num_threads, worth_splitting
from .base import Layer
from .im2col import col2im_t, conv_output_size, im2col_t


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _nchw_to_cm(a):
    """(N, C, H, W) -> (C, N*H*W): one row per channel ("channel-major"), a copy of whole planes."""
    xp = get_array_module(a)
    n, c, h, w = a.shape
    return xp.ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(c, n * h * w)


def _cm_as_nchw(m, h, w):
    """(C, N*H*W) -> an (N, C, H, W) *view* (assign it into an NCHW array to copy it there)."""
    return m.reshape(m.shape[0], -1, h, w).transpose(1, 0, 2, 3)


# Cache blocking, CPU only.  A whole batch's im2col matrix is tens of MB, more than the fast part
# of the CPU caches, so building it and then reading it in the matrix product (or writing the
# product and scattering it with col2im) is a round trip through main memory, several times
# slower than the cache.  Chunks of the batch with matrices of up to ~8 MB stay in cache from
# one step to the next, and at least 2048 columns keep each product large.  With several worker
# threads (tinygan.parallel) there is at least one chunk per worker, so that all cores work; one
# thread's gather or scatter then overlaps another's product.  A GPU wants the opposite (few,
# large kernels), so CuPy gets the whole batch at once.
_CHUNK_ELEMENTS = 1 << 21
_MIN_CHUNK_COLUMNS = 2048


def _batch_chunks(xp, n, rows, pixels):
    """Slices of the batch for (rows, images * pixels) matrices: one slice on CuPy, ~8 MB on NumPy."""
    if xp is not np:
        return [slice(0, n)]
    per = max(_CHUNK_ELEMENTS // max(rows * pixels, 1), -(-_MIN_CHUNK_COLUMNS // pixels), 1)
    if worth_splitting(n * rows * pixels, xp):
        per = min(per, -(-n // num_threads()))
    return [slice(i, min(i + per, n)) for i in range(0, n, per)]


def _accumulate(total, term):
    """total + term, summed into total in place (None: term is the first)."""
    if total is None:
        return term
    total += term
    return total


def _sum_into(out, partials):
    """out[...] = the sum of the workers' partial weight gradients (one per worker)."""
    out[...] = partials[0]
    for p in partials[1:]:
        out += p


def _columns(s, pixels):
    """The columns of a (rows, N*pixels) matrix that belong to the images in slice s."""
    return slice(s.start * pixels, s.stop * pixels)


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
        xp = get_array_module(x)
        ho, wo = self.output_shape(x.shape[1:])[1:]
        w2 = self.params["W"].reshape(self.out_channels, -1)                # (C_out, C_in*kh*kw)
        y = xp.empty((n, self.out_channels, ho, wo), dtype=xp.result_type(x.dtype, w2.dtype))
        self.x_shape = x.shape
        self.chunks = _batch_chunks(xp, n, w2.shape[1], ho * wo)

        def work(chunks):
            kept = []
            for s in chunks:
                cols_t, _ = im2col_t(x[s], self.kh, self.kw, self.stride, self.padding)
                kept.append(cols_t)                                         # (C_in*kh*kw, n*Ho*Wo)
                y[s] = _cm_as_nchw(w2 @ cols_t, ho, wo)
            return kept

        self.cols_t = [c for kept in map_parts(work, self.chunks, xp) for c in kept]  # for dW
        if "b" in self.params:
            y += self.params["b"].reshape(1, -1, 1, 1)
        return y

    def backward(self, grad):
        xp = get_array_module(grad)
        w2 = self.params["W"].reshape(self.out_channels, -1)
        dx = xp.empty(self.x_shape, dtype=xp.result_type(grad.dtype, w2.dtype))

        def work(chunks):
            dw = None
            for s, cols_t in chunks:
                dy = _nchw_to_cm(grad[s])                                   # (C_out, n*Ho*Wo)
                if self.trainable:
                    # dW = dy @ cols_t.T, summed over chunks (this worker's share; the caller
                    # adds the workers' sums).  BLAS reads the transpose in place.
                    dw = _accumulate(dw, dy @ cols_t.T)
                col2im_t(w2.T @ dy, dx[s].shape, self.kh, self.kw, self.stride, self.padding,
                         out=dx[s])
            return dw

        partial_dws = map_parts(work, list(zip(self.chunks, self.cols_t)), xp)
        if self.trainable:
            _sum_into(self.grads["W"].reshape(w2.shape), partial_dws)
        if self.trainable and "b" in self.params:
            self.grads["b"][...] = grad.sum(axis=(0, 2, 3))
        return dx

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
        xp = get_array_module(x)
        w2t = self.params["W"].reshape(self.in_channels, -1).T              # (C_out*kh*kw, C_in)
        y = xp.empty((n, self.out_channels, ho, wo), dtype=xp.result_type(x.dtype, w2t.dtype))
        self.in_shape = x.shape
        self.x_cm = _nchw_to_cm(x)                                          # (C_in, N*H*W), kept for dW
        self.chunks = _batch_chunks(xp, n, w2t.shape[0], h * w)

        def work(chunks):
            for s in chunks:
                cols_t = w2t @ self.x_cm[:, _columns(s, h * w)]            # (C_out*kh*kw, n*H*W)
                # col2im onto the output: the scatter Conv2D's backward does with its gradient.
                col2im_t(cols_t, y[s].shape, self.kh, self.kw, self.stride, self.padding, out=y[s])

        map_parts(work, self.chunks, xp)
        if "b" in self.params:
            y += self.params["b"].reshape(1, -1, 1, 1)
        return y

    def backward(self, grad):
        xp = get_array_module(grad)
        n, _, h, w = self.in_shape
        w2 = self.params["W"].reshape(self.in_channels, -1)                 # (C_in, C_out*kh*kw)
        dx = xp.empty(self.in_shape, dtype=xp.result_type(grad.dtype, w2.dtype))

        def work(chunks):
            dw = None
            for s in chunks:
                dcols_t, _ = im2col_t(grad[s], self.kh, self.kw, self.stride, self.padding)
                if self.trainable:
                    x_cm = self.x_cm[:, _columns(s, h * w)]
                    dw = _accumulate(dw, x_cm @ dcols_t.T)
                dx[s] = _cm_as_nchw(w2 @ dcols_t, h, w)
            return dw

        partial_dws = map_parts(work, self.chunks, xp)
        if self.trainable:
            _sum_into(self.grads["W"].reshape(w2.shape), partial_dws)
        if self.trainable and "b" in self.params:
            self.grads["b"][...] = grad.sum(axis=(0, 2, 3))
        return dx

    def output_shape(self, input_shape):
        _, h, w = input_shape
        return (self.out_channels, *self._out_hw(h, w))
