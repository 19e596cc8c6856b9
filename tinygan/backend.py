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
_INSTALL_HINT = ('install the GPU extra on a machine with an NVIDIA GPU and its driver: '
                 '`pip install -e ".[gpu]"` (cupy-cuda12x, CuPy 13 or 14). CuPy 13 needs the CUDA 12 '
                 'toolkit on the machine; CuPy 14 can bring the toolkit pieces it uses (NVRTC to compile '
                 'kernels, cuBLAS) from PyPI: `pip install "cupy-cuda12x[ctk]>=14"`')


class BackendUnavailableError(RuntimeError):
    """Raised when the CuPy backend is asked for but cannot run here."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _gpu_errors(cupy) -> tuple:
    """What a CUDA stack that cannot run raises: no driver or GPU (CUDARuntimeError, a
    RuntimeError), a missing library such as NVRTC or cuBLAS (ImportError, OSError, RuntimeError),
    a kernel that does not compile (CompileException), no memory.  Anything else is a bug and
    propagates."""
    errors = [ImportError, OSError, RuntimeError, MemoryError]
    compile_error = getattr(getattr(getattr(cupy, "cuda", None), "compiler", None), "CompileException", None)
    if isinstance(compile_error, type) and issubclass(compile_error, BaseException):
        errors.append(compile_error)
    return tuple(errors)


def _probe(cupy) -> str | None:
    """None if ``cupy`` computes here, else why not.  A GPU being visible is not enough: a driver
    without the CUDA toolkit passes getDeviceCount() and then fails on the first kernel, so this
    runs one elementwise kernel (compiled by NVRTC) and one matrix product (cuBLAS)."""
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no GPU (getDeviceCount() is 0)"
        x = cupy.arange(4, dtype=cupy.float32)
        y = x * 2 + 1
        m = x.reshape(2, 2) @ x.reshape(2, 2)
        got = (cupy.asnumpy(y).tolist(), cupy.asnumpy(m).tolist())
    except _gpu_errors(cupy) as e:
        return _first_line(e)
    if got != ([1.0, 3.0, 5.0, 7.0], [[2.0, 3.0], [6.0, 11.0]]):
        return f"CuPy's test computation gave wrong results {got}"
    return None


_probed: dict = {}       # id(cupy module) -> (module, None or why it cannot run): probe once


def _cupy_status():
    """(cupy, None) if CuPy imports and computes here, else (None, why not)."""
    try:
        import cupy
    except (ImportError, OSError, RuntimeError) as e:
        return None, f"CuPy does not import ({_first_line(e)})"
    entry = _probed.get(id(cupy))
    if entry is None or entry[0] is not cupy:
        entry = _probed[id(cupy)] = (cupy, _probe(cupy))
    return (cupy, None) if entry[1] is None else (None, entry[1])


def cupy_available() -> bool:
    """Whether CuPy imports here and runs a kernel and a matrix product on a GPU."""
    return _cupy_status()[0] is not None


def cupy_unavailable_reason() -> str | None:
    """Why the CuPy backend cannot run here (None when it can)."""
    return _cupy_status()[1]


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

    def with_dtype(self, dtype) -> Backend:
        return Backend(self.name, self.xp, np.dtype(dtype))

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, dtype={self.dtype.name})"


def get_backend(name: str | Backend = "numpy", dtype=None) -> Backend:
    """``"numpy"``, ``"cupy"`` or ``"auto"`` (CuPy when it imports and computes on a GPU, else NumPy).

    ``dtype`` defaults to float32, or to the dtype of a Backend passed in as ``name``.
    """
    if isinstance(name, Backend):
        return name if dtype is None or np.dtype(dtype) == name.dtype else name.with_dtype(dtype)
    dtype = np.float32 if dtype is None else dtype
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")
    if name == "numpy":
        return Backend("numpy", np, np.dtype(dtype))
    cp, reason = _cupy_status()
    if cp is not None:
        return Backend("cupy", cp, np.dtype(dtype))
    if name == "auto":
        return Backend("numpy", np, np.dtype(dtype))
    raise BackendUnavailableError(f"backend 'cupy' was asked for but CuPy cannot run here: {reason}; "
                                  f"{_INSTALL_HINT}")


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


def to_module(a, xp):
    """``a`` on the array module ``xp`` (numpy or cupy): ``a`` itself if it is there, else a copy
    (host to device, or device to host)."""
    if get_array_module(a) is xp:
        return a
    return to_numpy(a) if xp is np else xp.asarray(a)

