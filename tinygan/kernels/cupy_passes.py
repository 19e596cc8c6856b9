"""Fast CuPy passes of layers: where GPU-specific kernels go.  None yet.

On CuPy every layer runs its own plain code (whole batch, a handful of kernel launches per
pass).  A fast pass added here is a pair ``(forward(layer, x, training), backward(layer, grad))``
under the layer's class in ``PASSES``, with the contract of tinygan/kernels/numpy_passes.py:
the same numbers as the layer's plain code, the same ``layer.saved``, gradients added into
``layer.grads``.  Give each one a NumPy-runnable twin (the same code with ``xp`` = numpy) so that
the test comparing it with the plain layer runs without a GPU too.
"""
from __future__ import annotations

PASSES: dict = {}
