"""Layers: each has forward(x, training) and a hand-written backward(grad) -> input gradient."""
from .activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .base import Layer
from .batchnorm import BatchNorm
from .conv import Conv2D, Conv2DTranspose
from .dense import Dense
from .dropout import Dropout
from .shape import Flatten, Reshape

__all__ = ["Layer", "Dense", "Conv2D", "Conv2DTranspose", "LeakyReLU", "ReLU", "Tanh", "Sigmoid",
           "BatchNorm", "Reshape", "Flatten", "Dropout"]
