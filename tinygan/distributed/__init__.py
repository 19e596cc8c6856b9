"""Data-parallel training: one model copy per process (rank), each on its share of the batch,
gradients averaged before every optimizer step so that the copies stay identical.

    comm = distributed.init(backend)          # MPI under `mpiexec -n N`, else a one-process no-op
    trainer = StackedGANTrainer(G, D, g_opt, d_opt, communicator=comm, ...)
    with comm.abort_on_error():
        for step in ...:
            trainer.train_step(comm.shard(global_half_batch))
            if comm.any_rank(stop_requested):  # Ctrl-C / SIGTERM on any rank: all stop together
                ...

Modules: ``communicator`` (the API, one process and MPI), ``nccl`` (CuPy arrays over NCCL),
``local`` (ranks as threads, the plain reference), ``launch`` (starting ranks with mpiexec from
Python).  The trainer's side is four lines of :class:`tinygan.gan.StackedGANTrainer`; the run's
(who writes, how a stop is agreed) is in :mod:`tinygan.training`.
"""
from .communicator import (
    Communicator,
    DistributedError,
    MPICommunicator,
    SingleProcess,
    check_world_size,
    from_environment,
    init,
    launched_world_size,
    mpi_available,
    quiet_other_ranks,
    rank_seed,
    shard_rows,
)
from .launch import find_mpiexec, run_ranks, why_mpi_cannot_run
from .local import LocalCommunicator, LocalGroup

__all__ = ["Communicator", "SingleProcess", "MPICommunicator", "LocalGroup", "LocalCommunicator",
           "DistributedError", "init", "from_environment", "launched_world_size", "mpi_available",
           "shard_rows", "rank_seed", "check_world_size", "quiet_other_ranks", "find_mpiexec",
           "run_ranks", "why_mpi_cannot_run"]
