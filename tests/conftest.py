"""Shared fixtures: every backend-parametrised test runs on NumPy and, where a GPU is present, CuPy."""
import numpy as np
import pytest

from tinygan.backend import cupy_available

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
