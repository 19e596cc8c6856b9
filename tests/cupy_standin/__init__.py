"""A CuPy stand-in, so that tinygan's CuPy path runs (and is checked) on machines without a GPU.

The directory holds two packages named ``cupy`` and ``cupyx``: NumPy-backed, with exactly the
names and keywords of real CuPy (``cupy_api.json``, generated from the CuPy 13 and 14 wheels by
``make_api_list.py``), arrays that refuse to mix with NumPy arrays as CuPy's do, float32 results
flushed to zero like CuPy's kernels, and counters of device operations, host syncs and copies
(documented in ``cupy/_standin.py``).

They are never importable by accident: the directory is on no default path.  Three ways in:

* in the test suite, the ``cupy_standin`` fixture (tests/conftest.py) installs it as ``cupy`` for
  one test, and the ``xp`` fixture's third backend, ``cupy-standin``, uses that fixture;
* in Python, ``with installed() as cupy: ...`` (this module), then restores what was there;
* for a subprocess, put this directory first on ``PYTHONPATH`` (``subprocess_env()``), e.g.
  ``PYTHONPATH=tests/cupy_standin python examples/celeba_dcgan.py --backend cupy``; with
  ``CUPY_STANDIN_COUNTS=FILE`` it writes its totals there as JSON at exit.

Counting: ``with counting() as c: ...`` then ``c.ops``, ``c.syncs``, ``c.h2d``, ``c.h2d_bytes``,
``c.d2h``, ``c.by_name`` (and ``c.by_site`` with ``counting(sites=True)``).
"""
from __future__ import annotations

import importlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path

DIR = Path(__file__).resolve().parent
_NAMES = ("cupy", "cupyx")
_loaded: dict | None = None


def _is_cupy_module(name: str) -> bool:
    return any(name == n or name.startswith(n + ".") for n in _NAMES)


def _take_cupy_modules() -> dict:
    """Remove every cupy/cupyx module from sys.modules and return them."""
    taken = {k: v for k, v in sys.modules.items() if _is_cupy_module(k)}
    for k in taken:
        del sys.modules[k]
    return taken


def _load() -> dict:
    """Import the stand-in once (its modules kept here, not in sys.modules) -> {name: module}."""
    global _loaded
    if _loaded is None:
        saved = _take_cupy_modules()
        sys.path.insert(0, str(DIR))
        try:
            for name in _NAMES:
                importlib.import_module(name)
            _loaded = _take_cupy_modules()
        finally:
            sys.path.remove(str(DIR))
            _take_cupy_modules()
            sys.modules.update(saved)
    return _loaded


def load():
    """The stand-in ``cupy`` module (imported once, left out of ``sys.modules``)."""
    return _load()["cupy"]


@contextmanager
def installed():
    """Make ``import cupy`` / ``import cupyx`` give the stand-in inside the with-block, then put
    back whatever was there (real CuPy, or nothing)."""
    modules = _load()
    saved = _take_cupy_modules()
    sys.modules.update(modules)
    try:
        yield modules["cupy"]
    finally:
        _take_cupy_modules()
        sys.modules.update(saved)


def counting(sites: bool = False):
    """``with counting() as c:`` records the stand-in's operations, syncs and copies into ``c``."""
    return _load()["cupy._standin"].counting(sites)


def subprocess_env(env: dict | None = None) -> dict:
    """A copy of ``env`` (default: this process's) whose PYTHONPATH puts the stand-in first."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(DIR), env.get("PYTHONPATH")) if p)
    return env
