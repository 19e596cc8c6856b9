"""Write the list of CuPy's public API that the CuPy stand-in (tests/cupy_standin) exposes.

The stand-in allows exactly the names and keywords that real CuPy has, so this list is taken from
installed ``cupy-cuda12x`` wheels (``import cupy`` works without a GPU).  tinygan supports CuPy 13
and 14, so the checked-in list is the *intersection* of both: a name only one of them has is left
out, and where their signatures differ the one that accepts fewer keywords is kept.

    # once per CuPy version, each in its own environment with that wheel installed:
    python tests/cupy_standin/make_api_list.py dump /tmp/cupy13.json
    python tests/cupy_standin/make_api_list.py dump /tmp/cupy14.json
    # then, anywhere:
    python tests/cupy_standin/make_api_list.py merge /tmp/cupy13.json /tmp/cupy14.json \
        -o tests/cupy_standin/cupy_api.json

Each entry is ``name: kind``, kind one of ``module``, ``class``, ``type`` (a NumPy scalar type
CuPy re-exports), ``value``, ``property``, or a call signature without defaults:
``function(a, axis, dtype, out, keepdims)``, ``ufunc(x1, x2, /, out, *, casting, dtype)``,
``method(...)`` (``self`` left out); ``function(?)`` where CuPy's signature cannot be read.
Signatures come from ``inspect.signature`` or, for Cython functions, the signature line CuPy
embeds at the top of each docstring.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys

# Modules listed in full; cupy.cuda and its submodules only for what tinygan and its tests use
# (the backend probe, Backend.synchronize and the GPU benchmark's timing).
FULL_MODULES = ("cupy", "cupy.random", "cupy.linalg", "cupy.lib.stride_tricks", "cupyx")
CUDA_NAMES = {
    "cupy.cuda": ("runtime", "compiler", "memory", "Device", "Stream", "Event", "get_current_stream",
                  "get_elapsed_time", "get_device_id", "is_available"),
    "cupy.cuda.runtime": ("getDeviceCount", "CUDARuntimeError", "deviceSynchronize"),
    "cupy.cuda.compiler": ("CompileException",),
    "cupy.cuda.memory": ("OutOfMemoryError",),
}
CLASSES = {"cupy.ndarray": "cupy.ndarray", "cupy.random.Generator": "cupy.random.Generator",
           "cupy.ufunc": "cupy.ufunc", "cupy.cuda.Stream": "cupy.cuda.Stream",
           "cupy.cuda.Event": "cupy.cuda.Event"}
# Special methods that decide what CuPy accepts (conversion to host, operators, NumPy dispatch).
DUNDERS = ("__array__", "__array_ufunc__", "__array_function__", "__array_priority__", "__bool__",
           "__float__", "__int__", "__complex__", "__index__", "__len__", "__iter__", "__getitem__",
           "__setitem__", "__matmul__", "__rmatmul__", "__imatmul__", "__cuda_array_interface__",
           "__dlpack__", "__dlpack_device__", "__copy__", "__deepcopy__", "__reduce__", "__format__",
           "__contains__", "__hash__")


# -- reading signatures ----------------------------------------------------------------------------
def _split_params(text: str) -> list[str]:
    """'a, axis=None, dtype=(1, 2)' -> ['a', 'axis=None', 'dtype=(1, 2)'] (commas at depth 0 only)."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def _param_token(p: str) -> str:
    """'axis=None' -> 'axis', 'x: int' -> 'x', 'int axis' (Cython) -> 'axis', '*args' -> '*args',
    '/' and '*' unchanged."""
    return re.split(r"[=:]", p, maxsplit=1)[0].replace("\\", "").split()[-1]


def _from_docstring(obj) -> list[str] | None:
    first = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    if not first:
        return None
    m = re.match(r"^[\w.]+\((.*)\)(\s*->.*)?$", first[0].strip())
    return [_param_token(p) for p in _split_params(m.group(1))] if m else None


def _from_inspect(obj) -> list[str] | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    out, kinds = [], inspect.Parameter
    seen_kw_only = False
    params = list(sig.parameters.values())
    for i, p in enumerate(params):
        if p.kind == kinds.VAR_POSITIONAL:
            out.append("*" + p.name)
            seen_kw_only = True
        elif p.kind == kinds.VAR_KEYWORD:
            out.append("**" + p.name)
        else:
            if p.kind == kinds.KEYWORD_ONLY and not seen_kw_only:
                out.append("*")
                seen_kw_only = True
            out.append(p.name)
            nxt = params[i + 1].kind if i + 1 < len(params) else None
            if p.kind == kinds.POSITIONAL_ONLY and nxt != kinds.POSITIONAL_ONLY:
                out.append("/")
    return out


def signature_tokens(obj, drop_self=False) -> list[str] | None:
    tokens = _from_inspect(obj)
    if tokens is None or tokens in (["*args", "**kwargs"], ["self", "*args", "**kwargs"]):
        tokens = _from_docstring(obj) or tokens       # Cython: prefer the embedded signature
    if tokens and drop_self and tokens[0] == "self":
        tokens = tokens[1:]
        if tokens and tokens[0] == "/":
            tokens = tokens[1:]
    return tokens


def describe(obj, name: str, in_class=False) -> str:
    import numpy
    if inspect.ismodule(obj):
        return "module"
    if isinstance(obj, type):
        return "type" if issubclass(obj, numpy.generic) or obj in (bool, int, float, complex) else "class"
    if isinstance(obj, (property,)) or type(obj).__name__ in ("getset_descriptor", "member_descriptor"):
        return "property"
    kind = "ufunc" if type(obj).__name__ == "ufunc" else ("method" if in_class else "function")
    if callable(obj):
        tokens = signature_tokens(obj, drop_self=in_class)
        return f"{kind}({', '.join(tokens) if tokens is not None else '?'})"
    return "value"


# -- dumping one installed CuPy ----------------------------------------------------------------------
def dump() -> dict:
    import warnings
    warnings.simplefilter("ignore")               # e.g. "nccl library could not be loaded"
    import cupy
    api: dict = {}
    for modname in FULL_MODULES:
        mod = importlib.import_module(modname)
        api[modname] = {n: describe(getattr(mod, n), n) for n in dir(mod) if not n.startswith("_")}
    for modname, names in CUDA_NAMES.items():
        mod = importlib.import_module(modname)
        api[modname] = {n: describe(getattr(mod, n), n) for n in names if hasattr(mod, n)}
    for key, path in CLASSES.items():
        modname, _, clsname = path.rpartition(".")
        cls = getattr(importlib.import_module(modname), clsname)
        names = [n for n in dir(cls) if not n.startswith("_")] + [d for d in DUNDERS if hasattr(cls, d)]
        api[key] = {}
        for n in names:
            raw = inspect.getattr_static(cls, n)
            api[key][n] = ("value" if n == "__array_priority__" else
                           "property" if not callable(getattr(cls, n)) or describe(raw, n) == "property"
                           else describe(getattr(cls, n), n, in_class=True))
        if getattr(cls, "__hash__", None) is None:
            api[key]["__hash__"] = "value"            # None: unhashable, as NumPy arrays
    return {"cupy_versions": [cupy.__version__], "modules": api}


# -- merging versions ----------------------------------------------------------------------------
def _keywords(kind: str):
    """The keyword names a call signature accepts (None: any, ** present or unreadable)."""
    m = re.match(r"^\w+\((.*)\)$", kind)
    if not m or m.group(1) == "?":
        return None
    tokens = [t for t in (s.strip() for s in m.group(1).split(",")) if t]
    if any(t.startswith("**") for t in tokens):
        return None
    names, positional_only = set(), "/" in tokens
    for t in tokens:
        if t == "/":
            positional_only = False
            names.clear()                         # everything before '/' is positional-only
            continue
        if t == "*" or t.startswith("*"):
            continue
        if not positional_only:
            names.add(t)
    return names


def merge_kind(a: str, b: str) -> str:
    if a == b:
        return a
    ka, kb = _keywords(a), _keywords(b)
    if ka is None and kb is not None:
        return b
    if kb is None and ka is not None:
        return a
    if ka is not None and kb is not None and kb < ka:
        return b
    return a


def merge(dumps: list[dict]) -> dict:
    versions = [v for d in dumps for v in d["cupy_versions"]]
    modules = {}
    for modname in dumps[0]["modules"]:
        tables = [d["modules"].get(modname, {}) for d in dumps]
        common = set(tables[0]).intersection(*tables[1:])
        merged = {}
        for n in sorted(common):
            kind = tables[0][n]
            for t in tables[1:]:
                kind = merge_kind(kind, t[n])
            merged[n] = kind
        modules[modname] = merged
    return {"about": "CuPy's public API as the CuPy stand-in exposes it: names and call signatures "
                     "common to the listed CuPy versions. Generated by tests/cupy_standin/"
                     "make_api_list.py; do not edit by hand.",
            "cupy_versions": versions, "modules": modules}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump", help="list the installed CuPy's API (needs cupy importable)")
    d.add_argument("out")
    m = sub.add_parser("merge", help="intersect dumps of several CuPy versions into the checked-in list")
    m.add_argument("dumps", nargs="+")
    m.add_argument("-o", "--out", required=True)
    args = p.parse_args(argv)
    if args.cmd == "dump":
        result = dump()
    else:
        dumps = []
        for path in args.dumps:
            with open(path) as f:
                dumps.append(json.load(f))
        result = merge(dumps)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    n = sum(len(v) for v in result["modules"].values())
    print(f"wrote {args.out}: {n} names from CuPy {', '.join(result['cupy_versions'])}", file=sys.stderr)


if __name__ == "__main__":
    main()
