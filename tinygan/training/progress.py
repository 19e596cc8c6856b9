"""What a run shows while it trains: a progress bar per epoch with the losses, D's accuracy and images/s.

Each step's statistics stay on the device; every ``every`` steps :class:`ProgressLog` copies the
window to the host in one transfer, checks it (the NaN guard), hands the rows to the loggers and
shows their means.  images/s = steps in the window x batch size / the window's wall time, so
the steps in between never wait for a GPU.  Output that cannot be written (a terminal closed
under the run) is dropped instead of stopping the training.
"""
from __future__ import annotations

import math
import time

import numpy as np
from tqdm.auto import tqdm

from .guard import check_losses
from .metrics import PendingStats

_SHOWN = ("d_loss", "g_loss", "d_acc_real", "d_acc_fake")


class ProgressLog:
    """loggers     MetricsLoggers that receive every row (:mod:`tinygan.training.loggers`)
    batch_size  images per step, for images/s
    every       steps per window: one host copy, one NaN check, one refresh
    bar         a tqdm bar per epoch; False: a plain line per window (logs, tests)
    show        False on the ranks of a data-parallel run that must stay quiet (all but rank 0)
    communicator  the ranks of a data-parallel run (:mod:`tinygan.distributed`): each window's
                losses and accuracies become their means over the ranks, the global batch's (and
                NaN if any rank's is), so every rank logs, and stops on, the same numbers.  Then
                ``batch_size`` is the global batch, and :meth:`flush` is a collective.
    """

    def __init__(self, loggers, batch_size: int, every: int = 10, bar: bool = True, show: bool = True,
                 communicator=None):
        self.loggers = list(loggers)
        self.batch_size, self.every = int(batch_size), int(every)
        self.use_bar, self.show = bar, show
        self.comm = communicator if communicator is not None and communicator.size > 1 else None
        self.pending = PendingStats()
        self._bar = None
        self.restart_clock()

    def restart_clock(self) -> None:
        """Start a new images/s window (after saving pictures or checkpoints, which are not training)."""
        self._t0 = time.perf_counter()

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        """A bar for epoch ``epoch`` (0-based) of ``epochs``, ``steps`` long, ``done`` of them already run."""
        self.close()
        if self.show and self.use_bar:
            self._bar = tqdm(total=steps, initial=done, desc=f"epoch {epoch + 1}/{epochs}", unit="step",
                             dynamic_ncols=True)
        self.restart_clock()

    def add(self, step: int, epoch: int, stats, lrs: dict | None = None) -> None:
        """Record one step's StepStats (and the learning rates it used, {"d_lr", "g_lr"});
        every ``every`` steps, :meth:`flush`."""
        self.pending.add(step, epoch, stats, lrs)
        self._output(lambda: self._bar.update(1) if self._bar is not None else None)
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        """Copy the waiting statistics (one transfer), log them, raise NonFiniteLossError on NaN/inf."""
        rows = self.pending.flush()
        if not rows:                                     # at the same steps on every rank
            return
        if self.comm is not None:
            rows = self._mean_over_ranks(rows)
        images_per_sec = len(rows) * self.batch_size / max(time.perf_counter() - self._t0, 1e-9)
        self.restart_clock()
        for logger in self.loggers:
            logger.log_steps(rows, images_per_sec)       # the curves keep the bad step too
        check_losses(rows)
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in _SHOWN}
        info = {"d_loss": f"{mean['d_loss']:.3f}", "g_loss": f"{mean['g_loss']:.3f}",
                "d_acc": f"{(mean['d_acc_real'] + mean['d_acc_fake']) / 2:.2f}",
                "img_s": f"{images_per_sec:.1f}"}
        if not math.isnan(rows[-1]["g_lr"]):                # the rates were given
            info["lr"] = f"{rows[-1]['g_lr']:.2e}"
        if self._bar is not None:
            self._output(lambda: self._bar.set_postfix(info))
        else:
            self.message(f"step {rows[-1]['step']} epoch {rows[-1]['epoch'] + 1}: "
                         + " ".join(f"{k} {v}" for k, v in info.items()))

    def _mean_over_ranks(self, rows: list[dict]) -> list[dict]:
        everyone = self.comm.allgather_object([[r[k] for k in _SHOWN] for r in rows])
        means = np.mean(np.array(everyone, dtype=np.float64), axis=0)     # (rows, len(_SHOWN))
        return [{**r, **dict(zip(_SHOWN, map(float, m)))} for r, m in zip(rows, means)]

    def log_eval(self, step: int, epoch: int, values: dict) -> None:
        for logger in self.loggers:
            logger.log_eval(step, epoch, values)

    def log_image(self, tag: str, image, step: int) -> None:
        for logger in self.loggers:
            logger.log_image(tag, image, step)

    def write(self) -> None:
        """Every logger writes its files."""
        for logger in self.loggers:
            logger.write()

    def message(self, text: str) -> None:
        """A line of text that does not break the bar."""
        if not self.show:
            return
        if self._bar is not None:
            self._output(lambda: tqdm.write(text))
        else:
            self._output(lambda: print(text, flush=True))

    def finish(self) -> None:
        """Close the bar and write the loggers' files (the window still waiting is dropped)."""
        self.close()
        self.write()

    def close(self) -> None:
        """Close the bar (call :meth:`flush` first to keep the last window)."""
        if self._bar is not None:
            bar, self._bar = self._bar, None
            self._output(bar.close)

    def _output(self, write) -> None:
        try:
            write()
        except OSError:          # the terminal is gone (EIO after a hang-up): keep training, stay quiet
            self.show = False
            self._bar = None
