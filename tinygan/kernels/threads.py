"""Worker threads for NumPy: several cores on one layer pass.

NumPy computes on one core except inside BLAS (the matrix products).  On a 2-core machine a
convolution then alternates between a product on both cores and an im2col gather or col2im
scatter on one, and BatchNorm runs on one core throughout.  The fast passes in
tinygan.kernels.numpy_passes split that work between worker threads instead:

* a convolution hands its batch chunks to :func:`map_parts`: each worker takes a share of the
  chunks, with BLAS limited to one thread.  NumPy releases the GIL inside a matrix product, so
  while one thread multiplies, another gathers or scatters: both cores stay busy;
* BatchNorm uses :func:`for_each_range` over its features, and the optimizers' updates
  :func:`map_parts` over flat pieces of the parameters: independent work on separate slices.

The number of workers is ``TINYGAN_NUM_THREADS`` if set, else the number of threads BLAS was
started with (``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS``, else the cores), so
one setting controls both; :func:`set_num_threads` changes it.  With one worker, for small jobs,
or without ``threadpoolctl`` (which switches BLAS to one thread and back), the work runs on the
calling thread.  Each worker's share is fixed by the number of workers, so results repeat exactly
from run to run; with another number of workers a convolution's weight gradient is summed in
another order (float rounding).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # running from a source tree without the dependency installed
    ThreadpoolController = None

# Handing work to a thread costs tens of microseconds, as much as ~1e5 elementwise operations:
# smaller jobs run on the calling thread.
MIN_PARALLEL_SIZE = 1 << 17

_lock = threading.Lock()
_num_threads: int | None = None
_pool: ThreadPoolExecutor | None = None
_controller = None
_in_worker = threading.local()


def _blas_controller():
    global _controller
    if _controller is None and ThreadpoolController is not None:
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def _default_num_threads() -> int:
    if os.environ.get("TINYGAN_NUM_THREADS"):
        try:
            return max(1, int(os.environ["TINYGAN_NUM_THREADS"]))
        except ValueError:
            raise ValueError("TINYGAN_NUM_THREADS must be a whole number of threads, "
                             f"got {os.environ['TINYGAN_NUM_THREADS']!r}") from None
    ctl = _blas_controller()
    if ctl is not None and ctl.lib_controllers:
        return max(1, min(c.num_threads for c in ctl.lib_controllers))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def num_threads() -> int:
    """How many worker threads the layers use on NumPy."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_num_threads()
    return _num_threads if ThreadpoolController is not None else 1


def set_num_threads(n: int) -> None:
    """Use ``n`` worker threads from now on (1: run chunks in order on the calling thread)."""
    global _num_threads, _pool
    if int(n) < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    with _lock:
        if _pool is not None and _num_threads != int(n):
            _pool.shutdown(wait=True)               # the pool was made for the old count
            _pool = None
        _num_threads = int(n)


def _get_pool(n):
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(n, thread_name_prefix="tinygan")
        return _pool


def even_ranges(n: int, parts: int):
    """``range(n)`` cut into ``parts`` contiguous slices of near-equal length (none empty)."""
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def split(items, parts: int):
    """``items`` cut into ``parts`` contiguous runs of near-equal length (none empty)."""
    items = list(items)
    return [items[s] for s in even_ranges(len(items), max(1, min(parts, len(items))))]


def worth_splitting(size: int) -> bool:
    """Whether work on ``size`` array elements is worth handing to several worker threads."""
    return size >= MIN_PARALLEL_SIZE and num_threads() > 1


def _run_as_worker(fn, part):
    _in_worker.active = True
    try:
        return fn(part)
    finally:
        _in_worker.active = False


def map_parts(fn, items, size=None):
    """``[fn(part) for part in split(items, workers)]``, the parts on worker threads at once.

    ``fn`` must only write to what its own part owns (its chunks' slices of the output) and
    return anything shared (a partial sum) for the caller to combine.  ``size``: the number of
    array elements the whole job touches, if known.  Runs in order on the calling thread where
    threads cannot help: one worker, one item, a small job, or a call from inside a worker
    (which would otherwise wait for the pool it occupies)."""
    n = num_threads()
    if (n == 1 or len(items) < 2 or getattr(_in_worker, "active", False)
            or (size is not None and size < MIN_PARALLEL_SIZE)):
        return [fn(list(items))]
    parts = split(items, n)
    pool = _get_pool(n)
    with _blas_controller().limit(limits=1):
        futures = [pool.submit(_run_as_worker, fn, part) for part in parts]
        try:
            return [f.result() for f in futures]
        finally:
            # Even when an error or Ctrl-C ends the wait early, no worker may still be writing
            # into the layer's arrays once this call has returned or raised.
            wait(futures)


def for_each_range(fn, n: int, size: int) -> None:
    """``fn(s)`` for slices ``s`` that cut ``range(n)`` into one range per worker, at once.

    For independent work along one axis of an array of ``size`` elements: the rows of a batch
    (activations), the features (BatchNorm).  One call ``fn(slice(0, n))`` where threads cannot
    help (see ``map_parts``)."""
    if not worth_splitting(size):
        fn(slice(0, n))
        return
    map_parts(lambda ranges: [fn(s) for s in ranges], even_ranges(n, num_threads()))
