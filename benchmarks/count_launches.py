"""Device operations (kernel launches), host syncs and host-to-device copies of one DCGAN-64 training step.

On a GPU every CuPy call is a kernel launch with 5-15 us of host time, so a step made of many
small kernels is bound by launches, not by the GPU.  This counts them without a GPU, on the CuPy
stand-in of the test suite (tests/cupy_standin: NumPy behind CuPy's API, counting what CuPy
would launch), for one ``StackedGANTrainer.train_step`` of the 64x64 DCGAN after a first step
(which also creates Adam's moments and the CuPy passes' cached buffers and index tables).

    python benchmarks/count_launches.py                    # f = 8, batch 8: the counts of f = 64, batch 128
    python benchmarks/count_launches.py --filters 64 --batch 128    # the real size (slow: NumPy computes)
    python benchmarks/count_launches.py --kernels plain    # the layers' own code only (no CuPy passes)

The counts depend on the architecture, not on the sizes (tests/test_cupy_standin.py checks
that), so the default small model gives the counts of f = 64, batch 128 in a second.  With
``--kernels both`` (default) it prints the fast CuPy passes and the layers' plain code side by side.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

import cupy_standin  # noqa: E402  (tests/cupy_standin)

from tinygan import kernels  # noqa: E402
from tinygan.backend import get_backend  # noqa: E402
from tinygan.gan.stacked import StackedGANTrainer  # noqa: E402
from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator  # noqa: E402
from tinygan.optimizers import Adam  # noqa: E402


def count_step(filters: int, batch: int, mode: str):
    """The stand-in's counts (with call sites) of the second train_step, and its wall time."""
    with cupy_standin.installed(), kernels.using(mode):
        b = get_backend("cupy")
        G = dcgan64_generator(100, filters, seed=0).to(b)
        D = dcgan64_discriminator(filters, seed=1).to(b)
        trainer = StackedGANTrainer(G, D, Adam(2e-4, 0.5), Adam(2e-4, 0.5), latent_dim=100, backend=b, seed=0)
        real = b.asarray(np.random.default_rng(0).uniform(-1, 1, (batch // 2, 3, 64, 64)))
        trainer.train_step(real)
        start = time.perf_counter()
        with cupy_standin.counting(sites=True) as c:
            trainer.train_step(real)
        return c, time.perf_counter() - start


def by_file(counts) -> collections.Counter:
    files = collections.Counter()
    for site, n in counts.by_site.items():
        files[site.split(":")[0]] += n
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", type=int, default=8, help="base filters f (default 8)")
    parser.add_argument("--batch", type=int, default=8, help="full batch, even (default 8)")
    parser.add_argument("--kernels", choices=("fast", "plain", "both"), default="both")
    parser.add_argument("--top", type=int, default=15, help="operations listed by name (default 15)")
    args = parser.parse_args(argv)
    if args.batch < 4 or args.batch % 2:
        parser.error(f"--batch must be an even number >= 4, got {args.batch}")
    modes = ("fast", "plain") if args.kernels == "both" else (args.kernels,)
    results = {mode: count_step(args.filters, args.batch, mode) for mode in modes}

    print(f"DCGAN-64, f = {args.filters}, batch {args.batch} (D: {args.batch // 2} real + "
          f"{args.batch // 2} generated, G: {args.batch}); one StackedGANTrainer.train_step after the first")
    header = ("kernels", "device ops", "host syncs", "host->device", "bytes")
    print("{:8} {:>10} {:>10} {:>12} {:>8}  stand-in time".format(*header))
    for mode, (c, seconds) in results.items():
        print(f"{mode:8} {c.ops:10d} {c.syncs:10d} {c.h2d:12d} {c.h2d_bytes:8d}  {seconds:.2f} s")
    files = {mode: by_file(c) for mode, (c, _) in results.items()}
    names = sorted(set().union(*files.values()), key=lambda f: -max(files[m][f] for m in modes))
    print("\ndevice operations by file")
    print(f"{'file':40}" + "".join(f"{mode:>8}" for mode in modes))
    for name in names:
        print(f"{name:40}" + "".join(f"{files[mode][name]:8d}" for mode in modes))
    for mode, (c, _) in results.items():
        print(f"\n{mode}: the {args.top} most frequent operations")
        for name, n in c.by_name.most_common(args.top):
            print(f"  {n:5d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
