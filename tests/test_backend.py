"""Backend choice: numpy always works, cupy only where it computes, with the reason when it cannot."""
import sys
import types

import numpy as np
import pytest

from tinygan.backend import (
    BackendUnavailableError,
    cupy_available,
    cupy_unavailable_reason,
    get_array_module,
    get_backend,
    to_numpy,
)


def test_numpy_backend_is_float32_by_default():
    b = get_backend("numpy")
    assert b.xp is np and b.dtype == np.float32
    assert b.asarray([1, 2]).dtype == np.float32


def test_float64_on_request():
    assert get_backend("numpy", dtype=np.float64).asarray([1.0]).dtype == np.float64


def test_auto_picks_cupy_only_when_it_can_run():
    assert get_backend("auto").name == ("cupy" if cupy_available() else "numpy")


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


# -- deciding whether CuPy can run: a probe, not getDeviceCount() alone ------------------------------
class CompileException(Exception):
    """What cupy.cuda.compiler raises when NVRTC cannot compile a kernel."""


def fake_cupy(monkeypatch, devices=1, kernel_error=None, matmul_error=None):
    """A `cupy` that sees ``devices`` GPUs and whose elementwise kernels / matrix products raise
    the given errors (None: they compute), installed for one test."""
    class Array:
        def __init__(self, value):
            self.value = np.asarray(value)

        def __mul__(self, k):
            if kernel_error is not None:
                raise kernel_error
            return Array(self.value * k)

        def __add__(self, k):
            return Array(self.value + k)

        def reshape(self, *shape):
            return Array(self.value.reshape(*shape))

        def __matmul__(self, other):
            if matmul_error is not None:
                raise matmul_error
            return Array(self.value @ other.value)

    cupy = types.ModuleType("cupy")
    cupy.float32 = np.float32
    cupy.arange = lambda n, dtype: Array(np.arange(n, dtype=dtype))
    cupy.asnumpy = lambda a: a.value
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: devices),
                                      compiler=types.SimpleNamespace(CompileException=CompileException))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return cupy


def test_a_gpu_with_a_working_cuda_stack_is_used(monkeypatch):
    cupy = fake_cupy(monkeypatch)
    assert cupy_available() and cupy_unavailable_reason() is None
    assert get_backend("auto").xp is cupy


def test_a_gpu_whose_kernels_do_not_compile_is_not_used_and_the_error_says_why(monkeypatch):
    # A driver without the CUDA toolkit: getDeviceCount() sees the GPU, the first kernel fails.
    fake_cupy(monkeypatch, kernel_error=CompileException("nvrtc: error: invalid value for --gpu-name"))
    assert not cupy_available()
    assert get_backend("auto").name == "numpy"
    with pytest.raises(BackendUnavailableError, match="CompileException: nvrtc: error"):
        get_backend("cupy")


@pytest.mark.parametrize("error", [RuntimeError("CuPy failed to load libnvrtc.so.12: OSError"),
                                   ImportError("libcublas.so.12: cannot open shared object file")])
def test_a_missing_cuda_library_is_named_in_the_reason(monkeypatch, error):
    fake_cupy(monkeypatch, matmul_error=error)
    assert str(error).split(":")[0] in cupy_unavailable_reason()


def test_no_gpu_is_the_reason_when_cupy_sees_none(monkeypatch):
    fake_cupy(monkeypatch, devices=0)
    assert cupy_unavailable_reason() == "CuPy sees no GPU (getDeviceCount() is 0)"


def test_a_bug_inside_cupy_is_raised_not_mistaken_for_a_missing_gpu(monkeypatch):
    fake_cupy(monkeypatch, kernel_error=TypeError("a bug"))
    with pytest.raises(TypeError, match="a bug"):
        cupy_available()


def test_missing_cupy_says_how_to_install_the_gpu_extra_for_cupy_13_and_14(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)          # as if not installed
    with pytest.raises(BackendUnavailableError) as info:
        get_backend("cupy")
    message = str(info.value)
    assert "CuPy does not import" in message
    assert ".[gpu]" in message and "CuPy 13" in message and '"cupy-cuda12x[ctk]>=14"' in message


def test_the_cupy_standin_passes_the_probe(cupy_standin):
    b = get_backend("cupy")
    assert b.name == "cupy" and b.xp is cupy_standin
