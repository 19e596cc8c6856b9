"""The worker-thread pool of the fast NumPy passes (tinygan.kernels.threads): parts really run
at once, BLAS runs at one thread inside them, errors reach the caller, nothing is left running.
(That the fast passes compute the same numbers on one worker and on two: test_kernels.py.)

The test session runs with one BLAS thread, so by default everything here would take the
one-thread path; the ``workers`` fixture switches to two workers and lowers the size below which
work stays on the calling thread to zero, so that even these small arrays go through the pool.
"""
import threading
import time

import pytest

pytest.importorskip("threadpoolctl")

from tinygan.kernels import threads as parallel  # noqa: E402


@pytest.fixture
def workers(monkeypatch):
    """Run the test body with a given number of worker threads: ``workers(2)``."""
    before = parallel.num_threads()
    monkeypatch.setattr(parallel, "MIN_PARALLEL_SIZE", 0)
    yield parallel.set_num_threads
    parallel.set_num_threads(before)


def blas_threads():
    return [c.num_threads for c in parallel._blas_controller().lib_controllers]


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
