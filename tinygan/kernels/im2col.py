"""im2col / col2im: a convolution as one matrix product, whole batch, NumPy or CuPy.

A convolution slides a (C, kh, kw) window over the zero-padded image.  im2col copies every
window into one *column* of a matrix, so the convolution of all windows with all filters
becomes one product ``W2 @ cols`` with ``W2 = W.reshape(C_out, C*kh*kw)``:

    x (N, C, H, W)  ->  cols (C*kh*kw, N*Ho*Wo)   rows ordered (c, u, v), columns (n, i, j)

Entry ``cols[(c, u, v), (n, i, j)] = xpad[n, c, i*stride + u, j*stride + v]``.  For one kernel
offset (u, v) those entries, over all windows, are the strided slice
``xpad[:, :, u::stride, v::stride]``: so im2col is kh*kw slice copies, and col2im, its adjoint,
adds the same slices back (overlapping windows sum).

The product's result (C_out, N*Ho*Wo) has one row per output channel: ``matrix_to_images``
turns it into (N, C_out, Ho, Wo), and ``images_to_matrix`` is the way back.

tinygan.kernels.reference has the same maps written as loops over windows; tinygan.kernels
has faster NumPy versions, tested equal to these.  On CuPy, while the fast kernels are on, each
primitive hands over to its one- or two-kernel twin in tinygan.kernels.cupy_im2col (same matrices),
so the layers' own code is also their fast CuPy pass.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module


def _cupy_twins(a):
    """tinygan.kernels.cupy_im2col for a device array while the fast kernels are on, else None."""
    from . import active
    if isinstance(a, np.ndarray) or active() != "fast":
        return None
    from . import cupy_im2col
    return cupy_im2col


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Windows along one axis: (size + 2 pad - kernel) // stride + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def pad_images(x, pad: int):
    """x (N, C, H, W) with ``pad`` zeros around every image plane (x itself when pad is 0)."""
    if pad == 0:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    out[:, :, pad:pad + h, pad:pad + w] = x
    return out


def _offset(u: int, v: int, stride: int, ho: int, wo: int):
    """The index of pixel (i*stride + u, j*stride + v) for every window (i, j): two slices."""
    return slice(u, u + stride * ho, stride), slice(v, v + stride * wo, stride)


def im2col(x, kh: int, kw: int, stride: int, pad: int):
    """x (N, C, H, W) -> cols (C*kh*kw, N*Ho*Wo), one column per window."""
    if twins := _cupy_twins(x):
        return twins.im2col(x, kh, kw, stride, pad)
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    xpad = pad_images(x, pad)
    cols = xp.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            rows, columns = _offset(u, v, stride, ho, wo)
            cols[:, u, v] = xpad[:, :, rows, columns].transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * ho * wo)


def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad: int):
    """The adjoint of im2col: cols (C*kh*kw, N*Ho*Wo) -> (N, C, H, W), overlapping windows summed."""
    if twins := _cupy_twins(cols):
        return twins.col2im(cols, x_shape, kh, kw, stride, pad)
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    cols = cols.reshape(c, kh, kw, n, ho, wo)
    xpad = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            rows, columns = _offset(u, v, stride, ho, wo)
            xpad[:, :, rows, columns] += cols[:, u, v].transpose(1, 0, 2, 3)
    return xp.ascontiguousarray(xpad[:, :, pad:pad + h, pad:pad + w])


def images_to_matrix(x):
    """(N, C, H, W) -> (C, N*H*W): one row per channel, columns ordered (n, i, j)."""
    if twins := _cupy_twins(x):
        return twins.as_matrix(x)
    xp = get_array_module(x)
    n, c, h, w = x.shape
    return xp.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(c, n * h * w)


def matrix_to_images(m, n: int, h: int, w: int):
    """(C, N*H*W) -> (N, C, H, W), the inverse of images_to_matrix (a new contiguous array)."""
    if twins := _cupy_twins(m):
        return twins.as_images(m, n, h, w)
    xp = get_array_module(m)
    return xp.ascontiguousarray(m.reshape(m.shape[0], n, h, w).transpose(1, 0, 2, 3))
