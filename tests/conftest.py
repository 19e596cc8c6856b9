"""Shared fixtures: every backend-parametrised test runs on NumPy and, where a GPU is present, CuPy."""
import os

# One BLAS thread for the test session (and the example scripts it starts as subprocesses): the
# tests multiply small matrices, where threads gain little, and on a shared 2-core machine
# OpenBLAS's spinning threads made some tests ten times slower.  Must precede importing numpy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tinygan.backend import cupy_available  # noqa: E402

BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.skipif(
    not cupy_available(), reason="CuPy with a GPU is not available here"))]


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array module under test: numpy always, cupy where it can run."""
    if request.param == "numpy":
        return np
    import cupy
    return cupy


def pytest_configure(config):
    config.addinivalue_line("markers", "cupy: needs CuPy and a GPU (skipped elsewhere)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds on a 2-core CPU")
