"""Worker threads on the CPU (tinygan.parallel): the layers split their work between threads and
must compute exactly what they compute on one.

The test session runs with one BLAS thread, so by default everything here would take the
one-thread path; the ``workers`` fixture switches to two workers and lowers the size below which
work stays on the calling thread to zero, so that even these small arrays go through the pool.
"""
import threading
import time

import numpy as np
import pytest

pytest.importorskip("threadpoolctl")

from tinygan import parallel  # noqa: E402
from tinygan.backend import get_backend  # noqa: E402
from tinygan.gan.stacked import StackedGANTrainer  # noqa: E402
from tinygan.gradcheck import check_layer_gradients  # noqa: E402
from tinygan.layers import conv as conv_module  # noqa: E402
from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator  # noqa: E402
from tinygan.optimizers import SGD, Adam, Nadam  # noqa: E402
from tinygan import optimizers as optimizers_module  # noqa: E402

from layer_cases import LAYER_CASES, layer_case  # noqa: E402


@pytest.fixture
def workers(monkeypatch):
    """Run the test body with a given number of worker threads: ``workers(2)``."""
    before = parallel.num_threads()
    monkeypatch.setattr(parallel, "MIN_PARALLEL_SIZE", 0)

    def use(n):
        parallel.set_num_threads(n)

    yield use
    parallel.set_num_threads(before)


def blas_threads():
    return [c.num_threads for c in parallel._blas_controller().lib_controllers]


# -- the helpers ------------------------------------------------------------------------------
def test_split_keeps_every_item_once_in_order():
    for n in range(0, 9):
        for parts in range(1, 5):
            runs = parallel.split(range(n), parts)
            assert [i for run in runs for i in run] == list(range(n))
            assert all(runs) and len(runs) == min(parts, n)


def test_map_parts_runs_the_parts_on_different_threads_and_keeps_their_order(workers):
    workers(2)
    barrier = threading.Barrier(2, timeout=10)   # both parts must be running at the same time

    def part(items):
        barrier.wait()
        return items, threading.current_thread().name

    results = parallel.map_parts(part, list(range(5)))
    assert [r[0] for r in results] == [[0, 1], [2, 3, 4]]
    assert len({r[1] for r in results}) == 2


def test_map_parts_limits_blas_to_one_thread_inside_and_restores_it(workers):
    workers(2)
    with parallel._blas_controller().limit(limits=2):    # the session itself runs BLAS at 1
        before = blas_threads()
        inside = parallel.map_parts(lambda items: blas_threads(), [0, 1])
        after = blas_threads()
    assert before == [2] * len(before)
    assert inside == [[1] * len(before)] * 2
    assert after == before


def test_small_jobs_and_calls_from_a_worker_stay_on_the_calling_thread(workers):
    workers(2)
    me = threading.current_thread().name
    assert parallel.map_parts(lambda items: threading.current_thread().name, [0, 1],
                              size=-1) == [me]          # below MIN_PARALLEL_SIZE (0 here)
    nested = parallel.map_parts(
        lambda items: parallel.map_parts(lambda inner: threading.current_thread().name, [0, 1]),
        [0, 1])
    # each outer part runs its inner call itself, on its worker, instead of waiting for another
    assert [len(inner) for inner in nested] == [1, 1]
    assert me not in (nested[0][0], nested[1][0])


def test_an_error_in_a_worker_reaches_the_caller(workers):
    workers(2)

    def part(items):
        if 1 in items:
            raise ValueError("chunk 1 is bad")
        return items

    with parallel._blas_controller().limit(limits=2):
        with pytest.raises(ValueError, match="chunk 1 is bad"):
            parallel.map_parts(part, [0, 1])
        assert blas_threads() == [2] * len(blas_threads())


def test_no_worker_is_still_running_when_a_call_ends_with_an_error(workers):
    workers(2)
    finished = []

    def part(items):
        if items == [0]:
            raise ValueError("first part fails at once")
        time.sleep(0.2)                       # the second part is still at work when it does
        finished.append(items)

    with pytest.raises(ValueError, match="fails at once"):
        parallel.map_parts(part, [0, 1])
    assert finished == [[1]]


def test_bad_thread_counts_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="at least 1"):
        parallel.set_num_threads(0)
    monkeypatch.setenv("TINYGAN_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="TINYGAN_NUM_THREADS.*'two'"):
        parallel._default_num_threads()
    monkeypatch.setenv("TINYGAN_NUM_THREADS", "3")
    assert parallel._default_num_threads() == 3


# -- the layers: two workers compute what one computes ----------------------------------------
# The cases of the backend parity tests (tests/layer_cases.py), NumPy float32 on both sides.
WORKER_CASES = ["conv_k4s2p1", "conv_k3s2p0_odd", "convT_k4s2p1", "batchnorm_images_train",
                "batchnorm_dense_train", "leaky_relu", "relu"]


@pytest.mark.parametrize("case", WORKER_CASES)
def test_two_workers_compute_what_one_computes(workers, monkeypatch, case):
    run = layer_case(*LAYER_CASES[case])
    numpy32 = get_backend("numpy", dtype=np.float32)
    monkeypatch.setattr(conv_module, "_MIN_CHUNK_COLUMNS", 1)   # several chunks at these sizes
    workers(1)
    one = run(numpy32)
    workers(2)
    two = run(numpy32)
    for key in one:
        # Elementwise work and per-feature statistics are the same operations on slices; a
        # convolution multiplies other chunks and sums its weight gradient per worker first:
        # float32 rounding, ~1e-7 of the largest value.  1e-5 is ~100 float32 ulps.
        err = np.abs(one[key] - two[key]).max() / np.abs(one[key]).max()
        assert err < 1e-5, (key, err)


@pytest.mark.parametrize("case", ["conv_k4s2p1", "convT_k4s2p1", "batchnorm_images_train", "leaky_relu"])
def test_gradients_match_central_differences_with_two_workers(workers, monkeypatch, case):
    make, shape, _ = LAYER_CASES[case]
    monkeypatch.setattr(conv_module, "_MIN_CHUNK_COLUMNS", 1)
    workers(2)
    layer = make().astype(np.float64)
    x = np.random.default_rng(2).standard_normal(shape)
    # the same 1e-6 as the one-thread gradient checks (float64 central differences, see test_conv)
    assert max(check_layer_gradients(layer, x).values()) < 1e-6


@pytest.mark.parametrize("make", [lambda: Adam(1e-2), lambda: Nadam(1e-2),
                                  lambda: SGD(1e-2, momentum=0.9, nesterov=True)],
                         ids=["adam", "nadam", "sgd_nesterov"])
def test_optimizer_pieces_update_in_place_exactly_as_whole_arrays(workers, monkeypatch, make):
    monkeypatch.setattr(optimizers_module, "_PIECE", 7)     # cut every parameter into pieces
    rng = np.random.default_rng(3)
    shapes = [(4, 5), (30,), (3, 2, 2, 2)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]

    def train(n_workers):
        workers(n_workers)
        params = [p.copy() for p in start]
        opt = make()
        for step_grads in grads:
            opt.step([(f"p{i}", p, g) for i, (p, g) in enumerate(zip(params, step_grads))])
        return params, opt.state

    (p1, s1), (p2, s2) = train(1), train(2)
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)       # elementwise: the same operations, bit for bit
    for key in s1:
        for slot in s1[key]:
            np.testing.assert_array_equal(s1[key][slot], s2[key][slot])
    assert not np.array_equal(p1[0], start[0])


def test_dcgan_training_steps_agree_between_one_and_two_workers(workers):
    backend = get_backend("numpy")

    def train(n_workers):
        workers(n_workers)
        G = dcgan64_generator(16, 8, 3, seed=0)
        D = dcgan64_discriminator(8, 3, seed=1)
        trainer = StackedGANTrainer(G, D, Adam(2e-4, 0.5), Adam(2e-4, 0.5), latent_dim=16,
                                    backend=backend, seed=0)
        real = np.random.default_rng(4).uniform(-1, 1, (4, 3, 64, 64)).astype(np.float32)
        losses = [trainer.train_step(real).as_floats() for _ in range(2)]
        return losses, G.layers[1].params["W"].copy()

    (l1, w1), (l2, w2) = train(1), train(2)
    for a, b in zip(l1, l2):
        for key in a:
            # float32 sums in another order (~1e-7), amplified by Adam's early sign-like steps
            # (a near-zero gradient whose sign flips moves its weight by lr = 2e-4); a wrong
            # step would be off by O(1)
            assert abs(a[key] - b[key]) <= 1e-2 * max(1.0, abs(a[key])), (key, a[key], b[key])
    # Adam moves a weight by at most ~2 lr per step (here): two steps, two runs -> 8 lr at most
    assert np.abs(w1 - w2).max() <= 8 * 2e-4
