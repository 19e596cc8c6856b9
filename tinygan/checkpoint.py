"""Training checkpoints: everything a run needs to continue exactly where it stopped, in ONE ``.npz``.

A checkpoint is a nested dict whose leaves are arrays (NumPy or CuPy; saved as host copies) and
plain Python values (int, float, bool, str, None, lists).  :func:`save_checkpoint` splits it
into

    "__tree__"   the structure and every plain value, as JSON in a 0-d unicode array; each array
                 leaf is a placeholder ``{"__ndarray__": "<entry name>"}``
    "config"     the run's configuration, JSON in a 0-d unicode array (readable on its own:
                 ``json.loads(str(np.load(path)["config"]))``)
    "<a>/<b>/…"  one npz entry per array, named by its path in the tree ("trainer/G/g_bn1.gamma")

so nothing is pickled and ``np.load(path, allow_pickle=False)`` reads it.  JSON keeps Python ints
of any size (a PCG64 state is a 128-bit int) and floats exactly (``repr`` round-trips).

The file is written under a temporary name in the same folder and moved over the old one with
``os.replace`` (:mod:`tinygan.io`), so a crash or Ctrl-C during the write leaves the previous
checkpoint intact and loadable.

:func:`training_state` gathers a run's state from its objects (trainer, data iterator, EMA,
metrics history) and :func:`restore_training_state` puts it back, turning every mismatch into a
:class:`~tinygan.errors.CheckpointError` that names the file and what does not fit.
"""
from __future__ import annotations

import json
import numbers
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .errors import CheckpointError
from .io import load_npz, save_npz_atomic

FORMAT = "tinygan-checkpoint"
VERSION = 1
_TREE, _CONFIG, _LEAF = "__tree__", "config", "__ndarray__"


def _is_array(v) -> bool:
    return isinstance(v, (np.ndarray, np.generic)) or type(v).__module__.startswith("cupy")


def _flatten(tree, arrays: dict, path: str):
    """JSON-able copy of ``tree`` with arrays moved into ``arrays`` (entry name -> host array)."""
    if _is_array(tree):
        a = to_numpy(tree)
        if a.dtype == object:
            raise TypeError(f"checkpoint entry {path!r} is an object array; only numeric, bool and "
                            f"string arrays can be saved without pickle")
        name = path or "array"
        while name in arrays or name in (_TREE, _CONFIG):   # keep entry names unique
            name += "_"
        arrays[name] = np.array(a, copy=True)
        return {_LEAF: name}
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            if not isinstance(k, str):
                raise TypeError(f"checkpoint keys must be strings, got {k!r} under {path or 'the root'!r}")
            out[k] = _flatten(v, arrays, f"{path}/{k}" if path else k)
        return out
    if isinstance(tree, (list, tuple)):
        return [_flatten(v, arrays, f"{path}/{i}") for i, v in enumerate(tree)]
    if tree is None or isinstance(tree, (bool, str)):
        return tree
    if isinstance(tree, numbers.Integral):
        return int(tree)
    if isinstance(tree, numbers.Real):
        return float(tree)
    raise TypeError(f"checkpoint entry {path!r} has type {type(tree).__name__}; expected arrays, "
                    f"numbers, strings, None, lists or dicts")


def _unflatten(tree, arrays, path: Path):
    if isinstance(tree, dict):
        if set(tree) == {_LEAF}:
            name = tree[_LEAF]
            if name not in arrays:
                raise CheckpointError(f"checkpoint {path} is incomplete: it lists an array {name!r} "
                                      f"that the file does not contain")
            return arrays[name]
        return {k: _unflatten(v, arrays, path) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unflatten(v, arrays, path) for v in tree]
    return tree


def save_checkpoint(path, state: dict) -> Path:
    """Write the nested dict ``state`` to ``path`` (one .npz) atomically; returns the path.

    ``state["config"]`` (a JSON-able dict), if present, is stored as its own JSON entry.
    """
    path = Path(path)
    state = dict(state)
    config = state.pop("config", None)
    arrays: dict = {}
    tree = _flatten(state, arrays, "")
    header = {"format": FORMAT, "version": VERSION, "tree": tree}
    arrays[_TREE] = np.array(json.dumps(header))
    if config is not None:
        arrays[_CONFIG] = np.array(json.dumps(config, sort_keys=True))
    save_npz_atomic(path, arrays)
    return path


def load_checkpoint(path) -> dict:
    """The nested dict that :func:`save_checkpoint` wrote (arrays come back as NumPy arrays).

    Raises :class:`CheckpointError` naming ``path`` when the file is missing, unreadable
    (truncated, corrupt) or not a tinygan checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        hint = " (a directory; pass the .npz inside it, e.g. last.npz)" if path.is_dir() else ""
        raise CheckpointError(f"no checkpoint at {path}{hint}")
    arrays = load_npz(path, what="checkpoint")
    if _TREE not in arrays:
        raise CheckpointError(f"{path} is not a tinygan checkpoint: it has no {_TREE!r} entry "
                              f"(entries: {sorted(arrays)[:5]}...); a weights file from save_weights()?")
    try:
        header = json.loads(str(arrays.pop(_TREE)))
        config = json.loads(str(arrays.pop(_CONFIG))) if _CONFIG in arrays else None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {path} has an unreadable JSON header: {e}") from e
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format {header.get('format')!r} version "
                              f"{header.get('version')!r}; this tinygan reads {FORMAT!r} version {VERSION}")
    state = _unflatten(header["tree"], arrays, path)
    if config is not None:
        state["config"] = config
    return state


# --- a training run's state ---------------------------------------------------------------------

def training_state(trainer, *, batches=None, ema=None, epoch: int = 0, history=None,
                   config: dict | None = None, extra: dict | None = None) -> dict:
    """Everything to resume a run, as the nested dict :func:`save_checkpoint` stores.

    trainer  a StackedGANTrainer: G and D weights and buffers, both optimizers (moments and step
             counts), the noise generator's state and the step count (``trainer.state_dict()``)
    batches  the Minibatches iterator: its RNG state and position within the epoch
    ema      a GeneratorEMA (the averaged weights and its update count), or None
    epoch    completed epochs; history: a MetricsHistory (or anything with ``state_dict``)
    extra    more arrays or values to keep (the fixed sampling noise, ...)
    """
    return {"trainer": trainer.state_dict(),
            "data": None if batches is None else batches.state_dict(),
            "ema": None if ema is None else ema.state_dict(),
            "epoch": int(epoch), "step": int(trainer.steps),
            "history": None if history is None else history.state_dict(),
            "extra": dict(extra or {}),
            "config": config}


def _section(state: dict, key: str, path):
    if key not in state or state[key] is None:
        raise CheckpointError(f"checkpoint {path} has no {key!r} section; it was not written by "
                              f"tinygan.checkpoint.training_state, or the run it came from had no {key}")
    return state[key]


def restore_training_state(state: dict, trainer, *, batches=None, ema=None, history=None,
                           path="checkpoint") -> None:
    """Load ``state`` (from :func:`load_checkpoint`) into the run's objects, in place.

    Anything that does not fit (a layer or shape that differs, an optimizer of another kind,
    a data iterator over a different number of images or batch size, a missing section) raises
    CheckpointError naming ``path`` and the mismatch.
    """
    tstate = _section(state, "trainer", path)
    try:
        trainer.load_state_dict(tstate)
        # The trainer checks optimizer state lazily (at the first step); check it against the
        # parameters now, so a mismatch is reported here, with the file name.
        trainer.g_opt.load_state_dict(tstate["g_opt"], params=trainer.G.trainable_parameters())
        trainer.d_opt.load_state_dict(tstate["d_opt"], params=trainer.D.trainable_parameters())
        if batches is not None:
            batches.load_state_dict(_section(state, "data", path))
        if ema is not None:
            ema.load_state_dict(_section(state, "ema", path))
        if history is not None:
            history.load_state_dict(_section(state, "history", path))
    except CheckpointError as e:
        if str(path) in str(e):
            raise
        raise CheckpointError(f"checkpoint {path} does not fit this run: {e}") from e
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} does not fit this run: {type(e).__name__}: {e}") from e
