"""The ``cupyx`` half of the CuPy stand-in (``scatter_add`` and friends); see tests/cupy_standin."""
from cupy._standin import build_cupyx as _build

_build(globals())
del _build
