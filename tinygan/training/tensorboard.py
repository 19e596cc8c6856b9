"""TensorBoard event files for a run, through tensorboardX (the optional ``tensorboard`` extra).

tensorboardX writes TensorBoard's event format without any deep-learning framework, so
``tensorboard --logdir runs`` shows a tinygan run live: every number of metrics.csv as a scalar
curve (losses, D's accuracies, images/s, the learning rates) and every sample grid as an image.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .loggers import MetricsLogger

INSTALL_HINT = 'pip install -e ".[tensorboard]"  (or: pip install tensorboardX)'

# metrics.csv column -> TensorBoard tag; the slash groups the curves into panels.
_STEP_TAGS = {"d_loss": "loss/D", "g_loss": "loss/G", "d_acc_real": "accuracy/D_on_real",
              "d_acc_fake": "accuracy/D_on_generated", "d_lr": "learning_rate/D", "g_lr": "learning_rate/G"}
_EVAL_TAGS = {"holdout_real_acc": "eval/D_on_held_out_real", "generated_acc": "eval/D_on_generated"}


def summary_writer_class():
    """tensorboardX's SummaryWriter, or a ConfigError that names the install command."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ConfigError(f"--tensorboard needs the tensorboardX package: {INSTALL_HINT}") from None
    return SummaryWriter


class TensorBoardLogger(MetricsLogger):
    """Event files in ``folder`` (the run folder, so ``tensorboard --logdir runs`` finds every run).

    The x axis is the training step.  A resumed run appends to new event files in the same folder;
    TensorBoard joins them into one curve (``purge_step`` drops points a killed run had written
    after its last checkpoint, so the curve has no overlap)."""

    def __init__(self, folder, purge_step: int | None = None):
        writer_class = summary_writer_class()
        self.writer = writer_class(logdir=str(Path(folder)), purge_step=purge_step, flush_secs=30)

    def log_steps(self, rows, images_per_sec):
        for row in rows:
            for column, tag in _STEP_TAGS.items():
                if column in row:
                    self.writer.add_scalar(tag, row[column], row["step"])
        if rows:
            self.writer.add_scalar("speed/images_per_sec", images_per_sec, rows[-1]["step"])

    def log_eval(self, step, epoch, values):
        for column, tag in _EVAL_TAGS.items():
            if column in values:
                self.writer.add_scalar(tag, values[column], step)

    def log_image(self, tag, image, step):
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def write(self):
        self.writer.flush()

    def close(self):
        self.writer.close()
