"""Dense: gradient check, shape errors, initializers."""
import numpy as np
import pytest

from tinygan.errors import ShapeError
from tinygan.gradcheck import check_layer_gradients
from tinygan.layers import Dense


@pytest.mark.parametrize("n,fin,fout", [(1, 1, 1), (3, 5, 7), (8, 16, 2)])
def test_dense_gradients_match_central_differences(xp, n, fin, fout):
    layer = Dense(fin, fout, rng=np.random.default_rng(0), name="fc").astype(np.float64).to(xp)
    layer.params["b"][...] = xp.asarray(np.random.default_rng(1).standard_normal(fout))
    x = xp.asarray(np.random.default_rng(2).standard_normal((n, fin)))
    errors = check_layer_gradients(layer, x)
    assert max(errors.values()) < 1e-6, errors   # float64 central differences: ~1e-9 when right


def test_dense_wrong_features_names_layer_and_shapes():
    layer = Dense(100, 8, name="g_fc")
    with pytest.raises(ShapeError, match=r"g_fc.*\(N, 100\).*\(4, 99\)"):
        layer.forward(np.zeros((4, 99), np.float32))


@pytest.mark.parametrize("init,expected_std", [("normal", 0.02), ("he", np.sqrt(2 / 400)),
                                               ("glorot", np.sqrt(2 / (400 + 300)))])
def test_initializers_have_their_documented_spread(init, expected_std):
    w = Dense(400, 300, init=init, rng=np.random.default_rng(0)).params["W"]
    # 120,000 draws: the sample std is within ~0.5% of the true one; 3% is a safe bound
    assert abs(w.std() / expected_std - 1) < 0.03
    assert w.dtype == np.float32
