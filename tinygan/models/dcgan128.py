"""A DCGAN for 128x128 faces in the Keras style: strided convolutions down to 8x8 and a dense
classifier in D; a dense layer, a reshape and four transposed convolutions back up in G.
Trained with Nadam, as the Keras face-generation examples do."""
from __future__ import annotations

import numpy as np

from ..layers import BatchNorm, Conv2D, Conv2DTranspose, Dense, Flatten, LeakyReLU, Reshape, Tanh
from ..sequential import Sequential


def dcgan128_generator(latent_dim: int = 100, base_filters: int = 64, channels: int = 3,
                       seed: int | None = 0) -> Sequential:
    """z (N, latent_dim) -> Dense -> (8f, 8, 8) -> 16 -> 32 -> 64 -> 128: image (N, channels, 128, 128)."""
    rng = np.random.default_rng(seed)
    f = base_filters
    layers = [Dense(latent_dim, f * 8 * 8 * 8, init="normal", rng=rng, name="g_dense"),
              Reshape((f * 8, 8, 8), name="g_reshape"),
              BatchNorm(f * 8, name="g_bn0"), LeakyReLU(0.2, name="g_lrelu0")]
    widths = [f * 8, f * 4, f * 2, f]
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        layers += [Conv2DTranspose(cin, cout, 4, 2, 1, use_bias=False, rng=rng, name=f"g_deconv{i}"),
                   BatchNorm(cout, name=f"g_bn{i}"), LeakyReLU(0.2, name=f"g_lrelu{i}")]
    layers += [Conv2DTranspose(f, channels, 4, 2, 1, rng=rng, name="g_deconv4"), Tanh(name="g_tanh")]
    return Sequential(layers, input_shape=(latent_dim,), name="dcgan128_generator")


def dcgan128_discriminator(base_filters: int = 64, channels: int = 3, seed: int | None = 1) -> Sequential:
    """image (N, channels, 128, 128) -> 64 -> 32 -> 16 -> 8 -> Flatten -> Dense -> logit (N, 1)."""
    rng = np.random.default_rng(seed)
    f = base_filters
    layers = []
    widths = [channels, f, f * 2, f * 4, f * 8]
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        layers += [Conv2D(cin, cout, 4, 2, 1, rng=rng, name=f"d_conv{i}"), LeakyReLU(0.2, name=f"d_lrelu{i}")]
    layers += [Flatten(name="d_flatten"), Dense(f * 8 * 8 * 8, 1, init="normal", rng=rng, name="d_logit")]
    return Sequential(layers, input_shape=(channels, 128, 128), name="dcgan128_discriminator")
