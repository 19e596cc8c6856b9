"""On-disk cache of preprocessed images: a memory-mapped uint8 ``.npy`` plus a JSON sidecar.

Decoding and resizing 200k JPEGs takes minutes; opening a memmap takes milliseconds.  Each
cache entry is named by a hash of everything that determines its pixels (source listing, image
size, crop, resampling, filter, limit, :data:`FORMAT_VERSION`), so changing any of them simply
builds a new entry and never serves stale pixels.

Files per entry, in ``cache_dir()`` (argument > ``$TINYGAN_CACHE`` > ``~/.cache/tinygan``)::

    <stem>.npy        uint8 (N, 3, H, W), opened with mmap_mode="r"
    <stem>.attrs.npy  int8 (N, 40) attributes, only when there are attributes
    <stem>.json       filenames, report (counts, skipped files), attribute names

Every file is written under a temporary name (``.<file>.<host>.<pid>.<random>.tmp``) and moved
into place with ``os.replace``; the JSON is written last and acts as the "complete" marker, so
an interrupted build is never mistaken for a finished one.  What can still go wrong is handled:

* an entry that does not read back as written (zero-byte ``.npy``, a sidecar that is not the
  expected object, an array of the wrong shape or dtype) is reported and rebuilt;
* temp files of a build that was killed are removed by the next load, once their process is
  gone (or, for a process on another host, after a day);
* the pixel file's disk blocks are reserved before any pixel is written: a memmap over a sparse
  file on a full disk dies of SIGBUS, with no message and the disk left full.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tinygan.errors import DataError, DataWarning

# Bump when the preprocessing or the file layout changes: old entries are then ignored.
# 2: 16-bit PNGs scaled to 8 bits, symlinked folders listed once, upscaled images counted.
FORMAT_VERSION = 2
ENV_VAR = "TINYGAN_CACHE"

# Temp files: ".<final name>.<host>.<pid>.<mkstemp's random part>.tmp".  A pid is only meaningful
# on its own host (a cache folder may be shared over NFS), and may be reused after a day.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TMP_RE = re.compile(r"^\.(?P<final>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
# Names used before the pid was part of the name: only removed when clearly abandoned.
_LEGACY_TMP_RE = re.compile(r"^\.(celeba|faces|embedded)-.+\.(npy|json)\.[A-Za-z0-9_]+\.tmp(\.npy|\.json)?$")
STALE_OTHER_HOST_S = 24 * 3600
STALE_LEGACY_S = 3600
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def cache_dir(path=None) -> Path:
    """The cache folder: ``path`` if given, else ``$TINYGAN_CACHE``, else ``~/.cache/tinygan``."""
    if path is None:
        path = os.environ.get(ENV_VAR) or Path.home() / ".cache" / "tinygan"
    return Path(path).expanduser()


def cache_key(spec: dict) -> str:
    """16 hex digits of SHA-256 over the JSON of ``spec`` (keys sorted, so order does not matter)."""
    blob = json.dumps({"format_version": FORMAT_VERSION, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _entry_paths(directory: Path, stem: str) -> dict[str, Path]:
    return {"pixels": directory / f"{stem}.npy", "attrs": directory / f"{stem}.attrs.npy",
            "meta": directory / f"{stem}.json"}


def _unwritable(directory: Path, e: OSError) -> DataError:
    return DataError(f"cannot write the image cache in {directory} ({e.strerror or e}); set "
                     f"${ENV_VAR} (or cache_dir=) to a writable folder, or load with use_cache=False")


def _tmp_name(final: Path) -> Path:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{_HOST}.{os.getpid()}.", suffix=".tmp",
                                   dir=final.parent)
    except OSError as e:
        raise _unwritable(final.parent, e) from e
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache may be shared between users
    return Path(tmp)


# ---------------------------------------------------------------------------------------------
# Stale temp files
# ---------------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there; rely on age instead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:      # EPERM: it exists, owned by someone else
        return True
    return True


def clean_stale_temp_files(directory, now: float | None = None) -> list[Path]:
    """Remove our own abandoned temp files from ``directory``; returns what was removed.

    Only names this module (or an older tinygan) writes are considered.  A temp file is stale when
    the process that wrote it (same host) no longer runs, or when it is older than
    :data:`STALE_OTHER_HOST_S` (other host, or pid reuse); pre-pid names after :data:`STALE_LEGACY_S`.
    """
    directory = Path(directory)
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(".") and ".tmp" in entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        m = _TMP_RE.match(entry.name)
        if m:
            dead = m["host"] == _HOST and not _pid_alive(int(m["pid"]))
            stale = dead or age > STALE_OTHER_HOST_S
        else:
            stale = bool(_LEGACY_TMP_RE.match(entry.name)) and age > STALE_LEGACY_S
        if stale:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


# ---------------------------------------------------------------------------------------------
# Reading an entry back, and deciding whether to trust it
# ---------------------------------------------------------------------------------------------
def _is_str_list(x) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


def _entry_problem(paths: dict[str, Path], sample_shape):
    """(None, (pixels, attrs, meta)) for a usable entry, else (what is wrong, None)."""
    try:
        meta = json.loads(paths["meta"].read_text())
    except (OSError, ValueError) as e:
        return f"sidecar {paths['meta'].name} unreadable: {e}", None
    if not isinstance(meta, dict):
        return f"sidecar {paths['meta'].name} holds {type(meta).__name__}, not an object", None
    n = meta.get("n_images")
    if meta.get("format_version") != FORMAT_VERSION:
        return f"format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}", None
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        return f"n_images {n!r} is not a positive count", None
    if not _is_str_list(meta.get("filenames")) or len(meta["filenames"]) != n:
        return f"filenames is not a list of {n} names", None
    if not isinstance(meta.get("report"), dict):
        return "the load report is missing", None
    if not _is_str_list(meta.get("attr_names")) or not isinstance(meta.get("has_attributes"), bool):
        return "attr_names/has_attributes missing", None
    try:
        pixels = np.load(paths["pixels"], mmap_mode="r")
    except (OSError, ValueError, EOFError) as e:
        return f"{paths['pixels'].name} unreadable: {type(e).__name__}: {e}", None
    expected = (n,) + tuple(sample_shape) if sample_shape is not None else None
    if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 4
            or pixels.shape[0] != n or (expected is not None and pixels.shape != expected)):
        return (f"pixels are {getattr(pixels, 'dtype', '?')} {getattr(pixels, 'shape', '?')}, "
                f"expected uint8 {expected or (n, 3, 'H', 'W')}"), None
    attrs = None
    if meta["has_attributes"]:
        try:
            attrs = np.load(paths["attrs"])
        except (OSError, ValueError, EOFError) as e:
            return f"{paths['attrs'].name} unreadable: {type(e).__name__}: {e}", None
        if attrs.dtype != np.int8 or attrs.shape != (n, len(meta["attr_names"])):
            return (f"attributes are {attrs.dtype} {attrs.shape}, expected int8 "
                    f"{(n, len(meta['attr_names']))}"), None
    return None, (pixels, attrs, meta)


def load_entry(directory: Path, stem: str, sample_shape: Sequence[int] | None = None):
    """(pixels memmap, attributes or None, meta dict) for a complete, valid entry, else None.

    Also removes stale temp files (see :func:`clean_stale_temp_files`): this is where every
    cached load starts.  An entry that exists but does not check out (corrupt, truncated, wrong
    shape or dtype, a sidecar that is not what this module writes) is reported with a
    :class:`~tinygan.errors.DataWarning` and treated as missing, so the caller rebuilds it.
    """
    directory = Path(directory)
    clean_stale_temp_files(directory)
    paths = _entry_paths(directory, stem)
    if not paths["meta"].exists() or not paths["pixels"].exists():
        return None
    problem, entry = _entry_problem(paths, sample_shape)
    if problem is not None:
        warnings.warn(f"ignoring unusable image cache entry {paths['pixels']} ({problem}); rebuilding it",
                      DataWarning, stacklevel=2)
        return None
    return entry


# ---------------------------------------------------------------------------------------------
# Building an entry
# ---------------------------------------------------------------------------------------------
def _format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


def _free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def disk_full_error(directory: Path, needed: int) -> DataError:
    free = _free_bytes(directory)
    have = "unknown" if free is None else _format_bytes(free)
    return DataError(f"not enough disk space for the image cache in {directory}: it needs "
                     f"{_format_bytes(needed)}, {have} free; free some space or set ${ENV_VAR} "
                     f"(or cache_dir=) to a folder on another disk")


_ZERO_CHUNK = 1 << 24


def reserve_space(path: Path, nbytes: int, offset: int = 0) -> None:
    """Allocate bytes ``offset`` .. ``nbytes`` of ``path`` on disk now; OSError(ENOSPC) if they do not fit.

    ``posix_fallocate`` where the OS and file system have it; otherwise check the free space and
    write zeros (a sparse region is what a memmap turns into SIGBUS on a full disk).
    """
    length = max(0, nbytes - offset)
    with open(path, "r+b") as f:
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(f.fileno(), offset, length)
                return
            except OSError as e:
                if e.errno in _DISK_FULL:
                    raise
                # EINVAL/EOPNOTSUPP: this file system cannot; fall back to writing zeros
        free = _free_bytes(path.parent)
        if free is not None and free < length:
            raise OSError(errno.ENOSPC, f"{length} bytes needed, {free} free", str(path))
        f.seek(offset)
        zeros = bytes(min(_ZERO_CHUNK, length))
        for start in range(0, length, _ZERO_CHUNK):
            f.write(zeros[:min(_ZERO_CHUNK, length - start)])
        f.flush()
        os.fsync(f.fileno())


def _open_reserved_memmap(path: Path, shape: tuple[int, ...]) -> np.memmap:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    reserve_space(path, os.path.getsize(path), offset=out.offset)
    return out


def _write_atomic(final: Path, write: Callable[[object], None], tmp_files: list[Path]) -> None:
    tmp = _tmp_name(final)
    tmp_files.append(tmp)
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)


def build_entry(directory: Path, stem: str, n_max: int, sample_shape: tuple[int, ...],
                fill: Callable[[np.memmap], Sequence[int]],
                finish: Callable[[np.ndarray], tuple[dict, np.ndarray | None]]):
    """Create an entry by letting ``fill`` write up to ``n_max`` samples into a uint8 memmap.

    ``fill(out)`` writes accepted samples to ``out[0], out[1], ...`` in order and returns the
    list of kept source indices (samples it could not read are simply not written).  If fewer
    than ``n_max`` were kept, the rows are copied into a right-sized file in chunks, so the final
    ``.npy`` is exact and opens with plain ``np.load``.  ``finish(kept)`` returns the JSON-able
    meta dict (filenames, report) and the attribute rows to store (or None).
    Returns what :func:`load_entry` returns.

    Raises :class:`~tinygan.errors.DataError` when the disk cannot hold the entry (saying how
    much it needs and how much is free) or the folder is not writable.  Whatever ends the build
    early -- an error, Ctrl-C, a SIGTERM turned into an exception -- removes its temp files.
    """
    if n_max < 1:
        raise ValueError(f"build_entry: n_max must be >= 1, got {n_max}")
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _unwritable(directory, e) from e
    paths = _entry_paths(directory, stem)
    paths["meta"].unlink(missing_ok=True)  # the entry is incomplete until its new sidecar is written
    tmp_files: list[Path] = []
    needed = 0
    try:
        tmp = _tmp_name(paths["pixels"])
        tmp_files.append(tmp)
        needed = n_max * int(np.prod(sample_shape)) + 128
        out = _open_reserved_memmap(tmp, (n_max,) + tuple(sample_shape))
        kept = np.asarray(fill(out), dtype=np.int64)
        out.flush()
        if len(kept) < n_max:  # some files were unreadable: shrink to the rows actually written
            exact_tmp = _tmp_name(paths["pixels"])
            tmp_files.append(exact_tmp)
            needed = len(kept) * int(np.prod(sample_shape)) + 128
            exact = _open_reserved_memmap(exact_tmp, (len(kept),) + tuple(sample_shape))
            for s in range(0, len(kept), 4096):  # chunks: never more than ~50 MB in RAM
                e = min(len(kept), s + 4096)
                exact[s:e] = out[s:e]
            exact.flush()
            del exact
        del out  # close the memmap before renaming/removing (matters on Windows)
        final_pixels = tmp_files[-1]
        meta, attrs = finish(kept)
        needed = (0 if attrs is None else np.asarray(attrs).nbytes) + (1 << 16)
        if attrs is not None:
            _write_atomic(paths["attrs"], lambda f: np.save(f, np.asarray(attrs, dtype=np.int8)), tmp_files)
        os.replace(final_pixels, paths["pixels"])
        meta = {**meta, "format_version": FORMAT_VERSION, "n_images": int(len(kept)),
                "has_attributes": attrs is not None, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        # written last: the entry is complete from here on
        _write_atomic(paths["meta"], lambda f: f.write(json.dumps(meta).encode()), tmp_files)
    except OSError as e:
        if e.errno in _DISK_FULL:
            for t in tmp_files:  # free the space before measuring what is free
                t.unlink(missing_ok=True)
            raise disk_full_error(directory, needed) from e
        if isinstance(e, PermissionError):
            raise _unwritable(directory, e) from e
        raise
    finally:
        for t in tmp_files:
            t.unlink(missing_ok=True)
    entry = load_entry(directory, stem, sample_shape)
    if entry is None:
        raise DataError(f"image cache entry {paths['pixels']} could not be read back after writing it; "
                        f"is {directory} a reliable, writable disk?")
    return entry
