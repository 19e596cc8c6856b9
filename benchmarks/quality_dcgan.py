"""Judge samples: train tinygan's 64x64 DCGAN and the same DCGAN in PyTorch, compare their SWD to
held-out faces.

    python benchmarks/quality_dcgan.py                        # GPU scale: f 64, B 64, 20k iterations
    python benchmarks/quality_dcgan.py --base-filters 32 --iterations 1000 --seeds 0 1 --threads 1 \
        --eval-mode both --ema-decay 0.999 0.99 --out runs/quality_dcgan_cpu    # the CPU run in QUALITY.md
    python benchmarks/quality_dcgan.py --backend cupy --device cuda --iterations 20000 --seeds 0 1 2
    python benchmarks/quality_dcgan.py --summarize runs/a runs/b              # tables of runs done apart

Both sides train the same model the same way, on the same images in the same order:

  * data      the shared CelebA sample (``--data``, default ../shared/data/celeba-10k from the repo
              root), 64x64, split with ``FaceDataset.split(--holdout, --split-seed)`` into 9,000
              training and 1,000 held-out faces.  The split is the same for every run seed, so SWDs
              are comparable across seeds.  Real batches come from one tinygan ``Minibatches``
              (seed = run seed + 3) and are fed to both sides (PyTorch via ``torch.from_numpy``).
  * models    tinygan's ``dcgan64_generator`` / ``dcgan64_discriminator`` (4x4 ConvTranspose / Conv
              without bias, BatchNorm (momentum 0.9 Keras = 0.1 PyTorch, eps 1e-5), ReLU / LeakyReLU(0.2),
              tanh, one logit); the PyTorch port is ``torch_dcgan64`` from benchmarks/bench_dcgan.py.
  * init      every conv weight N(0, 0.02), BatchNorm gamma 1 and beta 0 on both sides (tinygan's
              init; NOT the N(1, 0.02) gamma of the PyTorch DCGAN example).  ``--torch-init copy``
              (default) starts PyTorch from tinygan's very weights and replays tinygan's training
              noise (the same host generator, same seed, same draws in the same order), so the two
              runs differ only in floating-point arithmetic -- which a GAN amplifies within a few
              hundred steps, so the end points are two different, fairly trained models.
              ``--torch-init normal`` draws PyTorch's own N(0, 0.02) weights and noise (torch seed =
              run seed): an independent run from the same distribution.  Seeds from the run seed S:
              tinygan G init S, D init S + 1, training noise S + 2, real-batch order S + 3.
  * recipe    ``StackedGANTrainer.train_step`` on the tinygan side; ``TorchSide.step`` from
              bench_dcgan.py on the other (the same step; ``bench_dcgan.py --check`` verifies that):
              D on B/2 real + B/2 generated, forwarded separately, one Adam step on the mean
              BCE-with-logits loss; then G on B fresh samples through frozen D (batch statistics,
              running averages untouched), non-saturating loss -log D(G(z)).  Adam(2e-4, 0.5, 0.999,
              eps 1e-8) for both nets on both sides.  ``--batch-size`` B is the full batch.
  * average   tinygan's ``GeneratorEMA`` (one model per ``--ema-decay``), updated after every
              training step; before ``--ema-start`` updates (default 20 % of the iterations) it
              just copies G (early weights are noise); BatchNorm running statistics are copied from
              G, not averaged (that is GeneratorEMA's design).

Evaluation, after ``--iterations`` steps, for each seed:

  * generation  ``--eval-images`` images (default: as many as held out) from one fixed noise
                (seed [run seed, 7]), the same noise for every generator.  ``--eval-mode running``
                (default): inference mode, BatchNorm with its running averages (tinygan's sampler;
                ``G.eval()`` in PyTorch).  ``batch``: training-mode BatchNorm (batch statistics of
                chunks of B images, as in training and as the PyTorch DCGAN example samples), with
                the running averages left untouched.  ``both`` reports both.
  * metric      ``tinygan.metrics.sliced_wasserstein_distance`` (Laplacian levels 64, 32, 16; 128
                7x7 patches per image per level, 512 projections) against the held-out faces, one
                ``--swd-seed`` for every comparison, so every set is read at the same patch
                positions.  Reported x 1e3 as in Karras et al.  The floor: as many *real training*
                faces (a seeded random subset) against the held-out ones -- what a perfect generator
                would score at this sample size.
  * outputs     in ``--out``: ``results.csv`` (one row per seed, model and eval mode), ``train_log.csv``
                (losses and ms/iteration per side every ``--log-every`` steps), ``config.json``, and
                per seed 8x8 grids from one fixed noise (seed [run seed, 9]) of every generator
                (``samples_seed{S}_{model}.png``), the same noise side by side in
                ``samples_seed{S}_side_by_side.png`` (with 64 held-out faces at the right), and the
                held-out faces alone (``holdout_faces.png``).  Sample grids use ``--eval-mode``'s first mode.

Timing: the two sides alternate step by step (a real batch to tinygan, the same batch to PyTorch),
so background load hits both alike; each side's step is timed alone (wall clock; on the GPU with
a device sync) and the EMA updates separately.  ``--threads`` sets BLAS, tinygan's worker and
PyTorch threads (default all cores).  On a CPU that other jobs keep busy, ``--threads 1`` can be
several times faster for both sides than oversubscribed threads that spin waiting for each other
(5x measured on a loaded 2-core machine; see benchmarks/QUALITY.md).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# The speed benchmark holds the PyTorch port and the shared helpers; it imports only the standard
# library at load time, so importing it here does not load NumPy before set_threads_env.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dcgan import print_table, set_threads_env  # noqa: E402

LATENT, CHANNELS, SIZE = 100, 3, 64
REPO = Path(__file__).resolve().parent.parent
MODEL_TINY, MODEL_TORCH, MODEL_FLOOR = "tinygan", "torch", "real-train (floor)"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="tinygan's backend (numpy)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="PyTorch's device (default cuda if available, else cpu)")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "celeba-10k"),
                   help="face images (default ../shared/data/celeba-10k from the repo root)")
    p.add_argument("--holdout", type=int, default=1000, help="held-out faces (1000)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/held-out split (0)")
    p.add_argument("--iterations", type=int, default=20000, help="training iterations per side (20000)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="full batch B, even: D sees B/2 real + B/2 fake (64)")
    p.add_argument("--base-filters", type=int, default=64, help="DCGAN width f (64; smaller for a CPU)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="run seeds (init, noise, batch order)")
    p.add_argument("--eval-images", type=int, default=None,
                   help="generated images per model (default: --holdout)")
    p.add_argument("--eval-mode", choices=("running", "batch", "both"), default="running",
                   help="BatchNorm at generation: running averages (default), batch statistics, or both")
    p.add_argument("--swd-seed", type=int, default=0, help="seed of the SWD's patches and projections (0)")
    p.add_argument("--ema-decay", type=float, nargs="+", default=[0.999],
                   help="decay(s) of the generator average; one GeneratorEMA per value (0.999)")
    p.add_argument("--ema-start", type=int, default=None,
                   help="updates before averaging starts (default 20%% of --iterations)")
    p.add_argument("--torch-init", choices=("copy", "normal"), default="copy",
                   help="copy: PyTorch starts from tinygan's weights and noise (default); normal: its own")
    p.add_argument("--no-torch", action="store_true", help="tinygan only")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS, tinygan and PyTorch threads (default: all cores)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matrix units on the GPU, both sides")
    p.add_argument("--log-every", type=int, default=50, help="progress line every N iterations (50)")
    p.add_argument("--out", default="runs/quality_dcgan", help="output folder (runs/quality_dcgan)")
    p.add_argument("--summarize", nargs="+", metavar="RESULTS",
                   help="train nothing: print the tables of results.csv files (or folders holding one) "
                        "of earlier runs together, e.g. seeds run as separate processes")
    args = p.parse_args(argv)
    if args.batch_size < 2 or args.batch_size % 2:
        p.error(f"--batch-size must be even (B/2 real + B/2 fake), got {args.batch_size}")
    if args.iterations < 1:
        p.error(f"--iterations must be >= 1, got {args.iterations}")
    if any(not 0 <= d < 1 for d in args.ema_decay):
        p.error(f"--ema-decay values must be in [0, 1), got {args.ema_decay}")
    if args.ema_start is None:
        args.ema_start = args.iterations // 5
    return args


def ema_name(decay: float) -> str:
    return f"tinygan-ema{decay:g}"


# -- generation -----------------------------------------------------------------------------------
def generate_tinygan(G, z, backend, mode: str, chunk: int):
    """G(z) as a host float32 array.  running: inference mode.  batch: training-mode BatchNorm on
    chunks of ``chunk`` images with G frozen, so its running averages do not move."""
    import numpy as np

    from tinygan.backend import to_numpy
    from tinygan.sequential import frozen
    with frozen(G):
        out = [to_numpy(G.forward(backend.asarray(z[i:i + chunk]), training=(mode == "batch")))
               for i in range(0, len(z), chunk)]
    return np.concatenate(out).astype(np.float32)


def generate_torch(side, z, mode: str, chunk: int):
    """The same for the PyTorch G: ``eval()``, or ``train()`` with BatchNorm momentum 0 (batch
    statistics, running averages untouched)."""
    import numpy as np
    torch, G = side.torch, side.G
    bns = [m for m in G if isinstance(m, torch.nn.BatchNorm2d)]
    was_training = G.training
    G.train(mode == "batch")
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    try:
        with torch.no_grad():
            out = [G(torch.from_numpy(z[i:i + chunk]).to(side.device, side.dtype)).float().cpu().numpy()
                   for i in range(0, len(z), chunk)]
    finally:
        for bn, m in zip(bns, saved):
            bn.momentum = m
        G.train(was_training)
    return np.concatenate(out)


def init_torch_normal(side, seed):
    """PyTorch's own draw of the DCGAN init: conv weights N(0, 0.02), BatchNorm gamma 1, beta 0."""
    torch = side.torch
    torch.manual_seed(seed)
    with torch.no_grad():
        for model in (side.G, side.D):
            for m in model:
                if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                    torch.nn.init.normal_(m.weight, 0.0, 0.02)
                elif isinstance(m, torch.nn.BatchNorm2d):
                    torch.nn.init.ones_(m.weight)
                    torch.nn.init.zeros_(m.bias)


# -- pictures ---------------------------------------------------------------------------------------
def side_by_side(grids: dict, path, gap: int = 12):
    """The named 8x8 grids next to each other, each under its name, as one PNG."""
    import numpy as np
    from PIL import Image, ImageDraw

    from tinygan.images import make_grid, save_png_atomic
    pics = {name: make_grid(images, nrow=8) for name, images in grids.items()}
    h = max(p.shape[0] for p in pics.values())
    title = 18
    width = sum(p.shape[1] for p in pics.values()) + gap * (len(pics) - 1)
    canvas = Image.new("RGB", (width, h + title), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for name, pic in pics.items():
        canvas.paste(Image.fromarray(np.asarray(pic)), (x, title))
        draw.text((x + 4, 3), name, fill=(0, 0, 0))
        x += pic.shape[1] + gap
    return save_png_atomic(canvas, path)


# -- one seed -----------------------------------------------------------------------------------------
def run_seed(seed, args, data, torch, bench, log_rows):
    """Train both sides for one seed; returns ({model: {mode: SWDResult}}, timings, grid paths)."""
    import numpy as np

    from tinygan.backend import get_backend
    from tinygan.data import Minibatches
    from tinygan.gan import GeneratorEMA, StackedGANTrainer
    from tinygan.images import save_image_grid
    from tinygan.metrics import sliced_wasserstein_distance
    from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator
    from tinygan.optimizers import Adam

    train, holdout, holdout_images = data
    backend = get_backend(args.backend)
    B, half = args.batch_size, args.batch_size // 2
    G = dcgan64_generator(LATENT, args.base_filters, CHANNELS, seed=seed).to(backend)
    D = dcgan64_discriminator(args.base_filters, CHANNELS, seed=seed + 1).to(backend)
    trainer = StackedGANTrainer(G, D, Adam(2e-4, 0.5, 0.999, 1e-8), Adam(2e-4, 0.5, 0.999, 1e-8),
                                latent_dim=LATENT, backend=backend, seed=seed + 2)
    emas = {ema_name(d): GeneratorEMA(G, d, args.ema_start) for d in args.ema_decay}
    batches = Minibatches(train, half, seed=seed + 3, backend="numpy")   # host batches, fed to both sides

    side = None
    if torch is not None:
        side = bench.TorchSide(args.device, args.base_filters, args.tf32)
        if args.torch_init == "copy":
            bench.copy_weights_to_torch(G, side.G, torch)
            bench.copy_weights_to_torch(D, side.D, torch)
            replay = np.random.default_rng(seed + 2)        # = the trainer's noise generator
            side.noise = lambda n: (torch.from_numpy(replay.standard_normal((n, LATENT)))
                                    .to(side.device, side.dtype))
        else:
            init_torch_normal(side, seed)
        sync_torch = torch.cuda.synchronize if side.device.type == "cuda" else (lambda: None)

    times = {"tinygan": [], "ema": [], "torch": []}
    window = {"tinygan": 0.0, "torch": 0.0}
    start = time.perf_counter()
    for it in range(1, args.iterations + 1):
        real = batches.next_batch()
        t0 = time.perf_counter()
        stats = trainer.train_step(backend.asarray(real))
        backend.synchronize()
        t1 = time.perf_counter()
        for ema in emas.values():
            ema.update(G)
        backend.synchronize()
        t2 = time.perf_counter()
        times["tinygan"].append(t1 - t0)
        times["ema"].append(t2 - t1)
        window["tinygan"] += t1 - t0
        if side is not None:
            t0 = time.perf_counter()
            d_loss_t, g_loss_t = side.step(side.real_batch(real))
            sync_torch()
            dt = time.perf_counter() - t0
            times["torch"].append(dt)
            window["torch"] += dt
        if it % args.log_every == 0 or it == args.iterations:
            n = args.log_every if it % args.log_every == 0 else it % args.log_every
            s = stats.as_floats()
            line = (f"seed {seed} it {it:>6}/{args.iterations}  "
                    f"tinygan D {s['d_loss']:.3f} G {s['g_loss']:.3f} "
                    f"{window['tinygan'] / n * 1e3:7.1f} ms/it")
            log_rows.append({"seed": seed, "iteration": it, "side": "tinygan", "d_loss": s["d_loss"],
                             "g_loss": s["g_loss"], "ms_per_it": window["tinygan"] / n * 1e3})
            if side is not None:
                line += (f"  | torch D {d_loss_t.item():.3f} G {g_loss_t.item():.3f} "
                         f"{window['torch'] / n * 1e3:7.1f} ms/it")
                log_rows.append({"seed": seed, "iteration": it, "side": "torch", "d_loss": d_loss_t.item(),
                                 "g_loss": g_loss_t.item(), "ms_per_it": window["torch"] / n * 1e3})
            elapsed = time.perf_counter() - start
            eta = elapsed / it * (args.iterations - it)
            print(f"{line}  [{elapsed / 60:.1f} min, ETA {eta / 60:.1f} min]", flush=True)
            window = {"tinygan": 0.0, "torch": 0.0}

    # -- evaluation --
    n_eval = args.eval_images or len(holdout)
    z_eval = np.random.default_rng([seed, 7]).standard_normal((n_eval, LATENT)).astype(np.float32)
    z_grid = np.random.default_rng([seed, 9]).standard_normal((64, LATENT)).astype(np.float32)
    modes = ["running", "batch"] if args.eval_mode == "both" else [args.eval_mode]
    recal_rng = np.random.default_rng([seed, 11])
    for ema in emas.values():       # the averages' own BatchNorm statistics (see GeneratorEMA)
        ema.recalibrate_batchnorm(backend.asarray(recal_rng.standard_normal((B, LATENT))) for _ in range(8))
    generators = {MODEL_TINY: G, **{name: ema.model for name, ema in emas.items()}}
    xp = backend.xp

    holdout_on_device = xp.asarray(holdout_images)       # copied once, compared with every model

    def swd(images):
        return sliced_wasserstein_distance(xp.asarray(images), holdout_on_device, seed=args.swd_seed)

    results, grids = {}, {}
    t_eval = time.perf_counter()
    for mode in modes:
        for name, model in list(generators.items()) + ([(MODEL_TORCH, side)] if side is not None else []):
            gen = (lambda z, mode=mode: generate_torch(side, z, mode, B)) if name == MODEL_TORCH else \
                  (lambda z, m=model, mode=mode: generate_tinygan(m, z, backend, mode, B))
            results.setdefault(name, {})[mode] = swd(gen(z_eval))
            if mode == modes[0]:
                grids[name] = gen(z_grid)
    floor_idx = np.sort(np.random.default_rng([seed, 8]).choice(len(train), min(n_eval, len(train)),
                                                                replace=False))
    floor = swd(train.batch(floor_idx))
    for mode in modes:
        results.setdefault(MODEL_FLOOR, {})[mode] = floor
    eval_s = time.perf_counter() - t_eval

    out = Path(args.out)
    paths = {}
    for name, images in grids.items():
        paths[name] = save_image_grid(images, out / f"samples_seed{seed}_{name}.png", nrow=8)
    paths["side_by_side"] = side_by_side({**grids, "held-out (real)": holdout_images[:64]},
                                         out / f"samples_seed{seed}_side_by_side.png")
    timing = {"train_s": time.perf_counter() - start - eval_s, "eval_s": eval_s,
              **{f"{k}_ms_median": statistics.median(v) * 1e3 for k, v in times.items() if v},
              **{f"{k}_ms_mean": statistics.fmean(v) * 1e3 for k, v in times.items() if v}}
    return results, timing, paths


# -- reporting ----------------------------------------------------------------------------------------
def summarize(all_results, levels, args=None):
    """Per-seed table, then mean (and spread) over seeds with the issue's two ratios."""
    import numpy as np
    rows = []
    for seed, res in all_results.items():
        for name, by_mode in res.items():
            for mode, r in by_mode.items():
                rows.append([seed, name, mode] + [f"{r.per_level[lvl] * 1e3:.2f}" for lvl in levels]
                            + [f"{r.mean * 1e3:.2f}"])
    print("\nSWD x 1e3 to the held-out faces (lower is better), per seed")
    print_table(["seed", "model", "BN at eval"] + [f"{lvl}px" for lvl in levels] + ["mean"], rows)

    names = list(next(iter(all_results.values())).keys())
    modes = list(next(iter(next(iter(all_results.values())).values())).keys())
    agg = []
    for mode in modes:
        means = {n: np.array([all_results[s][n][mode].mean * 1e3 for s in all_results]) for n in names}
        for n in names:
            v = means[n]
            spread = f"{v.std(ddof=1):.2f}" if len(v) > 1 else "-"
            per_level = [f"{np.mean([all_results[s][n][mode].per_level[lvl] * 1e3 for s in all_results]):.2f}"
                         for lvl in levels]
            vs_torch = f"{v.mean() / means[MODEL_TORCH].mean():.3f}" if MODEL_TORCH in means else "-"
            vs_g = f"{v.mean() / means[MODEL_TINY].mean():.3f}"
            agg.append([n, mode] + per_level + [f"{v.mean():.2f}", spread, vs_torch, vs_g])
    print(f"\nmean over seeds {list(all_results)} (sd: across seeds); ratios of mean SWD (< 1: closer)")
    print_table(["model", "BN at eval"] + [f"{lvl}px" for lvl in levels]
                + ["mean", "sd", "/ torch", "/ tinygan G"], agg)
    return agg


def load_results(paths):
    """{seed: {model: {mode: SWDResult}}} and the levels, from results.csv files written by main()."""
    from tinygan.metrics import SWDResult
    results, levels = {}, None
    for path in paths:
        path = Path(path)
        path = path / "results.csv" if path.is_dir() else path
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                lv = [int(k.rsplit("_", 1)[1]) for k in row
                      if k.startswith("swd_x1e3_") and k != "swd_x1e3_mean"]
                levels = levels or lv
                per_level = {lvl: float(row[f"swd_x1e3_{lvl}"]) / 1e3 for lvl in lv}
                seed = int(row["seed"])
                seen = results.get(seed, {}).get(row["model"], {})
                if row["eval_mode"] in seen:
                    raise SystemExit(f"--summarize: seed {seed} appears in more than one of {paths}")
                results.setdefault(seed, {}).setdefault(row["model"], {})[row["eval_mode"]] = \
                    SWDResult(per_level, float(row["swd_x1e3_mean"]) / 1e3)
    return results, levels


def main(argv=None):
    args = parse_args(argv)
    if args.summarize:
        sys.path.insert(0, str(REPO))
        summarize(*load_results(args.summarize), args=args)
        return
    set_threads_env(args.threads)
    os.environ.setdefault("CUPY_TF32", "1" if args.tf32 else "0")
    sys.path.insert(0, str(REPO))
    import numpy as np

    from tinygan.backend import get_backend
    from tinygan.data import load_faces
    from tinygan.images import save_image_grid

    torch = bench = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not importable: training tinygan only")
    if torch is not None:
        import bench_dcgan as bench  # the PyTorch port: torch_dcgan64, TorchSide, copy_weights_to_torch
        torch.set_num_threads(args.threads or os.cpu_count())
        if args.device is None:
            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        if args.device == "cuda":
            if not torch.cuda.is_available():
                raise SystemExit("--device cuda: PyTorch sees no CUDA device here")
    backend = get_backend(args.backend)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    faces = load_faces(args.data, SIZE, progress=False)
    train, holdout = faces.split(args.holdout, seed=args.split_seed)
    holdout_images = holdout.batch(np.arange(len(holdout)))          # host float32 in [-1, 1]
    save_image_grid(holdout_images[:64], out / "holdout_faces.png", nrow=8)

    machine = f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}"
    if torch is not None and args.device == "cuda":
        machine += f", GPU {torch.cuda.get_device_name()}"
    config = {**vars(args), "n_train": len(train), "n_holdout": len(holdout), "machine": machine,
              "numpy": np.__version__, "torch": torch.__version__ if torch is not None else None,
              "tinygan_backend": backend.name}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    print(f"tinygan {backend.name} | torch {config['torch']} on {args.device if torch is not None else '-'} "
          f"(init {args.torch_init}) | {machine}")
    print(f"data {args.data}: {len(train)} train, {len(holdout)} held out (split seed {args.split_seed}); "
          f"f={args.base_filters}, B={args.batch_size}, {args.iterations} iterations, seeds {args.seeds}; "
          f"EMA decays {args.ema_decay} from update {args.ema_start}; eval {args.eval_mode}", flush=True)

    all_results, timings, grid_paths, log_rows = {}, {}, {}, []
    for seed in args.seeds:
        res, timing, paths = run_seed(seed, args, (train, holdout, holdout_images), torch, bench, log_rows)
        all_results[seed], timings[seed], grid_paths[seed] = res, timing, paths
        levels = list(next(iter(next(iter(res.values())).values())).per_level)
        # Written after every seed, so a run cut short keeps what it finished.
        with open(out / "results.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["seed", "model", "eval_mode", "iterations", "base_filters", "batch_size", "ema_start",
                        "torch_init"] + [f"swd_x1e3_{lvl}" for lvl in levels] + ["swd_x1e3_mean"])
            for s, r in all_results.items():
                for name, by_mode in r.items():
                    for mode, v in by_mode.items():
                        w.writerow([s, name, mode, args.iterations, args.base_filters, args.batch_size,
                                    args.ema_start, args.torch_init]
                                   + [f"{v.per_level[lvl] * 1e3:.4f}" for lvl in levels]
                                   + [f"{v.mean * 1e3:.4f}"])
        with open(out / "train_log.csv", "w", newline="") as f:
            w = csv.DictWriter(f, ["seed", "iteration", "side", "d_loss", "g_loss", "ms_per_it"])
            w.writeheader()
            w.writerows(log_rows)
        (out / "timings.json").write_text(json.dumps(timings, indent=2))
        t = timing
        print(f"seed {seed}: trained in {t['train_s'] / 60:.1f} min, evaluated in {t['eval_s']:.0f} s; "
              f"median ms/it tinygan {t['tinygan_ms_median']:.1f} (+ EMA {t['ema_ms_median']:.1f})"
              + (f", torch {t['torch_ms_median']:.1f}" if "torch_ms_median" in t else "")
              + f"; grids {paths['side_by_side']}", flush=True)

    summarize(all_results, levels, args)


if __name__ == "__main__":
    main()
