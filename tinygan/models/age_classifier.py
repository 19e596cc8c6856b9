"""A small CNN that judges whether a face looks young or old: the referee of the face-aging demo.

It answers one question with one logit: "would a CelebA annotator have left the *Young* box
unticked?"  Positive logit = old (class 1), negative = young (class 0).  Training and
verdicts: :mod:`tinygan.aging.classifier`.

    x (N, 3, S, S) -> Conv 4x4/2 -> LReLU -> [Conv 4x4/2 -> BN -> LReLU] x 2 -> Flatten -> Dense -> (N, 1)

With ``base_filters`` f the convolutions have f, 2f, 4f filters; S = 32 or 64 (S/8 pixels remain
before the dense layer).
"""
from __future__ import annotations

import numpy as np

from ..layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, LeakyReLU
from ..sequential import Sequential


def age_classifier(image_size: int = 64, base_filters: int = 16, channels: int = 3,
                   dropout: float = 0.0, seed: int | None = 2) -> Sequential:
    """image (N, channels, S, S) -> logit (N, 1), positive = old.  S divisible by 8."""
    if image_size % 8:
        raise ValueError(f"age_classifier: image_size must be divisible by 8, got {image_size}")
    rng = np.random.default_rng(seed)
    f = base_filters
    layers = [Conv2D(channels, f, 4, 2, 1, rng=rng, init="he", name="c_conv1"),
              LeakyReLU(0.2, name="c_lrelu1"),
              Conv2D(f, 2 * f, 4, 2, 1, use_bias=False, rng=rng, init="he", name="c_conv2"),
              BatchNorm(2 * f, name="c_bn2"), LeakyReLU(0.2, name="c_lrelu2"),
              Conv2D(2 * f, 4 * f, 4, 2, 1, use_bias=False, rng=rng, init="he", name="c_conv3"),
              BatchNorm(4 * f, name="c_bn3"), LeakyReLU(0.2, name="c_lrelu3"),
              Flatten(name="c_flatten")]
    if dropout:
        layers.append(Dropout(dropout, seed=seed, name="c_dropout"))
    s = image_size // 8
    layers.append(Dense(4 * f * s * s, 1, rng=rng, name="c_logit"))
    return Sequential(layers, input_shape=(channels, image_size, image_size),
                      name=f"age_classifier{image_size}")
