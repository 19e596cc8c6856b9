"""Reshape and Flatten: per-sample shapes, gradients, and errors."""
import numpy as np
import pytest

from tinygan.backend import to_numpy
from tinygan.errors import ShapeError
from tinygan.gradcheck import check_layer_gradients
from tinygan.layers.shape import Flatten, Reshape

# Float64 central differences of a linear map: agreement ~1e-10; 1e-6 is the project's tolerance.
GRAD_TOL = 1e-6


def randn(shape, xp, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("in_shape,target", [((1, 12), (3, 4)), ((3, 2, 3, 2), (12,)), ((2, 8), (2, 2, 2)),
                                             ((5, 6), (-1, 3))], ids=str)
def test_reshape_gradient_matches_central_differences(xp, in_shape, target):
    assert check_layer_gradients(Reshape(target), randn(in_shape, xp))["x"] <= GRAD_TOL


@pytest.mark.parametrize("in_shape", [(1, 3), (2, 3, 4, 5), (3, 1, 1, 1)], ids=str)
def test_flatten_gradient_matches_central_differences(xp, in_shape):
    assert check_layer_gradients(Flatten(), randn(in_shape, xp))["x"] <= GRAD_TOL


def test_reshape_keeps_the_batch_axis_and_sample_order(xp):
    x = xp.arange(2 * 16).reshape(2, 16)
    y = Reshape((4, 2, 2)).forward(x)
    assert y.shape == (2, 4, 2, 2)
    np.testing.assert_array_equal(to_numpy(y[1]).ravel(), np.arange(16, 32))


def test_reshape_backward_restores_the_input_shape(xp):
    layer = Reshape((4, 4, 4))
    layer.forward(randn((3, 64), xp))
    assert layer.backward(randn((3, 4, 4, 4), xp)).shape == (3, 64)


def test_reshape_resolves_minus_one_in_output_shape():
    assert Reshape((-1, 7, 7)).output_shape((128 * 49,)) == (128, 7, 7)


def test_reshape_size_mismatch_raises_shape_error_naming_layer_and_shapes():
    with pytest.raises(ShapeError) as info:
        Reshape((4, 4, 4), name="project").forward(np.zeros((2, 60), np.float32))
    message = str(info.value)
    assert "project" in message and "(60,)" in message and "(4, 4, 4)" in message


@pytest.mark.parametrize("target", [(0, 4), (-1, -1), (-2, 3)], ids=str)
def test_reshape_rejects_invalid_targets(target):
    with pytest.raises(ValueError, match="target_shape"):
        Reshape(target)


def test_flatten_output_shape_is_the_product():
    assert Flatten().output_shape((64, 4, 4)) == (1024,)


def test_flatten_then_backward_round_trips(xp):
    layer = Flatten()
    x = randn((2, 3, 4, 4), xp)
    y = layer.forward(x)
    assert y.shape == (2, 48)
    np.testing.assert_array_equal(to_numpy(layer.backward(y)), to_numpy(x))
