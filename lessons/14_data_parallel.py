# %% [markdown]
# # Lesson 14: data parallelism -- N copies of a model, one step on one big batch
#
#     python lessons/14_data_parallel.py [--quick] [--out DIR]
#
# To train on N GPUs (or N CPU processes), give each one a copy of the model and 1/N of every
# batch.  Each copy computes the gradients of its share; the copies average their gradients (an
# "all-reduce") and take the same optimizer step, so they stay identical.  Why is that the step
# on the whole batch?  Because the loss is a mean over samples, and a mean of equal-sized shard
# means is the mean.  Where does it stop being true?  Where a sample's loss depends on the other
# samples in its batch: BatchNorm.  We check both with gradients, then train with 2 real MPI ranks
# (`mpiexec`, started by this script when mpi4py is installed; otherwise 2 threads of this
# process play the ranks, computing the same thing).
#
# Each part below is one function; the last cell, `main()`, runs them in order.

# %%
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import _common as C  # first: sets up the path (and BLAS threads) before NumPy loads
except ModuleNotFoundError:  # a notebook whose working directory is the repository root
    sys.path.insert(0, "lessons")
    import _common as C
import numpy as np

from tinygan.distributed import (
    LocalGroup,
    from_environment,
    rank_seed,
    run_ranks,
    why_mpi_cannot_run,
)
from tinygan.gan.stacked import StackedGANTrainer
from tinygan.layers import BatchNorm, Dense, LeakyReLU
from tinygan.losses import binary_cross_entropy_with_logits
from tinygan.models import dense_discriminator, dense_generator
from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import SGD
from tinygan.sequential import Sequential

RANKS, LATENT, SEED = 2, 4, 3
RADIUS, STD = 2.0, 0.05


def ring_points(rng, n):
    """n points from 8 Gaussian blobs on a circle (lesson 8's data), float32 (N, 2)."""
    angle = rng.integers(0, 8, n) * (2 * np.pi / 8)
    centres = RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (centres + STD * rng.standard_normal((n, 2))).astype(np.float32)


# %% [markdown]
# ## 1. A mean of shard means is the mean
#
# The loss of a batch of B samples is the mean of per-sample losses, `L = (1/B) sum_i l_i`.  Cut
# the batch into N shards of `b = B/N` samples:
#
#     L = (1/N) sum_k [ (1/b) sum_(i in shard k) l_i ] = (1/N) sum_k L_k
#
# Gradients are linear, so `dL/dw = (1/N) sum_k dL_k/dw`: the whole batch's gradient is the MEAN
# of the shards' gradients.  Each copy of the model can compute its `dL_k/dw` alone; one
# all-reduce averages them.  Here D is a small dense net (no BatchNorm) and the batch is 64
# points with random 0/1 targets.  We also try the SUM instead of the mean, a common bug.

# %%
def point_discriminator(batchnorm: bool, seed=1) -> Sequential:
    """point (N, 2) -> logit (N, 1); with ``batchnorm`` a BatchNorm after the first layer."""
    rng = np.random.default_rng(seed)
    layers = [Dense(2, 32, rng=rng, name="d_dense1")]
    layers += [BatchNorm(32, name="d_bn1")] if batchnorm else []
    layers += [LeakyReLU(0.2, name="d_lrelu1"), Dense(32, 32, rng=rng, name="d_dense2"),
               LeakyReLU(0.2, name="d_lrelu2"), Dense(32, 1, rng=rng, name="d_logit")]
    return Sequential(layers, input_shape=(2,), name="point_discriminator")


def gradients(D, x, target):
    """D's parameter gradients of the mean BCE loss on (x, target)."""
    D.zero_grad()
    _, grad = binary_cross_entropy_with_logits(D.forward(x, training=True), target)
    D.backward(grad)
    return [g.copy() for _, _, g in D.trainable_parameters()]


def relative_difference(a, b) -> float:
    """|a - b| / |a| over all parameters together (one norm: a bias ahead of BatchNorm has a
    gradient of ~0, whose own relative difference would be rounding over rounding)."""
    a, b = np.concatenate([x.ravel() for x in a]), np.concatenate([x.ravel() for x in b])
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def shard_mean_vs_whole(D, x, target, shards: int) -> float:
    """How far the mean of the shards' gradients is from the whole batch's gradient."""
    whole = gradients(D, x, target)
    per_shard = [gradients(D, xs, ts) for xs, ts in zip(np.split(x, shards), np.split(target, shards))]
    mean = [sum(gs) / shards for gs in zip(*per_shard)]
    return relative_difference(whole, mean)


def shard_means(x, target) -> dict:
    """The mean and the sum of 2 shards' gradients, each against the whole batch's gradient."""
    C.section("1. A mean of shard means is the mean")
    C.say("""The loss is a mean over samples, and a mean of equal shard means is the mean: the whole
             batch's gradient is the MEAN of the shards' gradients.  D: a small dense net, no
             BatchNorm; the batch: 64 points with random 0/1 targets.""")
    plain_d = point_discriminator(batchnorm=False)
    out = {"plain_rel_diff": shard_mean_vs_whole(plain_d, x, target, RANKS)}
    whole = gradients(plain_d, x, target)
    shard_sum = [sum(gs) for gs in zip(*[gradients(plain_d, xs, ts) for xs, ts in
                                         zip(np.split(x, RANKS), np.split(target, RANKS))])]
    out["sum_rel_diff"] = relative_difference(whole, shard_sum)
    C.show("mean of 2 shards' gradients vs whole batch", out["plain_rel_diff"], ".1e")
    C.show("SUM of 2 shards' gradients vs whole batch", out["sum_rel_diff"], ".3f")
    C.say("""The mean agrees to float32 rounding (the same numbers, added in another order); the
             sum is N times too large, a common bug.  With Adam it hides: Adam divides by the
             gradient's running scale, so a constant factor barely changes its steps.""")
    return out


# %% [markdown]
# ## 2. Where BatchNorm breaks it
#
# BatchNorm normalises every sample with the mean and variance of ITS batch.  So `l_i` depends on
# the other samples in the shard, the loss is no longer a sum of per-sample terms, and a shard's
# statistics are not the batch's.  Same data, same D with a BatchNorm after its first layer, the
# batch of 64 cut into more and more shards.

# %%
def where_batchnorm_breaks_it(args, x, target) -> dict:
    """Shard mean vs whole batch for 1 to 16 shards, with and without BatchNorm (and the figure)."""
    C.section("2. Where BatchNorm breaks it")
    C.say("""BatchNorm normalises every sample with the statistics of ITS batch, so a shard's
             statistics are not the batch's.  The batch of 64 in more and more shards:""")
    bn_d = point_discriminator(batchnorm=True)
    plain_d = point_discriminator(batchnorm=False)
    shard_counts = [1, 2, 4, 8, 16]
    out = {"shards": shard_counts}
    out["bn_curve"] = [shard_mean_vs_whole(bn_d, x, target, k) for k in shard_counts]
    out["plain_curve"] = [shard_mean_vs_whole(plain_d, x, target, k) for k in shard_counts]
    for k, p, b in zip(shard_counts, out["plain_curve"], out["bn_curve"]):
        C.show(f"{k:2d} x {64 // k:2d} points: without / with BatchNorm", f"{p:.1e} / {b:.1e}")
    C.say("""Without BatchNorm the shards' mean is the whole batch's gradient at any shard size.
             With it, the difference grows as shards shrink: a shard of 4 estimates its mean and
             variance badly.  That is not a bug but another model: BatchNorm's "batch" is now
             each rank's shard.  PyTorch's DistributedDataParallel trains this way (statistics
             per GPU), and so does tinygan; SyncBatchNorm would all-reduce the statistics as
             well (more messages in every BatchNorm layer, forward and backward) to restore the
             equality.  Keep the shards large enough for stable statistics: a global batch of
             128 on 8 GPUs leaves 8 real images per GPU per D step.""")
    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    # one shard is the whole batch itself (difference 0, off a log scale): plotted from 2 shards
    ax.semilogy(shard_counts[1:], out["plain_curve"][1:], "o-", label="no BatchNorm")
    ax.semilogy(shard_counts[1:], out["bn_curve"][1:], "s-", label="BatchNorm")
    ax.set_xscale("log", base=2)
    ax.set_xticks(shard_counts[1:], [f"{k} x {64 // k}" for k in shard_counts[1:]])
    ax.set_xlabel("shards x points of a batch of 64")
    ax.set_ylabel("mean of shard gradients vs whole\n(relative difference)")
    ax.legend()
    ax.set_title("Averaging shard gradients = whole batch, unless BatchNorm")
    C.save_figure(fig, args.out / "shards.png")
    return out


# %% [markdown]
# ## 3. Training on 2 ranks
#
# A dense GAN on lesson 8's ring of points, trained by `StackedGANTrainer(communicator=...)` on 2 ranks,
# each with its own copy of G and D and half of every batch, and each drawing its own noise.
# With mpi4py the script starts itself under `mpiexec` (`--rank-worker DIR`: each rank saves its
# final weights there); without it 2 threads of this process play the ranks
# (`tinygan.distributed.LocalGroup`).  The reference is ONE process on the whole batch that
# draws the same noise (rank 0's rows, then rank 1's).  Both runs: once without and once with
# BatchNorm in G.

# %%
def gan(batchnorm: bool):
    """A small dense GAN on points; ``batchnorm`` puts BatchNorm into the generator."""
    G = dense_generator(LATENT, (2,), hidden=(32, 32), batchnorm=batchnorm, tanh_output=False, seed=0)
    D = dense_discriminator((2,), hidden=(32, 32), seed=1)
    return G, D


def train_on_rank(comm, steps: int, half_batch: int, batchnorm: bool) -> dict:
    """``steps`` data-parallel steps on this rank; returns the final G and D weights."""
    G, D = gan(batchnorm)
    trainer = StackedGANTrainer(G, D, SGD(0.05), SGD(0.05), communicator=comm, latent_dim=LATENT, seed=SEED)
    data = ring_points(np.random.default_rng(0), steps * half_batch)
    for step in range(steps):
        trainer.train_step(comm.shard(data[step * half_batch:(step + 1) * half_batch]))
    return {**{f"G/{k}": v for k, v in G.state_dict().items()},
            **{f"D/{k}": v for k, v in D.state_dict().items()}}


class WholeBatchTrainer(StackedGANTrainer):
    """One process on the whole batch, drawing each step's noise from the ranks' generators
    (rank 0's rows, then rank 1's), so it sees exactly the noise the ranks see."""

    def __init__(self, *args, ranks: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.rank_rngs = [np.random.default_rng(rank_seed(SEED, r)) for r in range(ranks)]

    def sample_noise(self, n):
        rows = n // len(self.rank_rngs)
        return self.backend.asarray(np.concatenate([r.standard_normal((rows, self.latent_dim))
                                                    for r in self.rank_rngs]))


def train_whole_batch(steps: int, half_batch: int, batchnorm: bool) -> dict:
    G, D = gan(batchnorm)
    trainer = WholeBatchTrainer(G, D, SGD(0.05), SGD(0.05), latent_dim=LATENT, ranks=RANKS, seed=SEED)
    data = ring_points(np.random.default_rng(0), steps * half_batch)
    for step in range(steps):
        trainer.train_step(data[step * half_batch:(step + 1) * half_batch])
    return {**{f"G/{k}": v for k, v in G.state_dict().items()},
            **{f"D/{k}": v for k, v in D.state_dict().items()}}


def rank_worker(args) -> None:
    """What each MPI rank runs (``--rank-worker DIR``): both GANs; every rank saves its weights."""
    comm = from_environment()
    with comm.abort_on_error():
        for bn in (False, True):
            weights = train_on_rank(comm, args.steps, args.half_batch, bn)
            np.savez(Path(args.rank_worker) / f"bn{int(bn)}_rank{comm.rank}.npz", **weights)


def max_weight_difference(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def training_on_ranks(args, steps) -> dict:
    """Both GANs on RANKS ranks (MPI or threads), each compared with the other rank and the whole batch."""
    C.section(f"3. Training on {RANKS} ranks")
    reason = why_mpi_cannot_run()
    rank_dir = args.out / "ranks"
    rank_dir.mkdir(exist_ok=True)
    script = C.LESSONS / "14_data_parallel.py"      # this file (a notebook has no __file__)
    worker_args = ["--rank-worker", rank_dir, "--steps", steps, "--half-batch", args.half_batch,
                   "--out", args.out]
    out = {}
    if reason is None:
        C.say(f"""Starting `mpiexec -n {RANKS} python {script.name} --rank-worker ...`: {RANKS}
                  processes, each with its own copy of G and D and half of every batch.""")
        result = run_ranks(RANKS, [script, *worker_args], timeout=300,
                           env={"OPENBLAS_NUM_THREADS": "1", "TINYGAN_NUM_THREADS": "1"})
        if result.returncode != 0:
            sys.exit(f"error: the {RANKS} MPI ranks failed:\n{result.stderr[-2000:]}")
        out["launched"] = "mpiexec"
    else:
        C.say(f"""MPI cannot run here ({reason}), so {RANKS} threads of this process play the
                  ranks (tinygan.distributed.LocalGroup): the same trainer, the same shards, the
                  same averaging, without separate processes.""")
        LocalGroup(RANKS).run(lambda comm: [np.savez(rank_dir / f"bn{int(bn)}_rank{comm.rank}.npz",
                                                     **train_on_rank(comm, steps, args.half_batch, bn))
                                            for bn in (False, True)])
        out["launched"] = "threads"
    C.say(f"""Both runs: a dense GAN on lesson 8's ring of points, global batch {args.half_batch}
              real points per step ({args.half_batch // RANKS} per rank), plain SGD (lr 0.05), {steps}
              steps; each rank draws its own noise.  The reference is ONE process on the whole batch
              that draws the same noise (rank 0's rows, then rank 1's).""")
    for bn, name in ((False, "G without BatchNorm"), (True, "G with BatchNorm")):
        ranks = [dict(np.load(rank_dir / f"bn{int(bn)}_rank{r}.npz")) for r in range(RANKS)]
        whole = train_whole_batch(steps, args.half_batch, bn)
        between = max_weight_difference(ranks[0], ranks[1])
        vs_whole = max_weight_difference(ranks[0], whole)
        key = "bn" if bn else "plain"
        out[f"{key}_between_ranks"], out[f"{key}_vs_whole"] = between, vs_whole
        C.show(f"{name}: rank 0 vs rank 1", between, ".1e")
        C.show(f"{name}: ranks vs whole batch", vs_whole, ".1e")
    C.say("""The ranks hold identical weights: the same averaged gradients applied to the same
             weights.  Without BatchNorm they are also the whole-batch run, up to float32 rounding.
             With BatchNorm in G, each rank's fakes were normalised by its own shard's statistics,
             so the ranks trained a (slightly) different model than the whole batch would have:
             the same per-shard arithmetic that PyTorch's DDP does.""")
    return out


# %% [markdown]
# ## 4. What it costs: one all-reduce of G and one of D per step
#
# Every step all-reduces every parameter's gradient once.  For the DCGAN-64 of the paper
# (`base_filters` 64) that is millions of float32 numbers; a ring all-reduce moves `2(N-1)/N` of
# the data through every GPU, whatever N is.  How long that takes over NVLink and over Ethernet:

# %%
def what_it_costs() -> dict:
    """The DCGAN-64's parameter count and the time its gradients' all-reduce takes."""
    C.section("4. What it costs: one all-reduce of G and one of D per step")
    G64, D64 = dcgan64_generator(100, 64, 3), dcgan64_discriminator(64, 3)
    out = {"dcgan_params": {"G": G64.num_params(), "D": D64.num_params()}}
    megabytes = 4 * (G64.num_params() + D64.num_params()) / 1e6
    out["dcgan_allreduce_mb"] = megabytes
    ring = 2 * (8 - 1) / 8 * megabytes
    C.show("DCGAN-64 f=64 parameters, G + D", f"{G64.num_params():,} + {D64.num_params():,}")
    C.show("float32 gradients all-reduced per step", f"{megabytes:.1f} MB")
    C.show("sent and received by each of 8 GPUs (ring)", f"{ring:.1f} MB")
    C.show("  over NVLink 4 (~450 GB/s per GPU)", f"{ring / 450e3 * 1e3:.2f} ms")
    C.show("  over 25 Gb/s Ethernet (3.1 GB/s)", f"{ring / 3.125e3 * 1e3:.1f} ms")
    C.say("""A ring all-reduce moves 2(N-1)/N of the data through every GPU, whatever N is.  Next to
             a ~14 ms training step (PyTorch's DCGAN on one H100, batch 128) NVLink's 0.1 ms is
             nothing; Ethernet's 14 ms doubles the step.  docs/distributed.md works it through.""")
    return out


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def add_arguments(parser):
    parser.add_argument("--rank-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help="training steps in part 3")
    parser.add_argument("--half-batch", type=int, default=32, help=argparse.SUPPRESS)


def main(argv=None) -> dict:
    args = C.parse_args(argv, "14_data_parallel", "Lesson 14: data parallelism "
                        "-- N copies of a model, one step on one big batch", add_arguments)
    if args.rank_worker:
        rank_worker(args)
        return {}
    steps = args.steps or (20 if args.quick else 100)
    C.title("Lesson 14: data parallelism")
    rng = np.random.default_rng(1)
    x = ring_points(rng, 64)                                   # the batch of parts 1 and 2
    target = rng.integers(0, 2, (64, 1)).astype(np.float32)
    out = shard_means(x, target)
    out.update(where_batchnorm_breaks_it(args, x, target))
    out.update(training_on_ranks(args, steps))
    out.update(what_it_costs())
    return out


if __name__ == "__main__":
    main()
