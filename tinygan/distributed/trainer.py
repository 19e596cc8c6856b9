"""The stacked GAN trainer on one rank of a data-parallel run.

What changes against one process, and nothing else:

* the weights start equal on every rank (rank 0's, broadcast);
* before every optimizer step, of D and of G, the gradients are averaged over the ranks;
* each rank draws its own noise, from ``comm.rank_seed(seed)``;
* after every step every rank takes rank 0's BatchNorm running statistics (as PyTorch's DDP
  does), so all ranks hold the same state; the batch statistics a step normalises with are
  still each rank's own shard's;
* a checkpoint stores every rank's noise generator and the number of ranks, and refuses to be
  resumed with another number.

Each rank calls ``train_step`` with its shard of the global batch (``comm.shard``).
"""
from __future__ import annotations

from ..errors import CheckpointError
from ..gan.stacked import StackedGANTrainer


def average_then_step(comm, optimizer, params) -> None:
    """The one line data parallelism adds to a training step: average the gradients over the
    ranks, then step (on every rank the same step on the same weights)."""
    params = list(params)
    comm.average_gradients(params)
    optimizer.step(params)


class AveragingOptimizer:
    """``optimizer`` whose ``step`` is :func:`average_then_step`; everything else (its state,
    hyperparameters, saving) is the wrapped optimizer's."""

    def __init__(self, optimizer, comm):
        object.__setattr__(self, "optimizer", optimizer)
        object.__setattr__(self, "comm", comm)

    def step(self, params) -> None:
        average_then_step(self.comm, self.optimizer, params)

    def __getattr__(self, name):          # only called for names this object lacks
        if name == "optimizer":               # not set yet (copy, pickle): no endless recursion
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __setattr__(self, name, value):      # opt.lr = ... sets the real optimizer's rate
        setattr(self.optimizer, name, value)

    def __repr__(self) -> str:
        return f"AveragingOptimizer({self.optimizer!r}, {self.comm!r})"


class DistributedStackedGANTrainer(StackedGANTrainer):
    """A :class:`StackedGANTrainer` whose steps are averaged over the ranks of ``communicator``.

    Built on every rank with the same arguments; with ``SingleProcess()`` it trains exactly as a
    StackedGANTrainer does."""

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, *, communicator,
                 seed: int = 0, **kwargs):
        self.comm = communicator
        super().__init__(generator, discriminator, AveragingOptimizer(g_optimizer, communicator),
                         AveragingOptimizer(d_optimizer, communicator),
                         seed=communicator.rank_seed(seed), **kwargs)
        communicator.broadcast_parameters(self.G, self.D)

    def train_step(self, real):
        """One step on this rank's shard ``real`` (a ``len(real) * size`` global half batch)."""
        stats = super().train_step(real)
        self.comm.broadcast_buffers(self.G, self.D)
        return stats

    # -- checkpointing: a collective; every rank calls it, rank 0 writes ------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        state["world_size"] = self.comm.size
        state["rank_noise_rng"] = self.comm.allgather_object(self.noise_rng.bit_generator.state)
        state["noise_rng"] = state["rank_noise_rng"][0]      # the same state dict on every rank
        return state

    def load_state_dict(self, state: dict) -> None:
        saved = int(state.get("world_size", 1))
        if saved != self.comm.size:
            how = f"`mpiexec -n {saved} ...`" if saved > 1 else "one process, without mpiexec"
            raise CheckpointError(
                f"it was written by a run on {saved} rank(s) and this run has {self.comm.size}: each "
                f"rank's noise and its share of every batch depend on the number of ranks; "
                f"resume it with {how}")
        super().load_state_dict(state)
        if "rank_noise_rng" in state:
            self.noise_rng.bit_generator.state = state["rank_noise_rng"][self.comm.rank]
