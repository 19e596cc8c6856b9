"""Losses: each ``loss_fn(pred, targets) -> (loss, dloss/dpred)`` with mean reduction over all elements.

``targets`` may be an array broadcastable to ``pred`` or a scalar (label smoothing: 0.9).  The loss is
returned as a 0-d array on the prediction's backend (a NumPy scalar on NumPy), so computing it never
waits for the GPU; ``float(loss)`` copies it to the host and therefore synchronises -- do that only
when logging.
"""
from __future__ import annotations

import numbers

from .backend import get_array_module
from .layers.activations import stable_sigmoid


def _targets(xp, targets, dtype):
    """Scalars stay Python floats (weak-typed: no upcast); arrays move to pred's backend and dtype."""
    if isinstance(targets, numbers.Number):
        return float(targets)
    return xp.asarray(targets, dtype=dtype)


def binary_cross_entropy(probs, targets, eps: float = 1e-7):
    """mean(-(t log p + (1 - t) log(1 - p))) with p = clip(probs, eps, 1 - eps).

    The gradient is that of the clipped expression, as in Keras: (p - t) / (p (1 - p) n) where
    ``probs`` lies inside [eps, 1 - eps] and 0 where the clip is active.  Saturated probabilities
    therefore pass no gradient; prefer :func:`binary_cross_entropy_with_logits` on raw logits.
    """
    xp = get_array_module(probs)
    p = xp.clip(probs, eps, 1 - eps)
    t = _targets(xp, targets, probs.dtype)
    loss = -(t * xp.log(p) + (1 - t) * xp.log(1 - p)).mean()
    inside = (probs >= eps) & (probs <= 1 - eps)
    grad = (p - t) / (p * (1 - p))
    grad *= inside
    grad *= 1.0 / probs.size
    return loss, grad


def binary_cross_entropy_with_logits(logits, targets):
    """BCE of sigmoid(logits), computed from the logits: finite for any logit (|x| = 1e4 included).

    Per element max(x, 0) - x t + log1p(exp(-|x|)) (equal to -(t log s + (1 - t) log(1 - s)) with
    s = sigmoid(x), but exp is only taken of -|x|); gradient (sigmoid(x) - t) / n.
    """
    xp = get_array_module(logits)
    x, t = logits, _targets(xp, targets, logits.dtype)
    loss = (xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))).mean()
    grad = stable_sigmoid(x) - t
    grad *= 1.0 / logits.size
    return loss, grad


def mean_squared_error(pred, targets):
    """mean((pred - t)^2); gradient 2 (pred - t) / n."""
    diff = pred - _targets(get_array_module(pred), targets, pred.dtype)
    loss = (diff * diff).mean()
    diff *= 2.0 / pred.size
    return loss, diff
