"""The image cache survives what happens to files on disk: corrupt entries are rebuilt, killed
builds leave no temp files behind for long, a full disk is an error that says how much space is
needed instead of a SIGBUS, and an unwritable cache folder is named."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from tinygan.data import cache as cache_module
from tinygan.data import embedded_faces
from tinygan.errors import DataError, DataWarning

N, SIZE = 6, 8   # six 8x8 embedded faces: an entry of 1.2 KB, built in milliseconds


def _faces(cache):
    return embedded_faces(N, SIZE, seed=3, cache_dir=cache, progress=False)


def _entry(cache) -> dict:
    """The entry's files by role: pixels (.npy), attrs (.attrs.npy), meta (.json)."""
    npy = [p for p in cache.iterdir() if p.name.endswith(".npy") and not p.name.endswith(".attrs.npy")]
    assert len(npy) == 1
    stem = npy[0].name[:-4]
    return {"pixels": npy[0], "attrs": cache / f"{stem}.attrs.npy", "meta": cache / f"{stem}.json"}


def _hidden(cache):
    return sorted(p.name for p in cache.iterdir() if p.name.startswith("."))


def _edit_meta(edit):
    def corrupt(files):
        meta = json.loads(files["meta"].read_text())
        files["meta"].write_text(json.dumps(edit(meta)))
    return corrupt


CORRUPTIONS = {
    "zero-byte pixels": lambda f: f["pixels"].write_bytes(b""),
    "truncated pixels": lambda f: f["pixels"].write_bytes(f["pixels"].read_bytes()[:200]),
    "sidecar null": lambda f: f["meta"].write_text("null"),
    "sidecar a list": lambda f: f["meta"].write_text("[1, 2, 3]"),
    "sidecar not JSON": lambda f: f["meta"].write_text("{half"),
    "sidecar without report": _edit_meta(lambda m: {k: v for k, v in m.items() if k != "report"}),
    "sidecar wrong count": _edit_meta(lambda m: dict(m, n_images=N + 1)),
    "pixels wrong shape": lambda f: np.save(f["pixels"], np.zeros((N, 3, SIZE, SIZE + 1), np.uint8)),
    "pixels wrong dtype": lambda f: np.save(f["pixels"], np.zeros((N, 3, SIZE, SIZE), np.float32)),
    "attrs wrong shape": lambda f: np.save(f["attrs"], np.zeros((N, 2), np.int8)),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_entry_is_reported_and_rebuilt(tmp_path, corrupt):
    """Each kind of damaged entry: a DataWarning naming the entry, then a rebuild giving the original
    pixels, and the next load is a clean cache hit (the damage does not fail every later run)."""
    first = _faces(tmp_path)
    original_pixels, original_attrs = np.array(first.pixels), np.array(first.attributes)
    del first                  # its memmap would read the damaged file (truncating it under a map: SIGBUS)
    corrupt(_entry(tmp_path))
    with pytest.warns(DataWarning, match=r"ignoring unusable image cache entry .*embedded-8x8.*rebuilding"):
        rebuilt = _faces(tmp_path)
    assert rebuilt.report["cache_hit"] is False
    np.testing.assert_array_equal(rebuilt.pixels, original_pixels)
    np.testing.assert_array_equal(rebuilt.attributes, original_attrs)
    again = _faces(tmp_path)
    assert again.report["cache_hit"] is True and _hidden(tmp_path) == []


def test_pixels_without_sidecar_are_an_incomplete_build_rebuilt_quietly(tmp_path):
    """A pixel file whose sidecar is missing (a build stopped before its last step) is simply rebuilt,
    without a warning: that is how an interrupted build looks."""
    _faces(tmp_path)
    _entry(tmp_path)["meta"].unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert _faces(tmp_path).report["cache_hit"] is False


# --- temp files ----------------------------------------------------------------------------------
def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_files_of_ours_are_removed_others_kept(tmp_path):
    """Removed: ours from a dead process on this host, ours from another host older than a day, the
    pre-pid names older than an hour.  Kept: ours from a live process, a fresh one from another host,
    a fresh pre-pid one, and any file not named by this module."""
    host, now = cache_module._HOST, time.time()
    files = {
        f".faces-8x8-abc.npy.{host}.{_dead_pid()}.k2j4h1.tmp": (0, False),
        f".faces-8x8-abc.json.{host}.{os.getpid()}.k2j4h2.tmp": (0, True),
        ".faces-8x8-abc.npy.otherhost.12345.k2j4h3.tmp": (0, True),
        ".faces-8x8-abc.npy.otherhost.12346.k2j4h4.tmp": (2 * 86400, False),
        ".faces-8x8-abc.npy.q8w7e6.tmp": (2 * 3600, False),             # an older tinygan's name
        ".celeba-64x64-abc.json.a1b2c3.tmp.json": (600, True),
        ".my-notes.tmp": (10 * 86400, True),                               # not ours
        "faces-8x8-abc.npy": (10 * 86400, True),                           # a finished entry
    }
    for name, (age, _) in files.items():
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (now - age, now - age))
    removed = cache_module.clean_stale_temp_files(tmp_path, now=now)
    assert sorted(p.name for p in removed) == sorted(n for n, (_, keep) in files.items() if not keep)
    assert sorted(os.listdir(tmp_path)) == sorted(n for n, (_, keep) in files.items() if keep)


BUILD_AND_HANG = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tinygan.data.cache import build_entry
    def fill(out):
        out[0] = 1
        Path(sys.argv[2]).write_text("started")
        time.sleep(60)
    build_entry(Path(sys.argv[1]), "faces-8x8-killed", 4, (3, 8, 8), fill, None)
""")


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_temp_file_of_a_killed_build_is_removed_by_the_next_load(tmp_path):
    """kill -9 during a cache build leaves its temp file; the next load in this cache removes it."""
    cache, started = tmp_path / "cache", tmp_path / "started"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", BUILD_AND_HANG, str(cache), str(started)], env=env)
    try:
        deadline = time.time() + 60
        while not started.exists():
            assert proc.poll() is None and time.time() < deadline, "the build did not start"
            time.sleep(0.05)
        assert len(_hidden(cache)) == 1               # the build's temp pixel file
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert len(_hidden(cache)) == 1                   # SIGKILL runs no cleanup
    _faces(cache)
    assert _hidden(cache) == []


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])  # Ctrl-C; a SIGTERM handler's exit
def test_interrupted_build_removes_its_temp_file(tmp_path, stop):
    """Ctrl-C (or a SIGTERM turned into an exception) during a build: no temp file, no entry."""
    def fill(out):
        out[0] = 7
        assert len(_hidden(tmp_path)) == 1
        raise stop()
    with pytest.raises(stop):
        cache_module.build_entry(tmp_path, "faces-8x8-x", 4, (3, 8, 8), fill, None)
    assert os.listdir(tmp_path) == []


# --- full disk ------------------------------------------------------------------------------------
def _fill_never_called(out):
    raise AssertionError("fill must not run when the space could not be reserved")


def test_full_disk_is_an_error_saying_what_is_needed_and_free(tmp_path, monkeypatch):
    """posix_fallocate failing with ENOSPC: a DataError with the folder, the bytes needed and free, a
    hint where else to put the cache; no temp file left and no decoding done before the check."""
    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate here (the fallback is tested below)")

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", no_space)
    # 150 images of 3 * 64 * 64 bytes + the .npy header = 1,843,328 bytes
    with pytest.raises(DataError, match=r"not enough disk space for the image cache in .*: it needs "
                                        r"1\.8 MB, .* free; .*TINYGAN_CACHE"):
        cache_module.build_entry(tmp_path, "faces-64x64-x", 150, (3, 64, 64), _fill_never_called, None)
    assert os.listdir(tmp_path) == []


def test_full_disk_without_fallocate_is_caught_by_the_free_space_check(tmp_path, monkeypatch):
    """Where posix_fallocate is missing (macOS, Windows), too little free space is the same clear error."""
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 5000, 5000))
    with pytest.raises(DataError, match=r"it needs 1\.8 MB, 5\.0 KB free"):
        cache_module.build_entry(tmp_path, "faces-64x64-x", 150, (3, 64, 64), _fill_never_called, None)
    assert os.listdir(tmp_path) == []


def test_build_without_fallocate_writes_zeros_and_keeps_the_pixels(tmp_path, monkeypatch):
    """The zero-writing fallback reserves the space without touching the .npy header: the entry
    reads back with the pixels that were written."""
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    reference = embedded_faces(N, SIZE, seed=3, use_cache=False, progress=False)
    built = _faces(tmp_path)
    np.testing.assert_array_equal(built.pixels, reference.pixels)
    assert _faces(tmp_path).report["cache_hit"] is True


def test_unwritable_cache_folder_is_named(tmp_path):
    """A cache folder that cannot be created (a file is in the way): DataError naming it and the way out."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match=r"cannot write the image cache in .*file/cache.*TINYGAN_CACHE.*"
                                        r"use_cache=False"):
        _faces(tmp_path / "file" / "cache")
