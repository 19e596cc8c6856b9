"""The CuPy stand-in: a NumPy-backed module that presents itself as ``cupy`` (see tests/cupy_standin).

Not CuPy: nothing here runs on a GPU.  It is importable as ``cupy`` only from the directory
tests/cupy_standin (on ``sys.path`` or ``PYTHONPATH``), and the test suite installs it for single
tests only (``tests/conftest.py``, fixture ``cupy_standin``).
"""
from cupy._standin import build_cupy as _build

_build(globals())
del _build
