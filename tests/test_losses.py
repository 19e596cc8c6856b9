"""Losses: values, gradients, stability at extreme logits, and device/dtype behaviour."""
import warnings

import numpy as np
import pytest

from tinygan.backend import get_array_module, to_numpy
from tinygan.gradcheck import check_loss_gradient
from tinygan.losses import binary_cross_entropy, binary_cross_entropy_with_logits, mean_squared_error

# Central differences in float64 agree with a correct gradient to ~1e-8 relative (gradcheck.py).
GRAD_TOL = 1e-6
SHAPES = [(1, 1), (5, 1), (3, 7)]


def targets_for(kind, shape, xp):
    """Scalar label-smoothed target, or a 0/1 array."""
    if kind == "scalar":
        return 0.9
    return xp.asarray((np.random.default_rng(1).random(shape) > 0.5).astype(np.float64))


@pytest.mark.parametrize("kind", ["scalar", "array"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bce_gradient_matches_central_differences(xp, shape, kind):
    # Probabilities inside (0.05, 0.95): far from the clip at eps = 1e-7, where the loss has a kink.
    probs = xp.asarray(np.random.default_rng(0).uniform(0.05, 0.95, shape))
    assert check_loss_gradient(binary_cross_entropy, probs, targets_for(kind, shape, xp)) <= GRAD_TOL


@pytest.mark.parametrize("kind", ["scalar", "array"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bce_with_logits_gradient_matches_central_differences(xp, shape, kind):
    logits = xp.asarray(np.random.default_rng(0).standard_normal(shape) * 3)
    targets = targets_for(kind, shape, xp)
    assert check_loss_gradient(binary_cross_entropy_with_logits, logits, targets) <= GRAD_TOL


@pytest.mark.parametrize("kind", ["scalar", "array"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_mse_gradient_matches_central_differences(xp, shape, kind):
    pred = xp.asarray(np.random.default_rng(0).standard_normal(shape))
    assert check_loss_gradient(mean_squared_error, pred, targets_for(kind, shape, xp)) <= GRAD_TOL


@pytest.mark.parametrize("targets", [0.0, 1.0, 0.9], ids=str)
def test_bce_with_logits_equals_bce_of_sigmoid_for_moderate_logits(xp, targets):
    logits = np.linspace(-8, 8, 33).reshape(3, 11)
    probs = 1 / (1 + np.exp(-logits))
    l1, g1 = binary_cross_entropy_with_logits(xp.asarray(logits), targets)
    l2, g2 = binary_cross_entropy(xp.asarray(probs), targets)
    # float64; sigmoid(8) = 1 - 3e-4 is far from the 1e-7 clip, so the two agree to rounding (~1e-13).
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-12)
    # dBCE/dlogit = dBCE/dp * p (1 - p): the chain rule links the two gradients.
    np.testing.assert_allclose(to_numpy(g1), to_numpy(g2) * probs * (1 - probs), rtol=1e-10, atol=1e-15)


def test_bce_with_logits_is_finite_with_correct_gradient_at_1e4(xp):
    logits = xp.asarray([[1e4, -1e4, 1e4, -1e4]], dtype=xp.float32)
    targets = xp.asarray([[1.0, 0.0, 0.0, 1.0]], dtype=xp.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overflow in exp would raise here
        loss, grad = binary_cross_entropy_with_logits(logits, targets)
    # Right answers: 0 for the confident correct ones, 1e4 for each confident wrong one; mean = 5000.
    assert float(loss) == 5000.0
    # (sigmoid(x) - t) / n with sigmoid exactly 1 or 0 in float32.
    np.testing.assert_array_equal(to_numpy(grad), [[0.0, 0.0, 0.25, -0.25]])


def test_bce_clips_saturated_probabilities_to_a_finite_loss_with_zero_gradient(xp):
    probs = xp.asarray([0.0, 1.0, 0.5])
    loss, grad = binary_cross_entropy(probs, xp.asarray([1.0, 0.0, 1.0]))
    # -log(1e-7) for each saturated-wrong entry, log 2 for the middle one (float64: rtol 1e-9).
    expected = (2 * -np.log(1e-7) + np.log(2)) / 3
    np.testing.assert_allclose(float(loss), expected, rtol=1e-9)
    # Gradient of the clipped expression: 0 where the clip is active, (p - t) / (p (1 - p) n) elsewhere.
    np.testing.assert_allclose(to_numpy(grad), [0.0, 0.0, -2.0 / 3], rtol=1e-12)


def test_mse_value_is_the_mean_of_squares(xp):
    pred, targets = xp.asarray([[1.0, 2.0], [3.0, 5.0]]), xp.asarray([[1.0, 0.0], [0.0, 1.0]])
    loss, grad = mean_squared_error(pred, targets)
    assert float(loss) == (0 + 4 + 9 + 16) / 4  # exact in float64
    np.testing.assert_array_equal(to_numpy(grad), [[0.0, 1.0], [1.5, 2.0]])


@pytest.mark.parametrize("fn", [binary_cross_entropy, binary_cross_entropy_with_logits, mean_squared_error],
                         ids=lambda f: f.__name__)
def test_loss_stays_a_device_scalar_in_float32(xp, fn):
    pred = xp.asarray(np.random.default_rng(0).uniform(0.1, 0.9, (4, 1)), dtype=xp.float32)
    # float64 host targets must not upcast the float32 computation.
    for targets in (0.9, np.ones((4, 1))):
        loss, grad = fn(pred, targets)
        assert get_array_module(loss) is xp and loss.shape == ()
        assert loss.dtype == np.float32 and grad.dtype == xp.float32 and grad.shape == pred.shape
