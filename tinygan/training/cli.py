"""The command line: flag validators, and one ``error:`` line, not a traceback, for a user's mistake.

    p.add_argument("--epochs", type=cli.positive_int, ...)      # argparse: "error: argument --epochs: ..."
    cli.require(batch_size % 2 == 0, "--batch-size must be even ...")   # -> ConfigError
    if __name__ == "__main__":
        sys.exit(cli.run_command(main))                          # "error: ...", exit 1, 2 or 3

argparse calls a validator with the flag's text; the validator returns the value or raises
``argparse.ArgumentTypeError``, which argparse prints after the usage line as
``error: argument --lr: expected a number > 0, got '-1'`` (exit 2).  Checks that involve several
settings, or the data, raise :class:`~tinygan.errors.ConfigError`.
"""
from __future__ import annotations

import argparse
import errno
import math
import sys
import warnings
from contextlib import contextmanager

from ..backend import BackendUnavailableError, cupy_unavailable_reason, get_backend
from ..errors import CheckpointError, ConfigError, DataError, DataWarning, ShapeError
from ..schedules import make_schedule
from .guard import TrainingDiverged
from .signals import Interrupted, signals_raise

EXIT_ERROR, EXIT_USAGE = 1, 2

# Exceptions that mean "what was asked cannot be done", never a bug: each message names the flag,
# path or shape and what was expected.  (OSErrors are judged by their errno, see run_command.)
USER_ERRORS = (ConfigError, DataError, CheckpointError, ShapeError, BackendUnavailableError)

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# OSErrors about the user's files and disk, not about tinygan.
_USER_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EACCES, errno.EPERM,
                errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP} | _FULL
# Raised by tinygan with a message of its own (no errno) when a path the user gave is wrong.
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)


def _about_users_files(e: OSError) -> bool:
    return e.errno in _USER_ERRNOS or (e.errno is None and isinstance(e, _PATH_ERRORS))


# -- validators for argparse's type= -----------------------------------------------------------

def number_in(low=-math.inf, high=math.inf, *, low_open=False, high_open=False, whole=False):
    """A validator: the flag's text as an int (``whole``) or a finite float in the given range."""
    lo = f"{'>' if low_open else '>='} {low:g}" if low != -math.inf else ""
    hi = f"{'<' if high_open else '<='} {high:g}" if high != math.inf else ""
    if lo and hi:
        bounds = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    else:
        bounds = f" {lo or hi}" if lo or hi else ""
    expected = ("a whole number" if whole else "a number" if bounds else "a finite number") + bounds

    def validate(text):
        try:
            value = int(text) if whole else float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (math.isfinite(value) and above and below):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    validate.__name__ = expected
    return validate


positive_int = number_in(1, whole=True)
non_negative_int = number_in(0, whole=True)
positive_float = number_in(0, low_open=True)
non_negative_float = number_in(0)
finite_float = number_in()
probability = number_in(0, 1, high_open=True)           # a decay or momentum: 1 would never move
seed = non_negative_int                                   # NumPy's generators take seeds >= 0


def at_most(limit: int, why: str):
    """A validator: a whole number in [0, ``limit``]; ``why`` says what the limit is for."""
    check = number_in(0, limit, whole=True)

    def validate(text):
        try:
            return check(text)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e} ({why})") from None

    validate.__name__ = check.__name__
    return validate


def path_text(text: str) -> str:
    """A validator for a path flag: any text but an empty one (which would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    return text


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition``: a check of settings that belong together."""
    if not condition:
        raise ConfigError(message)


def check_batch_fits(n_images: int, n_holdout: int, batch_size: int) -> None:
    """ConfigError unless the images left after ``--holdout`` fill D's half batch of real images."""
    half, left = batch_size // 2, n_images - n_holdout
    require(n_holdout < n_images, f"--holdout {n_holdout} holds out all {n_images} images; expected fewer, "
                                  f"leaving at least --batch-size / 2 = {half} for training")
    require(left >= half, f"--batch-size {batch_size} needs {half} real images per step, but {n_images} "
                          f"images minus {n_holdout} held out leave {left}: use a --batch-size of at most "
                          f"{2 * left}, or more images")


def check_batch_size(batch_size: int, ranks: int = 1) -> None:
    """ConfigError unless ``--batch-size`` splits into equal real and generated halves, and each half
    into equal shares for ``ranks`` data-parallel processes."""
    require(batch_size % 2 == 0, f"--batch-size must be even (half real, half fake), got {batch_size}")
    require(batch_size // 2 % ranks == 0, f"--batch-size {batch_size} is the global batch: each of the "
            f"{ranks} ranks takes an equal share of both halves, so it must divide by {2 * ranks}")


def schedule_from_settings(settings: dict, given, steps: int):
    """The learning-rate schedule the run's settings ask for (checked by :func:`check_schedule`);
    ``steps``: the length of a linear or cosine schedule unless ``lr_steps`` sets it, stored there."""
    settings["lr_steps"] = settings["lr_steps"] or steps
    check_schedule(settings, given)
    return make_schedule(settings["lr_schedule"], total_steps=settings["lr_steps"],
                         decay=settings["lr_decay"], warmup_steps=settings["warmup_steps"])


def check_schedule(settings: dict, given) -> None:
    """ConfigError for learning-rate schedule flags that would be ignored or contradict each other:
    --lr-decay without the inverse-time schedule, --lr-steps without linear or cosine, or a warm-up
    as long as the whole schedule."""
    kind = settings["lr_schedule"]
    require(kind == "inverse-time" or "lr_decay" not in given,
            f"--lr-decay sets the inverse-time schedule's decay; add --lr-schedule inverse-time (got {kind})")
    require(kind in ("linear", "cosine") or "lr_steps" not in given,
            f"--lr-steps is the length of a linear or cosine schedule; add --lr-schedule linear or cosine "
            f"(got {kind})")
    steps, warmup = settings.get("lr_steps"), settings["warmup_steps"]
    require(kind not in ("linear", "cosine") or steps is None or warmup < steps,
            f"--warmup-steps {warmup} is not shorter than the {kind} schedule's {steps} steps (--lr-steps, "
            f"default: the run's length); expected fewer")


def given(args: argparse.Namespace, names) -> dict:
    """The flags among ``names`` that the command line gave (their argparse default is SUPPRESS)."""
    return {k: getattr(args, k) for k in names if k in args}


def backend_from_flag(name: str):
    """``get_backend(name)`` for a ``--backend`` flag; with ``auto``, say why it is not CuPy."""
    backend = get_backend(name)
    if name == "auto" and backend.name == "numpy":
        print(f"note: --backend auto uses NumPy (CPU): {cupy_unavailable_reason()}", flush=True)
    return backend


# -- the main() wrapper ------------------------------------------------------------------------

def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):          # stderr is gone (a closed terminal) or closed
        pass


def _error(text) -> None:
    _say(f"error: {text}")


@contextmanager
def data_warnings_as_lines():
    """A with-block in which a DataWarning prints as one ``warning: <message>`` line on stderr (not
    Python's two lines with the source line), every time it is raised; other warnings as usual."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        default = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, DataWarning):
                _say(f"warning: {message}")
            else:
                default(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _out_of_memory(e: MemoryError) -> str:
    detail = str(e).split(" for an array")[0].strip()          # NumPy: "Unable to allocate 9.3 TiB ..."
    return (f"out of memory{': ' + detail if detail else ''}; the settings need more memory than "
            f"this machine has: try a smaller --batch-size, model (--base-filters, --latent-dim, "
            f"--image-size) or count of pictures")


def run_command(main, argv=None) -> int:
    """``main(argv)``'s exit code, with a user's mistake reported as one ``error:`` line.

    ConfigError (a bad setting): exit 2, as argparse does for a bad flag.  The other user errors
    (a missing or corrupt file, a full disk, CuPy missing, settings too big for the memory):
    exit 1.  TrainingDiverged: exit 3.  A stop signal before or after training: 128 + its number,
    after clean-ups ran.  Anything else is a bug in tinygan and keeps its traceback.
    DataWarnings print as ``warning: ...`` lines.
    """
    try:
        with signals_raise(), data_warnings_as_lines():
            return int(main(argv) or 0)
    except ConfigError as e:
        _error(e)
        return EXIT_USAGE
    except TrainingDiverged as e:
        _error(e)
        return e.exit_code
    except USER_ERRORS as e:
        _error(e)
        return EXIT_ERROR
    except MemoryError as e:              # NumPy's and CuPy's out-of-memory errors are MemoryErrors
        _error(_out_of_memory(e))
        return EXIT_ERROR
    except OSError as e:
        if not _about_users_files(e):
            raise
        if e.errno in _FULL:
            _error(f"{e.strerror} while writing {e.filename or 'a file'}: free some space and run again; "
                   f"files are replaced only once fully written, so what was saved before (a run's last "
                   f"checkpoint) is intact")
        elif e.strerror and e.filename:
            _error(f"{e.strerror}: {e.filename}")
        else:
            _error(e)
        return EXIT_ERROR
    except Interrupted as e:
        if not e.announced:
            _say(f"\n{e}: stopped; nothing more was saved")
        return e.exit_code
    except KeyboardInterrupt:
        _say("\ninterrupted; nothing more was saved")
        return 130
