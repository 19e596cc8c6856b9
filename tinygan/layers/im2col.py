"""im2col / col2im: turning a convolution into one matrix product.

A convolution slides a (C, kh, kw) window over the padded image.  im2col copies every window
into one row of a matrix, so the whole convolution becomes ``cols @ W.T``:

    x (N, C, H, W)  ->  cols (N*Ho*Wo, C*kh*kw)      rows ordered (n, i, j), columns (c, u, v)

The copy is one gather from a strided *view* of the padded input (no Python loop), which works
unchanged on CuPy.  col2im is its adjoint: it adds each row of window gradients back to the
pixels the window covered; overlapping windows sum, which is why it loops over the kh*kw kernel
offsets (each offset touches every output once, so the adds never collide).
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
    if pad == 0:
        return x
    xp = get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def im2col(x, kh: int, kw: int, stride: int, pad: int):
    """x (N, C, H, W) -> cols (N*Ho*Wo, C*kh*kw), plus (Ho, Wo)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    xpad = xp.ascontiguousarray(pad_images(x, pad))
    sn, sc, sh, sw = xpad.strides
    # windows[n, i, j, c, u, v] = xpad[n, c, i*stride + u, j*stride + v]
    windows = _as_strided(xp, xpad, (n, ho, wo, c, kh, kw),
                          (sn, sh * stride, sw * stride, sc, sh, sw))
    return xp.ascontiguousarray(windows).reshape(n * ho * wo, c * kh * kw), (ho, wo)


def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad: int):
    """Adjoint of im2col: cols (N*Ho*Wo, C*kh*kw) -> (N, C, H, W), summing overlapping windows."""
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    # (n, i, j, c, u, v) -> (u, v, n, c, i, j): one contiguous (n, c, i, j) block per offset
    blocks = cols.reshape(n, ho, wo, c, kh, kw).transpose(4, 5, 0, 3, 1, 2)
    out = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            out[:, :, u:u + stride * ho:stride, v:v + stride * wo:stride] += blocks[u, v]
    if pad:
        out = out[:, :, pad:pad + h, pad:pad + w]
    return out
