"""tinygan.training.progress: one host copy, NaN check and refresh per window of steps."""
import errno

import numpy as np
import pytest

from tinygan.gan import StepStats
from tinygan.training import MetricsLogger, NonFiniteLossError, ProgressLog


class Recorder(MetricsLogger):
    def __init__(self):
        self.windows = []

    def log_steps(self, rows, images_per_sec):
        self.windows.append([r["step"] for r in rows])


def stats(d_loss=0.7):
    return StepStats(np.float32(d_loss), np.float32(0.9), np.float32(1.0), np.float32(0.5))


def test_every_n_steps_one_window_reaches_every_logger():
    a, b = Recorder(), Recorder()
    log = ProgressLog([a, b], batch_size=16, every=3, bar=False, show=False)
    for step in range(1, 8):
        log.add(step, 0, stats())
    log.flush()                                  # the rest, as at an epoch's end or a save
    assert a.windows == b.windows == [[1, 2, 3], [4, 5, 6], [7]]


def test_a_non_finite_loss_is_logged_then_stops_the_run():
    rec = Recorder()
    log = ProgressLog([rec], batch_size=16, every=2, bar=False, show=False)
    log.add(1, 0, stats())
    with pytest.raises(NonFiniteLossError, match="non-finite d_loss at step 2"):
        log.add(2, 0, stats(d_loss=np.nan))
    assert rec.windows == [[1, 2]]               # the curves keep the bad step, to diagnose it


def test_without_a_bar_each_window_is_a_line_of_losses_accuracy_and_images_per_second(capsys):
    log = ProgressLog([], batch_size=16, every=2, bar=False)
    log.add(1, 0, stats())
    log.add(2, 0, stats())
    line = capsys.readouterr().out.strip()
    assert line.startswith("step 2 epoch 1: d_loss 0.700 g_loss 0.900 d_acc 0.75 img_s ")
    assert float(line.rsplit(" ", 1)[1]) > 0


def test_a_terminal_that_is_gone_silences_the_log_instead_of_stopping_training(monkeypatch, capsys):
    """After a hang-up, writing to the terminal fails with EIO; the run must go on to save."""
    def gone(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr("builtins.print", gone)
    log = ProgressLog([], batch_size=16, every=1, bar=False)
    log.add(1, 0, stats())
    log.message("interrupted at step 1")
    assert log.show is False


def test_a_quiet_rank_prints_nothing(capsys):
    log = ProgressLog([], batch_size=16, every=1, bar=True, show=False)
    log.start_epoch(0, 1, steps=5)
    log.add(1, 0, stats())
    log.message("hello")
    log.close()
    assert capsys.readouterr() == ("", "")
