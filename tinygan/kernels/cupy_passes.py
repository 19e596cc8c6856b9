"""Fast CuPy passes of layers and optimizer updates: the layers' own math in fewer kernel launches.

On a GPU every CuPy call is a kernel launch costing 5-15 us of host time, and a DCGAN step is
made of small kernels, so the number of launches, not the arithmetic, sets the speed.  The
passes here compute what the layers' plain code computes, with three changes:

* Convolutions need no pass of their own: the layers' code calls the primitives of
  tinygan/kernels/im2col.py, which on CuPy hand over to tinygan/kernels/cupy_im2col.py: im2col
  as one strided copy out of a cached zero-bordered buffer, col2im as one gather plus one fused
  sum (instead of kh*kw slice copies or additions), and results stored channels first
  (``as_images``), so that the next convolution's ``as_matrix`` is a view instead of a
  transposing copy.
* Elementwise chains are ``cupy.fuse`` kernels: each activation is one kernel per pass,
  BatchNorm three per pass, an optimizer update one kernel for all parameters of one shape.
  Fused functions use only elementwise ufuncs and at most one reduction (what cupy.fuse
  compiles); every scalar is passed as a NumPy scalar of the array's dtype, so a fused kernel
  computes in the precision of the plain code (a Python float can promote float32 to float64 in
  CuPy 13's fusion).
* Elementwise passes work on their main operand in its own memory order
  (``_memory_ordered``): outputs keep the layout of inputs (channels first after a convolution),
  which is also what makes the stand-in's counts (NumPy behind CuPy's API) those of real CuPy,
  whose elementwise outputs are always C-ordered in the shape they are computed in.

BatchNorm folds pairs of reductions into one.  Forward: mean and variance from one pass over
x, as the sums of d = x - running_mean and of d^2 in float64 (the float64 difference of sums is
exact far below float32 rounding unless the batch mean lies 1e4 standard deviations from the
running mean; a two-pass variance needs a second reduction).  Backward: sum(dy) and
sum(dy * xhat) as the real and imaginary parts of one complex sum, sum(dy + i dy xhat), whose
two parts are summed independently (no rounding is shared).

Each pass has the contract of tinygan/kernels/numpy_passes.py: the same numbers as the layer's
plain code (up to float rounding), the same ``layer.saved`` (the same arrays by shape and value;
their memory layout may differ), gradients added into ``layer.grads``; so fast and plain passes
may be mixed.  The functions take ``xp`` from their arrays and run on NumPy too: the tests run
them on the CuPy stand-in (tests/cupy_standin) and, where a GPU is present, on real CuPy.
Device operations per DCGAN step, before and after: benchmarks/count_launches.py and
benchmarks/NOTES.md (GPU).
"""
from __future__ import annotations

from functools import cache
from types import SimpleNamespace

import numpy as np

from ..backend import get_array_module
from ..layers import BatchNorm, LeakyReLU, ReLU, Sigmoid, Tanh
from ..optimizers import SGD, Adam, Nadam


def _scalars(dtype, *values):
    """``values`` as NumPy scalars of ``dtype`` (float64 for a non-float dtype)."""
    t = np.dtype(dtype).type if np.dtype(dtype).kind in "fc" else np.float64
    return tuple(t(v) for v in values)


def _memory_ordered(a):
    """(view, order): ``a.transpose(order)`` with the axes sorted from the largest stride to the
    smallest, so that the view is C-contiguous (a copy where ``a`` is no permutation of a
    contiguous array).  Undo with ``_restore(result, order)``."""
    order = tuple(sorted(range(a.ndim), key=lambda i: -abs(a.strides[i])))
    view = a.transpose(order)
    if not view.flags.c_contiguous:
        view = get_array_module(a).ascontiguousarray(view)
    return view, order


def _restore(a, order):
    """The inverse of ``_memory_ordered``'s transposition."""
    return a.transpose(tuple(int(i) for i in np.argsort(order)))


def _fuse(xp, function):
    """``cupy.fuse(function)``: one kernel on CuPy (the function as it is on NumPy)."""
    return xp.fuse(function) if hasattr(xp, "fuse") else function


def _fused(xp, *functions):
    """The functions fused, by name."""
    return SimpleNamespace(**{f.__name__: _fuse(xp, f) for f in functions})


# == fused kernels ====================================================================================
@cache
def _elementwise(xp):
    """The fused elementwise kernels of the activations (one launch each)."""
    def leaky_relu(x, alpha, zero):
        positive = x > zero
        return xp.where(positive, x, alpha * x), positive

    def leaky_relu_backward(grad, positive, alpha):
        return xp.where(positive, grad, alpha * grad)

    def relu(x, zero):
        return xp.maximum(x, zero), x > zero

    def tanh_backward(grad, y, one):
        return grad * (one - y * y)

    def sigmoid(x, zero, one):
        e = xp.exp(-xp.abs(x))                     # overflow-free, as layers.activations.stable_sigmoid
        d = one + e
        return xp.where(x >= zero, one / d, e / d)

    def sigmoid_backward(grad, y, one):
        return grad * y * (one - y)

    return _fused(xp, leaky_relu, leaky_relu_backward, relu, tanh_backward, sigmoid, sigmoid_backward)


@cache
def _batchnorm_kernels(xp, axes: tuple, dtype):
    """BatchNorm's fused kernels for ``dtype`` data whose statistics are taken over ``axes`` (the
    axes other than the feature axis, which depends on the memory order)."""
    def shifted_sums(x, shift, i):
        """sum(d) + i sum(d^2) per feature, d = x - shift in float64: mean and variance in one pass."""
        d = x.astype(xp.float64) - shift
        return xp.sum(d + i * (d * d), axis=axes)

    def _moments(sum_d, sum_d2, shift, m, zero):
        offset = sum_d / m
        return shift + offset, xp.maximum(sum_d2 / m - offset * offset, zero)    # mean, biased var

    def batch_statistics(sum_d, sum_d2, shift, m, eps, zero):
        mean, var = _moments(sum_d, sum_d2, shift, m, zero)
        return mean.astype(dtype), xp.reciprocal(xp.sqrt(var + eps)).astype(dtype)

    def batch_statistics_updating(sum_d, sum_d2, running_mean, running_var, m, eps, zero, momentum,
                                  c_mean, c_var):
        """batch_statistics, with the running averages (the shift) updated in place as
        BatchNorm._update_running_statistics does: running = momentum running + (1 - momentum) batch."""
        mean, var = _moments(sum_d, sum_d2, running_mean, m, zero)
        running_mean *= momentum
        running_mean += c_mean * mean
        running_var *= momentum
        running_var += c_var * var
        return mean.astype(dtype), xp.reciprocal(xp.sqrt(var + eps)).astype(dtype)

    def inverse_std_of_variance(var, eps):
        return xp.reciprocal(xp.sqrt(var + eps))

    def normalise(x, mean, inv_std, gamma, beta):
        xhat = (x - mean) * inv_std
        return xhat, gamma * xhat + beta

    def gradient_sums(dy, xhat, i):                  # sum(dy) + i sum(dy xhat), one reduction
        return xp.sum(dy + i * (dy * xhat), axis=axes)

    def add_to_gradients(grad_gamma, grad_beta, sum_dy_xhat, sum_dy):
        grad_gamma += sum_dy_xhat
        grad_beta += sum_dy

    def batch_backward(dy, xhat, gamma, inv_std, sum_dy, sum_dy_xhat, m):
        """BatchNorm.backward with batch statistics, dxhat = gamma dy summed as gamma sum(dy)."""
        dxhat = dy * gamma
        return inv_std / m * (m * dxhat - gamma * sum_dy - xhat * (gamma * sum_dy_xhat))

    def affine_backward(dy, gamma, inv_std):         # running statistics: a fixed affine map
        return dy * gamma * inv_std

    return _fused(xp, shifted_sums, batch_statistics, batch_statistics_updating, inverse_std_of_variance,
                  normalise, gradient_sums, add_to_gradients, batch_backward, affine_backward)


# == layers ===========================================================================================
# -- BatchNorm: 3 kernels forward (one-pass sums, per-feature scalars, normalise), 2-3 backward -------
def _feature_layout(x3, order):
    """For an (N, F, P) array seen in ``order``: the axes the statistics run over, and the shape
    that broadcasts a per-feature (F,) vector against it."""
    f = order.index(1)
    return tuple(i for i in range(3) if i != f), tuple(x3.shape[1] if i == f else 1 for i in range(3))


def batchnorm_forward(layer, x, training=True):
    x3 = layer._per_feature(x)                                 # (N, F, P)
    n, _, p = x3.shape
    if training and n * p < 2:
        return layer.forward(x, training)                      # the layer's own error message
    xp = get_array_module(x)
    xt, order = _memory_ordered(x3)
    axes, per_feature = _feature_layout(x3, order)
    k = _batchnorm_kernels(xp, axes, x.dtype)
    gamma, beta = layer.params["gamma"].reshape(per_feature), layer.params["beta"].reshape(per_feature)
    rm, rv = layer.buffers["running_mean"], layer.buffers["running_var"]
    if training:
        # mean and variance in one pass: float64 sums of d = x - running_mean and of d^2
        m, mom = n * p, layer.momentum
        sums = k.shifted_sums(xt, rm.reshape(per_feature), np.complex128(1j))
        counts = _scalars(np.float64, m, layer.eps, 0)                       # m, eps, zero
        if layer.trainable:
            rates = _scalars(rm.dtype, mom, 1 - mom, (1 - mom) * m / (m - 1))
            mean, inv_std = k.batch_statistics_updating(sums.real, sums.imag, rm, rv, *counts, *rates)
        else:
            mean, inv_std = k.batch_statistics(sums.real, sums.imag, rm, *counts)
    else:
        mean, inv_std = rm, k.inverse_std_of_variance(rv, *_scalars(rv.dtype, layer.eps))
    xhat, y = k.normalise(xt, mean.reshape(per_feature), inv_std.reshape(per_feature), gamma, beta)
    layer.saved = (_restore(xhat, order), inv_std, training)
    return _restore(y, order).reshape(x.shape)


def batchnorm_backward(layer, grad):
    xhat, inv_std, batch_statistics = layer.saved_for_backward()
    xp = get_array_module(grad)
    xt, order = _memory_ordered(xhat)
    dyt = grad.reshape(xhat.shape).transpose(order)
    axes, per_feature = _feature_layout(xhat, order)
    k = _batchnorm_kernels(xp, axes, grad.dtype)
    gamma, inv_std_f = layer.params["gamma"].reshape(per_feature), inv_std.reshape(per_feature)
    if layer.trainable or batch_statistics:
        i = np.result_type(grad.dtype, np.complex64).type(1j)
        sums = k.gradient_sums(dyt, xt, i)
        sum_dy, sum_dy_xhat = sums.real, sums.imag
        if layer.trainable:
            k.add_to_gradients(layer.grads["gamma"], layer.grads["beta"], sum_dy_xhat, sum_dy)
    if batch_statistics:
        m = xhat.shape[0] * xhat.shape[2]
        dx = k.batch_backward(dyt, xt, gamma, inv_std_f, sum_dy.reshape(per_feature),
                              sum_dy_xhat.reshape(per_feature), *_scalars(grad.dtype, m))
    else:
        dx = k.affine_backward(dyt, gamma, inv_std_f)
    return _restore(dx, order).reshape(grad.shape)


# -- activations: one kernel per pass, in the input's memory order --------------------------------------
def leaky_relu_forward(layer, x, training=True):
    xt, order = _memory_ordered(x)
    y, positive = _elementwise(get_array_module(x)).leaky_relu(xt, *_scalars(x.dtype, layer.alpha, 0))
    layer.saved = (_restore(positive, order),)
    return _restore(y, order)


def leaky_relu_backward(layer, grad):
    positive, = layer.saved_for_backward()
    pt, order = _memory_ordered(positive)
    dx = _elementwise(get_array_module(grad)).leaky_relu_backward(grad.transpose(order), pt,
                                                                  *_scalars(grad.dtype, layer.alpha))
    return _restore(dx, order)


def relu_forward(layer, x, training=True):
    xt, order = _memory_ordered(x)
    y, positive = _elementwise(get_array_module(x)).relu(xt, *_scalars(x.dtype, 0))
    layer.saved = (_restore(positive, order),)
    return _restore(y, order)


def relu_backward(layer, grad):
    positive, = layer.saved_for_backward()
    pt, order = _memory_ordered(positive)
    return _restore(grad.transpose(order) * pt, order)


def tanh_forward(layer, x, training=True):
    xt, order = _memory_ordered(x)
    y = _restore(get_array_module(x).tanh(xt), order)
    layer.saved = (y,)
    return y


def tanh_backward(layer, grad):
    y, = layer.saved_for_backward()
    yt, order = _memory_ordered(y)
    dx = _elementwise(get_array_module(grad)).tanh_backward(grad.transpose(order), yt,
                                                            *_scalars(grad.dtype, 1))
    return _restore(dx, order)


def sigmoid_forward(layer, x, training=True):
    xt, order = _memory_ordered(x)
    y = _restore(_elementwise(get_array_module(x)).sigmoid(xt, *_scalars(x.dtype, 0, 1)), order)
    layer.saved = (y,)
    return y


def sigmoid_backward(layer, grad):
    y, = layer.saved_for_backward()
    yt, order = _memory_ordered(y)
    dx = _elementwise(get_array_module(grad)).sigmoid_backward(grad.transpose(order), yt,
                                                               *_scalars(grad.dtype, 1))
    return _restore(dx, order)


# == optimizers: one fused kernel for all parameters of one shape =======================================
# Each step updates one parameter in place, operation for operation as the optimizer's ``_update``
# (tinygan/optimizers.py), so on NumPy data the results are the same to the bit.
def _adam_step(xp, p, g, m, v, b1, c1, b2, c2, step_size, inv_sqrt_bc2, eps):
    m *= b1
    m += g * c1
    v *= b2
    v += (g * g) * c2
    p -= (m / (xp.sqrt(v) * inv_sqrt_bc2 + eps)) * step_size


def _nadam_step(xp, p, g, m, v, b1, c1, b2, c2, c_g, c_m, inv_sqrt_bc2, eps):
    m *= b1
    m += g * c1
    v *= b2
    v += (g * g) * c2
    p -= (m * c_m + g * c_g) / (xp.sqrt(v) * inv_sqrt_bc2 + eps)


def _sgd_step(xp, p, g, lr):
    p -= lr * g


def _sgd_momentum_step(xp, p, g, buf, lr, mu):
    buf *= mu
    buf += g
    p -= lr * buf


def _sgd_nesterov_step(xp, p, g, buf, lr, mu):
    buf *= mu
    buf += g
    p -= (buf * mu + g) * lr


@cache
def _update_kernel(xp, step, arrays_per_parameter: int, parameters: int):
    """``step`` applied to ``parameters`` parameters of one shape in one fused kernel: its
    arguments are every parameter's arrays, then the scalars they share."""
    def update(*args):
        arrays, scalars = args[:arrays_per_parameter * parameters], args[arrays_per_parameter * parameters:]
        for j in range(0, len(arrays), arrays_per_parameter):
            step(xp, *arrays[j:j + arrays_per_parameter], *scalars)
    update.__name__ = f"{step.__name__.strip('_')}_x{parameters}"
    return _fuse(xp, update)


def _apply(step, items, slots, scalars):
    """``step`` on every ``(p, g, state)`` in ``items`` (state arrays ``slots``), the parameters
    grouped by shape and dtype so that each group is one kernel (BatchNorm's gamma and beta, say)."""
    groups: dict = {}
    for p, g, state in items:
        groups.setdefault((p.shape, p.dtype.str), []).append((p, g, *(state[slot] for slot in slots)))
    for members in groups.values():
        p = members[0][0]
        kernel = _update_kernel(get_array_module(p), step, 2 + len(slots), len(members))
        kernel(*(a for arrays in members for a in arrays), *_scalars(p.dtype, *scalars))


def adam_update(optimizer, items, coeffs):
    step_size, inv_sqrt_bc2 = coeffs
    b1, b2 = optimizer.beta1, optimizer.beta2
    _apply(_adam_step, items, ("m", "v"), (b1, 1 - b1, b2, 1 - b2, step_size, inv_sqrt_bc2, optimizer.eps))


def nadam_update(optimizer, items, coeffs):
    c_g, c_m, inv_sqrt_bc2 = coeffs
    b1, b2 = optimizer.beta1, optimizer.beta2
    _apply(_nadam_step, items, ("m", "v"), (b1, 1 - b1, b2, 1 - b2, c_g, c_m, inv_sqrt_bc2, optimizer.eps))


def sgd_update(optimizer, items, coeffs):
    lr, mu = coeffs, optimizer.momentum
    if not mu:
        _apply(_sgd_step, items, (), (lr,))
    else:
        step = _sgd_nesterov_step if optimizer.nesterov else _sgd_momentum_step
        _apply(step, items, ("momentum",), (lr, mu))


UPDATES = {Adam: adam_update, Nadam: nadam_update, SGD: sgd_update}

PASSES = {
    BatchNorm: (batchnorm_forward, batchnorm_backward),
    LeakyReLU: (leaky_relu_forward, leaky_relu_backward),
    ReLU: (relu_forward, relu_backward),
    Tanh: (tanh_forward, tanh_backward),
    Sigmoid: (sigmoid_forward, sigmoid_backward),
}
