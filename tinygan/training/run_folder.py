"""A run's folder and settings: config.json, the resume checks, and the leftovers of killed runs.

A run is defined by its settings (model, sizes, learning rate, seed, ...).  A resumed run takes
them from its checkpoint, so ``--resume --out DIR`` is enough, and refuses a command line that
changes one: it could no longer continue exactly (:func:`resolve_settings`).  A new run refuses a
folder that already holds one (:meth:`RunFolder.check_no_run`), so nothing is overwritten.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..checkpoint import load_checkpoint
from ..distributed.communicator import check_world_size
from ..errors import CheckpointError, ConfigError
from ..io import atomic_path, remove_stale_temp_files


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


RESUMED = "a resumed run keeps its settings, so it can continue exactly"
NEW_RUN = "Start a new run (another output folder) to change them."


def resolve_settings(defaults: dict, given: dict, saved: dict | None = None, may_change=(),
                     kept_because: str = RESUMED, instead: str = NEW_RUN) -> tuple[dict, list[str]]:
    """(settings, notes): ``defaults`` < ``saved`` (a resumed run's) < ``given`` (the command line).

    On a resumed run (``saved`` not None) a given setting that differs from the saved one raises
    ConfigError naming each flag and both values (``kept_because``: why; ``instead``: what to do),
    except the keys in ``may_change`` (paths: the data folder may have moved), which are taken from
    the command line with a note; a saved one that no longer exists and is not given is a ConfigError.
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"resolve_settings: {unknown} are not settings of this run ({sorted(defaults)})")
    if saved is None:
        return {**defaults, **given}, []
    settings = {k: saved.get(k, v) for k, v in defaults.items()}
    given, notes = dict(given), []
    for k in may_change:
        if k in given and given[k] != settings[k]:
            notes.append(f"{_flag(k)} {given[k]} (the run started with {settings[k]})")
            settings[k] = given.pop(k)
        elif k not in given and isinstance(settings[k], str) and not Path(settings[k]).exists():
            raise ConfigError(f"the run's {_flag(k)} {settings[k]} no longer exists; if it moved, give its "
                              f"new place with {_flag(k)}")
    clash = [f"{_flag(k)} {v} (the run was started with {settings[k]})"
             for k, v in given.items() if v != settings[k]]
    if clash:
        raise ConfigError(f"{kept_because}; these differ: " + "; ".join(clash) + f". {instead}")
    return settings, notes


def prepare_output_folder(path, flag: str | None = None, writer: bool = True, hint: str = "") -> list[Path]:
    """Create ``path``, check that it can be written, remove stale temporary files of killed runs
    (returns those): before any long work, so a bad output folder costs nothing.  ConfigError names
    the folder, and ``flag`` (``"--out"``) if it came from one, when it is a file or cannot be
    written; ``hint`` ends the message (e.g. "choose another with --out")."""
    path = Path(path).expanduser()
    name = f"{flag} {path}" if flag else f"the output folder {path}"
    hint = f"; {hint}" if hint else ""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name} is a file; expected a folder (or a new name){hint}")
    if not writer:
        return []
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"cannot write into {name}: {e.strerror or e}{hint}") from e
    return remove_stale_temp_files(path)


class RunFolder:
    """The folder a run writes into: config.json, the checkpoint, pictures and metrics.

    writer  False on the ranks of a data-parallel run that must not write (all but rank 0):
            reading works, writing does nothing.
    communicator  the ranks of a data-parallel run (:mod:`tinygan.distributed`): rank 0 alone
            writes, and reads the checkpoint for all; what fails there fails on every rank.
    """

    CONFIG = "config.json"

    def __init__(self, path, checkpoint: str = "last.npz", writer: bool = True, communicator=None):
        self.path = Path(path).expanduser()
        self.checkpoint_path = self.path / checkpoint
        self.config_path = self.path / self.CONFIG
        self.comm = communicator
        self.writer = writer and (communicator is None or communicator.is_root)

    def _on_root(self, fn, *args):
        """``fn(*args)``; in a data-parallel run on rank 0 alone, its result or error on every rank
        (an error on rank 0 alone would leave the others waiting for it forever)."""
        return fn(*args) if self.comm is None else self.comm.run_on_root(fn, *args)

    def __truediv__(self, name) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    def prepare(self, flag: str | None = None) -> list[Path]:
        """Create the folder, check that it can be written, and remove the temporary files that
        killed runs left in it (see :func:`tinygan.io.remove_stale_temp_files`); returns those.
        ConfigError names the folder (and ``flag``, the option that gave it) if it is a file or
        cannot be written."""
        return self._on_root(prepare_output_folder, self.path, flag, self.writer)

    # -- settings ---------------------------------------------------------------------------------
    def read_config(self) -> dict | None:
        """The settings in config.json, or None if there is no such file."""
        if not self.config_path.is_file():
            return None
        try:
            config = json.loads(self.config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{self.config_path} cannot be read as JSON ({e}); it is written by training: "
                              f"restore it, or train again into another folder") from e
        if not isinstance(config, dict):
            raise ConfigError(f"{self.config_path} holds {type(config).__name__}, not the settings of a run")
        return config

    def write_config(self, settings: dict) -> None:
        """config.json, replaced atomically."""
        def write():
            if self.writer:
                with atomic_path(self.config_path) as tmp:
                    tmp.write_text(json.dumps(settings, indent=2))
        self._on_root(write)

    # -- the checkpoint ---------------------------------------------------------------------------
    def check_no_run(self, resume_flag: str = "--resume") -> None:
        """ConfigError if the folder already holds a run's checkpoint (a new run would overwrite it)."""
        def check():
            if self.checkpoint_path.is_dir():
                raise ConfigError(f"{self.checkpoint_path} is a folder where the run's checkpoint belongs; "
                                  f"move it away, or choose another output folder")
            if self.checkpoint_path.exists():
                raise ConfigError(f"{self.checkpoint_path} already holds a run; add {resume_flag} to "
                                  f"continue it, or choose another output folder")
        self._on_root(check)

    def load_checkpoint(self) -> dict:
        """The run's checkpoint; CheckpointError naming the file if it is missing or unreadable, or
        if it was written by a run on another number of ranks than this one."""
        state = self._on_root(load_checkpoint, self.checkpoint_path)
        trainer = state.get("trainer") if isinstance(state, dict) else None
        saved = trainer.get("world_size", 1) if isinstance(trainer, dict) else 1
        try:
            check_world_size(int(saved), 1 if self.comm is None else self.comm.size)
        except CheckpointError as e:
            raise CheckpointError(f"checkpoint {self.checkpoint_path} does not fit this run: {e}") from None
        return state
