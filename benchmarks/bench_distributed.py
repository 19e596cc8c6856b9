"""Data-parallel training on the CPU: images per second of a small DCGAN on 1 and on 2 MPI ranks.

    python benchmarks/bench_distributed.py                     # 1 and 2 ranks, f=16, batch 16 per rank
    python benchmarks/bench_distributed.py --ranks 1 2 4 --filters 32 --batch 32 --steps 20

Weak scaling, as data parallelism is used: every rank trains on ``--batch`` images per step (the
full batch of ``StackedGANTrainer.train_step``: B/2 real images, B/2 then B generated ones), so
n ranks train on n * B images per step.  Perfect scaling is n times the images/s of one rank.
Each rank gets one BLAS thread and one tinygan worker thread (OPENBLAS_NUM_THREADS=1,
TINYGAN_NUM_THREADS=1), so n ranks use n cores; on a machine with fewer free cores than ranks the
ranks share cores and the number says so.  The load average (``uptime``) is printed beside the
numbers, since other jobs take cores too.

Per run: the median wall time of a step on rank 0 (the ranks wait for each other in every
all-reduce, so any rank's step is the run's step); the part of it spent in the gradient and
buffer collectives (packing, MPI, unpacking, and waiting for the slowest rank); the two gradient
all-reduces of a step timed alone, after a barrier (the transfer without the waiting); and the
float32 bytes of G's and D's gradients all-reduced per step.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "TINYGAN_NUM_THREADS": "1"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts to run (default: 1 2)")
    p.add_argument("--filters", type=int, default=16, help="DCGAN base filters (default: %(default)s)")
    p.add_argument("--batch", type=int, default=16, help="full batch per rank (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(args):
    """One rank: train, time, and (rank 0) print one JSON line."""
    import numpy as np

    from tinygan.distributed import from_environment
    from tinygan.gan import StackedGANTrainer
    from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator
    from tinygan.optimizers import Adam

    comm = from_environment()
    in_collectives = [0.0]

    def timed(fn):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                in_collectives[0] += time.perf_counter() - start
        return wrapper

    comm.average_arrays = timed(comm.average_arrays)
    comm.broadcast_arrays = timed(comm.broadcast_arrays)

    G, D = dcgan64_generator(100, args.filters, 3, seed=0), dcgan64_discriminator(args.filters, 3, seed=1)
    trainer = StackedGANTrainer(G, D, Adam(2e-4, 0.5), Adam(2e-4, 0.5), communicator=comm,
                                latent_dim=100, seed=0)
    real = np.random.default_rng(comm.rank).uniform(-1, 1, (args.batch // 2, 3, 64, 64)).astype(np.float32)
    for _ in range(args.warmup):
        trainer.train_step(real)
    step_s, comm_s = [], []
    for _ in range(args.steps):
        comm.barrier()
        in_collectives[0] = 0.0
        start = time.perf_counter()
        trainer.train_step(real)
        step_s.append(time.perf_counter() - start)
        comm_s.append(in_collectives[0])
    # The two all-reduces alone, the ranks starting together: the transfer without the waiting.
    alone_s = []
    for _ in range(5):
        comm.barrier()
        start = time.perf_counter()
        comm.average_gradients(G.trainable_parameters())
        comm.average_gradients(D.trainable_parameters())
        alone_s.append(time.perf_counter() - start)
    if comm.is_root:
        params = G.num_params() + D.num_params()
        print(json.dumps({"ranks": comm.size, "step_ms": 1e3 * float(np.median(step_s)),
                          "comm_ms": 1e3 * float(np.median(comm_s)),
                          "alone_ms": 1e3 * float(np.median(alone_s)), "params": params,
                          "allreduce_mb": 4 * params / 1e6 if comm.size > 1 else 0.0}), flush=True)


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    from tinygan.distributed import run_ranks, why_mpi_cannot_run
    reason = why_mpi_cannot_run()
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(2)
    print(f"DCGAN-64 f={args.filters}, {args.batch} images per rank per step, {args.steps} timed steps, "
          f"1 BLAS thread per rank, {os.cpu_count()} CPUs")
    head = ("ranks", "step ms", "in collectives ms", "all-reduces alone ms", "images/s", "speedup",
            "all-reduce MB/step", "load (1 min) before/after")
    rows, base = [], None
    for n in args.ranks:
        before = load()
        result = run_ranks(n, [__file__, "--worker", "--filters", args.filters, "--batch", args.batch,
                               "--steps", args.steps, "--warmup", args.warmup],
                           timeout=1800, env=WORKER_ENV)
        if result.returncode != 0:
            print(result.stderr[-2000:], file=sys.stderr)
            sys.exit(f"error: the run on {n} ranks failed (exit status {result.returncode})")
        r = json.loads(result.stdout.strip().splitlines()[-1])
        images_s = n * args.batch / (r["step_ms"] / 1e3)
        base = base or images_s / n
        rows.append((str(n), f"{r['step_ms']:.0f}", f"{r['comm_ms']:.1f}", f"{r['alone_ms']:.1f}",
                     f"{images_s:.1f}",
                     f"{images_s / base:.2f}", f"{r['allreduce_mb']:.2f}", f"{before} / {load()}"))
    widths = [max(len(str(c)) for c in col) + 2 for col in zip(head, *rows)]
    for row in (head, *rows):
        print("".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    main()
