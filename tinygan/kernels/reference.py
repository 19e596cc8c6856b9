"""The definitions, one output at a time: loops that the tests and lesson 5 compare against.

Host NumPy only, and slow (Python loops over every window): for small arrays.  Each function
follows its formula literally, sharing no code with the layers or with tinygan.kernels.im2col.
"""
from __future__ import annotations

import numpy as np


def _padded(x, pad):
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _windows(h, w, kh, kw, stride, pad):
    """Output size (Ho, Wo) of a convolution."""
    return (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1


def conv2d_loops(x, W, b, stride, pad):
    """y[n, o, i, j] = b[o] + sum_{c,u,v} W[o, c, u, v] * xpad[n, c, i*stride + u, j*stride + v]."""
    n, _, h, w = x.shape
    c_out, _, kh, kw = W.shape
    ho, wo = _windows(h, w, kh, kw, stride, pad)
    xpad = _padded(x, pad)
    y = np.zeros((n, c_out, ho, wo), dtype=np.result_type(x, W))
    for s in range(n):
        for o in range(c_out):
            for i in range(ho):
                for j in range(wo):
                    window = xpad[s, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    y[s, o, i, j] = np.sum(window * W[o]) + (0 if b is None else b[o])
    return y


def conv2d_transpose_loops(x, W, b, stride, pad, output_padding=0):
    """Every input pixel stamps its weighted kernel onto the output:
    y[n, o, i*stride + u - pad, j*stride + v - pad] += x[n, c, i, j] * W[c, o, u, v]  (+ b[o])."""
    n, _, h, w = x.shape
    _, c_out, kh, kw = W.shape
    ho = (h - 1) * stride - 2 * pad + kh + output_padding
    wo = (w - 1) * stride - 2 * pad + kw + output_padding
    # Stamp into a frame large enough for every stamp, then cut the output out of it.
    frame_h, frame_w = (h - 1) * stride + kh + output_padding, (w - 1) * stride + kw + output_padding
    frame = np.zeros((n, c_out, frame_h, frame_w), dtype=np.result_type(x, W))
    for s in range(n):
        for c in range(x.shape[1]):
            for i in range(h):
                for j in range(w):
                    stamp = x[s, c, i, j] * W[c]                        # (C_out, kh, kw)
                    frame[s, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += stamp
    y = frame[:, :, pad:pad + ho, pad:pad + wo]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def im2col_loops(x, kh, kw, stride, pad):
    """cols (C*kh*kw, N*Ho*Wo): column (n, i, j) is the window at output (i, j) of image n, flattened."""
    n, c, h, w = x.shape
    ho, wo = _windows(h, w, kh, kw, stride, pad)
    xpad = _padded(x, pad)
    cols = np.zeros((c * kh * kw, n * ho * wo), dtype=x.dtype)
    for s in range(n):
        for i in range(ho):
            for j in range(wo):
                window = xpad[s, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                cols[:, (s * ho + i) * wo + j] = window.ravel()
    return cols


def col2im_loops(cols, x_shape, kh, kw, stride, pad):
    """The adjoint of im2col_loops: each column is added back onto the window it came from."""
    n, c, h, w = x_shape
    ho, wo = _windows(h, w, kh, kw, stride, pad)
    xpad = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for s in range(n):
        for i in range(ho):
            for j in range(wo):
                window = cols[:, (s * ho + i) * wo + j].reshape(c, kh, kw)
                xpad[s, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += window
    return xpad[:, :, pad:pad + h, pad:pad + w]
