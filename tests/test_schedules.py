"""Learning-rate schedules against values worked out by hand."""
import math

import pytest

from tinygan.errors import ConfigError
from tinygan.schedules import (Constant, Cosine, InverseTimeDecay, LinearToZero, make_schedule,
                               schedule_from_config)

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
