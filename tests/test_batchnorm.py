"""BatchNorm: batch statistics in training, running statistics at inference, frozen behaviour, gradients."""
import numpy as np
import pytest

from tinygan.backend import to_numpy
from tinygan.errors import ShapeError
from tinygan.gradcheck import check_layer_gradients
from tinygan.layers.batchnorm import BatchNorm

# Central differences in float64 agree with a correct gradient to ~1e-8 relative (gradcheck.py);
# the brief's 1e-6 leaves margin for entries of dx that happen to lie near 0.
GRAD_TOL = 1e-6
TRAIN_SHAPES = [(7, 5), (2, 5), (4, 3, 5, 5), (1, 3, 3, 3), (2, 3, 1, 1)]
EVAL_SHAPES = [(1, 5), (7, 5), (1, 3, 3, 3), (4, 3, 5, 5)]


def random_bn(num_features, seed=0, dtype=np.float64, xp=np, name=None):
    """A BatchNorm with non-trivial gamma, beta and running statistics."""
    rng = np.random.default_rng(seed)
    bn = BatchNorm(num_features, name=name).astype(dtype)
    bn.params["gamma"][...] = rng.uniform(0.5, 1.5, num_features)
    bn.params["beta"][...] = rng.standard_normal(num_features)
    bn.buffers["running_mean"][...] = rng.standard_normal(num_features)
    bn.buffers["running_var"][...] = rng.uniform(0.5, 2.0, num_features)
    return bn.to(xp)


def random_input(shape, seed=1, xp=np, scale=1.0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape) * scale + 0.5)


def per_feature(a):
    """Host array (N, F) or (N, C, H, W) -> (values, F) with one column per feature."""
    a = to_numpy(a)
    return a if a.ndim == 2 else a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])


@pytest.mark.parametrize("shape", TRAIN_SHAPES, ids=str)
def test_training_gradients_match_central_differences(xp, shape):
    # Input std 0.1: BN's output (so the checked scalar) does not depend on the input scale while
    # dx grows as 1/std, lifting every entry well above the ~1e-10 rounding noise of the differences.
    bn = random_bn(shape[1], xp=xp)
    errors = check_layer_gradients(bn, random_input(shape, xp=xp, scale=0.1), training=True)
    assert max(errors.values()) <= GRAD_TOL, errors


@pytest.mark.parametrize("shape", EVAL_SHAPES, ids=str)
def test_inference_gradients_match_central_differences(xp, shape):
    bn = random_bn(shape[1], xp=xp)
    errors = check_layer_gradients(bn, random_input(shape, xp=xp), training=False)
    assert max(errors.values()) <= GRAD_TOL, errors


@pytest.mark.parametrize("shape", [(16, 4), (8, 3, 4, 4)], ids=str)
def test_training_output_has_zero_mean_unit_variance_per_feature(xp, shape):
    bn = BatchNorm(shape[1]).to(xp)
    y = per_feature(bn.forward(xp.asarray(random_input(shape) * 3 + 2, dtype=xp.float32)))
    # float32 statistics of <= 128 values: ~1e-6 rounding; variance is var/(var + eps) = 1 - ~1e-6.
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=0), 1, atol=1e-4)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 5)], ids=str)
def test_inference_normalises_with_running_statistics(xp, shape):
    bn = random_bn(shape[1], xp=xp)
    x = random_input(shape, xp=xp)
    y = per_feature(bn.forward(x, training=False))
    g, b, rm, rv = (to_numpy(a) for a in (bn.params["gamma"], bn.params["beta"],
                                          bn.buffers["running_mean"], bn.buffers["running_var"]))
    expected = g * (per_feature(x) - rm) / np.sqrt(rv + 1e-5) + b
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)  # float64, same formula reordered


def test_inference_leaves_running_statistics_alone(xp):
    bn = random_bn(3, xp=xp)
    before = to_numpy(bn.buffers["running_mean"]).copy(), to_numpy(bn.buffers["running_var"]).copy()
    bn.forward(random_input((4, 3), xp=xp), training=False)
    np.testing.assert_array_equal(to_numpy(bn.buffers["running_mean"]), before[0])
    np.testing.assert_array_equal(to_numpy(bn.buffers["running_var"]), before[1])


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2, 2)], ids=str)
def test_running_statistics_follow_the_momentum_formula(xp, shape):
    bn = BatchNorm(3, momentum=0.8).astype(np.float64).to(xp)
    rm, rv = np.zeros(3), np.ones(3)
    for seed in (1, 2):
        x = random_input(shape, seed=seed, xp=xp)
        bn.forward(x, training=True)
        v = per_feature(x)
        # Keras convention: running = momentum * running + (1 - momentum) * batch, with the
        # unbiased (ddof=1) batch variance as PyTorch feeds it.
        rm = 0.8 * rm + 0.2 * v.mean(axis=0)
        rv = 0.8 * rv + 0.2 * v.var(axis=0, ddof=1)
    np.testing.assert_allclose(to_numpy(bn.buffers["running_mean"]), rm, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(bn.buffers["running_var"]), rv, rtol=1e-12)


def test_default_momentum_0_9_moves_running_mean_a_tenth_of_the_way():
    # Keras momentum 0.9 == PyTorch momentum 0.1.
    bn = BatchNorm(2).astype(np.float64)
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    bn.forward(x)
    np.testing.assert_allclose(bn.buffers["running_mean"], [0.2, 2.0], rtol=1e-12)


def test_frozen_batchnorm_uses_batch_statistics_but_keeps_running_averages(xp):
    bn = random_bn(3, xp=xp)
    before = to_numpy(bn.buffers["running_mean"]).copy(), to_numpy(bn.buffers["running_var"]).copy()
    x = random_input((6, 3, 2, 2), xp=xp)
    bn.trainable = False
    y = per_feature(bn.forward(x, training=True))
    np.testing.assert_array_equal(to_numpy(bn.buffers["running_mean"]), before[0])
    np.testing.assert_array_equal(to_numpy(bn.buffers["running_var"]), before[1])
    # Batch statistics: (y - beta) / gamma has per-channel mean 0 (float64 -> 1e-12).
    g, b = to_numpy(bn.params["gamma"]), to_numpy(bn.params["beta"])
    np.testing.assert_allclose(((y - b) / g).mean(axis=0), 0, atol=1e-12)


def test_frozen_batchnorm_returns_the_same_input_gradient_as_a_trainable_one(xp):
    x = random_input((6, 3, 2, 2), xp=xp)
    dy = xp.asarray(np.random.default_rng(5).standard_normal(x.shape))
    dxs = []
    for trainable in (True, False):
        bn = random_bn(3, xp=xp)
        bn.trainable = trainable
        bn.forward(x, training=True)
        dxs.append(to_numpy(bn.backward(dy)))
    np.testing.assert_array_equal(dxs[0], dxs[1])


@pytest.mark.parametrize("training", [True, False])
def test_frozen_batchnorm_input_gradient_matches_central_differences(xp, training):
    bn = random_bn(3, xp=xp)
    bn.trainable = False
    x = random_input((4, 3, 3, 3), xp=xp, scale=0.1 if training else 1.0)  # scale: see training test
    errors = check_layer_gradients(bn, x, training=training)
    assert errors["x"] <= GRAD_TOL, errors


@pytest.mark.parametrize("training", [True, False])
def test_frozen_batchnorm_skips_parameter_gradients(xp, training):
    bn = random_bn(3, xp=xp)
    bn.trainable = False
    bn.forward(random_input((4, 3), xp=xp), training=training)
    bn.backward(xp.ones((4, 3)))
    assert not np.any(to_numpy(bn.grads["gamma"])) and not np.any(to_numpy(bn.grads["beta"]))


def test_inference_backward_is_the_affine_scale(xp):
    bn = random_bn(4, xp=xp)
    bn.forward(random_input((3, 4), xp=xp), training=False)
    dy = xp.asarray(np.random.default_rng(6).standard_normal((3, 4)))
    scale = to_numpy(bn.params["gamma"]) / np.sqrt(to_numpy(bn.buffers["running_var"]) + 1e-5)
    # one rounding each
    np.testing.assert_allclose(to_numpy(bn.backward(dy)), to_numpy(dy) * scale, rtol=1e-14)


@pytest.mark.parametrize("training", [True, False])
def test_float32_stays_float32(xp, training):
    bn = BatchNorm(3).to(xp)
    x = xp.asarray(random_input((4, 3, 2, 2)), dtype=xp.float32)
    y = bn.forward(x, training=training)
    dx = bn.backward(xp.ones_like(y))
    arrays = [y, dx, *bn.grads.values(), *bn.buffers.values()]
    assert all(a.dtype == xp.float32 for a in arrays), [a.dtype for a in arrays]


@pytest.mark.parametrize("bad_shape", [(2, 4), (2, 4, 5, 5), (2, 3, 5), (3,)], ids=str)
def test_wrong_input_shape_raises_shape_error_naming_layer_and_shapes(bad_shape):
    bn = BatchNorm(3, name="bn_disc_2")
    with pytest.raises(ShapeError) as info:
        bn.forward(np.zeros(bad_shape, np.float32))
    message = str(info.value)
    assert "bn_disc_2" in message and str(bad_shape) in message and "(N, 3" in message


def test_single_value_per_feature_in_training_raises_shape_error():
    with pytest.raises(ShapeError, match="more than one value per feature"):
        BatchNorm(3, name="bn").forward(np.zeros((1, 3), np.float32))


def test_output_shape_is_input_shape_and_checks_features():
    bn = BatchNorm(8, name="bn")
    assert bn.output_shape((8,)) == (8,) and bn.output_shape((8, 4, 4)) == (8, 4, 4)
    with pytest.raises(ShapeError, match="bn"):
        bn.output_shape((4, 8, 8))
