#!/usr/bin/env python
"""Draw faces from a generator trained by examples/celeba_dcgan.py.

    python examples/sample.py --run runs/celeba_dcgan                 # uses runs/celeba_dcgan/last.npz
    python examples/sample.py --checkpoint runs/celeba_dcgan/epoch_010.npz --ema --n 32

Writes to --out (default: a ``samples`` folder beside the checkpoint):
    grid.png            --grid samples (default 100, 10 per row)
    sample_XXX.png      --n single images
    interpolation.png   --steps images on the way from the noise of --seed-a to that of --seed-b

The interpolation is spherical (slerp) by default.  Why: a noise vector z ~ N(0, I) in d = 100
dimensions almost always has a length close to sqrt(d) = 10 -- the prior lives on a thin shell.
The straight line between two such vectors cuts through the inside of the shell (its midpoint has
length about 10 / sqrt(2) = 7 for independent endpoints), where G was never trained, so linear
paths tend to fade towards a bland "average face" in the middle.  Slerp follows the great circle
and keeps the length on the shell (White, "Sampling Generative Networks", 2016).  --interp linear
shows the difference.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tinygan.checkpoint import load_checkpoint
from tinygan.errors import CheckpointError
from tinygan.images import save_image_grid
from tinygan.models import build_gan
from tinygan.training import cli, generate, prepare_output_folder
from tinygan.training.guard import non_finite_arrays

GRID_MAX, STRIP_MAX = 1000, 100


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between vectors a and b at fractions t (K,) -> (K, d).

    Angle omega between a and b; point sin((1-t) omega)/sin(omega) a + sin(t omega)/sin(omega) b.
    Nearly parallel vectors (sin omega ~ 0) fall back to linear interpolation.
    """
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    t = t[:, None]
    if np.sin(omega) < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = t[:, None]
    return (1 - t) * a + t * b


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=cli.path_text, help="a checkpoint .npz written by celeba_dcgan.py")
    src.add_argument("--run", type=cli.path_text, help="a run folder of celeba_dcgan.py (uses its last.npz)")
    p.add_argument("--ema", action="store_true", help="use the averaged generator (the run needs --ema)")
    p.add_argument("--out", type=cli.path_text, help="output folder (default: samples/ by the checkpoint)")
    p.add_argument("--grid", type=cli.at_most(GRID_MAX, "grid.png has 10 images per row"), default=100,
                   help=f"images in grid.png, at most {GRID_MAX} (default 100)")
    p.add_argument("--n", type=cli.non_negative_int, default=16, help="single PNG images (default 16)")
    p.add_argument("--steps", type=cli.at_most(STRIP_MAX, "the strip is one row"), default=10,
                   help=f"images in the interpolation strip, at most {STRIP_MAX} (default 10; 0 or 1: none)")
    p.add_argument("--interp", choices=["slerp", "linear"], default="slerp", help="(default slerp)")
    p.add_argument("--seed", type=cli.seed, default=0, help="seed of the grid and single images' noise")
    p.add_argument("--seed-a", type=cli.seed, default=1, help="seed of the interpolation's start")
    p.add_argument("--seed-b", type=cli.seed, default=2, help="seed of the interpolation's end")
    p.add_argument("--backend", default="auto", choices=["numpy", "cupy", "auto"])
    args = p.parse_args(argv)

    path = Path(args.checkpoint) if args.checkpoint else Path(args.run) / "last.npz"
    ckpt = load_checkpoint(path)
    cfg = ckpt.get("config")
    if not cfg:
        raise CheckpointError(f"checkpoint {path} holds no run config; was it written by celeba_dcgan.py?")
    backend = cli.backend_from_flag(args.backend)
    out = Path(args.out) if args.out else path.parent / "samples"
    # Before any work, so that a bad --out costs nothing.
    prepare_output_folder(out, "--out" if args.out else None, hint="choose another with --out")
    # The generator: same architecture as in training, then the saved weights (or their average).
    try:
        G, _ = build_gan(cfg["model"], cfg["image_size"], cfg["latent_dim"], seed=cfg["seed"],
                         base_filters=cfg["base_filters"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} holds settings that build no model ({type(e).__name__}: "
                              f"{e}); was it written by celeba_dcgan.py?") from e
    if args.ema:
        if not ckpt.get("ema"):
            raise CheckpointError(f"checkpoint {path} has no generator average; train with --ema to keep one")
        weights, which = ckpt["ema"]["weights"], "the generator average (EMA)"
    else:
        weights, which = ckpt["trainer"]["G"], "the generator"
    bad = non_finite_arrays(weights)
    if bad:
        raise CheckpointError(f"checkpoint {path}: {which} has NaN or infinite values in "
                              f"{', '.join(bad[:3])}; it would draw blank pictures (try an earlier one)")
    G.load_state_dict(weights, source=f"checkpoint {path}")
    G.to(backend)
    print(f"{path}: {cfg['model']} {cfg['image_size']}x{cfg['image_size']} at step {ckpt['step']}, "
          f"epoch {ckpt['epoch']}; sampling from {which} on {backend.name}")

    latent = cfg["latent_dim"]
    rng = np.random.default_rng(args.seed)       # the grid and sample_i share noise rows 0, 1, 2, ...
    grid, chunk = [], 100
    for first in range(0, max(args.grid, args.n), chunk):     # chunks: any --n fits in memory
        z = rng.standard_normal((min(chunk, max(args.grid, args.n) - first), latent)).astype(np.float32)
        images = generate(G, z, backend)
        grid.append(images[:max(0, args.grid - first)])
        for i in range(first, min(args.n, first + len(z))):
            save_image_grid(images[i - first:i - first + 1], out / f"sample_{i:03d}.png", nrow=1, padding=0)

    written = []
    if args.grid:
        save_image_grid(backend.xp.concatenate(grid), out / "grid.png", nrow=10)
        written.append(f"grid.png ({args.grid} samples)")
    if args.n:
        written.append(f"{args.n} single images")
    if args.steps >= 2:
        a = np.random.default_rng(args.seed_a).standard_normal(latent)
        b = np.random.default_rng(args.seed_b).standard_normal(latent)
        path_z = (slerp if args.interp == "slerp" else lerp)(a, b, np.linspace(0.0, 1.0, args.steps))
        strip = generate(G, path_z.astype(np.float32), backend)
        save_image_grid(strip, out / "interpolation.png", nrow=args.steps)
        written.append(f"interpolation.png ({args.interp}, seed {args.seed_a} -> {args.seed_b})")
    print(f"wrote to {out}: {', '.join(written) or 'nothing (--grid 0 --n 0 --steps 0)'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_command(main))
