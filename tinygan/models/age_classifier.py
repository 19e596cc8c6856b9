"""A small CNN that judges whether a face looks young or old: the referee of the face-aging demo.

It answers one question with one logit: "would a CelebA annotator have left the *Young* box
unticked?"  Positive logit = old (class 1), negative = young (class 0).  Trained with
binary cross-entropy on logits, on label-balanced batches (see :class:`~tinygan.gan.conditional.
BalancedBatches`) so that the threshold 0 is not biased toward the 78 % majority "young".

    x (N, 3, S, S) -> Conv 4x4/2 -> LReLU -> [Conv 4x4/2 -> BN -> LReLU] x 2 -> Flatten -> Dense -> (N, 1)

With ``base_filters`` f the convolutions have f, 2f, 4f filters; S = 32 or 64 (S/8 pixels remain
before the dense layer).
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, to_numpy
from ..layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, LeakyReLU
from ..losses import binary_cross_entropy_with_logits
from ..sequential import Sequential


def age_classifier(image_size: int = 64, base_filters: int = 16, channels: int = 3,
                   dropout: float = 0.0, seed: int | None = 2) -> Sequential:
    """image (N, channels, S, S) -> logit (N, 1), positive = old.  S divisible by 8."""
    if image_size % 8:
        raise ValueError(f"age_classifier: image_size must be divisible by 8, got {image_size}")
    rng = np.random.default_rng(seed)
    f = base_filters
    layers = [Conv2D(channels, f, 4, 2, 1, rng=rng, init="he", name="c_conv1"), LeakyReLU(0.2, name="c_lrelu1"),
              Conv2D(f, 2 * f, 4, 2, 1, use_bias=False, rng=rng, init="he", name="c_conv2"),
              BatchNorm(2 * f, name="c_bn2"), LeakyReLU(0.2, name="c_lrelu2"),
              Conv2D(2 * f, 4 * f, 4, 2, 1, use_bias=False, rng=rng, init="he", name="c_conv3"),
              BatchNorm(4 * f, name="c_bn3"), LeakyReLU(0.2, name="c_lrelu3"),
              Flatten(name="c_flatten")]
    if dropout:
        layers.append(Dropout(dropout, seed=seed, name="c_dropout"))
    s = image_size // 8
    layers.append(Dense(4 * f * s * s, 1, rng=rng, name="c_logit"))
    return Sequential(layers, input_shape=(channels, image_size, image_size), name=f"age_classifier{image_size}")


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
    model.backward(grad)
    optimizer.step(model.trainable_parameters())
    acc = ((logits > 0) == (y > 0.5)).mean()
    return loss, acc


def predict_logits(model: Sequential, images, batch_size: int = 256, backend=None):
    """Logits (N,) on the host for images (N, C, S, S): an array (host or device) or anything
    indexable that yields batches (a FaceDataset's ``images``).  Inference mode (running BN stats)."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if backend is not None:
            batch = backend.asarray(batch)
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
