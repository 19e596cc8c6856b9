"""The CuPy stand-in's implementation: CuPy's API and rules on NumPy arrays, with counters.

Arrays.  ``ndarray`` wraps a NumPy array (``_a``), so values, views and in-place writes behave as
on NumPy; ``type(a).__module__`` is ``"cupy"``, so ``tinygan.backend.get_array_module`` takes it for
CuPy.  Names and keywords: exactly those of ../cupy_api.json (CuPy's public API, generated from the
real wheels); any other attribute is an AttributeError and any other keyword a TypeError.  A listed
name that tinygan has no use for and that has no NumPy twin raises NotImplementedError when used.

Rules of real CuPy enforced here (each raises what CuPy raises):
  * no implicit conversion to NumPy: ``np.asarray(a)`` / ``a.__array__()`` -> TypeError;
  * no host arrays in device operations: a NumPy array as an operand of a ufunc, an operator or
    any function -> TypeError ("Unsupported type"), except where CuPy itself copies host data:
    ``asarray``/``array``, index arrays, and the values of a fancy-indexed assignment;
  * ``a[basic index] = numpy_array`` -> ValueError ("non-scalar numpy.ndarray cannot be used
    for fill");
  * NumPy functions on device arrays dispatch to the stand-in's function of the same name
    (``__array_function__``/``__array_ufunc__``) or fail as they do on CuPy; ``ufunc.at`` only for
    add, subtract, maximum, minimum and the bitwise ufuncs, ``ufunc.reduce`` only for add and
    multiply;
  * float32 results of every kernel are flushed to zero below the smallest normal number, as
    CuPy compiles its kernels with ``-ftz=true`` (subnormal *operands* copied from the host are
    not flushed first; cuBLAS products are not flushed).

Counters (see ``Counts``): every operation queued on the device is one ``op`` -- an elementwise
kernel (every ufunc call and operator, in-place ones included), a reduction, a cuBLAS call, a copy
or cast, a fill or memset, a gather or scatter, and a host-to-device copy.  Views (reshape of
contiguous data, transpose, basic indexing, ``as_strided``) and ``empty`` are free, as on CuPy.
Where one CuPy call launches several kernels the count follows CuPy's implementation: ``einsum``
(its transposed copies plus the batched product, cupy/linalg/_einsum.py without cuTENSOR),
``matmul`` (a copy per operand that is neither C- nor F-contiguous), ``concatenate`` (one copy per
array up to 8), ``pad`` (1 + 2 per padded axis), ``var`` (2) and ``std`` (3), boolean-mask
indexing (3 plus a sync).  ``syncs`` counts waits of the host for the device: ``get``,
``asnumpy``, ``item``, ``tolist``, ``float()``/``int()``/``bool()`` of an array, ``repr``, boolean
masks, ``nonzero`` and friends, ``Stream``/``Event``/``Device.synchronize``.  ``h2d``/``d2h``
count host-to-device and device-to-host copies and their bytes.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import re
import string
import sys
import threading
import time
import types
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np

_DIR = Path(__file__).resolve().parent.parent              # tests/cupy_standin
_API = json.loads((_DIR / "cupy_api.json").read_text())
API = _API["modules"]
CUPY_VERSIONS = tuple(_API["cupy_versions"])
_TINY32 = np.float32(np.finfo(np.float32).tiny)
_SCALARS = (bool, int, float, complex, np.generic)


# == counters =========================================================================================
class Counts:
    """Operations, syncs and copies seen while this object was recording (see the module docstring).

    ``by_name``: ops per CuPy function/method; ``by_site``: ops per calling line outside the
    stand-in and NumPy ("path:line function"), filled only when recording with ``sites=True``."""

    FIELDS = ("ops", "syncs", "h2d", "h2d_bytes", "d2h", "d2h_bytes")

    def __init__(self, sites=False):
        self.ops = self.syncs = self.h2d = self.h2d_bytes = self.d2h = self.d2h_bytes = 0
        self.by_name: Counter = Counter()
        self.by_site: Counter = Counter()
        self.sites = sites

    def as_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.FIELDS}

    def __repr__(self):
        return "Counts(" + ", ".join(f"{k}={v}" for k, v in self.as_dict().items()) + ")"


_totals = Counts()
_recorders: list[Counts] = []
_state = threading.local()          # .fusing (inside cupy.fuse), .sync_allowed (cupyx.allow_synchronize)


@contextmanager
def counting(sites=False):
    """Record into a fresh ``Counts`` for the with-block: ``with counting() as c: ...; c.ops``."""
    c = Counts(sites)
    _recorders.append(c)
    try:
        yield c
    finally:
        _recorders.remove(c)


def totals() -> Counts:
    """Everything counted since the stand-in was imported (a snapshot)."""
    c = Counts()
    for f in Counts.FIELDS:
        setattr(c, f, getattr(_totals, f))
    c.by_name = Counter(_totals.by_name)
    return c


_SKIP_FILES = (str(_DIR), os.path.dirname(np.__file__))


def _site() -> str:
    f = sys._getframe(2)
    while f is not None and f.f_code.co_filename.startswith(_SKIP_FILES):
        f = f.f_back
    if f is None:
        return "?"
    path = f.f_code.co_filename
    for root in sys.path:
        if root and path.startswith(root + os.sep):
            path = path[len(root) + 1:]
            break
    return f"{path}:{f.f_lineno} {f.f_code.co_name}"


def _add(field, n, name=None):
    for c in (_totals, *_recorders):
        setattr(c, field, getattr(c, field) + n)
        if field == "ops":
            c.by_name[name] += n
            if c.sites:
                c.by_site[_site()] += n


def _op(name, n=1):
    """Count ``n`` device operations made by CuPy function/method ``name``."""
    if getattr(_state, "fusing", False):
        if name not in _FUSABLE:
            raise TypeError(f"cupy stand-in: {name} cannot be used inside a cupy.fuse function")
        return
    if n:
        _add("ops", n, name)


def _h2d(name, nbytes):
    if getattr(_state, "fusing", False):
        raise TypeError(f"cupy stand-in: {name} copies host data, which a cupy.fuse function cannot")
    _add("ops", 1, name + " (host-to-device copy)")
    _add("h2d", 1)
    _add("h2d_bytes", int(nbytes))


class DeviceSynchronized(RuntimeError):
    """Raised by a sync inside ``cupyx.allow_synchronize(False)`` (as cupyx.DeviceSynchronized)."""


def _sync(name, nbytes=None):
    """The host waits for the device (and, with ``nbytes``, copies that much back)."""
    if not getattr(_state, "sync_allowed", True):
        raise DeviceSynchronized(f"synchronization detected: {name}")
    _add("syncs", 1)
    if nbytes is not None:
        _add("d2h", 1)
        _add("d2h_bytes", int(nbytes))


def _write_counts_at_exit():
    path = os.environ.get("CUPY_STANDIN_COUNTS")
    if path:
        with open(path, "w") as f:
            json.dump({**_totals.as_dict(), "by_name": dict(_totals.by_name.most_common())}, f, indent=1)


atexit.register(_write_counts_at_exit)


# == signatures =======================================================================================
def _parse_signature(kind: str):
    """'function(a, /, b, *, c)' -> (keyword names allowed, or None for any; most positional
    arguments, or None for any); None where CuPy's signature is unknown."""
    m = re.match(r"^\w+\((.*)\)$", kind)
    if not m or m.group(1) == "?":
        return None
    allowed, max_pos, positional = set(), 0, True
    for t in (t.strip() for t in m.group(1).split(",")):
        if not t:
            continue
        if t == "/":
            allowed.clear()                          # the names before '/' are positional-only
        elif t.startswith("**"):
            return (None, max_pos)
        elif t.startswith("*"):
            positional = False
            if t != "*":
                max_pos = None
        else:
            allowed.add(t)
            if positional and max_pos is not None:
                max_pos += 1
    return (allowed, max_pos)


def _check_call(qualname, sig, nargs, kwargs):
    if sig is None:
        return
    allowed, max_pos = sig
    if allowed is not None:
        for k in kwargs:
            if k not in allowed:
                raise TypeError(f"{qualname}() got an unexpected keyword argument '{k}' "
                                f"(not in CuPy {'/'.join(CUPY_VERSIONS)})")
    if max_pos is not None and nargs > max_pos:
        raise TypeError(f"{qualname}() takes at most {max_pos} positional arguments ({nargs} given)")


def _checked(qualname, sig, impl):
    """``impl`` behind a check of its keywords against CuPy's signature."""
    @functools.wraps(impl)
    def f(*args, **kwargs):
        _check_call(qualname, sig, len(args), kwargs)
        return impl(*args, **kwargs)
    mod, _, name = qualname.rpartition(".")
    f.__module__, f.__name__, f.__qualname__ = mod, name, name
    return f


# == host/device boundary =============================================================================
def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def _unwrap(x):
    """Device arrays -> their NumPy data (also inside lists/tuples); a NumPy array is an error."""
    t = type(x)
    if t is ndarray:
        return x._a
    if isinstance(x, np.ndarray):
        raise _unsupported(x)
    if (t is list or t is tuple) and any(isinstance(e, (ndarray, np.ndarray, list, tuple)) for e in x):
        return t(_unwrap(e) for e in x)
    return x


def _devices(args, kwargs=None):
    found = []
    for x in list(args) + list((kwargs or {}).values()):
        if type(x) is ndarray:
            found.append(x)
        elif type(x) in (list, tuple):
            found.extend(_devices(x))
    return found


def _operand(x):
    """A ufunc operand: device data or a scalar (CuPy's _preprocess_args)."""
    if type(x) is ndarray:
        return x._a
    if isinstance(x, _SCALARS):
        return x
    raise _unsupported(x)


def _ftz(a):
    """Flush float32 subnormals to (signed) zero in place, as CuPy's -ftz=true kernels do."""
    if a.dtype == np.float32 and a.size:
        small = np.abs(a) < _TINY32
        if small.any():
            np.multiply(a, 0, out=a, where=small)
    return a


def _new(a, ftz=True):
    """A device array holding fresh data ``a`` (NumPy array or scalar)."""
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    return ndarray._wrap(_ftz(a) if ftz else a)


def _view(a, src):
    if getattr(_state, "fusing", False):
        raise TypeError("cupy stand-in: views (indexing, reshape, transpose) cannot be used inside a "
                        "cupy.fuse function")
    return ndarray._wrap(a, src._base if src._base is not None else src)


def _finish(name, res, srcs, out=None, ops=1, ftz=True):
    """Wrap a NumPy result: views of ``srcs`` are free, new data costs ``ops`` operations."""
    if out is not None:
        if type(out) is not ndarray:
            raise TypeError("Output arguments must be cupy.ndarray")
        _op(name, ops)
        if ftz:
            _ftz(out._a)
        return out
    if res is None:                                   # in place (sort, copyto, ...)
        _op(name, ops)
        return None
    counted = [False]

    def wrap(r):
        if isinstance(r, np.ndarray):
            for s in srcs:
                if np.may_share_memory(r, s._a):
                    return _view(r, s)
        elif not isinstance(r, (*_SCALARS, np.ndarray)):
            return r
        if not counted[0]:
            _op(name, ops)
            counted[0] = True
        return _new(r, ftz)

    if isinstance(res, (tuple, list)):
        return type(res)(wrap(r) for r in res)
    return wrap(res)


# == the array ========================================================================================
class Flags:
    """CuPy's flags: c_contiguous, f_contiguous and owndata only (no ``writeable``)."""

    def __init__(self, a, owndata):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = owndata

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]

    def __repr__(self):
        return (f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n"
                f"  OWNDATA : {self.owndata}")


def _check_method(name, args, kwargs):
    _check_call(f"cupy.ndarray.{name}", _METHOD_SIGS.get(name), len(args), kwargs)


class ndarray:
    """A "device" array: NumPy data that refuses to mix with NumPy arrays, as cupy.ndarray does."""

    __slots__ = ("_a", "_base", "__weakref__")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("cupy stand-in: ndarray(memptr=, strides=) is not modelled")
        self._a = np.empty(shape, dtype=dtype, order=order)     # uninitialised, as on CuPy: no op
        self._base = None

    @classmethod
    def _wrap(cls, a, base=None):
        obj = cls.__new__(cls)
        obj._a, obj._base = a, base
        return obj

    # -- attributes ----------------------------------------------------------------------------
    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value                                   # raises where a copy would be needed

    dtype = property(lambda self: self._a.dtype)
    strides = property(lambda self: self._a.strides)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    base = property(lambda self: self._base)
    flags = property(lambda self: Flags(self._a, self._base is None))
    device = property(lambda self: _DEVICE)

    @property
    def T(self):
        return self if self.ndim < 2 else _view(self._a.T, self)

    @property
    def real(self):
        return _view(self._a.real, self) if self.dtype.kind != "c" else _finish("real", self._a.real, [self])

    @property
    def imag(self):
        return _finish("imag", self._a.imag, [self])

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self._a.__array_interface__["data"][0], device=_DEVICE,
                                     device_id=0)

    @property
    def flat(self):
        raise NotImplementedError("cupy stand-in: ndarray.flat is not modelled")

    @property
    def cstruct(self):
        raise NotImplementedError("cupy stand-in: ndarray.cstruct is not modelled")

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "descr": self.dtype.descr,
                "version": 3, "stream": 1, "strides": None if self._a.flags.c_contiguous else self.strides,
                "data": (self._a.__array_interface__["data"][0], False)}

    # -- conversion to the host: explicit only -------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained fromcupy.ndarray")
            if out.dtype != self.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from {self.dtype} array")
            if out.shape != self.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {self.shape}, actual shape: {out.shape}")
            _sync("ndarray.get", self.nbytes)
            np.copyto(out, self._a)
            return out
        _sync("ndarray.get", self.nbytes)
        return np.array(self._a, order=order.upper() if order.upper() in "CFAK" else order)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        _h2d("ndarray.set", arr.nbytes)
        self._a[...] = arr

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        _sync("ndarray.item", self.itemsize)
        return self._a.item()

    def tolist(self):
        _sync("ndarray.tolist", self.nbytes)
        return self._a.tolist()

    def __float__(self):
        _sync("float()", self.nbytes)
        return float(self._a)

    def __int__(self):
        _sync("int()", self.nbytes)
        return int(self._a)

    def __complex__(self):
        _sync("complex()", self.nbytes)
        return complex(self._a)

    def __bool__(self):
        if self.size == 0:
            warnings.warn("The truth value of an empty array is ambiguous. Returning False, but in "
                          "future this will result in an error. Use `array.size > 0` to check that "
                          "an array is not empty.", DeprecationWarning, stacklevel=2)
            return False
        if self.size > 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous. "
                             "Use a.any() or a.all()")
        _sync("bool()", self.itemsize)
        return bool(self._a)

    def __repr__(self):
        _sync("repr()", self.nbytes)
        return repr(self._a)

    def __str__(self):
        _sync("str()", self.nbytes)
        return str(self._a)

    def __format__(self, spec):
        _sync("format()", self.nbytes)
        return format(self._a, spec)

    def __reduce__(self):
        return _CUPY_FUNCTIONS["array"], (self.get(),)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    # -- indexing ------------------------------------------------------------------------------
    def __getitem__(self, key):
        k, n_int, has_bool = _index(key)
        if not n_int and not has_bool:
            r = self._a[k]
            if not isinstance(r, np.ndarray):                  # CuPy gives a 0-d view, not a scalar
                r = self._a[k + (Ellipsis,)]
            return _view(r, self)
        if has_bool:
            _sync("boolean mask indexing", 8)
        res = self._a[k]
        _op("getitem (gather)", 3 if has_bool else 1 if n_int == 1 else 2 + n_int)
        return _new(res, ftz=False)

    def __setitem__(self, key, value):
        k, n_int, has_bool = _index(key)
        basic = not n_int and not has_bool
        if type(value) is ndarray:
            v = value._a
        elif isinstance(value, np.ndarray):
            if basic:
                if value.shape != ():
                    raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
                v = value.item()
            else:
                v = value
                _h2d("setitem", value.nbytes)
        elif isinstance(value, _SCALARS):
            v = value
        elif basic:
            raise _unsupported(value)
        else:
            v = np.asarray(value)
            _h2d("setitem", v.nbytes)
        if basic:
            dst = self._a[k]
            if not isinstance(dst, np.ndarray):
                dst = self._a[k + (Ellipsis,)]
            if getattr(_state, "fusing", False):
                raise TypeError("cupy stand-in: indexing cannot be used inside a cupy.fuse function")
            if (type(value) is ndarray and dst.shape == v.shape and dst.strides == v.strides
                    and dst.__array_interface__["data"][0] == v.__array_interface__["data"][0]):
                return                                          # the same memory: CuPy skips the copy
            dst[...] = v
            _op("setitem (fill)" if type(value) is not ndarray else "setitem (copy)")
            if isinstance(v, np.ndarray) and v.dtype != dst.dtype:
                _ftz(dst)
            return
        if has_bool:
            _sync("boolean mask assignment", 8)
        self._a[k] = v
        _op("setitem (scatter)", 3 if has_bool else 1 if n_int == 1 else 2 + n_int)

    def scatter_add(self, slices, value):
        _scatter("add", self, slices, value)

    def scatter_max(self, slices, value):
        _scatter("max", self, slices, value)

    def scatter_min(self, slices, value):
        _scatter("min", self, slices, value)

    # -- methods with rules of their own -------------------------------------------------------
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if casting is not None:
            raise TypeError("casting is not supported yet")
        if subok is not None:
            raise TypeError("subok is not supported yet")
        dtype = np.dtype(dtype)
        if dtype == self.dtype and not copy:
            return self
        return _finish("astype", self._a.astype(dtype, order=order), [])

    def copy(self, order="C"):
        return _finish("copy", self._a.copy(order=order), [])

    def fill(self, value):
        if isinstance(value, np.ndarray):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.item()
        if type(value) is ndarray:
            raise _unsupported(value)
        self._a.fill(value)
        _op("fill")

    def view(self, dtype=None, type=None):
        if type is not None:
            raise NotImplementedError("cupy stand-in: view(type=) is not modelled")
        return _view(self._a.view() if dtype is None else self._a.view(dtype), self)

    def dot(self, b, out=None):
        return _matmul_like("dot", np.dot, self, b, out)

    def __getattr__(self, name):
        """The remaining methods CuPy lists, run on the NumPy data (AttributeError for the rest)."""
        if name.startswith("__") or name not in _METHOD_SIGS:
            raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'")
        impl = _METHODS.get(name)
        if impl is None:
            raise NotImplementedError(f"cupy stand-in: ndarray.{name} is not modelled")

        def method(*args, **kwargs):
            _check_method(name, args, kwargs)
            return impl(self, *args, **kwargs)
        method.__name__ = name
        return method

    # -- NumPy interoperation ------------------------------------------------------------------
    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        if method != "__call__":
            return NotImplemented                               # np.add.at(device, ...) -> TypeError
        cp_uf = _UFUNCS.get(uf.__name__)
        if cp_uf is None:
            return NotImplemented
        for x in inputs + ((kwargs["out"],) if "out" in kwargs else ()):
            if not isinstance(x, (ndarray, np.ndarray, *_SCALARS)):
                return NotImplemented
        if uf.__name__ in _COMPARISONS:
            inputs = tuple(x.item() if isinstance(x, np.ndarray) and x.ndim == 0 else x for x in inputs)
        return cp_uf(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        target = _find_counterpart(func)
        if target is None or not all(issubclass(t, (ndarray, np.ndarray)) for t in types_):
            return NotImplemented
        return target(*args, **kwargs)


def _index(key):
    """CuPy's preparation of an index: device index arrays as they are, host arrays and lists made
    device arrays (an implicit host-to-device copy).  -> (NumPy key, number of integer index
    arrays, whether a boolean mask is among them)."""
    items = key if isinstance(key, tuple) else (key,)
    out, n_int, has_bool = [], 0, False
    for s in items:
        if s is None or s is Ellipsis or isinstance(s, slice):
            out.append(s)
            continue
        if type(s) is ndarray:
            arr = s._a
        elif isinstance(s, (list, tuple, np.ndarray, bool, np.bool_)):
            arr = np.asarray(s)
            if isinstance(s, (list, tuple)) and arr.size == 0:
                arr = arr.astype(np.int32)
            _h2d("index array", arr.nbytes)
        elif np.isscalar(s):
            out.append(s)                                       # an integer: a view
            continue
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) "
                             "and integer or boolean arrays are valid indices")
        if arr.dtype.kind == "b":
            has_bool = True
        elif arr.dtype.kind in "iu":
            n_int += 1
        else:
            raise IndexError(f"arrays used as indices must be of integer or boolean type. "
                             f"(actual: {arr.dtype.type})")
        out.append(arr)
    return tuple(out), n_int, has_bool


# Scatter ops CuPy implements (cupy/_core/_routines_indexing.pyx) and the dtypes it allows.
_SCATTER = {"add": (np.add, ("int32", "float16", "float32", "float64", "uint32", "uint64")),
            "sub": (np.subtract, ("int32", "uint32")),
            "max": (np.maximum, ("int32", "float32", "float64", "uint32", "uint64")),
            "min": (np.minimum, ("int32", "float32", "float64", "uint32", "uint64")),
            "and": (np.bitwise_and, ("int32", "int64", "uint32", "uint64")),
            "or": (np.bitwise_or, ("int32", "int64", "uint32", "uint64")),
            "xor": (np.bitwise_xor, ("int32", "int64", "uint32", "uint64"))}
_UFUNC_SCATTER = {"add": "add", "subtract": "sub", "maximum": "max", "minimum": "min",
                  "bitwise_and": "and", "bitwise_or": "or", "bitwise_xor": "xor"}


def _scatter(op, a, slices, value):
    if type(a) is not ndarray:
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got {type(a).__name__})")
    fn, dtypes = _SCATTER[op]
    k, n_int, has_bool = _index(slices)
    if type(value) is ndarray:
        v = value._a
    elif isinstance(value, _SCALARS):
        v = value
    else:
        v = np.asarray(value)
        _h2d(f"scatter_{op}", v.nbytes)
    if (n_int or has_bool) and a.dtype.name not in dtypes:
        name = {"sub": "subtract", "max": "maximum", "min": "minimum"}.get(op, op)
        raise TypeError(f"cupy.{name}.at only supports {', '.join(dtypes)} as data type")
    fn.at(a._a, k, v)
    _op(f"scatter_{op}")
    _ftz(a._a)


# == ufuncs ===========================================================================================
_COMPARISONS = {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"}


class ufunc:
    """A CuPy ufunc: one elementwise kernel per call."""

    def __init__(self, name, fn, sig):
        self.__name__ = name
        self._f = fn
        self._sig = sig
        self.nin = getattr(fn, "nin", 1)
        self.nout = getattr(fn, "nout", 1)
        self.nargs = self.nin + self.nout
        self.types = list(getattr(fn, "types", []))
        self.__doc__ = f"cupy stand-in of {name}"

    name = property(lambda self: "cupy_" + self.__name__)

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"

    def __call__(self, *args, **kwargs):
        _check_call(self.__name__, self._sig, len(args), kwargs)
        if len(args) < self.nin:
            raise TypeError(f"Wrong number of arguments for {self.__name__!r}. "
                            f"It must be either {self.nin} or {self.nargs} (with outputs), "
                            f"but given {len(args)}.")
        out = kwargs.pop("out", None)
        if len(args) > self.nin:
            if out is not None:
                raise TypeError("cannot specify 'out' as both a positional and keyword argument")
            out = args[self.nin]
        if isinstance(out, tuple):
            out = out[0]
        if out is not None and type(out) is not ndarray:
            raise TypeError("Output arguments must be cupy.ndarray")
        vals = [_operand(x) for x in args[:self.nin]]
        if isinstance(self._f, np.ufunc):
            res = self._f(*vals, out=None if out is None else out._a, **kwargs)
        else:
            res = self._f(*vals, **kwargs)
            if out is not None:
                out._a[...] = res
        _op(self.__name__)
        if out is not None:
            _ftz(out._a)
            return out
        if isinstance(res, tuple):
            return tuple(_new(r) for r in res)
        return _new(res)

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        method = {"add": "sum", "multiply": "prod"}.get(self.__name__)
        if method is None:
            raise NotImplementedError(f"`{self.name}.reduce` is not supported yet")
        return getattr(array, method)(axis, dtype, out, keepdims)

    def accumulate(self, array, axis=0, dtype=None, out=None):
        method = {"add": "cumsum", "multiply": "cumprod"}.get(self.__name__)
        if method is None:
            raise NotImplementedError(f"`{self.name}.accumulate` is not supported yet")
        return getattr(array, method)(axis, dtype, out)

    def reduceat(self, array, indices, axis=0, dtype=None, out=None):
        if self.__name__ != "add":
            raise NotImplementedError(f"`{self.name}.reduceat` is not supported yet")
        res = np.add.reduceat(_unwrap(array), _unwrap(indices), axis=axis, dtype=dtype)
        return _finish("add.reduceat", res, [], out, ops=4)

    def outer(self, A, B, **kwargs):
        A, B = _as_device(A), _as_device(B)
        return self(A.reshape(A.shape + (1,) * B.ndim), B.reshape((1,) * A.ndim + B.shape), **kwargs)

    def at(self, a, indices, b=None):
        op = _UFUNC_SCATTER.get(self.__name__)
        if op is None:
            raise NotImplementedError(f"`{self.name}.at` is not supported yet")
        _scatter(op, a, indices, b)


def _as_device(x):
    if type(x) is ndarray:
        return x
    if isinstance(x, _SCALARS):
        return _CUPY_FUNCTIONS["array"](x)
    raise _unsupported(x)


# Ufuncs CuPy has that NumPy implements as plain functions.
_FUNCTION_UFUNCS = {"fix": np.fix, "i0": np.i0, "sinc": np.sinc}


def _make_operator(name, reflected=False, inplace=False):
    def op(self, other):
        if getattr(other, "__array_ufunc__", 0) is None:
            return NotImplemented
        if name in _COMPARISONS:
            if isinstance(other, np.ndarray) and other.ndim == 0:
                other = other.item()
            elif not isinstance(other, (ndarray, np.ndarray, *_SCALARS)):
                return NotImplemented
        uf = _UFUNCS[name]
        if inplace:
            return uf(self, other, out=self)
        return uf(other, self) if reflected else uf(self, other)
    return op


for _name, _uf in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("truediv", "true_divide"),
                   ("floordiv", "floor_divide"), ("mod", "remainder"), ("pow", "power"),
                   ("lshift", "left_shift"), ("rshift", "right_shift"), ("and", "bitwise_and"),
                   ("or", "bitwise_or"), ("xor", "bitwise_xor")):
    setattr(ndarray, f"__{_name}__", _make_operator(_uf))
    setattr(ndarray, f"__r{_name}__", _make_operator(_uf, reflected=True))
    setattr(ndarray, f"__i{_name}__", _make_operator(_uf, inplace=True))
for _name, _uf in (("lt", "less"), ("le", "less_equal"), ("eq", "equal"), ("ne", "not_equal"),
                   ("gt", "greater"), ("ge", "greater_equal")):
    setattr(ndarray, f"__{_name}__", _make_operator(_uf))
ndarray.__divmod__ = lambda self, other: (self // other, self % other)
ndarray.__neg__ = lambda self: _UFUNCS["negative"](self)
ndarray.__pos__ = lambda self: self
ndarray.__abs__ = lambda self: _UFUNCS["absolute"](self)
ndarray.__invert__ = lambda self: _UFUNCS["invert"](self)
ndarray.__matmul__ = lambda self, other: _matmul_like("matmul", np.matmul, self, other)
ndarray.__rmatmul__ = lambda self, other: _matmul_like("matmul", np.matmul, other, self)
ndarray.__module__ = "cupy"
ndarray.__qualname__ = "ndarray"


# == ndarray methods run on the NumPy data ===========================================================
def _np_method(name, ops=1, inplace=False, sync=False, ftz=True):
    def impl(self, *args, **kwargs):
        if sync:
            _sync(f"ndarray.{name}", self.nbytes)
        a2 = [_unwrap(x) for x in args]
        k2 = {k: _unwrap(v) for k, v in kwargs.items()}
        res = getattr(self._a, name)(*a2, **k2)
        if inplace:
            _op(name, ops)
            _ftz(self._a)
            return res
        return _finish(name, res, [self], kwargs.get("out"), ops, ftz)
    return impl


def _arg_method(name):
    def impl(self, axis=None, out=None, dtype=None, keepdims=False):
        res = getattr(self._a, name)(axis=axis, keepdims=keepdims)
        if dtype is not None:
            res = np.asarray(res).astype(dtype)
        if out is not None:
            _unwrap(out)[...] = res
        return _finish(name, res, [self], out)
    return impl


def _take(a, indices, axis=None, out=None):
    """take: host indices are copied to the device first, as CuPy does."""
    if type(a) is not ndarray:
        raise _unsupported(a)
    if type(indices) is not ndarray and not np.isscalar(indices):
        indices = np.asarray(indices)
        _h2d("take (indices)", indices.nbytes)
    else:
        indices = _unwrap(indices)
    res = np.take(a._a, indices, axis=axis, out=None if out is None else _unwrap(out))
    return _finish("take", res, [], out)


_METHOD_SIGS = {n: _parse_signature(k) for n, k in API["cupy.ndarray"].items() if k.startswith("method")}
_METHODS = {n: _np_method(n) for n in (
    "all", "any", "clip", "conj", "conjugate", "cumprod", "cumsum", "diagonal", "flatten", "max",
    "mean", "min", "prod", "ptp", "ravel", "repeat", "reshape", "round", "squeeze", "sum", "swapaxes",
    "trace", "transpose", "argsort", "argpartition", "searchsorted", "choose")}
_METHODS.update(var=_np_method("var", ops=2), std=_np_method("std", ops=3),
                sort=_np_method("sort", inplace=True), partition=_np_method("partition", inplace=True),
                put=_np_method("put", inplace=True), argmax=_arg_method("argmax"),
                argmin=_arg_method("argmin"), take=_take,
                nonzero=_np_method("nonzero", ops=2, sync=True),
                compress=_np_method("compress", 3, sync=True),
                tobytes=_np_method("tobytes", 0, sync=True), tofile=_np_method("tofile", 0, sync=True),
                dumps=lambda self: __import__("pickle").dumps(self),
                dump=lambda self, file: __import__("pickle").dump(self, file))


# == functions =======================================================================================
def _kernel_function(qualname, fn, ops=1, ftz=True):
    """A CuPy function computed by NumPy's ``fn``: views of inputs are free, new data costs ``ops``."""
    def f(*args, **kwargs):
        srcs = _devices(args, kwargs)
        res = fn(*[_unwrap(a) for a in args], **{k: _unwrap(v) for k, v in kwargs.items()})
        return _finish(qualname.rpartition(".")[2], res, srcs, kwargs.get("out"), ops, ftz)
    return f


def _host_function(fn):
    """Functions of shapes and dtypes only: device arrays may be passed, nothing runs on the device."""
    def f(*args, **kwargs):
        def meta(x):
            if type(x) is ndarray:
                return x._a
            if type(x) in (list, tuple):
                return type(x)(meta(e) for e in x)
            return x
        return fn(*[meta(a) for a in args], **{k: meta(v) for k, v in kwargs.items()})
    return f


def _sync_function(name, fn, ops=2):
    """Functions whose output size depends on the data: CuPy reads a count back (a sync)."""
    kernel = _kernel_function(name, fn, ops)

    def f(*args, **kwargs):
        _sync(name, 8)
        return kernel(*args, **kwargs)
    return f


def _not_modelled(qualname):
    def f(*args, **kwargs):
        raise NotImplementedError(f"cupy stand-in: {qualname} is part of CuPy's API but not modelled by "
                                  "the stand-in (tests/cupy_standin); tinygan does not use it")
    f.__name__ = qualname.rpartition(".")[2]
    return f


def _host_copy(name, a, dtype=None, order="K", ndmin=0):
    """``a`` (host data) copied to the device."""
    arr = np.array(a, dtype=dtype, order=order if order is not None else "K", ndmin=ndmin)
    if arr.dtype == object:
        raise ValueError(f"Unsupported dtype {arr.dtype}")
    _h2d(name, arr.nbytes)
    return ndarray._wrap(arr)


def _contains_device(a):
    return type(a) is ndarray or (type(a) in (list, tuple) and any(_contains_device(e) for e in a))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if type(obj) is ndarray:
        res = obj._a.astype(dtype if dtype is not None else obj.dtype, order=order or "K", copy=copy)
        if ndmin > res.ndim:
            res = res.reshape((1,) * (ndmin - res.ndim) + res.shape)
        return _finish("array", res, [obj])
    if _contains_device(obj):                              # a list of device arrays: stacked on the device
        return _finish("array", np.array(_unwrap(obj), dtype=dtype, ndmin=ndmin), [], ops=len(obj))
    return _host_copy("array", obj, dtype, order, ndmin)


def asarray(a, dtype=None, order=None, *, blocking=False):
    if type(a) is ndarray:
        if (dtype is None or np.dtype(dtype) == a.dtype) and order in (None, "K", "A"):
            return a
        return _finish("asarray", np.asarray(a._a, dtype=dtype, order=order), [a])
    return array(a, dtype, False, order, blocking=blocking)


def ascontiguousarray(a, dtype=None):
    if type(a) is not ndarray:
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy._core.core._ndarray_base, "
                        f"got {type(a).__name__})")
    if a._a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return _finish("ascontiguousarray", np.ascontiguousarray(a._a, dtype=dtype), [])


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if type(a) is ndarray:
        return a.get(stream=stream, order=order, out=out)
    if out is not None:
        out[...] = a
        return out
    return np.asarray(a, order=order)


def empty(shape, dtype=float, order="C"):
    return ndarray._wrap(np.empty(shape, dtype=dtype, order=order))      # allocation only: no op


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    if type(a) is not ndarray:
        raise _unsupported(a)
    return ndarray._wrap(np.empty_like(a._a, dtype=dtype, order=order, shape=shape))


def _blas_copies(*arrays):
    """Operands cuBLAS cannot read in place (neither C- nor F-contiguous in their matrix dims):
    CuPy copies each first."""
    n = 0
    for a in arrays:
        if a.ndim <= 2:
            n += not (a.flags.c_contiguous or a.flags.f_contiguous)
        else:
            n += not a.flags.c_contiguous
    return n


def _matmul_like(name, fn, a, b, out=None, **kwargs):
    if type(a) is not ndarray or type(b) is not ndarray:
        bad = b if type(a) is ndarray else a
        if isinstance(bad, _SCALARS):
            raise ValueError(f"{name}: Input operand does not have enough dimensions")
        raise _unsupported(bad)
    if out is not None and type(out) is not ndarray:
        raise TypeError("Output arguments must be cupy.ndarray")
    res = fn(a._a, b._a, out=None if out is None else out._a, **kwargs)
    ops = 1 + _blas_copies(a._a, b._a)
    if out is not None:
        _op(name, ops)
        return out
    _op(name, ops)
    return _new(res, ftz=False)


def matmul(x1, x2, /, out=None, **kwargs):
    return _matmul_like("matmul", np.matmul, x1, x2, out, **kwargs)


def dot(a, b, out=None):
    return _matmul_like("dot", np.dot, a, b, out)


def tensordot(a, b, axes=2):
    if type(a) is not ndarray or type(b) is not ndarray:
        raise _unsupported(b if type(a) is ndarray else a)
    res = np.tensordot(a._a, b._a, axes)
    _op("tensordot", 1 + _blas_copies(a._a, b._a))
    return _new(res, ftz=False)


_LABELS = string.ascii_uppercase + string.ascii_lowercase


def _copies_on_reshape(proxy, axes, shape) -> int:
    """1 if transposing ``proxy`` by ``axes`` and reshaping to ``shape`` needs a copy, else 0
    (decided from shape and strides only: ``proxy`` holds no data)."""
    t = proxy.transpose(axes)
    try:
        t.reshape(shape, copy=False)
        return 0
    except ValueError:
        return 1
    except TypeError:                                       # NumPy < 2.1: no copy=
        return 0 if t.flags.c_contiguous else 1


def _c_strides(shape, itemsize):
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return strides[::-1]


def _proxy(shape, strides, dtype):
    return np.lib.stride_tricks.as_strided(np.empty(1, dtype), shape, strides)


def _einsum_ops(subscripts, arrays) -> int:
    """Kernels CuPy's einsum (without cuTENSOR) launches: a sum per operand-only label, then for two
    operands a transposed copy of each operand that cannot be viewed as a batched matrix, and one
    batched matmul (cupy/linalg/_einsum.py, reduced_binary_einsum)."""
    if not isinstance(subscripts, str) or "." in subscripts or not 1 <= len(arrays) <= 2:
        return len(arrays) + 1
    ins, arrow, out = subscripts.replace(" ", "").partition("->")
    subs = ins.split(",")
    if not arrow:
        flat = "".join(subs)
        out = "".join(sorted({c for c in flat if flat.count(c) == 1}, key=_LABELS.index))
    if any(len(set(s)) != len(s) for s in subs) or len(subs) != len(arrays):
        return len(arrays) + 1
    ops, ops_arrays = 0, []
    for sub, a in zip(subs, arrays):                        # size-1 axes are squeezed (views)
        keep = [i for i, n in enumerate(a.shape) if n != 1] if len(arrays) == 2 else list(range(a.ndim))
        ops_arrays.append((("".join(sub[i] for i in keep)),
                           _proxy([a.shape[i] for i in keep], [a.strides[i] for i in keep], a.dtype)))
    for i, (sub, p) in enumerate(ops_arrays):               # labels only this operand has: summed first
        others = set(out).union(*(set(s) for j, (s, _) in enumerate(ops_arrays) if j != i))
        kept = [c for c in sub if c in others]
        if len(kept) < len(sub):
            ops += 1
            shape = [p.shape[sub.index(c)] for c in kept]
            ops_arrays[i] = ("".join(kept), _proxy(shape, _c_strides(shape, p.itemsize), p.dtype))
    if len(ops_arrays) == 1:
        return ops
    (s0, p0), (s1, p1) = ops_arrays
    shared = set(s0) & set(s1)
    batch, contract = shared & set(out), shared - set(out)
    if not contract:
        return ops + 1                                      # an elementwise product of views

    def axes(sub, groups):
        return [[sub.index(c) for c in sorted((c for c in sub if c in g), key=_LABELS.index)] for g in groups]

    t0 = set(s0) - shared
    t1 = set(s1) - shared
    b0, r0, c0 = axes(s0, (batch, t0, contract))
    b1, c1, r1 = axes(s1, (batch, contract, t1))
    size = lambda p, ax: int(np.prod([p.shape[i] for i in ax]))   # noqa: E731
    ops += _copies_on_reshape(p0, b0 + r0 + c0, (size(p0, b0), size(p0, r0), size(p0, c0)))
    ops += _copies_on_reshape(p1, b1 + c1 + r1, (size(p1, b1), size(p1, c1), size(p1, r1)))
    return ops + 1


def einsum(*operands, **kwargs):
    bad = set(kwargs) - {"dtype", "optimize"}
    if bad:
        raise TypeError(f"Did not understand the following kwargs: {sorted(bad)}")
    arrays = [x for x in operands[1:]] if isinstance(operands[0], str) else list(operands[::2])
    for x in arrays:
        if type(x) is not ndarray:
            raise _unsupported(x)
    np_ops = [_unwrap(x) if type(x) is ndarray else x for x in operands]
    res = np.einsum(*np_ops, **kwargs)
    srcs = [x for x in arrays]
    ops = _einsum_ops(operands[0], [x._a for x in arrays])
    return _finish("einsum", res, srcs, ops=max(ops, 1), ftz=False)


def pad(array, pad_width, mode="constant", **kwargs):
    if type(array) is not ndarray:
        raise _unsupported(array)
    res = np.pad(array._a, _unwrap(pad_width), mode=mode, **{k: _unwrap(v) for k, v in kwargs.items()})
    widths = np.broadcast_to(np.asarray(pad_width), (array.ndim, 2))
    return _finish("pad", res, [], ops=1 + 2 * int(np.count_nonzero(widths.sum(axis=1))))


def _concatenate_ops(arrays, dtype) -> int:
    """One copy per array, or one kernel plus a host-to-device copy of the pointer table for many
    small arrays of one dtype (cupy/_core/_routines_manipulation.pyx, _concatenate)."""
    n = len(arrays)
    if n > 8 and all(a.dtype == dtype for a in arrays) and sum(a.nbytes for a in arrays) < (2 << 20) * n:
        _h2d("concatenate (pointer table)", 8 * n)
        return 1
    return n


def _joining(name, fn):
    def f(tup, *args, **kwargs):
        arrays = list(tup)
        for x in arrays:
            if type(x) is not ndarray:
                raise _unsupported(x)
        res = fn([x._a for x in arrays], *args, **{k: _unwrap(v) for k, v in kwargs.items()})
        out = kwargs.get("out")
        return _finish(name, res, [], out, ops=_concatenate_ops([x._a for x in arrays], res.dtype))
    return f


def get_array_module(*args):
    for a in args:
        if type(a) is ndarray:
            return _CUPY_MODULE
    return np


def fuse(*args, **kwargs):
    """cupy.fuse: the decorated function runs as ONE kernel on device arrays (here: the same
    Python function on the stand-in's arrays, its operations not counted, then one op)."""
    def decorate(func):
        name = kwargs.get("kernel_name") or getattr(func, "__name__", "fused")

        @functools.wraps(func)
        def fused(*call_args):
            if not any(type(a) is ndarray for a in call_args):
                if any(isinstance(a, np.ndarray) for a in call_args):
                    return func(*call_args)                 # all-NumPy: CuPy runs the function as it is
            for a in call_args:
                if not isinstance(a, (ndarray, *_SCALARS)):
                    raise _unsupported(a)
            was = getattr(_state, "fusing", False)
            _state.fusing = True
            try:
                result = func(*call_args)
            finally:
                _state.fusing = was
            _op(f"fuse:{name}")
            return result
        return fused
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


class _MemoryPool:
    """Stand-in for cupy.cuda.MemoryPool: the stand-in keeps no pool, so every figure is 0."""

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def n_free_blocks(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0


_POOL, _PINNED_POOL = _MemoryPool(), _MemoryPool()


class _NotModelledClass:
    _qualname = "?"

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f"cupy stand-in: {self._qualname} is part of CuPy's API but not "
                                  "modelled: the stand-in cannot compile or run CUDA source; give such "
                                  "a kernel a plain array-code twin that the stand-in runs")


def _not_modelled_class(qualname):
    return type(qualname.rpartition(".")[2], (_NotModelledClass,), {"_qualname": qualname})


# Names with their own implementation; the rest of a module's functions are NumPy's, wrapped.
_CUPY_FUNCTIONS = {
    "array": array, "asarray": asarray, "asanyarray": asarray, "ascontiguousarray": ascontiguousarray,
    "asnumpy": asnumpy, "empty": empty, "empty_like": empty_like, "matmul": matmul, "dot": dot,
    "tensordot": tensordot, "einsum": einsum, "pad": pad, "get_array_module": get_array_module,
    "fuse": fuse, "take": _take, "concatenate": _joining("concatenate", np.concatenate),
    "stack": _joining("stack", np.stack), "hstack": _joining("hstack", np.hstack),
    "vstack": _joining("vstack", np.vstack), "dstack": _joining("dstack", np.dstack),
    "column_stack": _joining("column_stack", np.column_stack),
    "var": _kernel_function("cupy.var", np.var, ops=2), "std": _kernel_function("cupy.std", np.std, ops=3),
    "get_default_memory_pool": lambda: _POOL, "get_default_pinned_memory_pool": lambda: _PINNED_POOL,
    "is_available": lambda: True, "memoize": lambda for_each_device=False: (lambda f: f),
    "clear_memo": lambda: None,
    "product": _kernel_function("cupy.product", np.prod),
    "cumproduct": _kernel_function("cupy.cumproduct", np.cumprod),
    "alltrue": _kernel_function("cupy.alltrue", np.all),
    "sometrue": _kernel_function("cupy.sometrue", np.any),
    "round_": _kernel_function("cupy.round_", np.round), "in1d": _kernel_function("cupy.in1d", np.isin),
    "trapz": _kernel_function("cupy.trapz", np.trapezoid, ops=3),
    "msort": _kernel_function("cupy.msort", lambda a: np.sort(a, axis=0)),
}
_SYNC_FUNCTIONS = {"nonzero", "argwhere", "flatnonzero", "unique", "compress", "extract", "trim_zeros",
                   "intersect1d", "setdiff1d", "union1d", "setxor1d", "array_repr", "array_str",
                   "array2string", "save", "savez", "savez_compressed", "savetxt"}
_HOST_FUNCTIONS = {"result_type", "can_cast", "promote_types", "min_scalar_type", "common_type",
                   "mintypecode", "shape", "ndim", "size", "isscalar", "issubdtype", "typename",
                   "base_repr", "binary_repr", "broadcast_shapes", "iscomplexobj", "isrealobj",
                   "isfortran", "may_share_memory", "shares_memory", "set_printoptions", "get_printoptions",
                   "printoptions", "show_config"}
_FROM_HOST = {"frombuffer", "fromfile", "fromfunction", "fromiter", "fromstring", "loadtxt", "genfromtxt",
              "load"}
_VALUES = {"Inf": np.inf, "Infinity": np.inf, "NAN": np.nan, "NINF": -np.inf, "NZERO": -0.0, "NaN": np.nan,
           "PINF": np.inf, "PZERO": 0.0, "e": np.e, "euler_gamma": np.euler_gamma, "inf": np.inf,
           "infty": np.inf, "nan": np.nan, "newaxis": None, "pi": np.pi, "index_exp": np.index_exp,
           "s_": np.s_, "disable_experimental_feature_warning": False}
_OLD_TYPES = {"float_": np.float64, "complex_": np.complex128, "cfloat": np.complex128,
              "singlecomplex": np.complex64}
_FUSABLE: set = set()       # filled in build_cupy: every ufunc, plus the reductions below
_FUSABLE_EXTRA = {"sum", "prod", "max", "min", "amax", "amin", "all", "any", "where", "clip", "astype",
                  "copy", "setitem (copy)"}


def _numpy_class(name):
    for where in (np, np.exceptions, np.linalg):
        if hasattr(where, name):
            return getattr(where, name)
    return None


def _resolve(modname, name, kind, numpy_module):
    """The stand-in object for CuPy's ``modname.name`` of the given kind."""
    qual = f"{modname}.{name}"
    sig = _parse_signature(kind) if "(" in kind else None
    custom = _CUSTOM.get(modname, {}).get(name)
    if custom is not None:
        return _checked(qual, sig, custom) if callable(custom) and not isinstance(custom, type) else custom
    npobj = getattr(numpy_module, name, None)
    if kind == "type":
        return _OLD_TYPES.get(name, npobj)
    if kind == "value":
        return _VALUES.get(name, npobj)
    if kind == "class":
        cls = _numpy_class(name)
        return cls if cls is not None else _not_modelled_class(qual)
    if kind.startswith("ufunc"):
        fn = npobj if isinstance(npobj, np.ufunc) else _FUNCTION_UFUNCS.get(name)
        return ufunc(name, fn, sig) if fn is not None else _not_modelled(qual)
    if kind == "module":
        return None                                         # made by the caller
    if npobj is None or not callable(npobj):
        return _not_modelled(qual)
    if name in _HOST_FUNCTIONS:
        impl = _host_function(npobj)
    elif name in _SYNC_FUNCTIONS:
        impl = _sync_function(name, npobj)
    elif name in _FROM_HOST:
        impl = lambda *a, _f=npobj, **k: asarray(_f(*a, **k))   # noqa: E731
    else:
        impl = _kernel_function(qual, npobj)
    return _checked(qual, sig, impl)


# == random ==========================================================================================
class _RandomWrapper:
    """Forwards CuPy's random methods (as listed) to a NumPy generator; each draw is one kernel."""

    _api: dict = {}
    _qual = ""

    def __getattr__(self, name):
        kind = self._api.get(name)
        if kind is None or name.startswith("_"):
            raise AttributeError(f"'{self._qual}' object has no attribute '{name}'")
        fn = getattr(self._g, name, None)
        if fn is None:
            raise NotImplementedError(f"cupy stand-in: {self._qual}.{name} is not modelled")
        sig = _parse_signature(kind)

        def method(*args, **kwargs):
            _check_call(f"{self._qual}.{name}", sig, len(args), kwargs)
            out = kwargs.get("out")
            k2 = {k: _unwrap(v) for k, v in kwargs.items()}
            a2 = [_unwrap(a) for a in args]
            try:
                res = fn(*a2, **k2)
            except TypeError:
                if "dtype" not in k2:
                    raise
                dtype = k2.pop("dtype")                 # NumPy's method has no dtype= here
                res = np.asarray(fn(*a2, **k2)).astype(dtype)
            if out is not None:
                return _finish(name, None, [], out)
            return _finish(name, res, [])
        method.__name__ = name
        return method


class Generator(_RandomWrapper):
    """cupy.random.Generator (NumPy's PCG64 stream here: seeded draws repeat, but are not CuPy's values)."""

    _api = API["cupy.random.Generator"]
    _qual = "cupy.random.Generator"

    def __init__(self, bit_generator):
        self._g = np.random.Generator(np.random.PCG64(getattr(bit_generator, "_seed", bit_generator)))
        _op("Generator (state init)")


class _BitGenerator:
    def __init__(self, seed=None, *args, **kwargs):
        self._seed = seed


class RandomState(_RandomWrapper):
    _api = API["cupy.random"]
    _qual = "cupy.random.RandomState"

    def __init__(self, seed=None, method=None):
        self._g = np.random.RandomState(seed)

    def seed(self, seed=None):
        self._g.seed(seed)


_RANDOM_STATE = RandomState()


def _default_rng(seed=None):
    return Generator(_BitGenerator(seed))


def _random_function(name):
    def f(*args, **kwargs):
        return getattr(_RANDOM_STATE, name)(*args, **kwargs)
    return f


# == cuda ============================================================================================
class CUDARuntimeError(RuntimeError):
    pass


class CompileException(Exception):
    pass


class OutOfMemoryError(MemoryError):
    pass


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def use(self):
        return self

    def synchronize(self):
        _sync("Device.synchronize")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


_DEVICE = Device(0)


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self._t = None

    def record(self, stream=None):
        self._t = time.perf_counter()

    def synchronize(self):
        _sync("Event.synchronize")

    done = property(lambda self: True)


class Stream:
    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self._null = null

    null = property(lambda self: _NULL_STREAM)
    ptds = property(lambda self: False)
    done = property(lambda self: True)
    ptr = property(lambda self: 0)

    def synchronize(self):
        _sync("Stream.synchronize")

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def use(self):
        return self

    def wait_event(self, event):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL_STREAM = Stream(null=True)


def _get_elapsed_time(start_event, end_event):
    return (end_event._t - start_event._t) * 1e3


def _device_synchronize():
    _sync("runtime.deviceSynchronize")


_CUSTOM = {
    "cupy": _CUPY_FUNCTIONS,
    "cupy.random": {"default_rng": _default_rng, "Generator": Generator, "RandomState": RandomState,
                    "XORWOW": _BitGenerator, "BitGenerator": _BitGenerator,
                    "get_random_state": lambda: _RANDOM_STATE,
                    "seed": lambda seed=None: _RANDOM_STATE.seed(seed)},
    "cupy.linalg": {"norm": _kernel_function("cupy.linalg.norm", np.linalg.norm, ops=2)},
    "cupy.lib.stride_tricks": {"np": np},
    "cupy.cuda": {"Device": Device, "Stream": Stream, "Event": Event,
                  "get_current_stream": lambda device_id=-1: _NULL_STREAM,
                  "get_elapsed_time": _get_elapsed_time, "get_device_id": lambda: 0,
                  "is_available": lambda: True},
    "cupy.cuda.runtime": {"getDeviceCount": lambda: 1, "CUDARuntimeError": CUDARuntimeError,
                          "deviceSynchronize": _device_synchronize},
    "cupy.cuda.compiler": {"CompileException": CompileException},
    "cupy.cuda.memory": {"OutOfMemoryError": OutOfMemoryError},
}


def _as_strided(x, shape=None, strides=None):
    if type(x) is not ndarray:
        raise _unsupported(x)
    return _view(np.lib.stride_tricks.as_strided(x._a, shape, strides), x)


_CUSTOM["cupy.lib.stride_tricks"]["as_strided"] = _as_strided
for _n in API["cupy.random"]:
    if _n not in _CUSTOM["cupy.random"] and API["cupy.random"][_n].startswith("function"):
        _CUSTOM["cupy.random"][_n] = _random_function(_n)


# == building the modules ============================================================================
_CUPY_MODULE = None


class _PlaceholderModule(types.ModuleType):
    """A CuPy submodule the stand-in lists but does not model (cupy.fft, cupyx.scipy, ...)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotImplementedError(f"cupy stand-in: {self.__name__}.{name} is not modelled")


def _populate(ns: dict, modname: str, numpy_module):
    for name, kind in API[modname].items():
        if kind == "module":
            sub = f"{modname}.{name}"
            if sub in API:
                ns[name] = _submodule(sub)
            elif name in _CUSTOM.get(modname, {}):
                ns[name] = _CUSTOM[modname][name]
            else:
                ns[name] = sys.modules.setdefault(sub, _PlaceholderModule(sub))
            continue
        ns[name] = _resolve(modname, name, kind, numpy_module)


_NUMPY_TWINS = {"cupy": np, "cupy.random": np.random, "cupy.linalg": np.linalg,
                "cupy.lib.stride_tricks": np.lib.stride_tricks, "cupyx": np}


def _submodule(modname):
    mod = sys.modules.get(modname)
    if mod is None:
        mod = types.ModuleType(modname, f"CuPy stand-in of {modname}")
        sys.modules[modname] = mod
        _populate(mod.__dict__, modname, _NUMPY_TWINS.get(modname, types.ModuleType("empty")))
    return mod


def _find_counterpart(func):
    """The stand-in function for NumPy function ``func`` (``numpy.linalg.norm`` -> cupy.linalg.norm)."""
    parts = (getattr(func, "__module__", None) or "").split(".")
    if parts[0] != "numpy":
        return None
    table = API.get(".".join(["cupy", *parts[1:]]))
    if table is None or func.__name__ not in table:
        return None
    return getattr(functools.reduce(getattr, parts[1:], _CUPY_MODULE), func.__name__, None)


def build_cupy(ns: dict):
    """Fill the ``cupy`` package namespace ``ns`` (called from cupy/__init__.py)."""
    global _CUPY_MODULE
    _CUPY_MODULE = sys.modules[ns["__name__"]]
    # cupy.lib is not listed itself, only its submodule stride_tricks
    lib = types.ModuleType("cupy.lib")
    sys.modules["cupy.lib"] = lib
    lib.stride_tricks = _submodule("cupy.lib.stride_tricks")
    _CUSTOM["cupy"].update(lib=lib, exceptions=np.exceptions)
    _populate(ns, "cupy", np)
    ns["ndarray"], ns["ufunc"] = ndarray, ufunc
    ns["__version__"] = "+".join([CUPY_VERSIONS[-1], "standin"])
    ns["__cupy_standin__"] = True
    _FUSABLE.update(n for n, v in ns.items() if isinstance(v, ufunc))
    _FUSABLE.update(_FUSABLE_EXTRA)
    _UFUNCS.update({n: v for n, v in ns.items() if isinstance(v, ufunc)})
    _UFUNCS["true_divide"] = _UFUNCS.get("true_divide", _UFUNCS["divide"])


_UFUNCS: dict = {}


@contextmanager
def _allow_synchronize(allow):
    was = getattr(_state, "sync_allowed", True)
    _state.sync_allowed = bool(allow)
    try:
        yield
    finally:
        _state.sync_allowed = was


def _pinned(fn):
    return lambda *args, **kwargs: fn(*args, **kwargs)        # pinned host memory: NumPy arrays


_CUSTOM["cupyx"] = {
    "scatter_add": lambda a, slices, value: _scatter("add", a, slices, value),
    "scatter_max": lambda a, slices, value: _scatter("max", a, slices, value),
    "scatter_min": lambda a, slices, value: _scatter("min", a, slices, value),
    "allow_synchronize": _allow_synchronize, "DeviceSynchronized": DeviceSynchronized,
    "empty_pinned": _pinned(np.empty), "zeros_pinned": _pinned(np.zeros),
    "empty_like_pinned": _pinned(np.empty_like), "zeros_like_pinned": _pinned(np.zeros_like),
    "errstate": lambda **kw: np.errstate(**{k: v for k, v in kw.items() if k != "linalg"}),
    "geterr": np.geterr, "seterr": lambda **kw: np.seterr(**{k: v for k, v in kw.items() if k != "linalg"}),
}


def build_cupyx(ns: dict):
    """Fill the ``cupyx`` package namespace (called from cupyx/__init__.py)."""
    _populate(ns, "cupyx", np)
    ns["rsqrt"] = ufunc("rsqrt", lambda x: 1 / np.sqrt(x), None)
