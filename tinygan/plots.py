"""Training curves as PNG files, drawn with matplotlib's object API (no pyplot, no GUI backend).

Using ``matplotlib.figure.Figure`` directly renders with Agg and touches no global pyplot state,
so it works on a headless server and inside a training loop that plots every epoch.  The file is
written under a temporary name and renamed into place (:func:`tinygan.io.atomic_path`), so an
image viewer that reloads ``losses.png`` never sees half a file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import atomic_path


def smooth(values, window: int | None = None) -> np.ndarray:
    """Trailing moving average over ``window`` points (default: 1/50 of the curve, at least 1).

    The first points average over what exists so far, so the curve starts at the first value
    instead of being pulled towards zero (the bias of an exponential average started at 0).
    Non-finite values are ignored.
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n == 0:
        return v
    w = max(1, n // 50) if window is None else max(1, int(window))
    ok = np.isfinite(v)
    c = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    k = np.concatenate([[0], np.cumsum(ok)])
    hi = np.arange(1, n + 1)
    lo = np.maximum(0, hi - w)
    count = k[hi] - k[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (c[hi] - c[lo]) / np.maximum(count, 1), np.nan)


def plot_losses(history, path, title: str | None = None, window: int | None = None) -> Path:
    """Two panels over training steps, saved as a PNG at ``path`` (atomically):

    top     D and G loss, raw (thin, faint) and smoothed (:func:`smooth`, bold)
    bottom  D's accuracy on the real and on the generated half of each training batch (smoothed),
            and, as markers, its accuracy on held-out real images and on fresh generated images
            after each epoch (``history.evals``), if any
    third   the learning rates, when a schedule changed them during the run

    ``history`` is a :class:`tinygan.training.MetricsHistory`.
    """
    from matplotlib.figure import Figure

    step = history.column("step")
    lrs = {name: history.column(name) for name in ("d_lr", "g_lr")}
    scheduled = any(np.nanmax(v) > np.nanmin(v) for v in lrs.values() if np.isfinite(v).any())
    fig = Figure(figsize=(9, 8.5 if scheduled else 7), dpi=100, layout="constrained")
    axes = fig.subplots(3 if scheduled else 2, 1, sharex=True,
                        height_ratios=(3, 2, 1.3) if scheduled else (3, 2))
    ax_loss, ax_acc = axes[:2]
    colours = {"d_loss": "tab:blue", "g_loss": "tab:orange"}
    for name, label in (("d_loss", "D loss"), ("g_loss", "G loss")):
        y = history.column(name)
        ax_loss.plot(step, y, color=colours[name], alpha=0.25, linewidth=0.7)
        ax_loss.plot(step, smooth(y, window), color=colours[name], linewidth=1.8, label=f"{label} (smoothed)")
    ax_loss.set_ylabel("binary cross-entropy")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(loc="upper right", fontsize=8)
    if title:
        ax_loss.set_title(title, fontsize=10)

    for name, label, colour in (("d_acc_real", "D acc, real half of batch", "tab:green"),
                                ("d_acc_fake", "D acc, generated half", "tab:red")):
        ax_acc.plot(step, smooth(history.column(name), window), color=colour, linewidth=1.4, label=label)
    if len(history.evals):
        es = np.array([r[0] for r in history.evals])              # the step each evaluation followed
        ax_acc.plot(es, history.column("holdout_real_acc"), "o", color="tab:green", markersize=5,
                    markeredgecolor="black", label="D acc, held-out real (epoch end)")
        ax_acc.plot(es, history.column("generated_acc"), "s", color="tab:red", markersize=5,
                    markeredgecolor="black", label="D acc, fresh generated (epoch end)")
    ax_acc.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax_acc.set_ylim(-0.03, 1.03)
    ax_acc.set_ylabel("discriminator accuracy")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(loc="lower right", fontsize=8)
    if scheduled:
        for name, label, colour in (("d_lr", "D", "tab:blue"), ("g_lr", "G", "tab:orange")):
            axes[2].plot(step, lrs[name], color=colour, linewidth=1.4, label=f"{label} learning rate")
        axes[2].set_ylabel("learning rate")
        axes[2].grid(alpha=0.3)
        axes[2].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("training step")

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png")
    return path
