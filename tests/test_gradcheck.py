"""The gradient checker itself must catch a wrong gradient, or every other check is empty."""
import numpy as np

from tinygan.gradcheck import check_layer_gradients, numeric_gradient, relative_error
from tinygan.layers import Dense


def test_numeric_gradient_of_a_square_is_twice_x():
    x = np.array([[0.5, -1.0, 2.0]])
    g = numeric_gradient(lambda: float((x ** 2).sum()), x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-9)   # exact for a quadratic, up to rounding


def test_checker_flags_a_wrong_backward():
    class BrokenDense(Dense):
        def backward(self, grad):
            dx = super().backward(grad)
            self.grads["W"] *= 1.01                      # a 1% error must not pass
            return dx
    layer = BrokenDense(4, 3, rng=np.random.default_rng(0)).astype(np.float64)
    errors = check_layer_gradients(layer, np.random.default_rng(1).standard_normal((2, 4)))
    assert errors["x"] < 1e-6 and errors["W"] > 1e-3


def test_relative_error_is_zero_for_equal_arrays_and_order_one_for_unrelated():
    a = np.arange(1.0, 5.0)
    assert relative_error(a, a) == 0.0
    assert relative_error(a, -a) == 1.0
