"""The age classifier's training and its verdicts: the referee of face aging.

The model itself is :func:`tinygan.models.age_classifier` (one logit, positive = old).  It is
trained with binary cross-entropy on logits, on label-balanced batches (:class:`BalancedBatches`)
so that the threshold 0 is not biased toward the 78 % majority "young", with random left-right
flips.  Balanced accuracy (the mean of the two recalls) is reported beside plain accuracy.
"""
from __future__ import annotations

import time

import numpy as np

from ..backend import get_array_module, to_module, to_numpy
from ..losses import binary_cross_entropy_with_logits
from ..optimizers import Adam
from ..sequential import Sequential
from .batches import BalancedBatches


def classifier_step(model: Sequential, optimizer, x, labels, flip: bool = True, rng=None):
    """One optimizer step of BCE-with-logits on (x, labels in {0, 1}); returns (loss, accuracy) as 0-d arrays.

    ``flip``: mirror a random half of the batch left-right (faces are roughly symmetric, so this
    doubles the data for free).  ``rng`` is a host NumPy Generator for the flips.
    """
    xp = get_array_module(x)
    if flip:
        rng = rng if rng is not None else np.random.default_rng()
        mask = xp.asarray(rng.random(x.shape[0]) < 0.5).reshape(-1, 1, 1, 1)
        x = xp.where(mask, x[..., ::-1], x)
    y = xp.asarray(labels, dtype=x.dtype).reshape(-1, 1)
    logits = model.forward(x, training=True)
    loss, grad = binary_cross_entropy_with_logits(logits, y)
    model.zero_grad()
    model.backward(grad)
    optimizer.step(model.trainable_parameters())
    acc = ((logits > 0) == (y > 0.5)).mean()
    return loss, acc


def predict_logits(model: Sequential, images, batch_size: int = 256, backend=None):
    """Logits (N,) on the host for images (N, C, S, S): an array (host or device) or anything
    indexable that yields batches (a FaceDataset's ``images``).  Inference mode (running BN stats).
    Each batch goes to ``backend`` (default: the model's array module), copied there if need be."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        batch = backend.asarray(batch) if backend is not None else to_module(batch, model.xp)
        out.append(to_numpy(model.forward(batch, training=False)).reshape(-1))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def classification_report(logits, labels) -> dict:
    """Accuracy, balanced accuracy (mean of the per-class recalls) and both recalls, as floats.

    Balanced accuracy matters here: with 78 % young faces, calling everyone young scores 78 %
    accuracy but only 50 % balanced accuracy.
    """
    pred = np.asarray(logits).reshape(-1) > 0
    y = np.asarray(labels).reshape(-1).astype(bool)
    recall_old = float(pred[y].mean()) if y.any() else float("nan")
    recall_young = float((~pred[~y]).mean()) if (~y).any() else float("nan")
    return {"accuracy": float((pred == y).mean()), "balanced_accuracy": 0.5 * (recall_old + recall_young),
            "recall_old": recall_old, "recall_young": recall_young, "n": int(len(y)), "n_old": int(y.sum()),
            "share_called_old": float(pred.mean())}


def called_old(classifier, images, batch_size: int = 256) -> np.ndarray:
    """(N,) bool on the host: the age classifier's verdict (logit > 0 means old); ``images`` host or
    device, as in :func:`predict_logits`."""
    return predict_logits(classifier, images, batch_size) > 0


def train_age_classifier(model: Sequential, images, labels, epochs: float, backend, seed: int = 0,
                         batch_size: int = 64, log=None, log_every: int = 100) -> int:
    """Train ``model`` on ``images`` (a FaceDataset or an array) with age ``labels`` (N,) for ``epochs``
    passes of balanced batches; Adam at 1e-3, cut to 0.3e-3 for the last 30 % of the steps (a late,
    smaller step size settles BatchNorm and the weights).  ``log(text)`` reports the mean loss every
    ``log_every`` steps.  Returns the number of steps."""
    batches = BalancedBatches(images, labels, batch_size, seed=seed + 7, backend=backend)
    steps = max(1, int(epochs * len(images) / batch_size))
    opt = Adam(lr=1e-3, beta1=0.9)
    flips = np.random.default_rng(seed + 8)
    if log:
        log(f"age classifier: {model.num_params():,} parameters, {steps} steps of {batch_size} "
            f"(balanced young/old)")
    t0, losses = time.time(), []
    for step in range(1, steps + 1):
        if step == int(0.7 * steps):
            opt.lr *= 0.3
        x, y = batches.next_batch()
        loss, _ = classifier_step(model, opt, x, y, flip=True, rng=flips)
        losses.append(loss)
        if log and (step % log_every == 0 or step == steps):
            mean = float(np.mean([float(v) for v in losses]))
            log(f"  classifier step {step}/{steps}  loss {mean:.3f}  ({time.time() - t0:.0f} s)")
            losses = []
    return steps
