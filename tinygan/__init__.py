"""tinygan: GANs from scratch, every gradient by hand, on NumPy (CPU) or CuPy (GPU).

Images are NCHW float arrays in [-1, 1]: (batch, channels, height, width).
"""
from .backend import get_array_module, get_backend, to_numpy
from .layers import (
    BatchNorm,
    Conv2D,
    Conv2DTranspose,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    ReLU,
    Reshape,
    Sigmoid,
    Tanh,
)
from .sequential import Sequential

__version__ = "0.1.0"

__all__ = ["get_backend", "get_array_module", "to_numpy", "Sequential", "Dense", "Conv2D",
           "Conv2DTranspose", "LeakyReLU", "ReLU", "Tanh", "Sigmoid", "BatchNorm", "Reshape",
           "Flatten", "Dropout"]
