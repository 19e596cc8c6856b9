"""The NaN/inf guard: a diverged run stops, and its last good checkpoint stays as it was.

Once a loss is NaN or infinite the weights are no longer usable, and every later step spreads the
damage.  The progress log checks each window of copied losses (:func:`check_losses`), the
checkpointer checks the weights before writing (:func:`non_finite_arrays`); either raises a
FloatingPointError, and the script turns it into :class:`TrainingDiverged`: one ``error:`` line
that names the bad step and the checkpoint left untouched, and exit code 3.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from ..backend import to_numpy

EXIT_NON_FINITE = 3
LOSSES = ("d_loss", "g_loss")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite: training has diverged and its weights are no longer usable."""

    def __init__(self, step: int, epoch: int, values: dict):
        self.step, self.epoch, self.values = int(step), int(epoch), dict(values)
        bad = [k for k in LOSSES if not math.isfinite(values[k])]
        shown = ", ".join(f"{k}={values[k]}" for k in LOSSES)
        super().__init__(f"non-finite {' and '.join(bad)} at step {self.step} (epoch {self.epoch + 1}): "
                         f"{shown}")


class NonFiniteWeightsError(FloatingPointError):
    """A weight, buffer or optimizer moment about to be saved is NaN or infinite."""


def first_non_finite(rows: list[dict]) -> dict | None:
    """The first row whose d_loss or g_loss is NaN or infinite, else None."""
    for r in rows:
        if not all(math.isfinite(r[k]) for k in LOSSES):
            return r
    return None


def check_losses(rows: list[dict]) -> None:
    """Raise NonFiniteLossError naming the first row (step) with a non-finite loss."""
    bad = first_non_finite(rows)
    if bad is not None:
        raise NonFiniteLossError(bad["step"], bad["epoch"], bad)


def non_finite_arrays(tree, path: str = "") -> list[str]:
    """Paths ("trainer/G/g_bn1.gamma") of the floating-point arrays in a nested dict holding NaN or inf."""
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in non_finite_arrays(v, f"{path}/{k}" if path else str(k))]
    if isinstance(tree, (list, tuple)):
        return [p for i, v in enumerate(tree) for p in non_finite_arrays(v, f"{path}/{i}")]
    if hasattr(tree, "dtype") and tree.dtype.kind in "fc":
        return [] if np.isfinite(to_numpy(tree)).all() else [path]
    return []


class TrainingDiverged(Exception):
    """What a script raises when the guard stops a run; :func:`~tinygan.training.cli.run_command`
    prints it as one ``error:`` line and exits with ``exit_code`` (3)."""

    exit_code = EXIT_NON_FINITE

    def __init__(self, cause: FloatingPointError, checkpointer, hint: str = ""):
        step = checkpointer.step_on_disk()
        kept = (f"the last good checkpoint {checkpointer.path} (step {step}) is untouched" if step is not None
                else "no checkpoint was written")
        super().__init__(f"training diverged: {cause}. Stopping; {kept}." + (f" {hint}" if hint else ""))
        self.cause = cause


@contextmanager
def stop_on_divergence(checkpointer, hint: str = "", before=None):
    """A with-block in which a FloatingPointError (a non-finite loss or weight) becomes
    :class:`TrainingDiverged`, after ``before()`` (e.g. writing the curves up to the bad step)."""
    try:
        yield
    except FloatingPointError as e:
        if before is not None:
            before()
        raise TrainingDiverged(e, checkpointer, hint) from e
