"""How tinygan is made fast: the layers' own math, computed faster, and switchable off.

tinygan/layers/ holds each layer's math as plain whole-batch array code.  This package holds
everything about speed:

  im2col.py        the array primitives the layers call (im2col, col2im, ...): plain, NumPy or CuPy
  reference.py     the same maps as loops, one output at a time: what tests and lesson 5 compare to
  fast_im2col.py   faster NumPy im2col / col2im, tested equal to the plain ones
  threads.py       worker threads for NumPy
  numpy_passes.py  fast NumPy passes of whole layers (Conv2D, Conv2DTranspose, BatchNorm, LeakyReLU)
                   and of the optimizers' updates
  cupy_im2col.py   im2col / col2im for CuPy in one or two kernels, results stored channels first;
                   im2col.py's primitives hand over to them, so the convolutions need no pass
  cupy_passes.py   fast CuPy passes (BatchNorm, activations; cupy.fuse kernels) and fused
                   optimizer updates: fewer kernel launches

``Sequential`` runs each layer through :func:`forward` / :func:`backward` below (and the
optimizers their updates through :func:`update`): the fast pass
registered for the layer's exact type and the array's module when the fast kernels are on, else
the layer's own ``forward`` / ``backward``.  (Exact type: a subclass that overrides a pass runs
its own code.)  Fast and plain compute the same numbers up to float rounding and leave the same
state for backward, so they may be mixed.

    tinygan.kernels.use("plain")              # the layers' own code everywhere; "fast": the default
    with tinygan.kernels.using("plain"): ...  # for a with-block
    TINYGAN_KERNELS=plain python ...          # the same from the environment
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

from .threads import num_threads, set_num_threads

MODES = ("fast", "plain")

__all__ = ["MODES", "use", "using", "active", "fast_pass", "forward", "backward", "update",
           "num_threads", "set_num_threads"]


def _mode_from_environment() -> str:
    mode = os.environ.get("TINYGAN_KERNELS", "fast").strip().lower() or "fast"
    if mode not in MODES:
        raise ValueError(f"TINYGAN_KERNELS must be one of {MODES}, got {os.environ['TINYGAN_KERNELS']!r}")
    return mode


_mode = _mode_from_environment()


def active() -> str:
    """The kernels in use: "fast" or "plain"."""
    return _mode


def use(mode: str) -> str:
    """Use the "fast" or the "plain" kernels from now on; returns the previous mode."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"kernels.use: expected one of {MODES}, got {mode!r}")
    previous, _mode = _mode, mode
    return previous


@contextmanager
def using(mode: str):
    """``with using("plain"):`` -- the given kernels for a with-block, then the previous ones."""
    previous = use(mode)
    try:
        yield
    finally:
        use(previous)


def fast_pass(layer, array):
    """The (forward, backward) pair that runs ``layer`` on ``array``, or None: its own code."""
    if _mode != "fast":
        return None
    # Imported here, not at the top: the passes import the layers, which import this package.
    if isinstance(array, np.ndarray):
        from .numpy_passes import PASSES
    else:
        from .cupy_passes import PASSES
    return PASSES.get(type(layer))


def forward(layer, x, training: bool = True):
    """``layer.forward(x, training)``, by the fast pass where there is one."""
    passes = fast_pass(layer, x)
    return layer.forward(x, training) if passes is None else passes[0](layer, x, training)


def backward(layer, grad):
    """``layer.backward(grad)``, by the fast pass where there is one."""
    passes = fast_pass(layer, grad)
    return layer.backward(grad) if passes is None else passes[1](layer, grad)


def update(optimizer, items, coeffs) -> None:
    """``optimizer._update(p, g, state, coeffs)`` for every ``(p, g, state)`` in ``items``, by the
    fast update where there is one (NumPy: big parameters in pieces on the worker threads; CuPy:
    one fused kernel per parameter)."""
    fast = None
    if _mode == "fast" and items:
        if isinstance(items[0][0], np.ndarray):
            from .numpy_passes import UPDATES
        else:
            from .cupy_passes import UPDATES
        fast = UPDATES.get(type(optimizer))
    if fast is not None:
        fast(optimizer, items, coeffs)
        return
    for p, g, state in items:
        optimizer._update(p, g, state, coeffs)
