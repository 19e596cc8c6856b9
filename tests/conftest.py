"""Shared fixtures: every backend-parametrised test runs on NumPy, on the CuPy stand-in (NumPy
behind CuPy's API and rules, tests/cupy_standin) and, where a GPU is present, on real CuPy."""
import os

# One BLAS thread for the test session (and the example scripts it starts as subprocesses): the
# tests multiply small matrices, where threads gain little, and on a shared 2-core machine
# OpenBLAS's spinning threads made some tests ten times slower.  Must precede importing numpy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from cupy_standin import installed as install_cupy_standin  # noqa: E402

from tinygan.backend import cupy_available  # noqa: E402


def real_cupy_available() -> bool:
    """CuPy itself (not the stand-in, should it be on PYTHONPATH) runs here on a GPU."""
    if not cupy_available():
        return False
    import cupy
    return not getattr(cupy, "__cupy_standin__", False)


REAL_CUPY = real_cupy_available()
BACKENDS = ["numpy",
            pytest.param("cupy", marks=[pytest.mark.cupy, pytest.mark.skipif(
                not REAL_CUPY, reason="CuPy with a GPU is not available here")]),
            pytest.param("cupy-standin", marks=pytest.mark.cupy)]


@pytest.fixture
def cupy_standin():
    """The CuPy stand-in, installed as ``cupy``/``cupyx`` for this test only (so
    ``get_backend("cupy")`` and ``get_array_module`` give it), then whatever was there before."""
    with install_cupy_standin() as cp:
        yield cp


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array module under test: numpy, the CuPy stand-in, and cupy where a GPU can run it."""
    if request.param == "numpy":
        return np
    if request.param == "cupy-standin":
        return request.getfixturevalue("cupy_standin")
    import cupy
    return cupy


def pytest_configure(config):
    config.addinivalue_line("markers", "cupy: runs on a CuPy backend: real CuPy (skipped without a GPU) "
                                       "or the CuPy stand-in (runs everywhere)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds on a 2-core CPU")
