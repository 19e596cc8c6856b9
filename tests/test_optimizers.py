"""Optimizers: each update rule against plain-Python arithmetic, in-place updates, and state round trips."""
import io
import math

import numpy as np
import pytest

from tinygan.backend import get_array_module, to_numpy
from tinygan.errors import CheckpointError, ShapeError
from tinygan.optimizers import SGD, Adam, Nadam

# Hand computations run in Python floats (float64) and the optimizer in float64 arrays: the only
# differences are reassociations of the same operations, a few ulps (~1e-15 relative).
F64_TOL = 1e-12
P0 = [0.5, -1.5]                                     # initial parameter
GRADS = [[0.1, -0.3], [-0.2, 0.4], [0.05, 0.25]]     # gradient at steps 1, 2, 3


def run(opt, xp, dtype=np.float64, steps=3):
    p = xp.asarray(P0, dtype=dtype)
    g = xp.zeros_like(p)
    for grads in GRADS[:steps]:
        g[...] = xp.asarray(grads, dtype=dtype)
        opt.step([("w", p, g)])
    return to_numpy(p)


def sgd_momentum_by_hand(lr, mu, nesterov):
    out = []
    for i, p in enumerate(P0):
        buf = 0.0
        for grads in GRADS:
            g = grads[i]
            buf = mu * buf + g
            p = p - lr * (g + mu * buf if nesterov else buf)
        out.append(p)
    return out


def adam_by_hand(lr, b1, b2, eps):
    out = []
    for i, p in enumerate(P0):
        m = v = 0.0
        for t, grads in enumerate(GRADS, start=1):
            g = grads[i]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat = m / (1 - b1 ** t)
            v_hat = v / (1 - b2 ** t)
            p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(p)
    return out


def nadam_by_hand(lr, b1, b2, eps, sd):
    """Keras 2 Nadam: momentum warm-up schedule mu_t and the running product m_schedule."""
    out = []
    for i, p in enumerate(P0):
        m = v = 0.0
        m_schedule = 1.0
        for t, grads in enumerate(GRADS, start=1):
            g = grads[i]
            mu_t = b1 * (1 - 0.5 * 0.96 ** (t * sd))
            mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * sd))
            m_schedule_new = m_schedule * mu_t
            m_schedule_next = m_schedule * mu_t * mu_next
            m_schedule = m_schedule_new
            g_prime = g / (1 - m_schedule_new)
            m = b1 * m + (1 - b1) * g
            m_prime = m / (1 - m_schedule_next)
            v = b2 * v + (1 - b2) * g * g
            v_prime = v / (1 - b2 ** t)
            m_bar = (1 - mu_t) * g_prime + mu_next * m_prime
            p = p - lr * m_bar / (math.sqrt(v_prime) + eps)
        out.append(p)
    return out


def test_plain_sgd_subtracts_lr_times_gradient(xp):
    expected = [p - 0.1 * sum(g[i] for g in GRADS) for i, p in enumerate(P0)]
    np.testing.assert_allclose(run(SGD(lr=0.1), xp), expected, rtol=F64_TOL)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_three_steps_match_hand_computation(xp, nesterov):
    got = run(SGD(lr=0.1, momentum=0.9, nesterov=nesterov), xp)
    np.testing.assert_allclose(got, sgd_momentum_by_hand(0.1, 0.9, nesterov), rtol=F64_TOL)


@pytest.mark.parametrize("hp", [dict(lr=2e-4, beta1=0.5, beta2=0.999, eps=1e-8),
                                dict(lr=0.1, beta1=0.9, beta2=0.99, eps=1e-3)], ids=["dcgan", "large"])
def test_adam_three_steps_match_hand_computation(xp, hp):
    got = run(Adam(**hp), xp)
    np.testing.assert_allclose(got, adam_by_hand(hp["lr"], hp["beta1"], hp["beta2"], hp["eps"]), rtol=F64_TOL)


@pytest.mark.parametrize("hp", [dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-7, schedule_decay=0.004),
                                dict(lr=0.1, beta1=0.8, beta2=0.99, eps=1e-3, schedule_decay=0.5)],
                         ids=["keras", "large"])
def test_nadam_three_steps_match_keras_formula_by_hand(xp, hp):
    got = run(Nadam(**hp), xp)
    expected = nadam_by_hand(hp["lr"], hp["beta1"], hp["beta2"], hp["eps"], hp["schedule_decay"])
    np.testing.assert_allclose(got, expected, rtol=F64_TOL)


@pytest.mark.parametrize("make", [lambda: SGD(0.1, momentum=0.9), Adam, Nadam], ids=["sgd", "adam", "nadam"])
def test_float32_updates_stay_float32_and_close_to_float64(xp, make):
    p32 = run(make(), xp, dtype=np.float32)
    p64 = run(make(), xp, dtype=np.float64)
    assert p32.dtype == np.float32
    # Three float32 steps: each term rounds at ~6e-8 relative; 1e-6 of the parameter bounds it.
    np.testing.assert_allclose(p32, p64, rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: SGD(0.1, momentum=0.9), Adam, Nadam], ids=["sgd", "adam", "nadam"])
def test_step_updates_the_parameter_array_in_place(xp, make):
    p = xp.ones((2, 3), dtype=xp.float32)
    before = p
    make().step([("w", p, xp.full_like(p, 0.5))])
    assert p is before and float(p[0, 0]) != 1.0


def test_step_reads_the_gradients_and_leaves_them_as_they_were(xp):
    """Clearing gradients is the model's zero_grad, not the optimizer's job (as in PyTorch)."""
    p, g = xp.ones((2, 3), dtype=xp.float32), xp.full((2, 3), 0.5, dtype=xp.float32)
    Adam().step([("w", p, g)])
    assert float(g.min()) == float(g.max()) == 0.5


def test_iterations_count_steps_not_parameters(xp):
    opt = Adam()
    params = [(f"w{i}", xp.ones(3), xp.ones(3)) for i in range(4)]
    opt.step(params)
    opt.step(params)
    assert opt.iterations == 2


def test_learning_rate_is_settable_between_steps(xp):
    opt = SGD(lr=0.1)
    p = xp.zeros(1)
    opt.step([("w", p, xp.ones(1))])
    opt.lr = 0.01
    opt.step([("w", p, xp.ones(1))])
    np.testing.assert_allclose(to_numpy(p), [-0.11], rtol=F64_TOL)


@pytest.mark.parametrize("make", [lambda: SGD(0.1, momentum=0.9, nesterov=True), Adam, Nadam],
                         ids=["sgd", "adam", "nadam"])
def test_state_dict_round_trip_gives_identical_next_steps(xp, make):
    a = make()
    pa = xp.asarray(P0)
    for grads in GRADS[:2]:
        a.step([("w", pa, xp.asarray(grads))])
    saved = a.state_dict()
    b = make()
    b.lr = 123.0   # hyperparameters come back from the state dict too
    b.load_state_dict(saved)
    pb = pa.copy()
    for opt, p in ((a, pa), (b, pb)):
        opt.step([("w", p, xp.asarray(GRADS[2]))])
    np.testing.assert_array_equal(to_numpy(pa), to_numpy(pb))


@pytest.mark.parametrize("make", [lambda: SGD(0.1, momentum=0.9), Adam, Nadam], ids=["sgd", "adam", "nadam"])
def test_state_dict_survives_an_npz_round_trip(make):
    a = make()
    pa = np.asarray(P0)
    a.step([("conv1.W", pa, np.asarray(GRADS[0]))])
    buf = io.BytesIO()
    np.savez(buf, **a.state_dict())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        loaded = {k: z[k] for k in z.files}
    b = make()
    b.load_state_dict(loaded)
    pb = pa.copy()
    for opt, p in ((a, pa), (b, pb)):
        opt.step([("conv1.W", p, np.asarray(GRADS[1]))])
    np.testing.assert_array_equal(pa, pb)
    assert b.iterations == 2


def test_state_dict_is_a_snapshot_not_a_view(xp):
    opt = Adam()
    p = xp.ones(2)
    opt.step([("w", p, xp.ones(2))])
    saved = opt.state_dict()
    m_before = to_numpy(saved["m/w"]).copy()
    opt.step([("w", p, xp.ones(2))])
    np.testing.assert_array_equal(to_numpy(saved["m/w"]), m_before)
    assert saved["iterations"] == 1


def test_state_dict_contains_step_count_hyperparameters_and_moments(xp):
    opt = Nadam()
    opt.step([("conv1.W", xp.ones((2, 2)), xp.ones((2, 2)))])
    d = opt.state_dict()
    assert {"optimizer", "iterations", "lr", "beta1", "beta2", "eps", "schedule_decay", "m_schedule",
            "schedule", "m/conv1.W", "v/conv1.W"} == set(d)
    assert get_array_module(d["m/conv1.W"]) is xp  # left on its backend


def test_loading_state_of_the_wrong_shape_names_key_and_shapes():
    a = Adam()
    a.step([("conv1.W", np.ones((3, 2)), np.ones((3, 2)))])
    b = Adam()
    with pytest.raises(CheckpointError) as info:
        b.load_state_dict(a.state_dict(), params=[("conv1.W", np.ones((2, 2)), np.ones((2, 2)))])
    message = str(info.value)
    assert "conv1.W" in message and "(3, 2)" in message and "(2, 2)" in message


def test_mismatched_state_is_caught_at_the_first_step_without_touching_the_parameter():
    a = Adam()
    a.step([("conv1.W", np.ones((3, 2)), np.ones((3, 2)))])
    b = Adam()
    b.load_state_dict(a.state_dict())
    p = np.ones((2, 2))
    with pytest.raises(CheckpointError, match=r"conv1\.W.*\(3, 2\).*\(2, 2\)"):
        b.step([("conv1.W", p, np.ones((2, 2)))])
    np.testing.assert_array_equal(p, 1.0)
    assert b.iterations == 1


def test_loading_another_optimizers_state_is_an_error():
    sgd = SGD(0.1, momentum=0.9)
    sgd.step([("w", np.ones(2), np.ones(2))])
    with pytest.raises(CheckpointError, match="SGD"):
        Adam().load_state_dict(sgd.state_dict())


def test_unexpected_state_entry_is_named():
    d = Adam().state_dict()
    d["momentum/w"] = np.zeros(2)
    with pytest.raises(CheckpointError, match="momentum/w"):
        Adam().load_state_dict(d)


def test_missing_parameter_state_is_an_error_when_params_are_given():
    with pytest.raises(CheckpointError, match="conv1.W"):
        Adam().load_state_dict(Adam().state_dict(), params=[("conv1.W", np.ones(2), np.ones(2))])


def test_gradient_of_the_wrong_shape_raises_shape_error():
    with pytest.raises(ShapeError, match=r"'w'.*\(3,\).*\(2,\)"):
        Adam().step([("w", np.ones(2), np.ones(3))])


def test_to_moves_state_to_the_given_backend(xp):
    opt = Adam()
    opt.step([("w", xp.ones(2), xp.ones(2))])
    opt.to(np)
    assert all(isinstance(a, np.ndarray) for a in opt.state["w"].values())
    opt.to(xp)
    assert all(get_array_module(a) is xp for a in opt.state["w"].values())


def test_optimizer_state_saved_to_npz_continues_identically(tmp_path):
    """save/load through a .npz file restores moments and the step count: the next step of the
    restored optimizer equals the original's bit for bit."""
    rng = np.random.default_rng(0)
    p1 = rng.standard_normal((3, 4)).astype(np.float32)
    p2 = p1.copy()
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)]
    a = Adam(lr=1e-2)
    for g in grads[:2]:
        a.step([("w", p1, g)])
    a.save(tmp_path / "adam.npz")
    p2[...] = p1
    b = Adam(lr=5.0)                      # hyperparameters come back from the file too
    b.load(tmp_path / "adam.npz", params=[("w", p2, grads[2])])
    a.step([("w", p1, grads[2])])
    b.step([("w", p2, grads[2])])
    np.testing.assert_array_equal(p1, p2)
    assert b.iterations == a.iterations == 3 and b.lr == 1e-2


def test_sgd_momentum_switched_on_between_steps_starts_from_zero_velocity():
    p = np.ones(3, np.float32)
    opt = SGD(lr=0.1)
    opt.step([("w", p, np.ones(3, np.float32))])            # plain SGD: no state
    opt.momentum = 0.5
    opt.step([("w", p, np.ones(3, np.float32))])            # buf = g, p -= lr * g
    opt.step([("w", p, np.ones(3, np.float32))])            # buf = 0.5 + 1, p -= lr * 1.5
    np.testing.assert_allclose(p, 1 - 0.1 - 0.1 - 0.15, rtol=1e-6)
    np.testing.assert_allclose(opt.state["w"]["momentum"], 1.5)
