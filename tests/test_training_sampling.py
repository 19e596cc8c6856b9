"""tinygan.training.sampling: drawing from G in inference mode, batch by batch."""
import numpy as np

from tinygan.backend import get_backend
from tinygan.models import dense_generator
from tinygan.training import generate


def test_each_noise_row_gets_the_image_a_single_forward_gives_it_and_g_is_unchanged():
    G = dense_generator(4, (3, 4, 4), hidden=(16,), seed=0)
    G.forward(np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32))   # moves BN's averages
    before = G.state_dict()
    z = np.random.default_rng(2).standard_normal((25, 4)).astype(np.float32)
    images = generate(G, z, get_backend("numpy"), batch_size=10)
    assert images.shape == (25, 3, 4, 4)
    # Inference mode: a row's image does not depend on its batch; matrix products of 10 and of 25
    # rows may round differently in float32, hence 1e-6.
    np.testing.assert_allclose(images, G.forward(z, training=False), rtol=0, atol=1e-6)
    for k, v in G.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
