"""What every layer promises (tinygan/layers/base.py): backward before forward is a clear error,
gradients accumulate until zero_grad, and a frozen layer returns dx but adds no gradients."""
import numpy as np
import pytest

import tinygan.layers as layers
from tinygan.layers import (
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

# one small instance of every layer class, with an input it accepts
EXAMPLES = {
    Dense: (lambda: Dense(4, 3, rng=np.random.default_rng(0)), (2, 4)),
    Conv2D: (lambda: Conv2D(2, 3, 3, 2, 1, rng=np.random.default_rng(0)), (2, 2, 5, 5)),
    Conv2DTranspose: (lambda: Conv2DTranspose(2, 3, 4, 2, 1, rng=np.random.default_rng(0)), (2, 2, 3, 3)),
    BatchNorm: (lambda: BatchNorm(2), (3, 2, 2, 2)),
    ReLU: (lambda: ReLU(), (2, 4)),
    LeakyReLU: (lambda: LeakyReLU(0.2), (2, 4)),
    Tanh: (lambda: Tanh(), (2, 4)),
    Sigmoid: (lambda: Sigmoid(), (2, 4)),
    Dropout: (lambda: Dropout(0.5, seed=0), (2, 4)),
    Reshape: (lambda: Reshape((2, 2)), (2, 4)),
    Flatten: (lambda: Flatten(), (2, 2, 2)),
}
WITH_PARAMS = [cls for cls in EXAMPLES if EXAMPLES[cls][0]().params]


def test_every_layer_class_has_an_example():
    classes = {getattr(layers, name) for name in layers.__all__} - {layers.Layer}
    assert classes == set(EXAMPLES)


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.__name__)
def test_backward_before_forward_is_a_clear_error_naming_the_layer(cls):
    layer = EXAMPLES[cls][0]()
    layer.name = "my_layer"
    with pytest.raises(RuntimeError, match=f"{cls.__name__} 'my_layer': backward called before forward"):
        layer.backward(np.ones(EXAMPLES[cls][1]))


def forward_and_gradient(cls, training=True):
    make, shape = EXAMPLES[cls]
    layer = make().astype(np.float64)
    rng = np.random.default_rng(1)
    y = layer.forward(rng.standard_normal(shape), training)
    return layer, rng.standard_normal(y.shape)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cls", WITH_PARAMS, ids=lambda c: c.__name__)
def test_two_backward_passes_add_up_until_zero_grad(cls, training):
    layer, dy = forward_and_gradient(cls, training)
    layer.backward(dy)
    once = {k: g.copy() for k, g in layer.grads.items()}
    layer.backward(dy)
    for k, g in layer.grads.items():
        assert np.any(once[k])
        np.testing.assert_array_equal(g, 2 * once[k])        # g + g is exactly 2 g
    layer.zero_grad()
    assert not any(np.any(g) for g in layer.grads.values())


@pytest.mark.parametrize("cls", WITH_PARAMS, ids=lambda c: c.__name__)
def test_frozen_layer_returns_the_same_input_gradient_and_adds_no_parameter_gradient(cls):
    layer, dy = forward_and_gradient(cls)
    dx = layer.backward(dy)
    layer.zero_grad()
    layer.trainable = False
    np.testing.assert_array_equal(layer.backward(dy), dx)
    assert not any(np.any(g) for g in layer.grads.values())
