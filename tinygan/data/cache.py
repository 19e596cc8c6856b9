"""On-disk cache of preprocessed images: a memory-mapped uint8 ``.npy`` plus a JSON sidecar.

Decoding and resizing 200k JPEGs takes minutes; opening a memmap takes milliseconds.  Each
cache entry is named by a hash of everything that determines its pixels (source listing, image
size, crop, resampling, filter, limit, :data:`FORMAT_VERSION`), so changing any of them simply
builds a new entry and never serves stale pixels.

Files per entry, in ``cache_dir()`` (argument > ``$TINYGAN_CACHE`` > ``~/.cache/tinygan``)::

    <stem>.npy        uint8 (N, 3, H, W), opened with mmap_mode="r"
    <stem>.attrs.npy  int8 (N, 40) attributes, only when there are attributes
    <stem>.json       filenames, report (counts, skipped files), attribute names

Every file is written under a temporary name and moved into place with ``os.replace``; the JSON
is written last and acts as the "complete" marker, so an interrupted build is never mistaken
for a finished one.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..io import atomic_path

# Bump when the preprocessing or the file layout changes: old entries are then ignored.
FORMAT_VERSION = 1
ENV_VAR = "TINYGAN_CACHE"


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


def _tmp_name(final: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache may be shared between users
    return Path(tmp)


def load_entry(directory: Path, stem: str):
    """(pixels memmap, attributes or None, meta dict) for a complete entry, else None."""
    paths = _entry_paths(directory, stem)
    if not paths["meta"].exists() or not paths["pixels"].exists():
        return None
    try:
        meta = json.loads(paths["meta"].read_text())
        pixels = np.load(paths["pixels"], mmap_mode="r")
        attrs = np.load(paths["attrs"]) if meta.get("has_attributes") else None
    except (OSError, ValueError) as e:  # truncated/corrupt entry: rebuild rather than fail
        print(f"tinygan: ignoring unreadable cache entry {paths['pixels']} ({e}); rebuilding")
        return None
    n = meta.get("n_images")
    if (meta.get("format_version") != FORMAT_VERSION or pixels.shape[0] != n
            or len(meta.get("filenames", ())) != n or (attrs is not None and len(attrs) != n)):
        return None
    return pixels, attrs, meta


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
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = _entry_paths(directory, stem)
    tmp = _tmp_name(paths["pixels"])
    tmp_files = [tmp]
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(max(n_max, 0),) + sample_shape)
        kept = np.asarray(fill(out), dtype=np.int64)
        out.flush()
        if len(kept) < n_max:  # some files were unreadable: shrink to the rows actually written
            exact_tmp = _tmp_name(paths["pixels"])
            tmp_files.append(exact_tmp)
            exact = np.lib.format.open_memmap(exact_tmp, mode="w+", dtype=np.uint8,
                                              shape=(len(kept),) + sample_shape)
            for s in range(0, len(kept), 4096):  # chunks: never more than ~50 MB in RAM
                e = min(len(kept), s + 4096)
                exact[s:e] = out[s:e]
            exact.flush()
            del exact
        del out  # close the memmap before renaming/removing (matters on Windows)
        final_pixels = tmp_files[-1]
        meta, attrs = finish(kept)
        if attrs is not None:
            with atomic_path(paths["attrs"]) as attrs_tmp, open(attrs_tmp, "wb") as f:
                np.save(f, np.asarray(attrs, dtype=np.int8))
        os.replace(final_pixels, paths["pixels"])
        meta = {**meta, "format_version": FORMAT_VERSION, "n_images": int(len(kept)),
                "has_attributes": attrs is not None, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        with atomic_path(paths["meta"]) as meta_tmp:   # written last: the entry is complete from here on
            meta_tmp.write_text(json.dumps(meta))
    finally:
        for t in tmp_files:
            if t.exists():
                t.unlink()
    entry = load_entry(directory, stem)
    if entry is None:
        raise RuntimeError(f"cache entry {paths['pixels']} could not be read back after writing it")
    return entry
