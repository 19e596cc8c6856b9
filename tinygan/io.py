"""Atomic file writes: a crash mid-write must never leave a half-written file under the real name."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    os.replace is atomic on POSIX and Windows when both names are on the same filesystem, so a
    reader (or a resumed run after Ctrl-C) sees either the old file or the new one, never half.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)      # mkstemp makes it owner-only; the user's files should look like any other
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz_atomic(path, arrays: dict) -> None:
    """np.savez of host arrays, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_npz(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weights/checkpoint file: {path}")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
