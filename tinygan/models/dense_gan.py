"""The sequential (dense) GAN of the first GAN paper, as in the Keras examples: a few dense
layers from noise to a flattened sample, and a few dense layers with LeakyReLU down to one logit.
Works for images (data_shape=(C, H, W), tanh output) and for points (data_shape=(2,))."""
from __future__ import annotations

import numpy as np

from ..layers import BatchNorm, Dense, Flatten, LeakyReLU, Reshape, Tanh
from ..sequential import Sequential


def dense_generator(latent_dim: int = 100, data_shape=(3, 64, 64), hidden=(256, 512, 1024),
                    batchnorm: bool = True, tanh_output: bool = True, seed: int | None = 0) -> Sequential:
    """z (N, latent_dim) -> Dense+LeakyReLU(+BatchNorm) per hidden width -> (N, *data_shape)."""
    rng = np.random.default_rng(seed)
    out = int(np.prod(data_shape))
    layers, width = [], latent_dim
    for i, h in enumerate(hidden, start=1):
        layers.append(Dense(width, h, rng=rng, name=f"g_dense{i}"))
        if batchnorm:
            layers.append(BatchNorm(h, name=f"g_bn{i}"))
        layers.append(LeakyReLU(0.2, name=f"g_lrelu{i}"))
        width = h
    layers.append(Dense(width, out, rng=rng, name="g_out"))
    if tanh_output:
        layers.append(Tanh(name="g_tanh"))
    if len(data_shape) > 1:
        layers.append(Reshape(tuple(data_shape), name="g_reshape"))
    return Sequential(layers, input_shape=(latent_dim,), name="dense_generator")


def dense_discriminator(data_shape=(3, 64, 64), hidden=(1024, 512, 256), seed: int | None = 1) -> Sequential:
    """(N, *data_shape) -> Flatten -> Dense+LeakyReLU(0.2) per hidden width -> logit (N, 1)."""
    rng = np.random.default_rng(seed)
    layers = [Flatten(name="d_flatten")] if len(data_shape) > 1 else []
    width = int(np.prod(data_shape))
    for i, h in enumerate(hidden, start=1):
        layers += [Dense(width, h, rng=rng, name=f"d_dense{i}"), LeakyReLU(0.2, name=f"d_lrelu{i}")]
        width = h
    layers.append(Dense(width, 1, rng=rng, name="d_logit"))
    return Sequential(layers, input_shape=tuple(data_shape), name="dense_discriminator")
