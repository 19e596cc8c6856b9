"""Atomic file writes: a crash mid-write must never leave a half-written file under the real name.

A file is written under a hidden temporary name beside its real one and renamed into place.  The
temporary name says who wrote it, ``.<name>.<host>.<pid>.<random>.tmp``, so that a later run can
tell the leftovers of a killed process (``kill -9``, the OOM killer, a power cut) from a file that
a live process is still writing: :func:`remove_stale_temp_files`.  (The image cache of
:mod:`tinygan.data.cache` names its temporary files the same way.)
"""
from __future__ import annotations

import os
import re
import socket
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import CheckpointError

HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
_OLD_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[^.]+)?$")     # tinygan before the writer was named
# A pid means something only on its own host, and may be reused: files of other hosts count as
# abandoned after a day; files named the old way (no writer) after an hour.
STALE_OTHER_HOST_S, STALE_OLD_NAME_S = 24 * 3600, 3600
_ZIP_MAGIC, _NPY_MAGIC = b"PK", b"\x93NUMPY"          # a zip (.npz) and a .npy file start so


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    os.replace is atomic on POSIX and Windows when both names are on the same filesystem, so a
    reader (or a resumed run after Ctrl-C) sees either the old file or the new one, never half.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{HOST}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)      # mkstemp makes it owner-only; the user's files should look like any other
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename in (None, tmp, str(tmp)):     # name the file the user knows, not our temp file
            raise type(e)(e.errno, e.strerror or str(e), str(path)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (True when that cannot be known)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":         # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:        # alive, owned by someone else
        return True
    return True


def stale_temp_files(folder, now: float | None = None) -> list[Path]:
    """Temporary files of :func:`atomic_path` in ``folder`` (not its subfolders) whose writer is gone."""
    folder = Path(folder)
    now = time.time() if now is None else now
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    stale = []
    for p in entries:
        try:
            if not p.is_file() or p.is_symlink():
                continue
            age = now - p.stat().st_mtime
        except OSError:
            continue
        m = _TEMP.match(p.name)
        if m:
            gone = m["host"] == HOST and not process_alive(int(m["pid"]))
            if gone or age > STALE_OTHER_HOST_S:
                stale.append(p)
        elif _OLD_TEMP.match(p.name) and age > STALE_OLD_NAME_S:
            stale.append(p)
    return stale


def remove_stale_temp_files(folder, now: float | None = None) -> list[Path]:
    """Delete what :func:`stale_temp_files` finds; returns the paths removed."""
    removed = []
    for p in stale_temp_files(folder, now):
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed


def save_npz_atomic(path, arrays: dict) -> None:
    """np.savez of host arrays, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_npz(path, what: str = "weights file") -> dict:
    """Every array of an .npz file, read now (each entry is CRC-checked), without pickle.

    A missing path raises FileNotFoundError; a file that is not a readable .npz (truncated,
    empty, random bytes, a single .npy array) raises CheckpointError naming ``what`` and the path.
    """
    path = Path(path)
    if not path.is_file():
        kind = "a directory, not a file" if path.is_dir() else "missing"
        raise FileNotFoundError(f"{what} {path} is {kind}")
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
    except OSError as e:
        raise CheckpointError(f"{what} {path} cannot be read: {e.strerror or e}") from e
    if not magic.startswith(_ZIP_MAGIC):       # else np.load would try pickle and suggest allowing it
        found = ("an empty file" if not magic else "a single array (.npy), not a set of named arrays"
                 if magic == _NPY_MAGIC else "not an .npz archive (it does not start like a zip file)")
        raise CheckpointError(f"{what} {path} cannot be read: it is {found}; expected an .npz file "
                              f"written by tinygan")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array (.npy), not a set of named arrays (.npz)")
        with data as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise CheckpointError(f"{what} {path} cannot be read (truncated or corrupt?): "
                              f"{type(e).__name__}: {e}") from e
