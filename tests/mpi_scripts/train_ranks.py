"""A few data-parallel training steps of a small DCGAN on fixed data, for tests/test_distributed.py.

    mpiexec -n 2 python tests/mpi_scripts/train_ranks.py --out DIR --steps 4 [options]

Every rank writes DIR/rank<r>.npz (its trainer's complete state after the last step) and
DIR/rank<r>.json (how far it got); rank 0 alone writes checkpoints.  The test imports ``train``
and runs it on ranks that are threads of one process (tinygan.distributed.LocalGroup) as the
reference.  --fail-rank/--fail-step make one rank raise; --signal-rank/--signal-step make one
rank send itself SIGTERM, as `kill` or a cluster's time limit would; --started-file tells a test
when to press Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))     # tinygan from this checkout

import numpy as np  # noqa: E402

from tinygan.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state  # noqa: E402
from tinygan.data.batches import Minibatches  # noqa: E402
from tinygan.distributed import from_environment  # noqa: E402
from tinygan.gan import StackedGANTrainer  # noqa: E402
from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator  # noqa: E402
from tinygan.optimizers import SGD, Adam  # noqa: E402

LATENT, FILTERS, IMAGES = 16, 8, 32


def parse_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=8, help="global half batch of real images")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--save-every", type=int, default=0)
    p.add_argument("--resume", default=None)
    p.add_argument("--fail-rank", type=int, default=-1)
    p.add_argument("--fail-step", type=int, default=-1)
    p.add_argument("--signal-rank", type=int, default=-1)
    p.add_argument("--signal-step", type=int, default=-1)
    p.add_argument("--started-file", default=None, help="rank 0 creates it after the first step")
    return p.parse_args(argv)


def optimizer(kind):
    # SGD moves weights in proportion to the gradient, so averaging the wrong amount (a sum instead
    # of a mean) shows; Adam is nearly blind to a gradient's scale but keeps more state to resume.
    return Adam(2e-4, 0.5) if kind == "adam" else SGD(0.05, momentum=0.5)


def fixed_images():
    return np.random.default_rng(123).uniform(-1, 1, (IMAGES, 3, 64, 64)).astype(np.float32)


def train(comm, args, stop_requested=None) -> dict:
    """Run the steps on this rank; returns {"state": trainer state, "steps": ..., "stopped": ...}."""
    stop_requested = stop_requested or threading.Event()
    data = fixed_images()
    batches = Minibatches(data, args.batch, seed=7)
    G = dcgan64_generator(LATENT, FILTERS, 3, seed=0)
    D = dcgan64_discriminator(FILTERS, 3, seed=1)
    trainer = StackedGANTrainer(G, D, optimizer(args.optimizer), optimizer(args.optimizer),
                                communicator=comm, latent_dim=LATENT, seed=11)
    checkpoint = Path(args.out) / "checkpoint.npz"

    def save():
        state = training_state(trainer, batches=batches)     # every rank: it gathers the noise states
        if comm.is_root:
            save_checkpoint(checkpoint, state)

    if args.resume:
        state = comm.run_on_root(load_checkpoint, args.resume)
        restore_training_state(state, trainer, batches=batches, path=args.resume)

    stopped = False
    while trainer.steps < args.steps:
        if comm.rank == args.fail_rank and trainer.steps == args.fail_step:
            raise RuntimeError(f"injected failure on rank {comm.rank} at step {trainer.steps}")
        if comm.rank == args.signal_rank and trainer.steps == args.signal_step:
            os.kill(os.getpid(), signal.SIGTERM)
        if comm.any_rank(stop_requested.is_set()):
            save()
            stopped = True
            break
        real = data[comm.shard(batches.next_indices())]
        trainer.train_step(real)
        if args.started_file and comm.is_root and trainer.steps == 1:
            Path(args.started_file).touch()
        if args.save_every and trainer.steps % args.save_every == 0:
            save()
    return {"state": trainer.state_dict(), "steps": trainer.steps, "stopped": stopped}


def main(argv=None):
    args = parse_args(argv)
    comm = from_environment()
    stop_requested = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_requested.set())
    with comm.abort_on_error():
        result = train(comm, args, stop_requested)
    out = Path(args.out)
    save_checkpoint(out / f"rank{comm.rank}.npz", {"trainer": result["state"]})
    (out / f"rank{comm.rank}.json").write_text(json.dumps(
        {"rank": comm.rank, "size": comm.size, "steps": result["steps"], "stopped": result["stopped"]}))


if __name__ == "__main__":
    main()
