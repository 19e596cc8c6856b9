"""Run plumbing: what a long training run needs besides the GAN step, one idea per module.

    run_folder   RunFolder: the output folder, config.json, the resume checks; resolve_settings;
                 prepare_output_folder: a writable folder, checked before any long work
    signals      DeferredInterrupt: Ctrl-C, SIGTERM and SIGHUP finish the step, save, exit 130/143/129
    checkpoints  Checkpointer: the checkpoint written atomically, never with non-finite weights
    guard        the NaN/inf guard: a non-finite loss stops the run (stop_on_divergence, exit 3)
    metrics      MetricsHistory (kept in the checkpoint) and PendingStats (the window on the device)
    loggers      MetricsLogger, the interface; CSVLogger: metrics.csv, eval.csv, losses.png
    progress     ProgressLog: the progress bar, images/s, one host copy and NaN check per window
    sampling     generate: G in inference mode, batch by batch
    cli          flag validators, and run_command: a user's mistake is one ``error:`` line

Data-parallel runs (:mod:`tinygan.distributed`, ``comm = distributed.init(backend)``): give the
run folder, the progress log and the interrupt ``communicator=comm`` (rank 0 reads and writes the
run's files for all; losses are means over the ranks; a stop is agreed with
``interrupt.requested_on_any_rank()``), the other writers ``writer=run.writer``, and wrap the
training loop in ``comm.abort_on_error()``.
Learning-rate schedules (:mod:`tinygan.schedules`) live in the optimizers and their settings in
the run's settings, so resume checks and checkpoints cover them.
"""
from . import cli
from .checkpoints import Checkpointer
from .guard import (
    EXIT_NON_FINITE,
    NonFiniteLossError,
    NonFiniteWeightsError,
    TrainingDiverged,
    stop_on_divergence,
)
from .loggers import CSVLogger, MetricsLogger, run_loggers
from .metrics import MetricsHistory, PendingStats
from .progress import ProgressLog
from .run_folder import RunFolder, prepare_output_folder, resolve_settings
from .sampling import generate
from .signals import DeferredInterrupt, Interrupted

__all__ = ["cli", "run_loggers", "RunFolder", "prepare_output_folder", "resolve_settings",
           "DeferredInterrupt", "Interrupted", "Checkpointer",
           "NonFiniteLossError", "NonFiniteWeightsError", "TrainingDiverged", "EXIT_NON_FINITE",
           "stop_on_divergence", "MetricsHistory", "PendingStats", "MetricsLogger", "CSVLogger",
           "ProgressLog", "generate"]
