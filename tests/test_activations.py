"""Elementwise layers: ReLU, LeakyReLU, Tanh, Sigmoid, and Dropout (also elementwise and parameter-free)."""
import warnings

import numpy as np
import pytest

from tinygan.backend import to_numpy
from tinygan.gradcheck import check_layer_gradients, relative_error
from tinygan.layers.activations import LeakyReLU, ReLU, Sigmoid, Tanh, stable_sigmoid
from tinygan.layers.dropout import Dropout

# Central differences in float64 agree with a correct analytic gradient to ~1e-8 relative
# (see tinygan/gradcheck.py); 1e-6 leaves two orders of margin and still catches any real error.
GRAD_TOL = 1e-6
SHAPES = [(1, 1), (3, 7), (2, 3, 5, 5)]
ACTIVATIONS = [ReLU, LeakyReLU, Tanh, Sigmoid]


def away_from_zero(shape, seed=0):
    """Standard normal draws pushed >= 1e-3 away from 0, so no central difference (h = 1e-5) straddles
    the ReLU/LeakyReLU kink."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return x + np.where(x >= 0, 1e-3, -1e-3)


@pytest.mark.parametrize("cls", ACTIVATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_activation_input_gradient_matches_central_differences(xp, cls, shape):
    x = xp.asarray(away_from_zero(shape))
    errors = check_layer_gradients(cls(), x)
    assert errors["x"] <= GRAD_TOL, errors


def test_leaky_relu_default_slope_is_0_2(xp):
    x = xp.asarray([-2.0, -0.5, 0.5, 3.0], dtype=xp.float32)
    y = LeakyReLU().forward(x)
    # Exact: multiplying by 0.2 in float32 is the same op the expected value uses.
    expected = np.float32([-2.0, -0.5, 0.5, 3.0]) * np.float32([0.2, 0.2, 1, 1])
    np.testing.assert_array_equal(to_numpy(y), expected)


def test_relu_zeroes_negatives_and_passes_positives(xp):
    x = xp.asarray([[-2.0, -0.1, 0.1, 3.0]], dtype=xp.float32)
    layer = ReLU()
    y = layer.forward(x)
    dx = layer.backward(xp.ones_like(x))
    np.testing.assert_array_equal(to_numpy(y), np.float32([[0, 0, 0.1, 3.0]]))
    np.testing.assert_array_equal(to_numpy(dx), [[0, 0, 1, 1]])


def test_sigmoid_matches_textbook_formula_for_moderate_inputs(xp):
    x = np.linspace(-10, 10, 41)
    y = to_numpy(Sigmoid().forward(xp.asarray(x)))
    # float64 throughout: both forms are accurate to a few ulps for |x| <= 10.
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x)), rtol=1e-14)


def test_sigmoid_is_finite_and_warning_free_at_huge_inputs(xp):
    x = xp.asarray([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=xp.float32)
    layer = Sigmoid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would raise here
        y = to_numpy(layer.forward(x))
        dx = to_numpy(layer.backward(xp.ones_like(x)))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5
    # exp(-100) ~ 3.7e-44 is a float32 subnormal: NumPy keeps it; CuPy compiles its kernels with
    # -ftz=true (cupy/cuda/compiler.py), which flushes it to exactly 0.
    assert (0 < y[1] < 1e-40) if xp is np else y[1] == 0.0


def test_stable_sigmoid_keeps_precision_for_very_negative_inputs():
    # 0.5 * (1 + tanh(x / 2)) would give exactly 0 here; e / (1 + e) keeps the value.
    expected = np.exp(-50.0) / (1 + np.exp(-50.0))
    np.testing.assert_allclose(stable_sigmoid(np.array([-50.0])), expected, rtol=1e-15)


@pytest.mark.parametrize("cls", ACTIVATIONS, ids=lambda c: c.__name__)
def test_activation_keeps_float32(xp, cls):
    x = xp.asarray(away_from_zero((2, 3)), dtype=xp.float32)
    layer = cls()
    y = layer.forward(x)
    dx = layer.backward(xp.ones_like(y))
    assert y.dtype == xp.float32 and dx.dtype == xp.float32


@pytest.mark.parametrize("cls", ACTIVATIONS, ids=lambda c: c.__name__)
def test_activation_output_shape_is_input_shape(cls):
    assert cls().output_shape((3, 8, 8)) == (3, 8, 8)


def test_activation_backward_before_forward_names_the_layer():
    with pytest.raises(RuntimeError, match="tanh_1"):
        Tanh(name="tanh_1").backward(np.ones(3))


# -- Dropout ---------------------------------------------------------------------------------

def test_dropout_is_identity_at_inference(xp):
    x = xp.asarray(np.random.default_rng(0).standard_normal((4, 10)))
    layer = Dropout(0.5, seed=0)
    y = layer.forward(x, training=False)
    dy = xp.ones_like(x)
    np.testing.assert_array_equal(to_numpy(y), to_numpy(x))
    np.testing.assert_array_equal(to_numpy(layer.backward(dy)), to_numpy(dy))


def test_dropout_keeps_expectation_in_training(xp):
    rate, n = 0.3, 200_000
    y = to_numpy(Dropout(rate, seed=1).forward(xp.ones((1, n), dtype=xp.float32)))
    # mean(y) has std sqrt(rate / (1 - rate) / n) ~ 1.5e-3; allow 5 std (a false failure ~1e-6).
    std = np.sqrt(rate / (1 - rate) / n)
    assert abs(y.mean() - 1.0) < 5 * std


def test_dropout_scales_kept_units_by_inverse_keep_probability(xp):
    y = to_numpy(Dropout(0.25, seed=2).forward(xp.ones((8, 50), dtype=xp.float32)))
    # float32: 1 / 0.75 rounded once, so kept values equal float32(4/3) exactly.
    assert set(np.unique(y)) == {np.float32(0.0), np.float32(1 / 0.75)}


def test_dropout_backward_uses_the_forward_mask(xp):
    layer = Dropout(0.5, seed=3)
    x = xp.ones((6, 20))
    y = layer.forward(x)
    dx = layer.backward(xp.ones_like(x))
    np.testing.assert_array_equal(to_numpy(dx), to_numpy(y))  # both are mask * 1


def test_dropout_gradient_matches_central_differences_with_a_fixed_mask(xp):
    class FixedMaskDropout(Dropout):
        """Reseeds before each forward so the numeric gradient sees one fixed mask."""
        def forward(self, x, training=True):
            self.rng = np.random.default_rng(4)
            return super().forward(x, training)

    x = xp.asarray(np.random.default_rng(0).standard_normal((3, 7)))
    assert check_layer_gradients(FixedMaskDropout(0.4), x)["x"] <= GRAD_TOL


def test_dropout_masks_depend_only_on_the_seed(xp):
    a = Dropout(0.5, seed=7).forward(xp.ones((4, 16)))
    b = Dropout(0.5, seed=7).forward(xp.ones((4, 16)))
    # Drawn on the host from numpy's Generator, so equal across instances (and NumPy/CuPy).
    assert relative_error(a, b) == 0.0


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rejects_rates_outside_0_1(rate):
    with pytest.raises(ValueError, match="rate"):
        Dropout(rate)
