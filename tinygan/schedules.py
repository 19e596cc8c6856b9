"""Learning-rate schedules: the learning rate as a function of the optimizer's step count.

    opt = Adam(lr=2e-4, schedule=Cosine(total_steps=10_000, warmup_steps=500))

A schedule is a multiplier on the optimizer's base ``lr``: the update with index ``t`` (0 for the
first update, ``t = opt.iterations`` before the step) uses ``lr * schedule.factor(t)``.  Being a
pure function of ``t``, which the optimizer saves, a schedule adds nothing to a checkpoint but its
settings (``to_config``), and a resumed run gets exactly the learning rates of an uninterrupted one.

Warm-up (any schedule): for t < warmup_steps the factor is ramped linearly,
``(t + 1) / warmup_steps`` times the schedule's factor, so the first update is not at full size
(Goyal et al., 2017).
"""
from __future__ import annotations

import math

from .errors import ConfigError


class Schedule:
    """Base class: ``_decay(t)`` is the factor without warm-up; ``kind`` names it in configs."""

    kind = "constant"

    def __init__(self, warmup_steps: int = 0):
        self.warmup_steps = _whole(warmup_steps, "warmup_steps", minimum=0)

    def _decay(self, t: int) -> float:
        return 1.0

    def factor(self, t: int) -> float:
        """The multiplier for the update with index ``t`` (0-based)."""
        f = self._decay(t)
        if t < self.warmup_steps:
            f *= (t + 1) / self.warmup_steps
        return f

    def to_config(self) -> dict:
        return {"kind": self.kind, **{k: v for k, v in vars(self).items()}}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(other) is type(self) and vars(other) == vars(self)


class Constant(Schedule):
    """factor = 1 (after the warm-up)."""


class InverseTimeDecay(Schedule):
    """factor = 1 / (1 + decay * t): Keras's ``decay`` argument of its optimizers (the DCGAN recipe
    tinygan follows sets "learning rate and decay rate")."""

    kind = "inverse-time"

    def __init__(self, decay: float, warmup_steps: int = 0):
        super().__init__(warmup_steps)
        self.decay = _number(decay, "decay", minimum=0.0)

    def _decay(self, t):
        return 1.0 / (1.0 + self.decay * t)


class LinearToZero(Schedule):
    """factor = 1 - t / total_steps, reaching 0 at ``total_steps`` (and staying there)."""

    kind = "linear"

    def __init__(self, total_steps: int, warmup_steps: int = 0):
        super().__init__(warmup_steps)
        self.total_steps = _whole(total_steps, "total_steps", minimum=1)

    def _decay(self, t):
        return max(0.0, 1.0 - t / self.total_steps)


class Cosine(Schedule):
    """factor = final + (1 - final) * (1 + cos(pi * t / total_steps)) / 2, from 1 down to ``final``
    at ``total_steps`` (Loshchilov & Hutter, 2017, without restarts)."""

    kind = "cosine"

    def __init__(self, total_steps: int, final: float = 0.0, warmup_steps: int = 0):
        super().__init__(warmup_steps)
        self.total_steps = _whole(total_steps, "total_steps", minimum=1)
        self.final = _number(final, "final", minimum=0.0, maximum=1.0)

    def _decay(self, t):
        progress = min(t, self.total_steps) / self.total_steps
        return self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULES = {cls.kind: cls for cls in (Constant, InverseTimeDecay, LinearToZero, Cosine)}


def schedule_from_config(config: dict | None) -> Schedule | None:
    """The schedule ``to_config()`` described (None stays None)."""
    if config is None:
        return None
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown learning-rate schedule {kind!r}; expected one of {sorted(SCHEDULES)}")
    try:
        return SCHEDULES[kind](**config)
    except TypeError as e:
        raise ConfigError(f"learning-rate schedule {kind!r}: {e}") from None


def make_schedule(kind: str, *, total_steps: int | None = None, decay: float = 0.0,
                  warmup_steps: int = 0, final: float = 0.0) -> Schedule:
    """The schedule named ``kind`` from command-line style settings."""
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown learning-rate schedule {kind!r}; expected one of {sorted(SCHEDULES)}")
    if kind == "constant":
        return Constant(warmup_steps)
    if kind == "inverse-time":
        return InverseTimeDecay(decay, warmup_steps)
    if total_steps is None:
        raise ConfigError(f"the {kind!r} learning-rate schedule needs the total number of steps")
    if kind == "linear":
        return LinearToZero(total_steps, warmup_steps)
    return Cosine(total_steps, final, warmup_steps)


def _whole(v, name, minimum):
    if isinstance(v, bool) or int(v) != v or v < minimum:
        raise ConfigError(f"learning-rate schedule: {name} must be a whole number >= {minimum}, got {v!r}")
    return int(v)


def _number(v, name, minimum, maximum=math.inf):
    v = float(v)
    if not minimum <= v <= maximum:
        raise ConfigError(f"learning-rate schedule: {name} must be in [{minimum}, {maximum}], got {v!r}")
    return v
