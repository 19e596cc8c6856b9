"""The GPU side of a data-parallel run: one GPU per rank, gradients summed by NCCL.

NCCL (NVIDIA's collective library, ``cupy.cuda.nccl``) sums arrays that stay on the GPUs, over
NVLink or the network, without a copy to the host.  It needs no launcher of its own: rank 0 makes
a unique id, MPI broadcasts it, and every rank joins the NCCL communicator with it.

The host-side twin of this module is ``MPICommunicator``'s NumPy path, which the tests run: both
sum one flat buffer (``allreduce_sum``) and overwrite one from the root (``broadcast``).
"""
from __future__ import annotations

import sys


def local_rank_and_size(comm) -> tuple[int, int]:
    """This rank's index among the ranks on its machine, and how many there are (MPI's shared-memory
    split: ranks that can share memory are on one machine)."""
    local = comm.comm.Split_type(comm.MPI.COMM_TYPE_SHARED)
    try:
        return local.Get_rank(), local.Get_size()
    finally:
        local.Free()


def bind_local_gpu(comm) -> int:
    """Make GPU ``local rank`` this process's current device; returns its number.

    With more ranks on a machine than GPUs, ranks share GPUs round-robin (NCCL refuses that, so
    :func:`nccl_reduce_or_none` then falls back to MPI)."""
    import cupy
    local_rank, local_size = local_rank_and_size(comm)
    n_gpus = cupy.cuda.runtime.getDeviceCount()
    device = local_rank % n_gpus
    cupy.cuda.Device(device).use()
    comm.gpus_shared = local_size > n_gpus
    return device


class NcclReduce:
    """Sum and broadcast of CuPy arrays across the ranks of ``comm`` (an MPICommunicator)."""

    def __init__(self, comm):
        from cupy.cuda import nccl
        self.nccl = nccl
        uid = nccl.get_unique_id() if comm.is_root else None
        uid = comm.broadcast_object(uid)
        self.comm = nccl.NcclCommunicator(comm.size, uid, comm.rank)
        self._types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}

    def _type(self, a):
        try:
            return self._types[a.dtype.name]
        except KeyError:
            raise TypeError(f"NCCL reduce: arrays of {a.dtype} are not supported; "
                            f"expected {sorted(self._types)}") from None

    def allreduce_sum(self, flat) -> None:
        import cupy
        stream = cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(flat.data.ptr, flat.data.ptr, flat.size, self._type(flat),
                            self.nccl.NCCL_SUM, stream)

    def broadcast(self, flat, root: int) -> None:
        import cupy
        stream = cupy.cuda.get_current_stream().ptr
        self.comm.bcast(flat.data.ptr, flat.size, self._type(flat), root, stream)


def nccl_reduce_or_none(comm):
    """An NcclReduce for ``comm``, or None (with one line on rank 0 saying why) where NCCL cannot
    be used: CuPy built without it, or ranks sharing a GPU."""
    reason = None
    if getattr(comm, "gpus_shared", False):
        reason = "more ranks than GPUs on a machine"
    else:
        try:
            from cupy.cuda import nccl
            if not getattr(nccl, "available", True):
                reason = "CuPy was built without NCCL"
        except ImportError as e:
            reason = f"cupy.cuda.nccl cannot be imported ({e})"
    # Every rank must take the same road, or some would wait in NCCL and others in MPI.
    reasons = comm.allgather_object(reason)
    reason = next((r for r in reasons if r), None)
    if reason is None:
        return NcclReduce(comm)
    if comm.is_root:
        print(f"note: {reason}: gradients are summed by MPI through host copies", file=sys.stderr)
    return None
