"""Ranks as threads of one process: data-parallel training without MPI, for lessons and tests.

    group = LocalGroup(2)
    results = group.run(lambda comm: train(comm))     # train(comm) on 2 threads, comm.rank 0 and 1

Each thread holds its own model copy and calls the same Communicator API as an MPI rank.  The
collectives meet at a barrier and do the arithmetic in the plainest way: the mean of a gradient
is ``(g_0 + g_1 + ... ) / size``, one array at a time, ranks added in order.  That is the reference
the flat-buffer MPI all-reduce is tested against.  (Threads share the interpreter lock, so this
is not faster than one process; it only computes the same thing.)
"""
from __future__ import annotations

import sys
import threading

from .communicator import Communicator


class LocalGroup:
    """``size`` communicators that talk through shared memory and a barrier."""

    def __init__(self, size: int, timeout: float = 120.0):
        if int(size) < 1:
            raise ValueError(f"LocalGroup: need at least 1 rank, got {size}")
        self.size = int(size)
        self._barrier = threading.Barrier(self.size, timeout=timeout)
        self._slots = [None] * self.size
        self.communicators = [LocalCommunicator(self, r) for r in range(self.size)]

    def run(self, fn) -> list:
        """``[fn(comm) for each rank]``, every rank on its own thread at once.

        If a rank raises, the barrier is broken so that the others stop waiting, and the first
        error is raised here."""
        results, errors = [None] * self.size, [None] * self.size

        def rank_main(comm):
            try:
                results[comm.rank] = fn(comm)
            except BaseException as e:
                errors[comm.rank] = e
                self._barrier.abort()

        threads = [threading.Thread(target=rank_main, args=(c,), name=f"rank{c.rank}")
                   for c in self.communicators]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        first = next((e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)),
                     next((e for e in errors if e is not None), None))
        if first is not None:
            raise first
        return results


class LocalCommunicator(Communicator):
    """One rank of a :class:`LocalGroup`."""

    def __init__(self, group: LocalGroup, rank: int):
        self.group, self.rank, self.size = group, rank, group.size

    def _exchange(self, value) -> list:
        """Every rank's ``value``, on every rank."""
        g = self.group
        g._slots[self.rank] = value
        g._barrier.wait()
        values = list(g._slots)
        g._barrier.wait()        # all have read the slots before any rank writes them again
        return values

    def average_arrays(self, arrays) -> None:
        everyone = self._exchange(list(arrays))
        means = []
        for i in range(len(arrays)):
            total = everyone[0][i].copy()
            for r in range(1, self.size):
                total += everyone[r][i]
            means.append(total / self.size)
        self.barrier()           # all have read every rank's arrays before any overwrites its own
        for a, m in zip(arrays, means):
            a[...] = m

    def broadcast_arrays(self, arrays, root: int = 0) -> None:
        source = self._exchange(list(arrays))[root]
        if self.rank != root:
            for a, s in zip(arrays, source):
                a[...] = s
        self.barrier()           # root's arrays are not changed while others still copy them

    def broadcast_object(self, obj, root: int = 0):
        return self._exchange(obj)[root]

    def allgather_object(self, obj) -> list:
        return self._exchange(obj)

    def any_rank(self, flag) -> bool:
        return any(self._exchange(bool(flag)))

    def barrier(self) -> None:
        self.group._barrier.wait()

    def abort(self, message: str, code: int = 1, details: str = ""):
        print(f"{details}error: rank {self.rank} of {self.size}: {message}", file=sys.stderr, flush=True)
        self.group._barrier.abort()
        raise SystemExit(code)
