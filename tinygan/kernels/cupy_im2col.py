"""im2col / col2im for CuPy in one or two kernels each, and the channels-first storage they share.

The same matrices as tinygan.kernels.im2col (rows (c, u, v), columns (n, i, j)), built for a GPU,
where every CuPy call is a kernel launch and the launches, not the arithmetic, bound the speed:

* ``im2col``: the zero-padded image is one buffer (its border zeroed once, cached per shape: the
  memory of one padded input per shape), the image is copied into its interior, and all windows
  are copied out of a strided *view* of it in one copy: 2 kernels (1 without padding) instead of
  kh*kw slice copies.
* ``col2im``: a *gather* instead of kh*kw slice additions.  Output pixel (r, q) receives the
  kernel offsets (u, v) whose window (i, j) covers it: r = i*stride + u - pad.  Those (offset,
  window) pairs depend on the pixel only, so one small index table (H*W, T) per geometry and
  batch size, T <= ceil(kh/stride) * ceil(kw/stride), names them (copied to the device once);
  ``take`` fetches all T terms of every pixel and one fused reduction sums them (terms outside
  the image masked): 2 kernels, no atomics, the same sum in every run.
* A convolution over the whole image (kernel = image, no padding: the DCGAN's 4x4 -> 1x1 and
  1x1 -> 4x4 layers) is a dense layer: its im2col and col2im only reorder axes.

Channels-first storage.  The matrix product of a convolution gives (C, N*H*W): one row per
channel.  Instead of copying it into NCHW order, ``as_images`` returns it as an (N, C, H, W)
*view* whose memory is ordered (C, N, H, W) -- the same shape, another memory layout, as
PyTorch's channels_last keeps NCHW shapes over NHWC memory.  ``as_matrix`` is the way back and
is free for such arrays, so the transposing copies between convolutions disappear; the
elementwise passes (tinygan/kernels/cupy_passes.py) keep whatever layout they are given.

Measurements: benchmarks/NOTES.md (GPU).
"""
from __future__ import annotations

from collections import OrderedDict
from functools import cache

import numpy as np

from ..backend import get_array_module
from .im2col import conv_output_size

__all__ = ["as_matrix", "as_images", "im2col", "col2im", "clear_caches"]

_CACHE_ENTRIES = 64          # padded buffers and gather tables kept (least recently used dropped)
_padded_buffers: OrderedDict = OrderedDict()
_gather_tables: OrderedDict = OrderedDict()


def clear_caches() -> None:
    """Forget the cached zero-bordered buffers and gather tables (they are rebuilt on demand)."""
    _padded_buffers.clear()
    _gather_tables.clear()


def _device_id(a):
    """The GPU an array lives on (None for NumPy arrays, which these functions also accept)."""
    return getattr(getattr(a, "device", None), "id", None)


def _cached(store: OrderedDict, key, make):
    """``store[key]``, made by ``make()`` on first use; the least recently used entry goes when
    there are more than _CACHE_ENTRIES."""
    value = store.get(key)
    if value is None:
        value = store[key] = make()
        if len(store) > _CACHE_ENTRIES:
            store.popitem(last=False)
    else:
        store.move_to_end(key)
    return value


# -- layouts -------------------------------------------------------------------------------------
def as_matrix(x):
    """(N, C, H, W) -> (C, N*H*W), columns (n, i, j): a view when x is stored channels first,
    else one copy."""
    return x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)


def as_images(m, n: int, h: int, w: int):
    """(C, N*H*W) -> an (N, C, H, W) view stored channels first (no copy)."""
    return m.reshape(m.shape[0], n, h, w).transpose(1, 0, 2, 3)


def _whole_image(h, w, kh, kw, pad):
    """One window covering the whole unpadded image: the convolution is a dense layer."""
    return pad == 0 and (kh, kw) == (h, w)


# -- im2col --------------------------------------------------------------------------------------
def _padded(x, pad: int):
    """x (N, C, H, W) inside a zero border of width ``pad``: the interior of a cached buffer
    (stored channels first) whose border is zeroed once and never written; one copy per call."""
    if pad == 0:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    key = (c, n, h + 2 * pad, w + 2 * pad, x.dtype.str, _device_id(x))
    buffer = _cached(_padded_buffers, key, lambda: xp.zeros(key[:4], dtype=x.dtype))
    xpad = buffer.transpose(1, 0, 2, 3)
    xpad[:, :, pad:pad + h, pad:pad + w] = x
    return xpad


def im2col(x, kh: int, kw: int, stride: int, pad: int):
    """x (N, C, H, W), any memory layout -> cols (C*kh*kw, N*Ho*Wo) in at most two kernels."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    if _whole_image(h, w, kh, kw, pad):
        return x.transpose(1, 2, 3, 0).reshape(c * h * w, n)          # rows (c, u, v), columns n
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    xpad = _padded(x, pad)
    sn, sc, sh, sw = xpad.strides
    windows = xp.lib.stride_tricks.as_strided(xpad, (c, kh, kw, n, ho, wo),
                                              (sc, sh, sw, sn, sh * stride, sw * stride))
    return xp.ascontiguousarray(windows).reshape(c * kh * kw, n * ho * wo)


# -- col2im --------------------------------------------------------------------------------------
def _taps_per_position(size: int, n_windows: int, k: int, stride: int, pad: int):
    """For every position r of one image axis, the (offset u, window i) pairs with
    r = i*stride + u - pad, padded to the same count: arrays (size, T) u, i, valid."""
    pairs = [[(u, (r + pad - u) // stride) for u in range(k)
              if (r + pad - u) % stride == 0 and 0 <= (r + pad - u) // stride < n_windows]
             for r in range(size)]
    t = max(1, max(len(p) for p in pairs))
    u, i, valid = (np.zeros((size, t), dtype=np.intp) for _ in range(3))
    for r, p in enumerate(pairs):
        for slot, (ur, ir) in enumerate(p):
            u[r, slot], i[r, slot], valid[r, slot] = ur, ir, 1
    return u, i, valid.astype(bool)


def _gather_table(xp, shape, strides, kh, kw, stride, pad, device_id):
    """(index (H*W, T), valid (H*W, T)) on the device: for output pixel (r, q) and slot t, the
    offset within one (c, n) of the cols element it adds -- u*s_u + v*s_v + i*s_i + j*s_j, with
    the cols' strides in elements -- and whether that term exists (T = Th * Tw slots)."""
    def make():
        h, w, ho, wo = shape
        s_u, s_v, s_i, s_j = strides
        u, i, valid_h = _taps_per_position(h, ho, kh, stride, pad)
        v, j, valid_w = _taps_per_position(w, wo, kw, stride, pad)
        rows = u * s_u + i * s_i                                   # (H, Th)
        columns = v * s_v + j * s_j                                # (W, Tw)
        index = rows[:, None, :, None] + columns[None, :, None, :]   # (H, W, Th, Tw)
        valid = valid_h[:, None, :, None] & valid_w[None, :, None, :]
        index = np.where(valid, index, 0)                          # missing terms: any element, masked
        t = index.shape[2] * index.shape[3]
        return xp.asarray(index.reshape(h * w, t)), xp.asarray(valid.reshape(h * w, t))
    key = (shape, strides, kh, kw, stride, pad, device_id)
    return _cached(_gather_tables, key, make)


@cache
def _masked_tap_sum(xp):
    """terms (C, N, H*W, T), valid (H*W, T) -> (C, N, H*W): the sum of each pixel's existing terms,
    one fused kernel on CuPy."""
    def masked_tap_sum(terms, valid, zero):
        return xp.sum(xp.where(valid, terms, zero), axis=3)
    return xp.fuse(masked_tap_sum) if hasattr(xp, "fuse") else masked_tap_sum


def col2im(cols, x_shape, kh: int, kw: int, stride: int, pad: int):
    """The adjoint of im2col: cols (C*kh*kw, N*Ho*Wo) -> (N, C, H, W) stored channels first, in
    two kernels (a gather and a masked sum over each pixel's terms)."""
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    if _whole_image(h, w, kh, kw, pad):
        return cols.reshape(c, h, w, n).transpose(3, 0, 1, 2)
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    cols = xp.ascontiguousarray(cols)
    item = cols.itemsize
    s_c, s_u, s_v, s_n, s_i, s_j = (s // item for s in cols.reshape(c, kh, kw, n, ho, wo).strides)
    index, valid = _gather_table(xp, (h, w, ho, wo), (s_u, s_v, s_i, s_j), kh, kw, stride, pad,
                                 _device_id(cols))
    # windows[c, n, q] = the element q places after cols' element (c, 0, 0, n, 0, 0); the table's
    # offsets are below ``span``, so no element of the view lies past the end of cols.
    span = (kh - 1) * s_u + (kw - 1) * s_v + (ho - 1) * s_i + (wo - 1) * s_j + 1
    windows = xp.lib.stride_tricks.as_strided(cols, (c, n, span), (s_c * item, s_n * item, item))
    terms = xp.take(windows, index, axis=2)                            # (C, N, H*W, T)
    summed = _masked_tap_sum(xp)(terms, valid, cols.dtype.type(0))     # (C, N, H*W)
    return summed.reshape(c, n, h, w).transpose(1, 0, 2, 3)
