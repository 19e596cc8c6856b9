"""A training run's numbers: per-step losses and accuracies, per-epoch evaluations, CSV files.

Each step's :class:`~tinygan.gan.StepStats` holds 0-d *device* arrays; reading one on the host
makes the CPU wait for the GPU.  :class:`PendingStats` therefore only collects them, and
``flush()`` copies a whole window of steps to the host in one transfer (every N steps, when the
progress bar refreshes; the NaN guard checks the window then).  :class:`MetricsHistory` keeps
every row, travels in the checkpoint, and writes the CSV files.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..backend import get_array_module, to_numpy
from ..io import atomic_path

STEP_COLUMNS = ("step", "epoch", "d_loss", "g_loss", "d_acc_real", "d_acc_fake", "d_lr", "g_lr",
                "images_per_sec")
# Histories saved before the learning rates were logged lack these two: they load as NaN.
_LR_COLUMNS = ("d_lr", "g_lr")
EVAL_COLUMNS = ("step", "epoch", "holdout_real_acc", "generated_acc")
_STATS = ("d_loss", "g_loss", "d_acc_real", "d_acc_fake")


class PendingStats:
    """Step statistics still on the device, waiting to be copied to the host in one go."""

    def __init__(self):
        self._steps, self._epochs, self._stats, self._lrs = [], [], [], []

    def __len__(self) -> int:
        return len(self._stats)

    def add(self, step: int, epoch: int, stats, lrs: dict | None = None) -> None:
        """``lrs``: the learning rates the step used, {"d_lr": ..., "g_lr": ...} (host numbers)."""
        self._steps.append(int(step))
        self._epochs.append(int(epoch))
        self._stats.append(stats)
        self._lrs.append({k: float((lrs or {}).get(k, np.nan)) for k in _LR_COLUMNS})

    def flush(self) -> list[dict]:
        """Rows {step, epoch, d_loss, g_loss, d_acc_real, d_acc_fake, d_lr, g_lr} as Python numbers,
        in step order; one device-to-host copy for the whole window.  Empties the buffer."""
        if not self._stats:
            return []
        first = self._stats[0].d_loss
        xp = get_array_module(first)
        table = xp.stack([xp.stack([xp.asarray(getattr(s, k), dtype=xp.float64) for k in _STATS])
                          for s in self._stats])
        host = to_numpy(table)
        rows = [dict(step=st, epoch=ep, **{k: float(v) for k, v in zip(_STATS, vals)}, **lrs)
                for st, ep, vals, lrs in zip(self._steps, self._epochs, host, self._lrs)]
        self._steps, self._epochs, self._stats, self._lrs = [], [], [], []
        return rows


class MetricsHistory:
    """Per-step rows (``STEP_COLUMNS``) and per-evaluation rows (``EVAL_COLUMNS``).

    Stored in checkpoints (``state_dict``: two float64 tables), so a resumed run continues the same
    curves and rewrites the CSVs from them.  ``images_per_sec`` is the throughput of the logging
    window the step belonged to (steps are asynchronous on a GPU, so single steps are not timed).
    """

    def __init__(self):
        self.steps: list[tuple] = []
        self.evals: list[tuple] = []

    def add_steps(self, rows: list[dict], images_per_sec: float) -> None:
        for r in rows:
            values = {**r, "images_per_sec": images_per_sec}
            self.steps.append(tuple(float(values.get(c, np.nan)) for c in STEP_COLUMNS))

    def add_eval(self, step: int, epoch: int, holdout_real_acc: float, generated_acc: float) -> None:
        self.evals.append((float(step), float(epoch), float(holdout_real_acc), float(generated_acc)))

    def column(self, name: str) -> np.ndarray:
        if name in STEP_COLUMNS:
            return np.array([r[STEP_COLUMNS.index(name)] for r in self.steps], dtype=np.float64)
        if name in EVAL_COLUMNS:
            return np.array([r[EVAL_COLUMNS.index(name)] for r in self.evals], dtype=np.float64)
        raise KeyError(f"unknown metric {name!r}; step columns {STEP_COLUMNS}, eval columns {EVAL_COLUMNS}")

    def __len__(self) -> int:
        return len(self.steps)

    # -- saving -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"step_columns": list(STEP_COLUMNS),
                "steps": np.array(self.steps, dtype=np.float64).reshape(-1, len(STEP_COLUMNS)),
                "eval_columns": list(EVAL_COLUMNS),
                "evals": np.array(self.evals, dtype=np.float64).reshape(-1, len(EVAL_COLUMNS))}

    def load_state_dict(self, state: dict) -> None:
        columns = (list(state["step_columns"]), list(state["eval_columns"]))
        old_steps = [c for c in STEP_COLUMNS if c not in _LR_COLUMNS]
        if columns[1] != list(EVAL_COLUMNS) or columns[0] not in (list(STEP_COLUMNS), old_steps):
            raise ValueError(f"metrics history has columns {columns[0]} / {columns[1]}, "
                             f"expected {list(STEP_COLUMNS)} / {list(EVAL_COLUMNS)}")
        saved = columns[0]
        self.steps = [tuple(float(r[saved.index(c)]) if c in saved else np.nan for c in STEP_COLUMNS)
                      for r in np.asarray(state["steps"])]
        self.evals = [tuple(float(v) for v in r) for r in np.asarray(state["evals"])]

    @staticmethod
    def _write_csv(path, columns, rows, int_columns=("step", "epoch")) -> Path:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        ints = [c in int_columns for c in columns]
        for r in rows:
            w.writerow([int(v) if is_int else f"{v:.6g}" for v, is_int in zip(r, ints)])
        with atomic_path(path) as tmp:
            Path(tmp).write_text(buf.getvalue())
        return Path(path)

    def write_csv(self, path) -> Path:
        """All step rows as CSV (``STEP_COLUMNS``; epoch is 1-based), written atomically."""
        rows = [r[:1] + (r[1] + 1,) + r[2:] for r in self.steps]
        return self._write_csv(path, STEP_COLUMNS, rows)

    def write_eval_csv(self, path) -> Path:
        rows = [r[:1] + (r[1] + 1,) + r[2:] for r in self.evals]
        return self._write_csv(path, EVAL_COLUMNS, rows)
