"""The CuPy stand-in (tests/cupy_standin): CuPy's API and rules on NumPy, with counters.

It is what runs tinygan's CuPy path in CI, so these tests pin down the rules it enforces (each as
real CuPy does) and what it counts; the last ones run a whole DCGAN training step on it.
"""
import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cupy_standin import DIR, counting, subprocess_env

from tinygan import kernels
from tinygan.aging.classifier import called_old, predict_logits
from tinygan.backend import get_array_module, get_backend, to_numpy
from tinygan.gan.stacked import StackedGANTrainer
from tinygan.metrics.accuracy import accuracy_as_in_training, discriminator_accuracy
from tinygan.models import age_classifier
from tinygan.models.dcgan import (
    dcgan64_discriminator,
    dcgan64_generator,
    dcgan_discriminator,
    dcgan_generator,
)
from tinygan.optimizers import Adam

API = json.loads((DIR / "cupy_api.json").read_text())
REPO = Path(__file__).resolve().parent.parent


# -- where it can be imported ------------------------------------------------------------------------
def test_the_standin_is_cupy_only_inside_the_fixture(cupy_standin):
    import cupy
    assert cupy is cupy_standin and cupy.__cupy_standin__


def test_outside_the_fixture_import_cupy_never_finds_the_standin():
    spec = importlib.util.find_spec("cupy")
    assert spec is None or not str(spec.origin).startswith(str(DIR))
    assert not getattr(sys.modules.get("cupy"), "__cupy_standin__", False)


def test_a_subprocess_gets_it_through_pythonpath_and_can_report_its_counts(tmp_path):
    counts = tmp_path / "counts.json"
    code = ("import numpy as np; from tinygan.backend import get_backend; b = get_backend('cupy'); "
            "x = b.asarray(np.ones(3)); print(b.xp.__cupy_standin__, float((x * 2).sum()))")
    env = subprocess_env({**os.environ, "CUPY_STANDIN_COUNTS": str(counts)})
    env["PYTHONPATH"] += os.pathsep + str(REPO)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "6.0"]
    # asarray (1 copy), * and sum (2 kernels), float() (1 sync); plus the backend's probe
    assert json.loads(counts.read_text())["syncs"] >= 1


# -- names and keywords: exactly CuPy's -----------------------------------------------------------
def test_the_api_list_comes_from_cupy_13_and_14():
    assert [v.split(".")[0] for v in API["cupy_versions"]] == ["13", "14"]
    assert API["modules"]["cupy"]["sum"] == "function(a, axis, dtype, out, keepdims)"


def test_names_cupy_lacks_are_attribute_errors(cupy_standin):
    a = cupy_standin.zeros(3)
    with pytest.raises(AttributeError):
        cupy_standin.nanpercentile_of_everything            # noqa: B018
    with pytest.raises(AttributeError):
        a.itemset                                           # noqa: B018  NumPy has it, CuPy does not
    with pytest.raises(AttributeError):
        cupy_standin.random.default_rng(0).normal           # noqa: B018  CuPy's Generator lacks normal()


def test_keywords_cupy_lacks_are_type_errors(cupy_standin):
    a = cupy_standin.ones(3)
    with pytest.raises(TypeError, match="where"):
        cupy_standin.sum(a, where=True)
    with pytest.raises(TypeError, match="casting"):
        cupy_standin.einsum("i,i->", a, a, casting="safe")
    with pytest.raises(TypeError, match="writeable"):
        cupy_standin.lib.stride_tricks.as_strided(a, (3,), (8,), writeable=False)


# -- the host/device boundary, as CuPy draws it -----------------------------------------------------
def test_arrays_are_cupy_arrays_to_tinygan(cupy_standin):
    a = cupy_standin.arange(3)
    assert get_array_module(a) is cupy_standin
    assert type(a).__module__ == "cupy"


def test_implicit_conversion_to_numpy_raises(cupy_standin):
    a = cupy_standin.arange(3)
    for convert in (np.asarray, np.array, lambda x: x.__array__()):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
            convert(a)


@pytest.mark.parametrize("mix", [lambda a, h: a + h, lambda a, h: h * a, lambda a, h: a.__iadd__(h),
                                 lambda a, h: np.maximum(a, h), lambda a, h: a @ h.reshape(3, 1)],
                         ids=["add", "reflected_mul", "inplace_add", "numpy_ufunc", "matmul"])
def test_numpy_and_device_arrays_do_not_mix(cupy_standin, mix):
    with pytest.raises(TypeError, match="Unsupported type"):
        mix(cupy_standin.arange(3.0), np.arange(3.0))


def test_numpy_functions_on_device_arrays_run_cupys(cupy_standin):
    a = cupy_standin.arange(4.0)
    m = np.mean(a)                                          # dispatched to cupy.mean
    assert get_array_module(m) is cupy_standin and float(m) == 1.5
    with pytest.raises(TypeError):
        np.add.at(a, [0], 1.0)                              # CuPy has no such dispatch


def test_assigning_a_host_array_into_a_device_array_raises(cupy_standin):
    a = cupy_standin.zeros((2, 3))
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        a[...] = np.ones((2, 3))
    a[0] = np.float64(2.0)                                  # a host scalar is a fill
    with counting() as c:
        a[cupy_standin.asarray([1]), 0] = np.array([5.0])   # fancy indexing copies values over
    assert to_numpy(a).tolist() == [[2, 2, 2], [5, 0, 0]] and c.h2d == 2


def test_explicit_copies_are_counted_with_their_bytes(cupy_standin):
    with counting() as c:
        a = cupy_standin.asarray(np.ones((4, 5), np.float32))
        back = cupy_standin.asnumpy(a)
        host = a.get()
    assert isinstance(back, np.ndarray) and isinstance(host, np.ndarray)
    assert (c.h2d, c.h2d_bytes, c.d2h, c.d2h_bytes, c.syncs) == (1, 80, 2, 160, 2)


def test_scalars_read_on_the_host_are_syncs(cupy_standin):
    s = cupy_standin.arange(4.0).sum()
    with counting() as c:
        values = (float(s), int(s), bool(s), s.item(), s.tolist(), repr(s))
    assert values[0] == 6.0 and c.syncs == 6
    assert len(cupy_standin.zeros((5, 2))) == 5 and c.syncs == 6      # a shape is on the host


def test_syncs_are_refused_where_cupyx_disallows_them(cupy_standin):
    import cupyx
    s = cupy_standin.arange(4.0).sum()
    with cupyx.allow_synchronize(False):
        t = s * 2                                           # queued work is fine
        with pytest.raises(cupyx.DeviceSynchronized):
            float(t)


def test_pickling_copies_to_the_host(cupy_standin):
    a = cupy_standin.arange(3.0)
    with counting() as c:
        b = pickle.loads(pickle.dumps(a))
    assert to_numpy(b).tolist() == [0.0, 1.0, 2.0] and (c.syncs, c.h2d) == (1, 1)


# -- arithmetic as CuPy's kernels do it ------------------------------------------------------------
def test_float32_subnormal_results_are_flushed_to_zero(cupy_standin):
    x = cupy_standin.asarray([-100.0], dtype=cupy_standin.float32)
    assert float(cupy_standin.exp(x)[0]) == 0.0             # NumPy: 3.7e-44
    assert float(cupy_standin.exp(x.astype(cupy_standin.float64))[0]) > 0   # float64 is not flushed
    assert np.exp(np.float32(-100)) > 0


def test_scatter_add_sums_repeated_indices(cupy_standin):
    import cupyx
    y = cupy_standin.zeros(3, dtype=cupy_standin.float32)
    cupyx.scatter_add(y, cupy_standin.asarray([0, 0, 2]), cupy_standin.ones(3, dtype=cupy_standin.float32))
    assert to_numpy(y).tolist() == [2.0, 0.0, 1.0]


def test_ufunc_at_exists_only_where_cupy_implements_it(cupy_standin):
    y = cupy_standin.zeros(2, dtype=cupy_standin.float32)
    cupy_standin.add.at(y, cupy_standin.asarray([1, 1]), 1.0)
    assert to_numpy(y).tolist() == [0.0, 2.0]
    with pytest.raises(NotImplementedError):
        cupy_standin.multiply.at(y, cupy_standin.asarray([1]), 2.0)
    with pytest.raises(TypeError, match="int32"):
        cupy_standin.add.at(cupy_standin.zeros(2, dtype=cupy_standin.int64), cupy_standin.asarray([0]), 1)


def test_a_fused_function_is_one_operation(cupy_standin):
    @cupy_standin.fuse()
    def axpy(a, x, y):
        return a * x + y

    x, y = cupy_standin.arange(3.0), cupy_standin.ones(3)
    with counting() as c:
        z = axpy(2.0, x, y)
    assert to_numpy(z).tolist() == [1.0, 3.0, 5.0] and c.ops == 1


def test_a_fused_function_refuses_what_cupy_fuse_cannot_compile(cupy_standin):
    @cupy_standin.fuse()
    def first_row(x):
        return x[0] * 2

    with pytest.raises(TypeError, match="fuse"):
        first_row(cupy_standin.ones((2, 2)))


# -- what counts as a device operation ---------------------------------------------------------------
def test_views_are_free_and_kernels_count_one_each(cupy_standin):
    a = cupy_standin.ones((4, 6), dtype=cupy_standin.float32)
    with counting() as c:
        views = (a.reshape(6, 4), a.T, a[1:, ::2],
                 cupy_standin.lib.stride_tricks.as_strided(a, (2, 2), (4, 4)))
        assert c.ops == 0
        a *= 2                                              # in place: one kernel
        b = a + 1                                           # one kernel
        b.sum(axis=0)                                       # one reduction
        cupy_standin.empty((3, 3))                          # an allocation, no kernel
        cupy_standin.zeros((3, 3))                          # a memset
    assert c.ops == 4 and all(get_array_module(v) is cupy_standin for v in views)


def test_a_product_counts_one_plus_a_copy_per_operand_cublas_cannot_read(cupy_standin):
    a = cupy_standin.ones((4, 6), dtype=cupy_standin.float32)
    with counting() as c:
        a @ a.T                                             # transposed: cuBLAS reads it as it is
    with counting() as strided:
        a[:, ::2] @ a[:, ::2].T                             # neither C- nor F-contiguous: copied
    assert (c.ops, strided.ops) == (1, 3)


def test_einsum_counts_its_transposed_copies_and_batched_product(cupy_standin):
    # CuPy's einsum without cuTENSOR: "nfp,nfp->f" copies both operands into (f, n*p) layouts and
    # multiplies them as a batch of 1x1 products.
    x = cupy_standin.ones((8, 3, 16), dtype=cupy_standin.float32)
    with counting() as c:
        s = cupy_standin.einsum("nfp,nfp->f", x, x)
    assert to_numpy(s).tolist() == [128.0] * 3 and c.ops == 3


# -- tinygan on it: a whole DCGAN training step --------------------------------------------------------
def dcgan_step_counts(filters, batch, steps=2):
    """Counts of the last of ``steps`` StackedGANTrainer.train_step calls of the 64x64 DCGAN (the
    first step also creates Adam's moments)."""
    b = get_backend("cupy")
    G = dcgan64_generator(16, filters, seed=0).to(b)
    D = dcgan64_discriminator(filters, seed=1).to(b)
    trainer = StackedGANTrainer(G, D, Adam(2e-4, 0.5), Adam(2e-4, 0.5), latent_dim=16, backend=b, seed=0)
    real = b.asarray(np.random.default_rng(4).uniform(-1, 1, (batch // 2, 3, 64, 64)))
    for _ in range(steps):
        with counting() as c:
            stats = trainer.train_step(real)
    assert all(np.isfinite(v) for v in stats.as_floats().values())
    return c


def test_a_dcgan_training_step_never_waits_for_the_device_and_copies_only_its_noise(cupy_standin):
    c = dcgan_step_counts(filters=4, batch=4)
    # the noise: batch / 2 vectors for D's step, batch for G's, float32 (16 latent values each)
    assert (c.syncs, c.d2h) == (0, 0)
    assert (c.h2d, c.h2d_bytes) == (2, (2 + 4) * 16 * 4)


def test_the_operation_count_of_a_step_depends_on_the_architecture_not_on_sizes(cupy_standin):
    # So a count measured at tiny filters and batch is the count at f = 64, batch 128.
    small, larger = dcgan_step_counts(filters=4, batch=4), dcgan_step_counts(filters=8, batch=8)
    assert small.ops == larger.ops and small.by_name == larger.by_name


def test_a_dcgan_training_step_launches_at_most_400_device_operations(cupy_standin):
    # A launch costs 5-15 us of host time on a GPU; PyTorch's eager step of this model launches
    # 250-400.  The CuPy passes (tinygan/kernels/cupy_passes.py) take 386 (benchmarks/NOTES.md:
    # GPU); the layers' plain code took 1,850, mostly in im2col/col2im's loops over kernel taps.
    fast = dcgan_step_counts(filters=4, batch=4)
    with kernels.using("plain"):
        plain = dcgan_step_counts(filters=4, batch=4)
    assert fast.ops <= 400
    assert plain.ops > 4 * fast.ops
    assert (fast.syncs, fast.h2d) == (plain.syncs, plain.h2d) == (0, 2)


# -- host images into a model on the device (issue 13, item 5) ------------------------------------------
def host_images(n, seed=6):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, 32, 32)).astype(np.float32)


def test_discriminator_accuracy_copies_host_images_to_a_device_model_once(cupy_standin):
    D = dcgan_discriminator(32, 4, seed=1)
    real, fake = host_images(5), host_images(3, seed=7)
    on_host = discriminator_accuracy(D, real, fake, batch_size=2)
    D.to(get_backend("cupy"))
    with counting() as c:
        on_device = discriminator_accuracy(D, real, fake, batch_size=2)
    assert on_device == on_host
    assert (c.h2d, c.h2d_bytes) == (3 + 2, real.nbytes + fake.nbytes)      # each batch once


def test_accuracy_as_in_training_takes_host_real_images_with_device_models(cupy_standin):
    G, D = dcgan_generator(8, 32, 4, seed=0), dcgan_discriminator(32, 4, seed=1)
    real, z = host_images(4), np.random.default_rng(8).standard_normal((4, 8))
    on_host = accuracy_as_in_training(G, D, real, z, batch_size=2)
    b = get_backend("cupy")
    G.to(b), D.to(b)
    assert accuracy_as_in_training(G, D, real, z, batch_size=2) == on_host


def test_the_age_classifiers_verdicts_take_host_images_with_a_device_model(cupy_standin):
    classifier = age_classifier(32, base_filters=4)
    images = host_images(5)
    logits = predict_logits(classifier, images, batch_size=2)
    classifier.to(get_backend("cupy"))
    with counting() as c:
        verdicts = called_old(classifier, images, batch_size=2)
    np.testing.assert_array_equal(verdicts, logits > 0)
    assert (c.h2d, c.h2d_bytes) == (3, images.nbytes)
    assert np.abs(predict_logits(classifier, images, batch_size=2) - logits).max() < 1e-5   # float32


def test_the_main_example_trains_and_resumes_with_backend_cupy(tmp_path):
    """`python examples/celeba_dcgan.py --backend cupy` on the stand-in: 2 steps, then --resume to
    step 3 (the embedded faces, --limit 64, as tests/test_examples.py runs it on NumPy)."""
    out = tmp_path / "run"
    env = subprocess_env({**os.environ, "TINYGAN_CACHE": str(tmp_path / "cache")})
    env["PYTHONPATH"] += os.pathsep + str(REPO)
    runs = (["--limit", "64", "--batch-size", "16", "--base-filters", "4", "--max-steps", "2"],
            ["--resume", "--max-steps", "3"])
    for i, args in enumerate(runs):
        env["CUPY_STANDIN_COUNTS"] = str(tmp_path / f"counts{i}.json")
        r = subprocess.run([sys.executable, str(REPO / "examples" / "celeba_dcgan.py"), "--backend", "cupy",
                            "--no-progress", *args, "--out", str(out)],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert json.loads((tmp_path / f"counts{i}.json").read_text())["ops"] > 0     # it ran on "CuPy"
    assert (out / "last.npz").is_file()
