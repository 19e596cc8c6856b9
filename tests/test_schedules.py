"""Learning-rate schedules against values worked out by hand."""
import math

import numpy as np
import pytest

from tinygan.errors import ConfigError
from tinygan.optimizers import SGD, Adam, Nadam
from tinygan.schedules import (
    Constant,
    Cosine,
    InverseTimeDecay,
    LinearToZero,
    make_schedule,
    schedule_from_config,
)

# The factors are a few float operations each: equal to the hand value within 1e-12.
TOL = 1e-12


def test_constant_schedule_is_one_at_every_step():
    assert [Constant().factor(t) for t in (0, 1, 10**6)] == [1.0, 1.0, 1.0]


def test_inverse_time_decay_is_keras_decay():
    s = InverseTimeDecay(decay=0.01)
    # Keras: lr / (1 + decay * iterations); at t = 100 that is 1 / 2.
    assert s.factor(0) == 1.0
    assert s.factor(100) == pytest.approx(0.5, abs=TOL)
    assert s.factor(300) == pytest.approx(0.25, abs=TOL)


def test_linear_schedule_reaches_zero_at_total_steps_and_stays():
    s = LinearToZero(total_steps=8)
    assert [s.factor(t) for t in (0, 2, 4, 8, 20)] == pytest.approx([1.0, 0.75, 0.5, 0.0, 0.0], abs=TOL)


def test_cosine_schedule_passes_half_way_at_half_the_steps():
    s = Cosine(total_steps=100)
    assert s.factor(0) == pytest.approx(1.0, abs=TOL)
    assert s.factor(50) == pytest.approx(0.5, abs=TOL)
    assert s.factor(25) == pytest.approx((1 + math.cos(math.pi / 4)) / 2, abs=TOL)
    assert s.factor(100) == pytest.approx(0.0, abs=TOL)
    assert s.factor(150) == pytest.approx(0.0, abs=TOL)


def test_cosine_schedule_ends_at_its_final_fraction():
    assert Cosine(total_steps=10, final=0.1).factor(10) == pytest.approx(0.1, abs=TOL)
    assert Cosine(total_steps=10, final=0.1).factor(5) == pytest.approx(0.55, abs=TOL)


def test_warm_up_ramps_linearly_then_hands_over_to_the_schedule():
    s = InverseTimeDecay(decay=0.5, warmup_steps=4)
    # Step t < 4 gets (t + 1) / 4 of the decayed factor; from step 4 on the decay alone.
    assert s.factor(0) == pytest.approx(0.25 * 1.0, abs=TOL)
    assert s.factor(1) == pytest.approx(0.5 / 1.5, abs=TOL)
    assert s.factor(3) == pytest.approx(1.0 / 2.5, abs=TOL)
    assert s.factor(4) == pytest.approx(1 / 3.0, abs=TOL)


def test_config_round_trip_gives_an_equal_schedule():
    for s in (Constant(3), InverseTimeDecay(0.1, 2), LinearToZero(50, 5), Cosine(70, 0.2, 7)):
        assert schedule_from_config(s.to_config()) == s


def test_make_schedule_builds_each_kind_from_flags():
    assert make_schedule("cosine", total_steps=10, warmup_steps=2) == Cosine(10, 0.0, 2)
    assert make_schedule("inverse-time", decay=0.3) == InverseTimeDecay(0.3)
    assert make_schedule("linear", total_steps=4) == LinearToZero(4)


@pytest.mark.parametrize("call, phrase", [
    (lambda: make_schedule("exponential"), "unknown learning-rate schedule"),
    (lambda: make_schedule("cosine"), "needs the total number of steps"),
    (lambda: LinearToZero(0), "total_steps must be a whole number >= 1"),
    (lambda: InverseTimeDecay(-1.0), "decay must be in"),
    (lambda: Cosine(10, final=1.5), "final must be in"),
    (lambda: Constant(warmup_steps=-2), "warmup_steps must be a whole number >= 0"),
    (lambda: schedule_from_config({"kind": "cosine", "steps": 3}), "unexpected keyword"),
])
def test_bad_schedule_settings_are_refused_with_their_name(call, phrase):
    with pytest.raises(ConfigError, match=phrase):
        call()


# -- schedules inside the optimizers -------------------------------------------------------------

def sgd_steps(opt, n, p=None):
    """n SGD steps on one parameter with gradient 1: p falls by exactly the sum of the lrs used."""
    p = np.zeros(1) if p is None else p
    for _ in range(n):
        opt.step([("w", p, np.ones(1))])
    return p


def test_sgd_with_a_linear_schedule_takes_the_scheduled_step_sizes():
    opt = SGD(lr=0.1, schedule=LinearToZero(total_steps=4))
    p = sgd_steps(opt, 5)
    # factors 1, 3/4, 1/2, 1/4, 0 -> p = -0.1 * 2.5
    assert p[0] == pytest.approx(-0.25, abs=TOL)


def test_current_lr_is_the_rate_of_the_next_update():
    opt = Adam(lr=1e-3, schedule=InverseTimeDecay(decay=1.0))
    assert opt.current_lr == pytest.approx(1e-3, abs=TOL)
    sgd_steps(opt, 3)
    assert opt.current_lr == pytest.approx(1e-3 / 4, abs=TOL)


def test_adam_with_a_schedule_scales_the_step_it_would_take():
    # Adam's first step is lr * sign(g) (m_hat / sqrt(v_hat) = 1); with warm-up over 4 steps, a quarter.
    p = sgd_steps(Adam(lr=0.01, schedule=Constant(warmup_steps=4)), 1)
    assert p[0] == pytest.approx(-0.0025, rel=1e-6)      # eps = 1e-8 against sqrt(v_hat) = 1


def test_schedule_survives_a_save_and_load(tmp_path):
    opt = Nadam(lr=2e-3, schedule=Cosine(total_steps=10, final=0.1, warmup_steps=2))
    sgd_steps(opt, 3)
    opt.save(tmp_path / "opt.npz")
    restored = Nadam(lr=2e-3)
    restored.load(tmp_path / "opt.npz")
    assert restored.schedule == opt.schedule and restored.current_lr == opt.current_lr


def test_resume_across_a_schedule_boundary_is_bit_exact(tmp_path):
    """Warm-up ends at step 3: stop at step 2, save, load into a fresh optimizer, go on to step 6."""
    def fresh():
        return Adam(lr=0.05, schedule=Cosine(total_steps=6, warmup_steps=3))
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(5) for _ in range(6)]

    straight, p1 = fresh(), np.zeros(5)
    for g in grads:
        straight.step([("w", p1, g)])

    first, p2 = fresh(), np.zeros(5)
    for g in grads[:2]:
        first.step([("w", p2, g)])
    first.save(tmp_path / "opt.npz")
    second = Adam(lr=0.05)                    # the schedule comes from the saved state
    second.load(tmp_path / "opt.npz")
    for g in grads[2:]:
        second.step([("w", p2, g)])
    assert np.array_equal(p1, p2)


def test_checkpoint_without_a_schedule_entry_keeps_the_optimizers_own():
    opt = SGD(lr=0.1)
    state = opt.state_dict()
    del state["schedule"]                     # written before schedules existed
    scheduled = SGD(lr=0.1, schedule=LinearToZero(10))
    scheduled.load_state_dict(state)
    assert scheduled.schedule == LinearToZero(10)
