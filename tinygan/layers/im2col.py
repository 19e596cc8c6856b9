"""im2col / col2im: turning a convolution into one matrix product.

A convolution slides a (C, kh, kw) window over the padded image.  im2col copies every window
into one row of a matrix, so the whole convolution becomes ``cols @ W.T``:

    x (N, C, H, W)  ->  cols (N*Ho*Wo, C*kh*kw)      rows ordered (n, i, j), columns (c, u, v)

The copy is one gather from a strided *view* of the padded input (no Python loop), which works
unchanged on CuPy.  col2im is its adjoint: it adds each row of window gradients back to the
pixels the window covered; overlapping windows sum, which is why it loops over the kh*kw kernel
offsets (each offset touches every output once, so the adds never collide).

The layers use the same matrix transposed, ``im2col_t`` / ``col2im_t``:

    x (N, C, H, W)  ->  cols_t (C*kh*kw, N*Ho*Wo)    rows ordered (c, u, v), columns (n, i, j)

and compute the convolution as ``W2 @ cols_t`` with ``W2 = W.reshape(C_out, C*kh*kw)``.  Same
numbers, but a faster memory layout on both CPU and GPU:

* in col2im_t the values for one kernel offset (u, v) and one channel are a contiguous run of
  N*Ho*Wo pixels, so the scatter-add streams through memory; in the row layout consecutive
  pixels of one offset lie C*kh*kw elements apart (a cache miss per element);
* the product's result (C_out, N*Ho*Wo) is already NCHW up to swapping N and C, a copy of whole
  (Ho, Wo) planes, where the row layout (N*Ho*Wo, C_out) needs an element-by-element transpose.
"""
from __future__ import annotations

from ..backend import get_array_module


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _as_strided(xp, a, shape, strides):
    if xp.__name__ == "numpy":
        return xp.lib.stride_tricks.as_strided(a, shape=shape, strides=strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)


def pad_images(x, pad: int):
    """x (N, C, H, W) with ``pad`` zeros around every image plane: a new C-contiguous array."""
    if pad == 0:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    out[:, :, pad:pad + h, pad:pad + w] = x      # one copy; xp.pad does the same, more slowly
    return out


def im2col(x, kh: int, kw: int, stride: int, pad: int):
    """x (N, C, H, W) -> cols (N*Ho*Wo, C*kh*kw), one row per window (the textbook layout), plus (Ho, Wo).

    The layers use the transposed matrix from ``im2col_t``; this is that matrix transposed back."""
    xp = get_array_module(x)
    cols_t, out_hw = im2col_t(x, kh, kw, stride, pad)
    return xp.ascontiguousarray(cols_t.T), out_hw


def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad: int):
    """Adjoint of im2col: cols (N*Ho*Wo, C*kh*kw) -> (N, C, H, W), summing overlapping windows."""
    n, c, _, _ = x_shape
    ho, wo = (conv_output_size(s, k, stride, pad) for s, k in zip(x_shape[2:], (kh, kw)))
    # (n, i, j, c, u, v) -> (c, u, v, n, i, j): the transposed layout col2im_t adds from
    cols_t = cols.reshape(n, ho, wo, c, kh, kw).transpose(3, 4, 5, 0, 1, 2)
    return col2im_t(cols_t.reshape(c * kh * kw, n * ho * wo), x_shape, kh, kw, stride, pad)


def im2col_t(x, kh: int, kw: int, stride: int, pad: int):
    """x (N, C, H, W) -> cols_t (C*kh*kw, N*Ho*Wo), the transpose of im2col's matrix, plus (Ho, Wo)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    xpad = xp.ascontiguousarray(pad_images(x, pad))
    sn, sc, sh, sw = xpad.strides
    # windows[c, u, v, n, i, j] = xpad[n, c, i*stride + u, j*stride + v]
    windows = _as_strided(xp, xpad, (c, kh, kw, n, ho, wo),
                          (sc, sh, sw, sn, sh * stride, sw * stride))
    return xp.ascontiguousarray(windows).reshape(c * kh * kw, n * ho * wo), (ho, wo)


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


def col2im_t(cols_t, x_shape, kh: int, kw: int, stride: int, pad: int, out=None):
    """Adjoint of im2col_t: cols_t (C*kh*kw, N*Ho*Wo) -> (N, C, H, W), summing overlapping windows.

    Works one output *phase* at a time: the pixels (r, q) with r % stride == a and q % stride == b
    receive only the kernel offsets (u, v) with u - pad = a and v - pad = b (mod stride), each as
    a shifted copy of its (Ho, Wo) block.  Those are summed in a small contiguous buffer and the
    phase is written into the strided output once, which is ~30% faster than adding every offset
    straight into the strided output, and needs no padded buffer: windows that fall into the
    padding are simply left out.
    ``out``: an (N, C, H, W) array to write the result into (overwritten) instead of a new one.
    """
    xp = get_array_module(cols_t)
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    blocks = cols_t.reshape(c, kh, kw, n, ho, wo)
    if out is None:
        out = xp.empty((n, c, h, w), dtype=cols_t.dtype)
    out_cn = out.transpose(1, 0, 2, 3)                   # a view in the blocks' (c, n, i, j) order
    for a in range(stride):
        h_a = len(range(a, h, stride))                   # output rows in this phase
        rows = _taps(h_a, ho, a, kh, stride, pad)
        for b in range(stride):
            w_b = len(range(b, w, stride))
            cols = _taps(w_b, wo, b, kw, stride, pad)
            acc = xp.zeros((c, n, h_a, w_b), dtype=cols_t.dtype)
            for u, i0, i1, r0 in rows:
                for v, j0, j1, q0 in cols:
                    acc[:, :, r0:r0 + i1 - i0, q0:q0 + j1 - j0] += blocks[:, u, v, :, i0:i1, j0:j1]
            out_cn[:, :, a::stride, b::stride] = acc
    return out
