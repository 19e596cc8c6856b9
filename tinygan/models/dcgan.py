"""The DCGAN (Radford, Metz and Chintala, 2016): one builder for every DCGAN tinygan trains.

G projects the noise z to a small map of 8f channels (f = ``base_filters``), then doubles its
size with 4x4 transposed convolutions of stride 2, halving the channels each time, up to the
image; D mirrors it with strided 4x4 convolutions down to a small map and one logit.  Every
weight is drawn from N(0, 0.02).  D ends in a logit, not a probability: the loss applies the
sigmoid itself, which stays finite for any logit.  Two layouts:

                     "paper" (64x64, the conditional GAN)     "keras" (128x128, the Keras face GANs)
    G's projection   4x4 transposed conv, 1x1 -> 4x4          Dense + Reshape to 8x8, BN, LeakyReLU
    G's activations  ReLU                                     LeakyReLU(0.2)
    D's layers       BatchNorm after every conv but the first  no BatchNorm
    D's logit        4x4 conv over the last 4x4 map           Dense over the last 8x8 map
    biases           none (BatchNorm's beta plays the bias)   in every layer without BatchNorm after it

Conditioning is extra input channels: the conditional GAN (:mod:`tinygan.models.conditional`)
builds G with ``latent_dim + n_classes`` inputs (z and a one-hot label, as the channels of G's
1x1 input map) and D with ``channels + n_classes`` (the image and one constant map per class).
"""
from __future__ import annotations

import numpy as np

from ..layers import BatchNorm, Conv2D, Conv2DTranspose, Dense, Flatten, LeakyReLU, ReLU, Reshape, Tanh
from ..sequential import Sequential

LAYOUTS = {"paper": 4, "keras": 8}       # layout -> side of the smallest feature map


def _doublings(image_size: int, layout: str) -> int:
    """How many times the smallest map doubles to reach ``image_size``."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown DCGAN layout {layout!r}; expected one of {sorted(LAYOUTS)}")
    start = LAYOUTS[layout]
    ratio = image_size // start
    if image_size % start or ratio < 2 or ratio & (ratio - 1):
        raise ValueError(f"the {layout!r} DCGAN makes images of {start} x 2^k pixels (k >= 1: "
                         f"{2 * start}, {4 * start}, {8 * start}, ...), not {image_size}")
    return ratio.bit_length() - 1


def _g_activation(layout: str, i: int):
    return ReLU(name=f"g_relu{i}") if layout == "paper" else LeakyReLU(0.2, name=f"g_lrelu{i}")


def dcgan_generator(latent_dim: int = 100, image_size: int = 64, base_filters: int = 64, channels: int = 3,
                    layout: str = "paper", seed: int | None = 0, name: str | None = None) -> Sequential:
    """z (N, latent_dim) -> image (N, channels, image_size, image_size) in [-1, 1]."""
    n = _doublings(image_size, layout)
    rng = np.random.default_rng(seed)
    widths = [base_filters * 2 ** k for k in reversed(range(n))]        # 64, paper: 8f, 4f, 2f, f
    if layout == "paper":
        first = 1                                                          # the projection is stage 1
        layers = [Reshape((latent_dim, 1, 1), name="g_noise"),
                  Conv2DTranspose(latent_dim, widths[0], 4, 1, 0, use_bias=False, rng=rng, name="g_deconv1"),
                  BatchNorm(widths[0], name="g_bn1"), _g_activation(layout, 1)]
    else:
        first = 0                                                          # the projection is stage 0
        side = LAYOUTS["keras"]
        layers = [Dense(latent_dim, widths[0] * side * side, init="normal", rng=rng, name="g_dense"),
                  Reshape((widths[0], side, side), name="g_reshape"), BatchNorm(widths[0], name="g_bn0"),
                  _g_activation(layout, 0)]
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:]), start=first + 1):
        layers += [Conv2DTranspose(cin, cout, 4, 2, 1, use_bias=False, rng=rng, name=f"g_deconv{i}"),
                   BatchNorm(cout, name=f"g_bn{i}"), _g_activation(layout, i)]
    layers += [Conv2DTranspose(widths[-1], channels, 4, 2, 1, use_bias=layout == "keras", rng=rng,
                               name=f"g_deconv{first + n}"),
               Tanh(name="g_tanh")]
    return Sequential(layers, input_shape=(latent_dim,), name=name or f"dcgan{image_size}_generator")


def dcgan_discriminator(image_size: int = 64, base_filters: int = 64, channels: int = 3,
                        layout: str = "paper", seed: int | None = 1, name: str | None = None) -> Sequential:
    """image (N, channels, image_size, image_size) -> logit (N, 1).

    No BatchNorm on the first layer (it would normalise away the input's colours)."""
    n = _doublings(image_size, layout)
    rng = np.random.default_rng(seed)
    widths = [channels] + [base_filters * 2 ** k for k in range(n)]     # 64, paper: c, f, 2f, 4f, 8f
    layers = []
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        if layout == "paper":
            layers.append(Conv2D(cin, cout, 4, 2, 1, use_bias=False, rng=rng, name=f"d_conv{i}"))
            if i > 1:
                layers.append(BatchNorm(cout, name=f"d_bn{i}"))
        else:
            layers.append(Conv2D(cin, cout, 4, 2, 1, rng=rng, name=f"d_conv{i}"))
        layers.append(LeakyReLU(0.2, name=f"d_lrelu{i}"))
    if layout == "paper":
        layers += [Conv2D(widths[-1], 1, 4, 1, 0, use_bias=False, rng=rng, name=f"d_conv{n + 1}"),
                   Flatten(name="d_logit")]
    else:
        side = LAYOUTS["keras"]
        layers += [Flatten(name="d_flatten"),
                   Dense(widths[-1] * side * side, 1, init="normal", rng=rng, name="d_logit")]
    return Sequential(layers, input_shape=(channels, image_size, image_size),
                      name=name or f"dcgan{image_size}_discriminator")


# The two DCGANs of examples/celeba_dcgan.py, by their usual names.

def dcgan64_generator(latent_dim: int = 100, base_filters: int = 64, channels: int = 3,
                      seed: int | None = 0) -> Sequential:
    """The paper's generator: z -> 1x1 -> 4x4 -> 8x8 -> 16x16 -> 32x32 -> 64x64."""
    return dcgan_generator(latent_dim, 64, base_filters, channels, "paper", seed)


def dcgan64_discriminator(base_filters: int = 64, channels: int = 3, seed: int | None = 1) -> Sequential:
    """The paper's discriminator: 64 -> 32 -> 16 -> 8 -> 4 -> 1."""
    return dcgan_discriminator(64, base_filters, channels, "paper", seed)


def dcgan128_generator(latent_dim: int = 100, base_filters: int = 64, channels: int = 3,
                       seed: int | None = 0) -> Sequential:
    """The Keras face GANs' generator: z -> Dense -> 8x8 -> 16 -> 32 -> 64 -> 128 (trained with Nadam)."""
    return dcgan_generator(latent_dim, 128, base_filters, channels, "keras", seed)


def dcgan128_discriminator(base_filters: int = 64, channels: int = 3, seed: int | None = 1) -> Sequential:
    """The Keras face GANs' discriminator: 128 -> 64 -> 32 -> 16 -> 8 -> Flatten -> Dense -> logit."""
    return dcgan_discriminator(128, base_filters, channels, "keras", seed)
