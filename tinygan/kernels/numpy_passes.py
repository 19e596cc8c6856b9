"""Fast NumPy passes of the heavy layers and of the optimizers' updates: the same math, blocked
for the cache and spread over worker threads.

Each pass computes what the layer's plain ``forward``/``backward`` computes (tested equal in
float64, tests/test_kernels.py), leaves the same ``layer.saved``, and adds into ``layer.grads``
the same way, so a fast backward may follow a plain forward and the other way round.

* Conv2D, Conv2DTranspose -- cache blocking: the batch is cut into chunks whose im2col matrix
  (or matrix to scatter) is at most ~8 MB, so a chunk's gather, product and scatter run while
  its data is still in the CPU caches; the chunks go to worker threads (kernels/threads.py), one
  share per worker, BLAS at one thread inside each, so one worker's gather or scatter runs while
  another's product does.  Each worker sums its chunks' weight gradients; the caller adds the
  workers' sums.  Uses the one-copy im2col and the phase-wise col2im (kernels/fast_im2col.py).
* BatchNorm -- the features are independent: a share of them per worker, the statistics and
  the output computed in place.
* LeakyReLU -- max(x, alpha x) instead of a select, and the slope built in place.
* the optimizers' updates -- elementwise, so big parameters are cut into flat pieces that the
  workers update at once (Adam's square roots and divisions are compute-bound); the same
  operations on the same numbers, so the results are identical.

Measurements behind each choice: benchmarks/NOTES.md.
"""
from __future__ import annotations

import numpy as np

from ..layers import BatchNorm, Conv2D, Conv2DTranspose, LeakyReLU
from ..optimizers import SGD, Adam, Nadam
from .fast_im2col import col2im_phases, im2col_strided
from .im2col import images_to_matrix
from .threads import for_each_range, map_parts, num_threads, worth_splitting

# Cache blocking: chunks of at most _CHUNK_ELEMENTS matrix entries (8 MB of float32) and at
# least _MIN_CHUNK_COLUMNS columns (so that each product stays large), at least one per worker.
_CHUNK_ELEMENTS = 1 << 21
_MIN_CHUNK_COLUMNS = 2048


def batch_chunks(n, rows, pixels):
    """Slices of a batch of n images whose (rows, images * pixels) matrices fit the cache."""
    per = max(_CHUNK_ELEMENTS // max(rows * pixels, 1), -(-_MIN_CHUNK_COLUMNS // pixels), 1)
    if worth_splitting(n * rows * pixels):
        per = min(per, -(-n // num_threads()))
    return [slice(i, min(i + per, n)) for i in range(0, n, per)]


def _columns(s, pixels):
    """The columns of a (rows, N*pixels) matrix that belong to the images in slice s."""
    return slice(s.start * pixels, s.stop * pixels)


def _to_nchw(m, h, w):
    """(C, n*H*W) -> an (n, C, H, W) view, to assign into a slice of an NCHW array."""
    return m.reshape(m.shape[0], -1, h, w).transpose(1, 0, 2, 3)


def _add_parameter_gradients(layer, partials, grad):
    """A convolution's grads["W"] += each worker's partial weight gradient (a sum over its chunks),
    and grads["b"] += the output gradient summed over batch and pixels; nothing when frozen."""
    if not layer.trainable:
        return
    dW = layer.grads["W"].reshape(partials[0].shape)
    for p in partials:
        dW += p
    if "b" in layer.params:
        layer.grads["b"] += grad.sum(axis=(0, 2, 3))


# -- Conv2D ------------------------------------------------------------------------------------
def conv2d_forward(layer, x, training=True):
    ho, wo = layer._output_hw(x)
    n, pixels = x.shape[0], ho * wo
    W2 = layer.params["W"].reshape(layer.out_channels, -1)
    cols = np.empty((W2.shape[1], n * pixels), dtype=x.dtype)          # what backward needs
    y = np.empty((n, layer.out_channels, ho, wo), dtype=np.result_type(x, W2))

    def work(chunks):
        for s in chunks:
            block = im2col_strided(x[s], layer.kh, layer.kw, layer.stride, layer.padding,
                                   out=cols[:, _columns(s, pixels)])
            y[s] = _to_nchw(W2 @ block, ho, wo)

    map_parts(work, batch_chunks(n, W2.shape[1], pixels))
    if "b" in layer.params:
        y += layer.params["b"].reshape(1, -1, 1, 1)
    layer.saved = (cols, x.shape)
    return y


def conv2d_backward(layer, grad):
    cols, x_shape = layer.saved_for_backward()
    n, _, ho, wo = grad.shape
    pixels = ho * wo
    W2 = layer.params["W"].reshape(layer.out_channels, -1)
    dx = np.empty(x_shape, dtype=np.result_type(grad, W2))

    def work(chunks):
        dW = None
        for s in chunks:
            dY = images_to_matrix(grad[s])                                 # (C_out, n*Ho*Wo)
            if layer.trainable:
                term = dY @ cols[:, _columns(s, pixels)].T
                dW = term if dW is None else dW + term
            col2im_phases(W2.T @ dY, dx[s].shape, layer.kh, layer.kw, layer.stride,
                          layer.padding, out=dx[s])
        return dW

    partials = map_parts(work, batch_chunks(n, W2.shape[1], pixels))
    _add_parameter_gradients(layer, partials, grad)
    return dx


# -- Conv2DTranspose -----------------------------------------------------------------------------
def conv2d_transpose_forward(layer, x, training=True):
    y_shape = layer._output_shape_of(x)
    n, _, h, w = x.shape
    W2 = layer.params["W"].reshape(layer.in_channels, -1)               # (C_in, C_out*kh*kw)
    X = images_to_matrix(x)                                             # what backward needs
    y = np.empty(y_shape, dtype=np.result_type(x, W2))

    def work(chunks):
        for s in chunks:
            block = W2.T @ X[:, _columns(s, h * w)]                     # (C_out*kh*kw, n*H*W)
            col2im_phases(block, y[s].shape, layer.kh, layer.kw, layer.stride, layer.padding,
                          out=y[s])

    map_parts(work, batch_chunks(n, W2.shape[1], h * w))
    if "b" in layer.params:
        y += layer.params["b"].reshape(1, -1, 1, 1)
    layer.saved = (X, x.shape)
    return y


def conv2d_transpose_backward(layer, grad):
    X, x_shape = layer.saved_for_backward()
    n, _, h, w = x_shape
    W2 = layer.params["W"].reshape(layer.in_channels, -1)
    dx = np.empty(x_shape, dtype=np.result_type(grad, W2))

    def work(chunks):
        dW = None
        for s in chunks:
            dcols = im2col_strided(grad[s], layer.kh, layer.kw, layer.stride, layer.padding)
            if layer.trainable:
                term = X[:, _columns(s, h * w)] @ dcols.T
                dW = term if dW is None else dW + term
            dx[s] = _to_nchw(W2 @ dcols, h, w)
        return dW

    partials = map_parts(work, batch_chunks(n, W2.shape[1], h * w))
    _add_parameter_gradients(layer, partials, grad)
    return dx


# -- BatchNorm -----------------------------------------------------------------------------------
def batchnorm_forward(layer, x, training=True):
    x3 = layer._per_feature(x)
    F, m = layer.num_features, x3.shape[0] * x3.shape[2]
    if not training:
        return layer.forward(x, training)          # a fixed affine map: nothing to split
    if m < 2:
        return layer.forward(x, training)          # the layer's own error message
    gamma, beta = layer.params["gamma"], layer.params["beta"]
    mean, var, inv_std = (np.empty(F, dtype=x3.dtype) for _ in range(3))
    xhat, y = np.empty_like(x3), np.empty_like(x3)

    def features(f):
        mean[f] = x3[:, f].mean(axis=(0, 2))
        np.subtract(x3[:, f], mean[f].reshape(-1, 1), out=xhat[:, f])
        var[f] = np.einsum("nfp,nfp->f", xhat[:, f], xhat[:, f]) / m     # no xc * xc temporary
        inv_std[f] = 1 / np.sqrt(var[f] + layer.eps)
        xhat[:, f] *= inv_std[f].reshape(-1, 1)
        np.multiply(xhat[:, f], gamma[f].reshape(-1, 1), out=y[:, f])
        y[:, f] += beta[f].reshape(-1, 1)

    for_each_range(features, F, x3.size)
    if layer.trainable:
        layer._update_running_statistics(mean, var, m)
    layer.saved = (xhat, inv_std, True)
    return y.reshape(x.shape)


def batchnorm_backward(layer, grad):
    xhat, inv_std, batch_statistics = layer.saved_for_backward()
    if not batch_statistics:
        return layer.backward(grad)
    dy = grad.reshape(xhat.shape)
    F, m = layer.num_features, xhat.shape[0] * xhat.shape[2]
    gamma = layer.params["gamma"]
    sum_dy, sum_dy_xhat = np.empty_like(inv_std), np.empty_like(inv_std)
    dx = np.empty_like(xhat)

    def features(f):
        # With dxhat = gamma dy:  dx = gamma inv_std / m * (m dy - sum(dy) - xhat sum(dy xhat)),
        # built in dx by in-place steps (no full-size temporaries).
        sum_dy[f] = dy[:, f].sum(axis=(0, 2))
        sum_dy_xhat[f] = np.einsum("nfp,nfp->f", dy[:, f], xhat[:, f])
        np.multiply(xhat[:, f], (-sum_dy_xhat[f] / m).reshape(-1, 1), out=dx[:, f])
        dx[:, f] += dy[:, f]
        dx[:, f] -= (sum_dy[f] / m).reshape(-1, 1)
        dx[:, f] *= (gamma[f] * inv_std[f]).reshape(-1, 1)

    for_each_range(features, F, xhat.size)
    if layer.trainable:
        layer.grads["gamma"] += sum_dy_xhat
        layer.grads["beta"] += sum_dy
    return dx.reshape(grad.shape)


# -- LeakyReLU -----------------------------------------------------------------------------------
def leaky_relu_forward(layer, x, training=True):
    positive = x > 0
    y = np.multiply(x, layer.alpha)
    # max(x, alpha x) is x for x > 0 and alpha x below when alpha <= 1 (min when alpha > 1)
    (np.maximum if layer.alpha <= 1 else np.minimum)(x, y, out=y)
    layer.saved = (positive,)
    return y


def leaky_relu_backward(layer, grad):
    positive, = layer.saved_for_backward()
    dx = positive.astype(grad.dtype)                 # slope = 1 where x > 0, alpha elsewhere
    dx *= 1 - layer.alpha
    dx += layer.alpha
    dx *= grad
    return dx


# -- optimizers ----------------------------------------------------------------------------------
_PIECE = 1 << 18


def _pieces(p, g, state):
    """(p, g, state) as flat pieces of at most _PIECE elements: views, so updates land in place."""
    arrays = [p, g, *state.values()]
    if p.size <= _PIECE or not all(a.flags.c_contiguous for a in arrays):
        return [(p, g, state)]
    flat = [a.reshape(-1) for a in arrays]
    return [(flat[0][i:i + _PIECE], flat[1][i:i + _PIECE],
             {slot: a[i:i + _PIECE] for slot, a in zip(state, flat[2:])})
            for i in range(0, p.size, _PIECE)]


def update_in_pieces(optimizer, items, coeffs):
    def work(pieces):
        for p, g, state in pieces:
            optimizer._update(p, g, state, coeffs)

    if worth_splitting(sum(p.size for p, _, _ in items)):
        map_parts(work, [piece for p, g, state in items for piece in _pieces(p, g, state)])
    else:
        work(items)


UPDATES = {SGD: update_in_pieces, Adam: update_in_pieces, Nadam: update_in_pieces}

PASSES = {
    Conv2D: (conv2d_forward, conv2d_backward),
    Conv2DTranspose: (conv2d_transpose_forward, conv2d_transpose_backward),
    BatchNorm: (batchnorm_forward, batchnorm_backward),
    LeakyReLU: (leaky_relu_forward, leaky_relu_backward),
}
