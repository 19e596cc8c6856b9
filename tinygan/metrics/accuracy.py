"""How often a discriminator tells real from generated images: the simplest GAN health check.

Near 50 % on both sets means the discriminator is fooled (or has collapsed); near 100 % on both
for a long time means it has won and the generator's gradients are probably vanishing.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np

from ..backend import get_array_module, to_module
from ..errors import ShapeError
from ..sequential import frozen

__all__ = ["discriminator_accuracy", "accuracy_as_in_training"]


def _on_model_backend(model, images):
    """``images`` on the array module ``model`` runs on (its ``xp``: a host batch for a GPU model
    is copied to the device, and the other way round); as given for a model without ``xp``."""
    xp = getattr(model, "xp", None)
    return images if xp is None else to_module(images, xp)


def _count_predicted_real(discriminator, images, batch_size: int, from_logits: bool,
                          threshold: float, name: str, training: bool) -> int:
    """Number of ``images`` whose score is at or above ``threshold`` (i.e. called real)."""
    n = images.shape[0]
    # sigmoid(z) >= t  <=>  z >= log(t / (1 - t)): compare logits directly, no exp to overflow.
    cut = math.log(threshold / (1.0 - threshold)) if from_logits else threshold
    count = 0
    for start in range(0, n, batch_size):
        batch = _on_model_backend(discriminator, images[start:start + batch_size])
        out = discriminator.forward(batch, training=training)
        if out.ndim < 1 or out.shape[0] != batch.shape[0] or out.size != batch.shape[0]:
            raise ShapeError(f"discriminator_accuracy: the discriminator must return one score per image, "
                             f"(N, 1) or (N,); for {name} of shape {tuple(batch.shape)} it returned "
                             f"{tuple(out.shape)}")
        xp = get_array_module(out)
        count += int(xp.count_nonzero(out.reshape(-1) >= cut))
    return count


def discriminator_accuracy(discriminator, real_images, fake_images, batch_size: int = 256,
                           from_logits: bool = True, threshold: float = 0.5,
                           training: bool = False) -> dict[str, float]:
    """Fraction of real images scored real and of generated images scored fake.

    discriminator: anything with ``forward(x, training=False)`` returning (N, 1) logits (or
        probabilities with ``from_logits=False``); called in eval mode, ``batch_size`` at a time.
    real_images, fake_images: (N, C, H, W) and (M, C, H, W), host or device arrays; the counts may
        differ.  Each batch goes to the discriminator's backend (its ``xp``: host images are copied
        to a GPU model one batch at a time).
    threshold: probability at or above which an image is called real (0.5).
    training: False (default) judges D in eval mode, BatchNorm using its running averages.
        True judges D as the stacked trainer uses it: BatchNorm normalises each batch of real or
        of generated images with that batch's statistics.  The running averages mix real and
        generated batches, so early in training the two views can disagree widely.  With
        ``training=True`` a model with a ``trainable`` switch is frozen for the call, so its
        running averages do not move: judging must not change the judge.

    Returns Python floats: ``real`` (accuracy on real), ``fake`` (accuracy on generated) and
    ``overall`` (correct over all N + M images, so the larger set weighs more).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"discriminator_accuracy: threshold must be a probability in (0, 1), "
                         f"got {threshold}")
    if batch_size < 1:
        raise ValueError(f"discriminator_accuracy: batch_size must be >= 1, got {batch_size}")
    for name, imgs in (("real_images", real_images), ("fake_images", fake_images)):
        if imgs.ndim < 1 or imgs.shape[0] == 0:
            raise ShapeError(f"discriminator_accuracy: {name} holds no images, shape {tuple(imgs.shape)}")
    n_real, n_fake = real_images.shape[0], fake_images.shape[0]
    judging = frozen(discriminator) if training and hasattr(discriminator, "trainable") else nullcontext()
    with judging:
        real_ok = _count_predicted_real(discriminator, real_images, batch_size, from_logits, threshold,
                                        "real_images", training)
        fake_ok = n_fake - _count_predicted_real(discriminator, fake_images, batch_size, from_logits,
                                                 threshold, "fake_images", training)
    return {"real": real_ok / n_real, "fake": fake_ok / n_fake,
            "overall": (real_ok + fake_ok) / (n_real + n_fake)}


def accuracy_as_in_training(generator, discriminator, real_images, z, batch_size: int) -> dict[str, float]:
    """D's accuracy on ``real_images`` and on G(z), both networks run as the stacked trainer runs them.

    The training step shows D batches of ``batch_size`` real or generated images in training mode:
    BatchNorm normalises each batch with its own statistics.  Here G makes its images the same way
    (``z`` (M, latent) host noise, in chunks of about ``batch_size``, none of a single row) and D
    judges them so (``discriminator_accuracy(..., training=True)``); both are frozen meanwhile, so
    their running averages do not move.  In inference mode D's running averages mix the statistics
    of real and of generated batches, and that mixture makes D call nearly everything fake -- a
    number that says nothing about the D that training actually pits against G.
    ``real_images`` may be host or device arrays (each batch goes to D's backend).
    """
    xp = getattr(generator, "xp", None) or get_array_module(real_images)     # where G computes
    chunks = np.array_split(z, -(-len(z) // batch_size))
    with frozen(generator):
        fake = xp.concatenate([generator.forward(xp.asarray(c, dtype=real_images.dtype), training=True)
                               for c in chunks])
    return discriminator_accuracy(discriminator, real_images, fake, batch_size=batch_size, training=True)
