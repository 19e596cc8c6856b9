"""Evaluation metrics that need no pretrained network.

- :func:`sliced_wasserstein_distance`: SWD over Laplacian-pyramid patches (Karras et al. 2018),
  a distance between the patch statistics of two image sets at each scale.
- :func:`discriminator_accuracy`: how often a discriminator calls real images real and
  generated ones fake; :func:`accuracy_as_in_training` measures it as the training step runs D.
"""
from .accuracy import accuracy_as_in_training, discriminator_accuracy
from .swd import (
                  SWDResult,
                  extract_patches,
                  laplacian_pyramid,
                  normalize_descriptors,
                  reconstruct_laplacian_pyramid,
                  sliced_wasserstein,
                  sliced_wasserstein_distance,
)

__all__ = ["SWDResult", "sliced_wasserstein_distance", "laplacian_pyramid", "reconstruct_laplacian_pyramid",
           "extract_patches", "normalize_descriptors", "sliced_wasserstein", "discriminator_accuracy",
           "accuracy_as_in_training"]
