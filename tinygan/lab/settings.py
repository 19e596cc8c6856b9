"""The lab's settings: defaults, the one-click presets, and the checks every value from the page
passes before it reaches the trainer (a bad value raises ConfigError naming the setting, what
it got and what it expects; the server answers it with HTTP 400)."""
from __future__ import annotations

import math
import numbers

from ..errors import ConfigError
from .datasets import EXTENT, MAX_DRAWN, NAMES

OPTIMIZERS = ("sgd", "adam", "nadam")
G_LOSSES = ("non_saturating", "saturating")
LR_RANGE = (1e-6, 1.0)
SEED_MAX = 2 ** 31 - 1
WIDTH_RANGE = (4, 256)
MAX_STEPS = 500            # training steps per request: a request stays well under a second
MAX_HEAD_START = 2000      # D-only steps at reset (about a millisecond each)

# Changing these restarts training (new data or new networks); the others apply to the next step.
RESET_ONLY = ("dataset", "points", "seed", "width", "d_head_start")
LIVE = ("lr_g", "lr_d", "optimizer", "g_loss", "freeze_d")

# Lesson 8's run: hidden layers of 128, Adam(1e-3, beta1 0.5) for both, the non-saturating loss.
# d_head_start: D trains alone for that many steps at reset, as when D wins early in training.
DEFAULTS = {"dataset": "ring", "points": None, "seed": 0, "width": 128, "d_head_start": 0,
            "lr_g": 1e-3, "lr_d": 1e-3, "optimizer": "adam", "g_loss": "non_saturating", "freeze_d": False}

PRESETS = {
    "balanced": {
        "label": "Balanced (lesson 8)",
        "explain": "G and D learn at the same rate: the generated points spread over all 8 modes.",
        "settings": dict(DEFAULTS),
    },
    "mode_collapse": {
        "label": "Mode collapse: G outruns D",
        "explain": "G learns 50x faster than D (lesson 8's run 2): G squeezes all its noise onto a "
                   "thin curve near the spots D rates most real, covering a mode or none, and D "
                   "learns too slowly to push the points apart.",
        "settings": {**DEFAULTS, "lr_g": 5e-3, "lr_d": 1e-4},
    },
    "saturating_stall": {
        "label": "Saturating loss stalls",
        "explain": "D had 1,000 steps' head start and rejects G's points: D(G(z)) < 0.001, where "
                   "G's loss log(1 - D(G(z))) is flat, so G's gradient is ~0 and its points barely "
                   "move for some 2,000 steps. Switch G's loss to non-saturating: they leave at "
                   "once. (Plain SGD: Adam would divide the tiny gradient by its own size and "
                   "hide the stall.)",
        "settings": {**DEFAULTS, "optimizer": "sgd", "lr_g": 0.01, "lr_d": 0.2, "g_loss": "saturating",
                     "d_head_start": 1000, "seed": 2},
    },
}


def _number(name, value, lo, hi) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise ConfigError(f"{name} must be a number from {lo:g} to {hi:g}, got {value!r}")
    return float(value)


def _integer(name, value, lo, hi) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(value)


def _choice(name, value, choices) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _flag(name, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def _points(value) -> list:
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_DRAWN:
        got = f"{len(value)} points" if isinstance(value, list) else repr(value)[:40]
        raise ConfigError(f"points must be a list of 2 to {MAX_DRAWN} [x, y] pairs, got {got}")
    for i, p in enumerate(value):
        if not (isinstance(p, list) and len(p) == 2
                and all(not isinstance(c, bool) and isinstance(c, numbers.Real) and math.isfinite(c)
                        and -EXTENT <= c <= EXTENT for c in p)):
            raise ConfigError(f"points[{i}] must be [x, y] with both from {-EXTENT:g} to {EXTENT:g}, "
                              f"got {p!r}"[:200])
    return [[float(x), float(y)] for x, y in value]


CHECKS = {
    "dataset": lambda v: _choice("dataset", v, NAMES),
    "points": lambda v: None if v is None else _points(v),
    "seed": lambda v: _integer("seed", v, 0, SEED_MAX),
    "width": lambda v: _integer("width", v, *WIDTH_RANGE),
    "d_head_start": lambda v: _integer("d_head_start", v, 0, MAX_HEAD_START),
    "lr_g": lambda v: _number("lr_g", v, *LR_RANGE),
    "lr_d": lambda v: _number("lr_d", v, *LR_RANGE),
    "optimizer": lambda v: _choice("optimizer", v, OPTIMIZERS),
    "g_loss": lambda v: _choice("g_loss", v, G_LOSSES),
    "freeze_d": lambda v: _flag("freeze_d", v),
}


def check_body(body, allowed) -> dict:
    """The checked values of the JSON object ``body``, whose keys must all be in ``allowed``."""
    if not isinstance(body, dict):
        raise ConfigError(f"the request body must be a JSON object, got {type(body).__name__}")
    unknown = [k for k in body if k not in allowed]
    if unknown:
        hint = " (it takes effect on reset: POST /api/reset)" if unknown[0] in RESET_ONLY else ""
        raise ConfigError(f"unknown setting {unknown[0]!r}{hint}; expected some of {', '.join(allowed)}")
    return {k: CHECKS[k](v) for k, v in body.items()}


def check_settings(settings: dict) -> dict:
    """A complete settings dict, checked, including that a drawn dataset has its points."""
    settings = check_body(settings, tuple(DEFAULTS))
    if settings["dataset"] == "drawn" and settings["points"] is None:
        raise ConfigError("dataset 'drawn' needs points: draw at least 2 on the canvas first")
    return settings


def check_steps(body) -> int:
    if not isinstance(body, dict) or set(body) - {"steps"}:
        raise ConfigError('the body of /api/step must be {"steps": n}')
    return _integer("steps", body.get("steps", 1), 1, MAX_STEPS)
