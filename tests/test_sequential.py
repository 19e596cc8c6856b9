"""Sequential: chaining, freezing, summary, and weights on disk."""
import numpy as np
import pytest

from tinygan.errors import CheckpointError, ShapeError
from tinygan.gradcheck import numeric_gradient
from tinygan.layers import BatchNorm, Conv2D, Dense, Flatten, LeakyReLU, Tanh
from tinygan.sequential import Sequential


def small_cnn(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential([Conv2D(3, 4, 4, 2, 1, rng=rng), BatchNorm(4), LeakyReLU(0.2),
                       Flatten(), Dense(4 * 4 * 4, 1, rng=rng), Tanh()], input_shape=(3, 8, 8), name="cnn")


def test_model_input_gradient_matches_central_differences():
    model = small_cnn().astype(np.float64)
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8))
    r = np.random.default_rng(2).standard_normal((3, 1))
    model.forward(x)
    dx = model.backward(r)
    num = numeric_gradient(lambda: float((model.forward(x) * r).sum()), x)
    # Measured against the largest entry: through BatchNorm some entries of dx are ~1e-6 while
    # the central-difference noise is ~1e-10 absolute, so an entry-by-entry ratio would judge
    # rounding, not the backward pass.  A wrong term shifts dx by ~1e-2 of its scale.
    assert np.abs(dx - num).max() / np.abs(num).max() < 1e-8


def test_frozen_model_passes_gradients_and_hides_its_parameters():
    model = small_cnn().astype(np.float64)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8))
    model.forward(x)
    dx_live = model.backward(np.ones((2, 1)))
    model.zero_grad()
    model.trainable = False
    model.forward(x)
    dx_frozen = model.backward(np.ones((2, 1)))
    np.testing.assert_allclose(dx_frozen, dx_live, rtol=1e-12)
    assert model.trainable_parameters() == []
    assert all(not np.any(g) for _, _, g in model.parameters())


def test_unfreezing_restores_each_layers_own_flag():
    model = small_cnn()
    model.layers[0].trainable = False
    model.trainable = False
    model.trainable = True
    assert [layer.trainable for layer in model.layers][:2] == [False, True]


def test_summary_lists_output_shapes_and_parameter_counts():
    text = small_cnn().summary()
    assert "(None, 4, 4, 4)" in text                    # conv: 8x8 -> 4x4 with stride 2
    assert f"{4 * 3 * 4 * 4 + 4:,}" in text             # conv weights + bias = 196
    total = (4 * 3 * 16 + 4) + (4 + 4) + (64 + 1)
    assert f"Total params: {total:,}" in text


def test_weights_round_trip_bit_exactly(tmp_path):
    a, b = small_cnn(seed=0), small_cnn(seed=1)
    a.forward(np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32))  # moves BN stats
    a.save_weights(tmp_path / "w.npz")
    b.load_weights(tmp_path / "w.npz")
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value)


def test_loading_weights_of_another_shape_is_a_clear_error(tmp_path):
    small_cnn().save_weights(tmp_path / "w.npz")
    rng = np.random.default_rng(0)
    other = Sequential([Conv2D(3, 8, 4, 2, 1, rng=rng), BatchNorm(8), LeakyReLU(0.2),
                        Flatten(), Dense(8 * 4 * 4, 1, rng=rng), Tanh()], name="wide")
    with pytest.raises(CheckpointError, match=r"conv2d_0\.W of shape \(4, 3, 4, 4\).*\(8, 3, 4, 4\)"):
        other.load_weights(tmp_path / "w.npz")


def test_model_checks_its_input_shape():
    with pytest.raises(ShapeError, match=r"cnn.*\(N, 3, 8, 8\).*\(2, 3, 16, 16\)"):
        small_cnn().forward(np.zeros((2, 3, 16, 16), np.float32))


def test_duplicate_layer_names_are_refused():
    with pytest.raises(ValueError, match="fc"):
        Sequential([Dense(2, 2, name="fc"), Dense(2, 2, name="fc")])
