"""Faster im2col / col2im for NumPy: the same matrices as tinygan.kernels.im2col, other loops.

* ``im2col_strided`` builds the matrix in one copy from a strided *view* of the padded input
  (``windows[c, u, v, n, i, j] = xpad[n, c, i*stride + u, j*stride + v]``) instead of kh*kw
  slice copies.
* ``col2im_phases`` adds the windows back one output *phase* at a time: the pixels (r, q) with
  r % stride == a and q % stride == b receive only the kernel offsets (u, v) with
  u - pad = a and v - pad = b (mod stride), each as a shifted copy of a (Ho, Wo) block.  Those
  are summed in a small contiguous buffer and the phase is written into the strided output once;
  no padded buffer is needed (windows that fall into the padding are left out).

Both can write into a given array (``out``): a column block of a whole-batch matrix, or a slice
of the batch, which is how the cache-blocked layer passes fill their results chunk by chunk.
Measurements: benchmarks/NOTES.md (v1, v4).
"""
from __future__ import annotations

import numpy as np

from .im2col import conv_output_size, pad_images


def im2col_strided(x, kh: int, kw: int, stride: int, pad: int, out=None):
    """im2col(x, ...) (C*kh*kw, N*Ho*Wo); ``out``: a (C*kh*kw, N*Ho*Wo) array to write into."""
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    xpad = np.ascontiguousarray(pad_images(x, pad))
    sn, sc, sh, sw = xpad.strides
    windows = np.lib.stride_tricks.as_strided(xpad, shape=(c, kh, kw, n, ho, wo),
                                              strides=(sc, sh, sw, sn, sh * stride, sw * stride),
                                              writeable=False)
    if out is None:
        return np.ascontiguousarray(windows).reshape(c * kh * kw, n * ho * wo)
    out.reshape(c, kh, kw, n, ho, wo)[...] = windows     # a view: out's rows split, columns split
    return out


def _taps(n_out: int, n_windows: int, phase: int, k: int, stride: int, pad: int):
    """The kernel offsets that reach output positions ``phase, phase + stride, ...`` (one axis).

    Window i at offset u covers position i*stride + u - pad, i.e. phase row i + d with
    d = (u - pad - phase) / stride whenever (u - pad) % stride == phase.  Returns
    [(u, first window, stop window, first phase row)], windows outside the image left out.
    """
    taps = []
    for u in range(k):
        if (u - pad) % stride != phase:
            continue
        d = (u - pad - phase) // stride
        first, stop = max(0, -d), min(n_windows, n_out - d)
        if stop > first:
            taps.append((u, first, stop, first + d))
    return taps


def col2im_phases(cols, x_shape, kh: int, kw: int, stride: int, pad: int, out=None):
    """col2im(cols, x_shape, ...) (N, C, H, W); ``out``: an (N, C, H, W) array to overwrite."""
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    blocks = cols.reshape(c, kh, kw, n, ho, wo)
    if out is None:
        out = np.empty((n, c, h, w), dtype=cols.dtype)
    out_cn = out.transpose(1, 0, 2, 3)                   # a view in the blocks' (c, n, i, j) order
    for a in range(stride):
        h_a = len(range(a, h, stride))                   # output rows in this phase
        rows = _taps(h_a, ho, a, kh, stride, pad)
        for b in range(stride):
            w_b = len(range(b, w, stride))
            columns = _taps(w_b, wo, b, kw, stride, pad)
            acc = np.zeros((c, n, h_a, w_b), dtype=cols.dtype)
            for u, i0, i1, r0 in rows:
                for v, j0, j1, q0 in columns:
                    acc[:, :, r0:r0 + i1 - i0, q0:q0 + j1 - j0] += blocks[:, u, v, :, i0:i1, j0:j1]
            out_cn[:, :, a::stride, b::stride] = acc
    return out
