"""Numeric gradient checks by central differences, as in CS231n's gradient_check.py.

    df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h        error O(h^2)

Run them in float64: with h = 1e-5 the truncation error is ~1e-10 and the rounding error
~eps/h ~ 1e-11, so an analytic gradient that is right agrees to ~1e-8 relative; float32 cannot
resolve those differences at all.
"""
from __future__ import annotations

import numpy as np

from .backend import get_array_module, to_numpy


def relative_error(a, b, floor: float = 1e-8) -> float:
    """max |a - b| / max(|a| + |b|, floor) over all entries: 0 is identical, ~1 is unrelated."""
    a, b = to_numpy(a).astype(np.float64), to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare gradients of shapes {a.shape} and {b.shape}")
    num = np.abs(a - b)
    den = np.maximum(np.abs(a) + np.abs(b), floor)
    return float(np.max(num / den)) if a.size else 0.0


def numeric_gradient(f, x, h: float = 1e-5, max_entries: int | None = None, rng=None):
    """Central-difference gradient of the scalar function f() with respect to array x, in place.

    ``f`` takes no argument and reads x (which is perturbed in place and restored).  With
    ``max_entries`` only that many random entries are checked; the rest are left as NaN.
    """
    xp = get_array_module(x)
    grad = xp.full(x.shape, np.nan, dtype=np.float64)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    if not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous so that perturbing a flat view perturbs x itself")
    idx = np.arange(flat_x.size)
    if max_entries is not None and flat_x.size > max_entries:
        idx = (rng or np.random.default_rng(0)).choice(flat_x.size, max_entries, replace=False)
    for i in idx:
        old = flat_x[i].item()
        flat_x[i] = old + h
        fp = float(f())
        flat_x[i] = old - h
        fm = float(f())
        flat_x[i] = old
        flat_g[i] = (fp - fm) / (2 * h)
    return grad


def check_layer_gradients(layer, x, training: bool = True, seed: int = 0, h: float = 1e-5,
                          max_entries: int | None = None) -> dict:
    """Relative errors of a layer's analytic gradients for its input and every parameter.

    The scalar checked is L = sum(y * r) for a fixed random r, so dL/dy = r exercises every
    output.  Layers with randomness (Dropout) must be deterministic between calls for this to
    hold; pass ``training=False`` or fix their mask.  Returns {"x": err, "W": err, ...}.
    """
    xp = get_array_module(x)
    y = layer.forward(x, training)
    r = xp.asarray(np.random.default_rng(seed).standard_normal(y.shape), dtype=y.dtype)

    def loss():
        return float((layer.forward(x, training) * r).sum())

    layer.forward(x, training)
    layer.zero_grad()                      # backward adds into the gradients
    dx = layer.backward(r)
    analytic = {"x": dx}
    analytic.update({k: g.copy() for k, g in layer.grads.items()})
    errors = {}
    for key, value in analytic.items():
        target = x if key == "x" else layer.params[key]
        num = numeric_gradient(loss, target, h=h, max_entries=max_entries)
        mask = ~np.isnan(to_numpy(num))
        errors[key] = relative_error(to_numpy(value)[mask], to_numpy(num)[mask])
    return errors


def check_loss_gradient(loss_fn, pred, target, h: float = 1e-5) -> float:
    """Relative error of ``loss_fn(pred, target) -> (loss, dpred)`` against central differences."""
    _, analytic = loss_fn(pred, target)
    num = numeric_gradient(lambda: loss_fn(pred, target)[0], pred, h=h)
    return relative_error(analytic, num)
