"""Conv2D and Conv2DTranspose: gradient checks, the loop definitions, and the adjoint identity."""
import numpy as np
import pytest

from tinygan.backend import to_numpy
from tinygan.errors import ShapeError
from tinygan.gradcheck import check_layer_gradients
from tinygan.kernels.reference import conv2d_loops, conv2d_transpose_loops
from tinygan.layers import Conv2D, Conv2DTranspose

# float64 central differences resolve a correct gradient to ~1e-8 relative (see gradcheck.py);
# 1e-6 leaves two orders of margin and still catches any wrong index or missing term.
TOL = 1e-6

# (batch, channels in, channels out, H, W, kernel, stride, padding)
CONV_CASES = [
    (1, 1, 1, 5, 5, 3, 1, 0),
    (2, 3, 4, 7, 6, 3, 1, 1),
    (3, 2, 5, 8, 8, 4, 2, 1),
    (2, 3, 2, 9, 7, 3, 2, 0),
    (1, 4, 3, 6, 5, 2, 3, 1),
]


def make(layer_cls, *args, xp=np, **kw):
    layer = layer_cls(*args, init="glorot", rng=np.random.default_rng(1), **kw)
    layer.params["b"][...] = np.random.default_rng(2).standard_normal(layer.params["b"].shape)
    return layer.astype(np.float64).to(xp)


@pytest.mark.parametrize("n,cin,cout,h,w,k,s,p", CONV_CASES)
def test_conv2d_gradients_match_central_differences(xp, n, cin, cout, h, w, k, s, p):
    layer = make(Conv2D, cin, cout, k, s, p, xp=xp, name="conv")
    x = xp.asarray(np.random.default_rng(3).standard_normal((n, cin, h, w)))
    errors = check_layer_gradients(layer, x)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("n,cin,cout,h,w,k,s,p", CONV_CASES)
def test_conv2d_forward_equals_nested_loops(xp, n, cin, cout, h, w, k, s, p):
    layer = make(Conv2D, cin, cout, k, s, p, xp=xp)
    x = np.random.default_rng(4).standard_normal((n, cin, h, w))
    y = layer.forward(xp.asarray(x))
    ref = conv2d_loops(x, to_numpy(layer.params["W"]), to_numpy(layer.params["b"]), s, p)
    # same float64 sums in another order: rounding differences only, ~1e-15
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-12, atol=1e-12)


# (batch, cin, cout, H, W, kernel, stride, padding, output_padding)
CONVT_CASES = [
    (1, 1, 1, 3, 3, 3, 1, 0, 0),
    (2, 3, 2, 4, 5, 4, 2, 1, 0),
    (2, 2, 3, 3, 4, 3, 2, 1, 1),
    (1, 3, 4, 5, 3, 3, 3, 2, 2),
    (3, 4, 2, 1, 1, 4, 1, 0, 0),     # DCGAN's first layer: 1x1 noise to 4x4
]


@pytest.mark.parametrize("n,cin,cout,h,w,k,s,p,op", CONVT_CASES)
def test_conv2d_transpose_gradients_match_central_differences(xp, n, cin, cout, h, w, k, s, p, op):
    layer = make(Conv2DTranspose, cin, cout, k, s, p, op, xp=xp, name="convT")
    x = xp.asarray(np.random.default_rng(5).standard_normal((n, cin, h, w)))
    errors = check_layer_gradients(layer, x)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("n,cin,cout,h,w,k,s,p,op", CONVT_CASES)
def test_conv2d_transpose_forward_equals_nested_loops(xp, n, cin, cout, h, w, k, s, p, op):
    layer = make(Conv2DTranspose, cin, cout, k, s, p, op, xp=xp)
    x = np.random.default_rng(9).standard_normal((n, cin, h, w))
    y = layer.forward(xp.asarray(x))
    ref = conv2d_transpose_loops(x, to_numpy(layer.params["W"]), to_numpy(layer.params["b"]), s, p, op)
    # float64 sums of at most cin * k * k products in another order: ~1e-15
    np.testing.assert_allclose(to_numpy(y), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,cin,cout,h,w,k,s,p,op", CONVT_CASES)
def test_conv2d_transpose_is_the_adjoint_of_conv2d(xp, n, cin, cout, h, w, k, s, p, op):
    """<conv(x), y> = <x, convT(y)> for the same weights, which is what 'transposed' means."""
    conv = Conv2D(cout, cin, k, s, p, use_bias=False, rng=np.random.default_rng(6)).astype(np.float64).to(xp)
    convt = Conv2DTranspose(cin, cout, k, s, p, op, use_bias=False).astype(np.float64).to(xp)
    convt.params["W"][...] = conv.params["W"]
    rng = np.random.default_rng(7)
    y = xp.asarray(rng.standard_normal((n, cin, h, w)))
    convt_y = convt.forward(y)
    x = xp.asarray(rng.standard_normal(convt_y.shape))
    lhs, rhs = float((conv.forward(x) * y).sum()), float((x * convt_y).sum())
    # both sides are the same float64 sum of products in another order: agree to ~1e-15 * size
    assert abs(lhs - rhs) < 1e-10 * max(1.0, abs(lhs))


@pytest.mark.parametrize("h,k,s,p,op", [(4, 4, 2, 1, 0), (7, 3, 2, 1, 1), (1, 4, 1, 0, 0), (5, 5, 3, 2, 2)])
def test_conv2d_transpose_output_shape_follows_the_formula(h, k, s, p, op):
    layer = Conv2DTranspose(2, 3, k, s, p, op)
    expected = (h - 1) * s - 2 * p + k + op
    assert layer.forward(np.zeros((1, 2, h, h), np.float32)).shape == (1, 3, expected, expected)
    assert layer.output_shape((2, h, h)) == (3, expected, expected)


def test_conv2d_wrong_channels_names_layer_and_shapes():
    layer = Conv2D(3, 8, 4, 2, 1, name="d_conv1")
    with pytest.raises(ShapeError, match=r"d_conv1.*\(N, 3, \*, \*\).*\(2, 64, 64, 3\)"):
        layer.forward(np.zeros((2, 64, 64, 3), np.float32))


def test_frozen_conv_returns_input_gradient_but_leaves_weight_gradient():
    layer = make(Conv2D, 2, 3, 3, 1, 1)
    x = np.random.default_rng(8).standard_normal((2, 2, 5, 5))
    layer.forward(x)
    dx_trainable = layer.backward(np.ones((2, 3, 5, 5)))
    layer.zero_grad()
    layer.trainable = False
    layer.forward(x)
    dx_frozen = layer.backward(np.ones((2, 3, 5, 5)))
    np.testing.assert_array_equal(dx_frozen, dx_trainable)
    assert not np.any(layer.grads["W"])
