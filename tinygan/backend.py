"""Array backends: the one place that decides between NumPy (CPU) and CuPy (GPU).

A backend is chosen once, by name, with :func:`get_backend`, and passed to whatever needs to
allocate (models, data iterators, trainers).  Code that only transforms arrays it was given
looks the module up from the array itself with :func:`get_array_module`, as Chainer does, so
a layer never asks "am I on the GPU?".
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

BACKEND_NAMES = ("numpy", "cupy", "auto")
_INSTALL_HINT = ("install the GPU extra with `pip install -e .[gpu]` (cupy-cuda12x) "
                 "on a machine with an NVIDIA GPU and CUDA 12 drivers")


class BackendUnavailableError(RuntimeError):
    """Raised when the CuPy backend is asked for but cannot run here."""


def _cupy_or_none() -> ModuleType | None:
    """CuPy if it imports and sees at least one GPU, else None."""
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # ImportError, CUDARuntimeError (no driver), ...
        return None


def cupy_available() -> bool:
    return _cupy_or_none() is not None


@dataclass(frozen=True)
class Backend:
    """An array module (``numpy`` or ``cupy``) and the default float dtype."""
    name: str
    xp: ModuleType
    dtype: np.dtype = np.dtype(np.float32)

    def rng(self, seed: int | None = None):
        """A seeded random generator that draws arrays directly on this backend."""
        return self.xp.random.default_rng(seed)

    def asarray(self, a, dtype=None):
        """Move ``a`` (host or device) onto this backend, cast to ``dtype`` (default: ours)."""
        return self.xp.asarray(a, dtype=self.dtype if dtype is None else dtype)

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on NumPy); use before reading a host clock."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()

    def with_dtype(self, dtype) -> "Backend":
        return Backend(self.name, self.xp, np.dtype(dtype))

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, dtype={self.dtype.name})"


def get_backend(name: str | Backend = "numpy", dtype=None) -> Backend:
    """``"numpy"``, ``"cupy"`` or ``"auto"`` (CuPy when it imports and sees a GPU, else NumPy).

    ``dtype`` defaults to float32, or to the dtype of a Backend passed in as ``name``.
    """
    if isinstance(name, Backend):
        return name if dtype is None or np.dtype(dtype) == name.dtype else name.with_dtype(dtype)
    dtype = np.float32 if dtype is None else dtype
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")
    if name == "numpy":
        return Backend("numpy", np, np.dtype(dtype))
    cp = _cupy_or_none()
    if cp is not None:
        return Backend("cupy", cp, np.dtype(dtype))
    if name == "auto":
        return Backend("numpy", np, np.dtype(dtype))
    raise BackendUnavailableError(f"backend 'cupy' was asked for but CuPy cannot run here; {_INSTALL_HINT}")


def get_array_module(*arrays) -> ModuleType:
    """``cupy`` if any argument is a CuPy array, else ``numpy`` (works without CuPy installed)."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy
            return cupy
    return np


def to_numpy(a):
    """A host (NumPy) copy of ``a``; NumPy arrays and scalars pass through."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def backend_of(a) -> str:
    return "cupy" if get_array_module(a) is not np else "numpy"
