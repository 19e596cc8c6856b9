"""The DCGAN generator and discriminator for 64x64 images (Radford, Metz and Chintala, 2016).

Every weight is drawn from N(0, 0.02); convolutions carry no bias because BatchNorm follows
(its beta plays the bias).  The discriminator ends in one logit, not a probability: the loss
applies the sigmoid itself, which stays finite for any logit.
"""
from __future__ import annotations

import numpy as np

from ..layers import BatchNorm, Conv2D, Conv2DTranspose, Flatten, LeakyReLU, ReLU, Reshape, Tanh
from ..sequential import Sequential


def dcgan64_generator(latent_dim: int = 100, base_filters: int = 64, channels: int = 3,
                      seed: int | None = 0) -> Sequential:
    """z (N, latent_dim) -> image (N, channels, 64, 64) in [-1, 1]:
    1x1 -> 4x4 -> 8x8 -> 16x16 -> 32x32 -> 64x64 with 4x4 transposed convolutions."""
    rng = np.random.default_rng(seed)
    f = base_filters
    layers = [Reshape((latent_dim, 1, 1), name="g_noise")]
    widths = [latent_dim, f * 8, f * 4, f * 2, f]
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        stride, pad = (1, 0) if i == 0 else (2, 1)   # first layer: 1x1 -> 4x4, then doubling
        layers += [Conv2DTranspose(cin, cout, 4, stride, pad, use_bias=False, rng=rng, name=f"g_deconv{i + 1}"),
                   BatchNorm(cout, name=f"g_bn{i + 1}"), ReLU(name=f"g_relu{i + 1}")]
    layers += [Conv2DTranspose(f, channels, 4, 2, 1, use_bias=False, rng=rng, name="g_deconv5"),
               Tanh(name="g_tanh")]
    return Sequential(layers, input_shape=(latent_dim,), name="dcgan64_generator")


def dcgan64_discriminator(base_filters: int = 64, channels: int = 3, seed: int | None = 1) -> Sequential:
    """image (N, channels, 64, 64) -> logit (N, 1): 64 -> 32 -> 16 -> 8 -> 4 -> 1.
    No BatchNorm on the first layer, as in the paper (it would normalise away the input's colours)."""
    rng = np.random.default_rng(seed)
    f = base_filters
    layers = [Conv2D(channels, f, 4, 2, 1, use_bias=False, rng=rng, name="d_conv1"),
              LeakyReLU(0.2, name="d_lrelu1")]
    widths = [f, f * 2, f * 4, f * 8]
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:]), start=2):
        layers += [Conv2D(cin, cout, 4, 2, 1, use_bias=False, rng=rng, name=f"d_conv{i}"),
                   BatchNorm(cout, name=f"d_bn{i}"), LeakyReLU(0.2, name=f"d_lrelu{i}")]
    layers += [Conv2D(f * 8, 1, 4, 1, 0, use_bias=False, rng=rng, name="d_conv5"), Flatten(name="d_logit")]
    return Sequential(layers, input_shape=(channels, 64, 64), name="dcgan64_discriminator")
