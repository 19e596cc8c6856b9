"""Communicators: what the ranks of a data-parallel run say to each other.

Every rank holds a full copy of G and D.  A step on a global batch goes:

    each rank: its shard of the batch -> forward, backward -> its own gradients
    all ranks: gradients averaged (an all-reduce) -> every rank holds the same mean gradient
    each rank: the same optimizer step on the same weights -> the copies stay identical

A :class:`Communicator` offers exactly the operations that needs, with the same API for one
process (:class:`SingleProcess`: everything is a no-op, so training code never asks "am I
distributed?") and for MPI ranks (:class:`MPICommunicator`).  ``tinygan.distributed.local``
has a third kind, ranks as threads of one process, for lessons and tests.

The all-reduce sends ONE message per call: :class:`MPICommunicator` copies every gradient into
one flat buffer, reduces it, and copies the mean back.  Latency is paid per message, so one
message of 10 MB beats 20 messages of 0.5 MB.  The plain per-array mean that this must equal
is ``LocalCommunicator.average_arrays``.
"""
from __future__ import annotations

import os
import pickle
import sys
import time
import traceback
from contextlib import contextmanager

import numpy as np

from ..backend import get_array_module, to_numpy
from ..errors import CheckpointError

# Launchers tell each process how many were started: MPICH/Hydra and Intel MPI (PMI_SIZE), Open MPI,
# MVAPICH.  Reading them lets a plain `python script.py` skip importing MPI at all.
_WORLD_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
ABORT_GRACE_S = 0.5     # seconds between a failing rank's last words and the abort
_INSTALL_HINT = 'install the MPI extra with `pip install -e ".[mpi]"` (mpi4py and the mpich wheel)'


class DistributedError(RuntimeError):
    """A data-parallel run cannot start or continue as asked (MPI missing, a rank count that does
    not fit the batch or the checkpoint, ...)."""


def shard_rows(batch, rank: int, size: int):
    """Rank ``rank``'s share of a global batch: rows ``[rank*b, (rank+1)*b)`` with ``b = len/size``.

    Every rank holds the same global batch (the same seeded order), so the shards are disjoint and
    together they are the batch.  Works on arrays and on index arrays (shard the indices, then load
    only those images)."""
    n = len(batch)
    if n % size:
        raise DistributedError(f"a global batch of {n} rows cannot be split evenly over {size} ranks; "
                               f"use a batch size divisible by {size}")
    b = n // size
    return batch[rank * b:(rank + 1) * b]


def check_world_size(saved: int, size: int) -> None:
    """CheckpointError unless a checkpoint written by a run on ``saved`` ranks is resumed on
    ``size``: each rank's noise and its share of every batch depend on the number of ranks."""
    if saved != size:
        how = f"`mpiexec -n {saved} ...`" if saved > 1 else "one process, without mpiexec"
        raise CheckpointError(f"it was written by a run on {saved} rank{'s' * (saved != 1)} and this run "
                              f"has {size}: resume it with {how} (each rank's noise and share of every "
                              f"batch depend on the number of ranks)")


def _travelling(e: BaseException) -> BaseException:
    """``e`` if it survives pickling (being sent to the other ranks), else a DistributedError with
    its text (an exception whose constructor takes other arguments than its message cannot)."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return DistributedError(f"{type(e).__name__}: {e}")


def _naming_rank(e: BaseException, rank: int, size: int) -> BaseException:
    """``e`` with "on rank R of N: " before its message, where its type allows (for the ranks that
    raise another rank's error)."""
    try:
        named = type(e)(f"on rank {rank} of {size}: {e}")
        return named if str(named).startswith("on rank") else e
    except Exception:
        return e


def rank_seed(seed, rank: int):
    """The noise seed of ``rank``: ``seed`` itself on rank 0 (so a one-rank run draws the noise a
    plain run draws) and, on rank r > 0, child r of ``np.random.SeedSequence(seed)`` (what
    ``SeedSequence(seed).spawn(r + 1)[r]`` gives): independent streams, the same on every run."""
    if rank == 0:
        return seed
    return np.random.SeedSequence(seed, spawn_key=(int(rank),))


def _pack(arrays, dtype):
    """One flat, contiguous copy of ``arrays`` (the message)."""
    xp = get_array_module(*arrays)
    return xp.concatenate([a.reshape(-1) for a in arrays]).astype(dtype, copy=False)


def _unpack(flat, arrays) -> None:
    """Copy ``flat`` back into ``arrays`` in place (the inverse of _pack)."""
    start = 0
    for a in arrays:
        a[...] = flat[start:start + a.size].reshape(a.shape)
        start += a.size


def _by_dtype(arrays):
    """``arrays`` grouped by dtype (one message per dtype; a model in float32 has one group)."""
    groups: dict = {}
    for a in arrays:
        groups.setdefault(np.dtype(a.dtype), []).append(a)
    return groups.items()


def model_arrays(models, parameters: bool = True, buffers: bool = True):
    """The parameter and/or buffer arrays of ``models`` (Sequentials), in a fixed order."""
    out = []
    for model in models:
        for layer in model.layers:
            if parameters:
                out += [layer.params[k] for k in layer.params]
            if buffers:
                out += [layer.buffers[k] for k in layer.buffers]
    return out


class Communicator:
    """The operations of data-parallel training.  ``rank`` in ``0..size-1``; rank 0 is the root,
    the one rank that writes files and prints.  Subclasses supply the collectives at the bottom."""

    rank: int = 0
    size: int = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # -- training -------------------------------------------------------------------------------
    def average_gradients(self, params) -> None:
        """Replace every gradient in ``params`` (the ``(key, param, grad)`` list that optimizers
        take, e.g. ``model.trainable_parameters()``) by its mean over the ranks, in place.
        Every rank must call it with the same keys in the same order."""
        if self.size > 1:                     # one process: not even a list is made
            grads = [g for _, _, g in params]
            if grads:
                self.average_arrays(grads)

    def broadcast_parameters(self, *models) -> None:
        """Give every rank rank 0's weights and buffers (before training, so all copies start equal)."""
        if self.size > 1:
            self.broadcast_arrays(model_arrays(models))

    def broadcast_buffers(self, *models) -> None:
        """Give every rank rank 0's buffers (BatchNorm running statistics), as PyTorch's DDP does.

        Each rank's BatchNorm normalises with its own shard's statistics, so the running averages
        drift apart; training never reads them (training mode uses batch statistics), but after
        this every rank holds the same complete state."""
        if self.size > 1:
            self.broadcast_arrays(model_arrays(models, parameters=False))

    def shard(self, batch):
        """This rank's rows of a global batch (see :func:`shard_rows`)."""
        return shard_rows(batch, self.rank, self.size)

    def rank_seed(self, seed):
        """This rank's noise seed (see :func:`rank_seed`)."""
        return rank_seed(seed, self.rank)

    def run_on_root(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` on rank 0 alone, its (picklable) result returned on every rank.

        If it raises there, every rank raises the same error, so a bad path or checkpoint stops
        all ranks alike instead of leaving the others waiting for rank 0."""
        if self.size == 1:
            return fn(*args, **kwargs)
        payload = None
        if self.is_root:
            try:
                payload = ("ok", fn(*args, **kwargs))
            except Exception as e:  # handed to every rank below
                payload = ("error", _travelling(e))
        kind, value = self.broadcast_object(payload)
        if kind == "error":
            raise value
        return value

    @contextmanager
    def root_first(self):
        """A block that rank 0 runs first and the other ranks after it (rank 0 fills a cache that
        the others then read, instead of all building it at once).

        An exception in the block on any rank is raised on every rank (naming the rank it came
        from), so a missing file on one machine stops all ranks alike instead of leaving the
        others waiting.  A collective: every rank runs the block."""
        if self.size == 1:
            yield
            return
        error = None
        if self.is_root:
            try:
                yield
            except BaseException as e:          # Ctrl-C too: the others must not wait for rank 0
                error = e
            self.broadcast_object(None if error is None else _travelling(error))
            if error is not None:
                raise error
        else:
            first = self.broadcast_object(None)
            if first is not None:
                raise first
            try:
                yield
            except BaseException as e:
                error = e
        errors = self.allgather_object(None if error is None else _travelling(error))
        if error is not None:
            raise error
        failed = next((r for r, e in enumerate(errors) if e is not None), None)
        if failed is not None:
            raise _naming_rank(errors[failed], failed, self.size)

    @contextmanager
    def abort_on_error(self, agreed=()):
        """Wrap a run: an exception that escapes on one rank aborts every rank with a message.

        Without it the failed rank exits while the others wait forever in their next all-reduce.
        ``sys.exit(0)`` passes through (a clean stop that all ranks agreed on, see :meth:`any_rank`),
        and so do the exception types in ``agreed``: errors that every rank raises at the same step
        (the NaN guard's, decided from numbers every rank shares), which end each rank the normal
        way.  In one process everything passes through untouched."""
        if self.size == 1:
            yield self
            return
        try:
            yield self
        except tuple(agreed):
            raise
        except SystemExit as e:
            if e.code in (None, 0):
                raise
            self.abort(f"exited with status {e.code}; stopping the other ranks",
                       code=e.code if isinstance(e.code, int) else 1)
        except KeyboardInterrupt:
            self.abort("interrupted; stopping the other ranks")
        except BaseException as e:
            self.abort(f"{type(e).__name__}: {e}; stopping the other ranks", details=traceback.format_exc())

    # -- collectives each kind of communicator supplies -------------------------------------------
    def average_arrays(self, arrays) -> None:
        """Replace each array by its mean over the ranks, in place."""
        raise NotImplementedError

    def broadcast_arrays(self, arrays, root: int = 0) -> None:
        """Overwrite each array with rank ``root``'s, in place."""
        raise NotImplementedError

    def broadcast_object(self, obj, root: int = 0):
        """Rank ``root``'s (picklable) ``obj``, on every rank."""
        raise NotImplementedError

    def allgather_object(self, obj) -> list:
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
        raise NotImplementedError

    def any_rank(self, flag) -> bool:
        """True on every rank if ``flag`` is true on any rank (a logical-OR all-reduce).

        How Ctrl-C or SIGTERM stops a run cleanly: each rank's signal handler only sets a flag,
        and once per step every rank asks ``any_rank(flag)``; all see the same answer at the same
        step, so they save and exit together."""
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def abort(self, message: str, code: int = 1, details: str = ""):
        """Print ``details`` (a traceback) and ``message`` (naming this rank), end every rank now."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class SingleProcess(Communicator):
    """One process: the same API, and nothing to communicate."""

    def average_arrays(self, arrays) -> None:
        pass

    def broadcast_arrays(self, arrays, root: int = 0) -> None:
        pass

    def broadcast_object(self, obj, root: int = 0):
        return obj

    def allgather_object(self, obj) -> list:
        return [obj]

    def any_rank(self, flag) -> bool:
        return bool(flag)

    def barrier(self) -> None:
        pass

    def abort(self, message: str, code: int = 1, details: str = ""):
        print(f"{details}error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(code)


class MPICommunicator(Communicator):
    """The ranks of an MPI run (``mpiexec -n N python ...``), through mpi4py.

    NumPy arrays go to MPI as they are.  CuPy arrays go through NCCL when ``device_reduce`` (a
    :class:`tinygan.distributed.nccl.NcclReduce`) is given, else through host copies and MPI."""

    def __init__(self, comm=None, device_reduce=None):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.device_reduce = device_reduce

    def _on_device(self, flat) -> bool:
        return self.device_reduce is not None and get_array_module(flat) is not np

    def _allreduce_sum(self, flat) -> None:
        if self._on_device(flat):
            self.device_reduce.allreduce_sum(flat)
            return
        host = to_numpy(flat)                       # the array itself on NumPy, a copy from CuPy
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        if host is not flat:
            flat[...] = get_array_module(flat).asarray(host)

    def _bcast(self, flat, root: int) -> None:
        if self._on_device(flat):
            self.device_reduce.broadcast(flat, root)
            return
        host = to_numpy(flat)
        self.comm.Bcast(host, root=root)
        if host is not flat:
            flat[...] = get_array_module(flat).asarray(host)

    def average_arrays(self, arrays) -> None:
        for dtype, group in _by_dtype(arrays):
            flat = _pack(group, dtype)
            self._allreduce_sum(flat)
            flat /= self.size
            _unpack(flat, group)

    def broadcast_arrays(self, arrays, root: int = 0) -> None:
        for dtype, group in _by_dtype(arrays):
            flat = _pack(group, dtype)
            self._bcast(flat, root)
            _unpack(flat, group)

    def broadcast_object(self, obj, root: int = 0):
        return self.comm.bcast(obj, root=root)

    def allgather_object(self, obj) -> list:
        return self.comm.allgather(obj)

    def any_rank(self, flag) -> bool:
        return bool(self.comm.allreduce(bool(flag), op=self.MPI.LOR))

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, message: str, code: int = 1, details: str = ""):
        sys.stdout.flush()
        sys.stderr.flush()
        # One write, then a pause: mpiexec forwards output asynchronously, and an abort that
        # comes first tears the ranks down with the message still in the pipe.
        text = f"{details}error: rank {self.rank} of {self.size}: {message}\n"
        os.write(_terminal_fd(), text.encode(errors="replace"))
        time.sleep(ABORT_GRACE_S)
        self.comm.Abort(code)
        os._exit(code)           # MPI_Abort may return before the launcher kills this process


def _terminal_fd() -> int:
    """The process's own stderr, also where :func:`quiet_other_ranks` has muted ``sys.stderr``."""
    try:
        return sys.__stderr__.fileno()
    except (AttributeError, OSError, ValueError):
        return 2


def quiet_other_ranks(comm) -> None:
    """On every rank but 0, ``print``, progress bars, warnings and ``error:`` lines go nowhere:
    rank 0 speaks for the run, whose ranks all do (and fail) alike.  What one rank alone has to
    say still reaches the terminal, naming the rank: :meth:`Communicator.abort`'s message and the
    traceback of an uncaught exception."""
    if comm.is_root:
        return
    devnull = open(os.devnull, "w")
    sys.stdout = sys.stderr = devnull

    def excepthook(kind, value, tb):
        text = "".join(traceback.format_exception(kind, value, tb))
        os.write(_terminal_fd(), f"rank {comm.rank} of {comm.size}: {text}".encode(errors="replace"))

    sys.excepthook = excepthook


def launched_world_size() -> int:
    """How many processes the launcher (mpiexec) started, from its environment; 1 without one."""
    for name in _WORLD_SIZE_VARIABLES:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 1


def mpi_available() -> bool:
    """Whether mpi4py imports (it finds an MPI library when it is first used, not here)."""
    try:
        import mpi4py  # noqa: F401
        return True
    except ImportError:
        return False


def from_environment() -> Communicator:
    """:class:`MPICommunicator` when this process is one of several started by mpiexec, else
    :class:`SingleProcess` (without importing MPI at all)."""
    launched = launched_world_size()
    if launched <= 1:
        return SingleProcess()
    if not mpi_available():
        raise DistributedError(f"this process is one of {launched} started by mpiexec, but mpi4py is not "
                               f"installed; {_INSTALL_HINT}")
    comm = MPICommunicator()
    if comm.size != launched:
        # Another MPI's mpiexec started us: each process would train alone and all would write.
        raise DistributedError(
            f"mpiexec started {launched} processes but MPI sees {comm.size}: the mpiexec used belongs to "
            f"another MPI than mpi4py's; launch with the mpiexec installed beside this Python "
            f"({os.path.join(os.path.dirname(sys.executable), 'mpiexec')})")
    return comm


def init(backend="numpy", quiet: bool = True) -> Communicator:
    """The communicator of this run, set up for ``backend`` ("numpy", "cupy", or a Backend).

    Call it first, before any array is made: on CuPy each rank binds the GPU of its local rank
    (its index among the ranks on its machine) and the gradients go through NCCL, or through host
    copies and MPI where NCCL is missing.  ``quiet``: only rank 0 prints (:func:`quiet_other_ranks`)."""
    comm = from_environment()
    name = getattr(backend, "name", backend)
    if comm.size > 1 and name == "cupy":
        from .nccl import bind_local_gpu, nccl_reduce_or_none
        bind_local_gpu(comm)
        comm.device_reduce = nccl_reduce_or_none(comm)
    if quiet:
        quiet_other_ranks(comm)
    return comm
