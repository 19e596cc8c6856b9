"""Where a run's numbers go: a small logger interface, and its CSV backend.

A logger receives each window of step rows as the progress log copies them from the device, and
each evaluation; ``write()`` makes what it received durable (at epoch ends, checkpoints and stops).
:class:`CSVLogger` writes metrics.csv, eval.csv and losses.png.  Another backend (TensorBoard's
``add_scalar`` per row and column, say) implements the same three methods and is passed to the
progress log beside it.
"""
from __future__ import annotations

from pathlib import Path

from ..plots import plot_losses
from .metrics import MetricsHistory


class MetricsLogger:
    """The interface.  ``rows``: dicts with step, epoch (0-based), d_loss, g_loss, d_acc_real and
    d_acc_fake as Python floats; ``images_per_sec``: the throughput of the window they came in."""

    def log_steps(self, rows: list[dict], images_per_sec: float) -> None:
        pass

    def log_eval(self, step: int, epoch: int, values: dict) -> None:
        """``values``: holdout_real_acc and generated_acc (D's accuracy on held-out real images and
        on fresh generated ones)."""

    def log_image(self, tag: str, image, step: int) -> None:
        """``image``: an (H, W, 3) uint8 picture, e.g. the sample grid just saved."""

    def write(self) -> None:
        pass


class CSVLogger(MetricsLogger):
    """metrics.csv (a row per step), eval.csv (a row per evaluation) and losses.png in ``folder``.

    The rows live in ``history`` (a :class:`MetricsHistory`, kept in the checkpoint), so a
    resumed run rewrites the files with its whole past; each file is replaced atomically.
    ``writer``: False on the ranks of a data-parallel run that must not write (all but rank 0).
    """

    def __init__(self, folder, history: MetricsHistory, title: str | None = None, plot: bool = True,
                 writer: bool = True):
        self.folder = Path(folder)
        self.history = history
        self.title = title
        self.plot = plot
        self.writer = writer

    def log_steps(self, rows, images_per_sec):
        self.history.add_steps(rows, images_per_sec)

    def log_eval(self, step, epoch, values):
        self.history.add_eval(step, epoch, values["holdout_real_acc"], values["generated_acc"])

    def write(self):
        if not self.writer:
            return
        self.history.write_csv(self.folder / "metrics.csv")
        self.history.write_eval_csv(self.folder / "eval.csv")
        if self.plot and len(self.history):
            plot_losses(self.history, self.folder / "losses.png", title=self.title)


def run_loggers(run, history: MetricsHistory, title: str | None = None, tensorboard: bool = False,
                resumed_at: int = 0) -> list[MetricsLogger]:
    """The loggers of a training run in ``run`` (a RunFolder): metrics.csv, eval.csv and losses.png,
    plus TensorBoard event files with ``tensorboard``.  Only the writing rank writes; every rank
    checks that tensorboardX is there, so a missing extra stops all ranks alike."""
    loggers = [CSVLogger(run.path, history, title, writer=run.writer)]
    if tensorboard:
        from .tensorboard import TensorBoardLogger, summary_writer_class
        summary_writer_class()
        if run.writer:         # purge_step: drop what a killed run logged after its last checkpoint
            loggers.append(TensorBoardLogger(run.path, purge_step=resumed_at + 1))
    return loggers
