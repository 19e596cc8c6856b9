"""Weight initializers.  Each takes (shape, fan_in, fan_out, rng) and returns a float64 host array;
layers cast it to their dtype.  ``rng`` is a ``numpy.random.Generator``."""
from __future__ import annotations

import numpy as np


def normal(shape, fan_in, fan_out, rng, std=0.02):
    """N(0, 0.02^2): the DCGAN paper's choice for every conv and dense weight."""
    return rng.normal(0.0, std, size=shape)


def glorot_uniform(shape, fan_in, fan_out, rng):
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)): activation variance ~1 both ways (Keras default)."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape)


def he_normal(shape, fan_in, fan_out, rng):
    """N(0, 2 / fan_in): compensates ReLU zeroing half its inputs."""
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def zeros(shape, fan_in, fan_out, rng):
    return np.zeros(shape)


INITIALIZERS = {"normal": normal, "glorot": glorot_uniform, "glorot_uniform": glorot_uniform,
                "he": he_normal, "he_normal": he_normal, "zeros": zeros}


def get_initializer(init):
    """An initializer by name ('normal', 'glorot', 'he', 'zeros') or any callable of the same signature."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ValueError(f"unknown initializer {init!r}; expected one of {sorted(INITIALIZERS)} "
                         "or a callable (shape, fan_in, fan_out, rng) -> array") from None
