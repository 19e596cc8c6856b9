"""Backend choice: numpy always works, cupy is a clear error where it cannot run."""
import numpy as np
import pytest

from tinygan.backend import BackendUnavailableError, cupy_available, get_array_module, get_backend, to_numpy


def test_numpy_backend_is_float32_by_default():
    b = get_backend("numpy")
    assert b.xp is np and b.dtype == np.float32
    assert b.asarray([1, 2]).dtype == np.float32


def test_float64_on_request():
    assert get_backend("numpy", dtype=np.float64).asarray([1.0]).dtype == np.float64


def test_auto_picks_cupy_only_when_it_can_run():
    assert get_backend("auto").name == ("cupy" if cupy_available() else "numpy")


@pytest.mark.skipif(cupy_available(), reason="CuPy runs here")
def test_missing_cupy_says_how_to_install_the_gpu_extra():
    with pytest.raises(BackendUnavailableError, match=r"\[gpu\]"):
        get_backend("cupy")


def test_unknown_backend_lists_the_choices():
    with pytest.raises(ValueError, match="numpy, cupy, auto"):
        get_backend("tpu")


def test_seeded_rng_repeats(xp):
    b = get_backend("cupy" if xp is not np else "numpy")
    a1 = to_numpy(b.rng(3).standard_normal(5))
    a2 = to_numpy(b.rng(3).standard_normal(5))
    np.testing.assert_array_equal(a1, a2)
    assert get_array_module(b.rng(3).standard_normal(2)) is xp


def test_a_backend_passed_on_keeps_its_dtype():
    b64 = get_backend("numpy", dtype=np.float64)
    assert get_backend(b64).dtype == np.float64
    assert get_backend(b64, dtype=np.float32).dtype == np.float32
