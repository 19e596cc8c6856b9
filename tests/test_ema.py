"""GeneratorEMA: the running average of the generator's weights that samples are drawn from.

Most tests use a tiny Dense + BatchNorm generator and set its weights by hand (in place, as an
optimizer does), so the expected average can be computed independently in float64; one test
trains a tiny DCGAN for real.  The whole file runs in about a second on a 2-core CPU.
"""
import numpy as np
import pytest

from tinygan.gan import GeneratorEMA, StackedGANTrainer
from tinygan.layers import BatchNorm, Dense, ReLU
from tinygan.models import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import Adam
from tinygan.sequential import Sequential

# The average is accumulated in float32 (a *= d; a += (1 - d) p) while the reference runs in
# float64: a few updates of O(1) values leave ~1e-7 relative rounding; 1e-6 leaves margin and
# is far below any real difference (one skipped or misweighted update changes values by ~1e-1).
RTOL = 1e-6


def tiny_generator(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential([Dense(3, 5, rng=rng, name="fc1"), BatchNorm(5, name="bn1"), ReLU(name="relu1"),
                       Dense(5, 2, rng=rng, name="fc2")], input_shape=(3,), name="tiny_g")


def set_weights(G, rng):
    """New random parameters and BatchNorm buffers, written in place (like an optimizer step)."""
    for layer in G.layers:
        for p in layer.params.values():
            p[...] = rng.standard_normal(p.shape)
        for b in layer.buffers.values():
            b[...] = rng.uniform(0.5, 2.0, b.shape)


def weights(model):
    return {f"{layer.name}.{k}": p.copy() for layer in model.layers for k, p in layer.params.items()}


def buffers(model):
    return {f"{layer.name}.{k}": b.copy() for layer in model.layers for k, b in layer.buffers.items()}


def hand_ema(history, initial, decay, start_step):
    """avg_0 = initial; update u (0-based) uses decay d = decay if u >= start_step else 0."""
    avg = {k: v.astype(np.float64) for k, v in initial.items()}
    for u, w in enumerate(history):
        d = decay if u >= start_step else 0.0
        avg = {k: d * avg[k] + (1 - d) * w[k].astype(np.float64) for k in avg}
    return avg


@pytest.mark.parametrize("decay, start_step", [(0.9, 0), (0.75, 2), (0.999, 1)])
def test_average_equals_hand_computed_ema_of_weights(decay, start_step):
    G = tiny_generator()
    initial = weights(G)
    ema = GeneratorEMA(G, decay=decay, start_step=start_step)
    rng = np.random.default_rng(1)
    history = []
    for _ in range(5):
        set_weights(G, rng)
        history.append(weights(G))
        ema.update(G)
    expected = hand_ema(history, initial, decay, start_step)
    got = weights(ema.model)
    assert ema.updates == 5
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=RTOL, atol=RTOL, err_msg=k)


def test_before_start_step_the_average_is_a_copy_of_the_generator():
    G = tiny_generator()
    ema = GeneratorEMA(G, decay=0.9, start_step=3)
    rng = np.random.default_rng(2)
    for _ in range(3):
        set_weights(G, rng)
        ema.update(G)
        for k, w in weights(G).items():
            # d = 0 gives 0 * avg + 1 * w: exact in float32.
            np.testing.assert_array_equal(weights(ema.model)[k], w, err_msg=k)
    set_weights(G, rng)                              # the 4th update (u = 3) is the first average
    before = weights(ema.model)
    ema.update(G)
    for k, w in weights(G).items():
        np.testing.assert_allclose(weights(ema.model)[k], 0.9 * before[k] + 0.1 * w, rtol=RTOL, atol=RTOL)


def test_batchnorm_buffers_are_copied_not_averaged():
    G = tiny_generator()
    ema = GeneratorEMA(G, decay=0.9, start_step=0)
    rng = np.random.default_rng(3)
    for _ in range(3):
        set_weights(G, rng)
        ema.update(G)
        got = buffers(ema.model)
        for k, b in buffers(G).items():
            np.testing.assert_array_equal(got[k], b, err_msg=k)       # copies: bit for bit
    assert set(buffers(ema.model)) == {"bn1.running_mean", "bn1.running_var"}


def test_state_dict_round_trips_and_resumed_average_continues_identically():
    G = tiny_generator()
    ema = GeneratorEMA(G, decay=0.8, start_step=2)
    rng = np.random.default_rng(4)
    for _ in range(3):
        set_weights(G, rng)
        ema.update(G)
    state = ema.state_dict()

    restored = GeneratorEMA(tiny_generator(seed=9), decay=0.8, start_step=2)
    restored.load_state_dict(state)
    assert restored.updates == ema.updates == 3
    for k, v in restored.state_dict()["weights"].items():
        np.testing.assert_array_equal(v, state["weights"][k], err_msg=k)

    # The update count decides when averaging starts, so it must survive: continue both.
    for _ in range(2):
        set_weights(G, rng)
        ema.update(G)
        restored.update(G)
    for k, v in ema.state_dict()["weights"].items():
        np.testing.assert_array_equal(restored.state_dict()["weights"][k], v, err_msg=k)


def test_state_dict_is_a_snapshot_not_a_view():
    G = tiny_generator()
    ema = GeneratorEMA(G, decay=0.5)
    state = ema.state_dict()
    saved = {k: v.copy() for k, v in state["weights"].items()}
    set_weights(G, np.random.default_rng(5))
    ema.update(G)
    for k, v in state["weights"].items():
        np.testing.assert_array_equal(v, saved[k], err_msg=k)


def test_ema_model_is_a_separate_copy_that_training_does_not_touch():
    """Training G (real optimizer steps, in place) leaves the average alone until update()."""
    G = dcgan64_generator(8, base_filters=4, seed=0)
    D = dcgan64_discriminator(base_filters=4, seed=1)
    trainer = StackedGANTrainer(G, D, Adam(), Adam(), latent_dim=8, seed=2)
    ema = GeneratorEMA(G, decay=0.9, start_step=0)
    assert ema.model is not G and ema.model.name == "dcgan64_generator_ema"
    for (ka, a, _), (kg, g, _) in zip(ema.model.parameters(), G.parameters()):
        assert ka == kg and not np.shares_memory(a, g), ka
    for la, lg in zip(ema.model.layers, G.layers):
        for k in lg.buffers:
            assert not np.shares_memory(la.buffers[k], lg.buffers[k]), f"{lg.name}.{k}"

    before_w, before_b = ema.model.state_dict(), buffers(ema.model)
    real = np.random.default_rng(6).uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
    trainer.train_step(real)                        # moves G's weights and running statistics
    assert any(not np.array_equal(v, G.state_dict()[k]) for k, v in before_w.items())
    after = ema.model.state_dict()
    for k, v in before_w.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)
    assert all(np.array_equal(buffers(ema.model)[k], v) for k, v in before_b.items())

    g_before = G.state_dict()
    ema.update(G)                                   # now the average moves; G must not
    for k, v in G.state_dict().items():
        np.testing.assert_array_equal(v, g_before[k], err_msg=k)
    assert any(not np.array_equal(ema.model.state_dict()[k], before_w[k]) for k in before_w)


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_decay_outside_zero_one_is_rejected(decay):
    with pytest.raises(ValueError, match="decay"):
        GeneratorEMA(tiny_generator(), decay=decay)


def test_recalibrated_batchnorm_statistics_are_the_mean_of_the_averages_own_batch_statistics():
    """After recalibration each running mean/variance is the plain average, over the noise
    batches, of the batch statistics the averaged weights themselves produce."""
    G = Sequential([Dense(3, 4, rng=np.random.default_rng(0), name="fc"), BatchNorm(4, name="bn")])
    ema = GeneratorEMA(G, decay=0.5)
    ema.model.layers[0].params["W"] *= 3.0          # the average drifts away from G
    batches = [np.random.default_rng(i).standard_normal((16, 3)).astype(np.float32) for i in range(3)]
    ema.recalibrate_batchnorm(batches)
    h = [b @ ema.model.layers[0].params["W"] + ema.model.layers[0].params["b"] for b in batches]
    expected_mean = np.mean([x.mean(axis=0) for x in h], axis=0)
    expected_var = np.mean([x.var(axis=0) * 16 / 15 for x in h], axis=0)   # unbiased, as BatchNorm keeps it
    bn = ema.model.layers[1]
    # float32 sums of 16 values: agreement to ~1e-6 relative; 1e-5 leaves margin
    np.testing.assert_allclose(bn.buffers["running_mean"], expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.buffers["running_var"], expected_var, rtol=1e-5)
    assert bn.momentum == 0.9
