#!/usr/bin/env python
"""Train a DCGAN on faces with tinygan: every gradient by hand, on NumPy (CPU) or CuPy (GPU).

Read it top to bottom: settings, data, models, optimizers, the training loop, the outputs.

    python examples/celeba_dcgan.py                                   # embedded faces, DCGAN 64x64
    python examples/celeba_dcgan.py --data ../shared/data/celeba-10k --epochs 5
    python examples/celeba_dcgan.py --resume                          # continue runs/celeba_dcgan
    python examples/sample.py --run runs/celeba_dcgan                 # draw from the result

One training step follows the Keras recipe (tinygan.gan.StackedGANTrainer): D learns from half a
batch of real images and half a batch of generated ones, then G learns from a full batch of
fresh noise through the frozen D.

What lands in --out (default runs/celeba_dcgan):
    config.json               the settings of the run
    samples_epoch_XXX.png     10x10 samples from a fixed noise after each epoch (+ samples_latest.png)
    losses.png, metrics.csv   loss and accuracy curves; one CSV row per training step
    eval.csv                  D's accuracy on held-out real images and on fresh generated ones, per epoch
    last.npz                  the checkpoint: G, D, both optimizers, RNG and data-iterator states,
                              the metrics, the fixed noise (written atomically after every epoch)

The progress bar shows D and G loss, D's accuracy (mean over the real and generated halves) and
images/s = steps per second x --batch-size, averaged over --log-every steps (values are copied
from the GPU only then, so the steps in between never wait for it).

On a CPU the layers use one worker thread per core (tinygan/parallel.py); TINYGAN_NUM_THREADS=N
sets how many (default: as many as BLAS has threads).

Ctrl-C finishes the current step, saves last.npz and exits with code 130; --resume then continues
exactly where it stopped (bit for bit on NumPy).  A NaN or infinite loss stops the run with exit
code 3 and leaves the last good checkpoint untouched.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tinygan.backend import get_backend
from tinygan.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from tinygan.data import Minibatches, load_faces
from tinygan.errors import CheckpointError
from tinygan.gan import GeneratorEMA, StackedGANTrainer
from tinygan.gan.history import MetricsHistory, NonFiniteLossError, PendingStats, first_non_finite
from tinygan.images import save_image_grid
from tinygan.io import atomic_path
from tinygan.metrics import discriminator_accuracy
from tinygan.models import (build_gan, dcgan64_discriminator, dcgan64_generator, dcgan128_discriminator,
                            dcgan128_generator)
from tinygan.optimizers import OPTIMIZERS
from tinygan.plots import plot_losses
from tinygan.sequential import frozen

EXIT_NON_FINITE, EXIT_INTERRUPTED = 3, 130

# Settings that define a run.  A resumed run takes them from its checkpoint (so `--resume --out DIR`
# is enough); giving one with a different value is an error, because it could not continue exactly.
RUN_DEFAULTS = {
    "data": None,                # None: the embedded procedural faces
    "limit": None,               # use only the first N images
    "holdout": None,             # held-out real images for D's accuracy (default min(500, N / 10))
    "model": "dcgan",
    "image_size": 64,
    "base_filters": 64,          # DCGAN width (the paper's 64); small values make tiny test models
    "latent_dim": 100,
    "batch_size": 64,            # D sees batch_size / 2 real + batch_size / 2 generated, G batch_size
    "optimizer": None,           # adam at 64x64 (DCGAN paper), nadam at 128x128 (Keras face GANs)
    "lr": 2e-4,
    "beta1": 0.5,
    "g_loss": "non_saturating",
    "real_label": 1.0,           # 0.9 with --label-smoothing
    "ema": False,
    "ema_decay": 0.999,
    "ema_start": 1000,
    "seed": 0,
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    run = dict(default=argparse.SUPPRESS)    # absent unless given: see resolve_settings
    p.add_argument("--backend", default="auto", choices=["numpy", "cupy", "auto"],
                   help="numpy (CPU), cupy (GPU) or auto: cupy if a GPU is usable (default auto)")
    p.add_argument("--data", **run, help="CelebA folder/zip or any image folder (default: embedded faces)")
    p.add_argument("--limit", type=int, **run, help="use only the first N images (quick runs, tests)")
    p.add_argument("--holdout", type=int, **run, help="real images kept out of training to measure D "
                   "(default min(500, N/10))")
    p.add_argument("--model", choices=["dcgan", "mlp"], **run, help="dcgan (default) or mlp (dense GAN)")
    p.add_argument("--image-size", type=int, choices=[64, 128], **run, help="64 (default) or 128")
    p.add_argument("--base-filters", type=int, **run, help="DCGAN width f (default 64)")
    p.add_argument("--latent-dim", type=int, **run, help="noise dimension (default 100)")
    p.add_argument("--batch-size", type=int, **run, help="full batch, even (default 64)")
    p.add_argument("--optimizer", choices=["adam", "nadam"], **run,
                   help="default adam at 64x64, nadam at 128x128")
    p.add_argument("--lr", type=float, **run, help="learning rate of both optimizers (default 2e-4)")
    p.add_argument("--beta1", type=float, **run, help="first-moment decay (default 0.5)")
    p.add_argument("--g-loss", choices=["non_saturating", "saturating"], **run,
                   help="G's loss: -log D(G(z)) (default) or the original log(1 - D(G(z)))")
    p.add_argument("--label-smoothing", dest="real_label", nargs="?", const=0.9, type=float, **run,
                   help="one-sided label smoothing: D's target for real images (0.9 if no value given)")
    p.add_argument("--ema", action="store_true", **run, help="keep an average of G's weights and sample from it")
    p.add_argument("--ema-decay", type=float, **run, help="EMA decay per step (default 0.999)")
    p.add_argument("--ema-start", type=int, **run, help="steps before averaging starts (default 1000)")
    p.add_argument("--seed", type=int, **run, help="seed of every random choice (default 0)")
    p.add_argument("--epochs", type=int, default=25, help="total epochs (default 25)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in total")
    p.add_argument("--out", default="runs/celeba_dcgan", help="output folder (default runs/celeba_dcgan)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out/last.npz")
    p.add_argument("--sample-every", type=int, default=0, help="also save samples every N steps (0: per epoch)")
    p.add_argument("--log-every", type=int, default=10,
                   help="copy losses to the host every N steps: progress bar, metrics, NaN check (default 10)")
    p.add_argument("--keep-checkpoints", action="store_true", help="also keep epoch_XXX.npz after each epoch")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of progress bars")
    args = p.parse_args(argv)
    if "data" in args and args.data is not None:
        args.data = str(Path(args.data).expanduser().resolve())
    return args


def resolve_settings(args, saved: dict | None) -> dict:
    """The run's settings: defaults < what the checkpoint says (on --resume) < the command line."""
    given = {k: getattr(args, k) for k in RUN_DEFAULTS if k in args}
    if saved is None:
        cfg = {**RUN_DEFAULTS, **given}
        if cfg["optimizer"] is None:
            cfg["optimizer"] = "adam" if cfg["image_size"] == 64 else "nadam"
    else:
        cfg = {k: saved.get(k, v) for k, v in RUN_DEFAULTS.items()}
        if "data" in given and given["data"] != cfg["data"]:      # the data may have moved
            print(f"note: reading the data from {given['data']} (the run started with {cfg['data']})")
            cfg["data"] = given.pop("data")
        clash = [f"--{k.replace('_', '-')} {v} (the run was started with {cfg[k]})"
                 for k, v in given.items() if v != cfg[k]]
        if clash:
            raise SystemExit("error: a resumed run keeps its settings, so it can continue exactly; "
                             "these differ: " + "; ".join(clash) + ". Start a new run (another --out) "
                             "to change them.")
    if cfg["batch_size"] < 2 or cfg["batch_size"] % 2:
        raise SystemExit(f"error: --batch-size must be even (half real, half generated), got {cfg['batch_size']}")
    return cfg


def build_models(cfg: dict):
    """(generator, discriminator) for the run's settings (also used by examples/sample.py)."""
    f, z, seed = cfg["base_filters"], cfg["latent_dim"], cfg["seed"]
    if cfg["model"] == "dcgan":
        make_g, make_d = {64: (dcgan64_generator, dcgan64_discriminator),
                          128: (dcgan128_generator, dcgan128_discriminator)}[cfg["image_size"]]
        return make_g(z, base_filters=f, seed=seed), make_d(base_filters=f, seed=seed + 1)
    return build_gan(cfg["model"], cfg["image_size"], z, seed=seed)


def generate(G, z_host, backend, batch: int = 100):
    """G(z) in inference mode: BatchNorm uses its running averages, so each image depends on its
    own noise only (not on the rest of the batch) and nothing in G changes."""
    return backend.xp.concatenate([G.forward(backend.asarray(z_host[i:i + batch]), training=False)
                                   for i in range(0, len(z_host), batch)])


class AsInTraining:
    """A model run the way the training step runs it: BatchNorm normalises each batch with its
    own statistics, but the model is frozen meanwhile, so its running averages do not move.

    Used to make the generated images D is measured on, as the training step makes them.  D
    itself is measured the same way (``discriminator_accuracy(..., training=True)``): its running
    averages mix the statistics of real and of generated batches, and in inference mode that
    mixture makes D call nearly everything fake -- a number that says nothing about the D that
    training actually pits against G.
    """

    def __init__(self, model):
        self.model = model

    def forward(self, x, training: bool = False):
        with frozen(self.model):
            return self.model.forward(x, training=True)


class DeferredInterrupt:
    """Turns Ctrl-C into a request that the loop honours between two steps.

    A step interrupted halfway (D updated, G not yet) could not be resumed exactly, so the
    first Ctrl-C only sets ``requested``; the loop then saves and exits.  A second Ctrl-C
    exits at once, without saving (the previous checkpoint stays intact).
    """

    def __enter__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            print("\nsecond Ctrl-C: exiting without saving", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_INTERRUPTED)
        self.requested = True
        print("\nCtrl-C: finishing this step, then saving (press again to exit without saving)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)
        return False


class StopTraining(Exception):
    """--max-steps was reached."""


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    ckpt_path = out / "last.npz"

    # ---- settings; on --resume, the checkpoint to continue from -------------------------------
    checkpoint = None
    if args.resume:
        checkpoint = load_checkpoint(ckpt_path)          # clear CheckpointError if missing or corrupt
        cfg = resolve_settings(args, checkpoint["config"])
    else:
        if ckpt_path.exists():
            raise SystemExit(f"error: {ckpt_path} already holds a run; add --resume to continue it, "
                             f"or choose another --out")
        cfg = resolve_settings(args, None)
    backend = get_backend(args.backend)
    print(f"backend: {backend.name} ({backend.dtype.name})")

    # ---- data: real faces in [-1, 1], NCHW; a few held out to measure the discriminator -------
    faces = load_faces(cfg["data"], cfg["image_size"], limit=cfg["limit"], progress=not args.no_progress)
    print(faces.summary())
    n_holdout = cfg["holdout"] if cfg["holdout"] is not None else min(500, len(faces) // 10)
    train_set, holdout = faces.split(n_holdout, seed=cfg["seed"])
    half = cfg["batch_size"] // 2
    batches = Minibatches(train_set, half, seed=cfg["seed"] + 3, backend=backend)
    holdout_images = holdout.batch(np.arange(len(holdout)), backend) if len(holdout) >= 2 else None
    print(f"training on {len(train_set)} images ({len(batches)} steps per epoch of {half} real + "
          f"{half} generated for D, {cfg['batch_size']} generated for G); {len(holdout)} held out")

    # ---- models, optimizers, trainer -----------------------------------------------------------
    G, D = build_models(cfg)
    G.to(backend)
    D.to(backend)
    print(G.summary())
    print(D.summary())
    Opt = OPTIMIZERS[cfg["optimizer"]]
    g_opt = Opt(lr=cfg["lr"], beta1=cfg["beta1"])
    d_opt = Opt(lr=cfg["lr"], beta1=cfg["beta1"])
    print(f"optimizers: G {g_opt}, D {d_opt}; G loss {cfg['g_loss']}; D's real label {cfg['real_label']}")
    trainer = StackedGANTrainer(G, D, g_opt, d_opt, latent_dim=cfg["latent_dim"], backend=backend,
                                g_loss=cfg["g_loss"], real_label=cfg["real_label"], seed=cfg["seed"] + 2)
    ema = GeneratorEMA(G, cfg["ema_decay"], cfg["ema_start"]) if cfg["ema"] else None
    sampler = ema.model if ema is not None else G            # the generator the pictures come from
    history = MetricsHistory()
    # The same 100 noise vectors every epoch, so the grids show how one set of faces evolves.
    fixed_noise = np.random.default_rng(cfg["seed"] + 4).standard_normal((100, cfg["latent_dim"])).astype(np.float32)
    epoch = 0                                                # completed epochs
    if checkpoint is not None:
        restore_training_state(checkpoint, trainer, batches=batches, ema=ema, history=history, path=ckpt_path)
        fixed_noise = checkpoint["extra"]["fixed_noise"]
        epoch = checkpoint["epoch"]
        print(f"resumed from {ckpt_path}: {epoch} epochs done, step {trainer.steps}, "
              f"batch {batches.position} of {len(batches)} in the current epoch")

    run_config = {**cfg, "backend": backend.name, "n_images": len(faces), "n_train": len(train_set),
                  "n_holdout": len(holdout), "steps_per_epoch": len(batches)}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "config.json") as tmp:
        tmp.write_text(json.dumps({**run_config, "epochs": args.epochs, "max_steps": args.max_steps}, indent=2))

    # ---- outputs ----------------------------------------------------------------------------------
    def save_samples(*names):
        if ema is not None:
            # the average's own BatchNorm statistics, from a noise stream that training never draws on
            rng = np.random.default_rng([cfg["seed"], 11])
            ema.recalibrate_batchnorm(backend.asarray(rng.standard_normal((cfg["batch_size"], cfg["latent_dim"])))
                                      for _ in range(8))
        images = generate(sampler, fixed_noise, backend)
        for name in names + ("samples_latest.png",):
            save_image_grid(images, out / name, nrow=10)

    def write_metrics():
        history.write_csv(out / "metrics.csv")
        history.write_eval_csv(out / "eval.csv")
        if len(history):
            plot_losses(history, out / "losses.png", title=f"{cfg['model']} {cfg['image_size']}x{cfg['image_size']}, "
                        f"{len(train_set)} images, batch {cfg['batch_size']}")

    def save(completed_epochs: int) -> None:
        """The checkpoint, atomically, after checking that every weight is still finite."""
        state = training_state(trainer, batches=batches, ema=ema, epoch=completed_epochs, history=history,
                               config=run_config, extra={"fixed_noise": fixed_noise})
        for model in ("G", "D"):
            bad = [k for k, a in state["trainer"][model].items() if not np.isfinite(a).all()]
            if bad:
                raise FloatingPointError(f"{model} has non-finite weights {bad[:3]} at step {trainer.steps}; "
                                         f"not overwriting the last good checkpoint")
        save_checkpoint(ckpt_path, state)
        if args.keep_checkpoints and completed_epochs and batches.position in (0, len(batches)):
            with atomic_path(out / f"epoch_{completed_epochs:03d}.npz") as tmp:
                shutil.copyfile(ckpt_path, tmp)

    pending = PendingStats()                     # step statistics still on the device
    clock = {"t0": time.perf_counter()}

    def log(bar) -> None:
        """Copy the pending statistics to the host (one sync), record them, stop on NaN/inf."""
        rows = pending.flush()
        if not rows:
            return
        dt = time.perf_counter() - clock["t0"]
        images_per_sec = len(rows) * cfg["batch_size"] / max(dt, 1e-9)
        clock["t0"] = time.perf_counter()
        history.add_steps(rows, images_per_sec)
        bad = first_non_finite(rows)
        if bad is not None:
            raise NonFiniteLossError(bad["step"], bad["epoch"], bad)
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("d_loss", "g_loss", "d_acc_real", "d_acc_fake")}
        info = dict(d_loss=f"{mean['d_loss']:.3f}", g_loss=f"{mean['g_loss']:.3f}",
                    d_acc=f"{(mean['d_acc_real'] + mean['d_acc_fake']) / 2:.2f}", img_s=f"{images_per_sec:.1f}")
        if bar is None or bar.disable:
            print(f"step {rows[-1]['step']} epoch {rows[-1]['epoch'] + 1}: "
                  + " ".join(f"{k} {v}" for k, v in info.items()), flush=True)
        else:
            bar.set_postfix(info)

    def end_of_epoch(e: int) -> None:
        """Measure D, save samples, curves and the checkpoint for the completed epoch ``e`` (0-based)."""
        if holdout_images is not None:
            # D as in training: half batches of real images, and of images from G run as in training.
            z = np.random.default_rng([cfg["seed"], 7, e]).standard_normal((len(holdout), cfg["latent_dim"]))
            chunks = np.array_split(z, -(-len(z) // half))          # about half a batch each, none of 1
            fake = backend.xp.concatenate([AsInTraining(G).forward(backend.asarray(c)) for c in chunks])
            acc = discriminator_accuracy(D, holdout_images, fake, batch_size=half, training=True)
            history.add_eval(trainer.steps, e, acc["real"], acc["fake"])
            tqdm.write(f"epoch {e + 1}: D calls {acc['real']:.1%} of {len(holdout)} held-out real faces real "
                       f"and {acc['fake']:.1%} of {len(holdout)} generated faces fake")
        save_samples(f"samples_epoch_{e + 1:03d}.png")
        write_metrics()
        save(e + 1)
        tqdm.write(f"epoch {e + 1} done at step {trainer.steps}: samples, losses.png, metrics.csv, {ckpt_path}")
        clock["t0"] = time.perf_counter()        # output time does not count against images/s

    # ---- the training loop ------------------------------------------------------------------------
    def reached_max_steps() -> bool:
        return args.max_steps is not None and trainer.steps >= args.max_steps

    def diverged(e: FloatingPointError) -> int:
        write_metrics()                              # the curves up to the bad step help to diagnose
        last = (f"the last good checkpoint {ckpt_path} (step {load_checkpoint(ckpt_path)['step']}) is untouched"
                if ckpt_path.exists() else "no checkpoint was written")
        print(f"error: training diverged: {e}. Stopping; {last}. Try a lower --lr or --label-smoothing.",
              file=sys.stderr, flush=True)
        return EXIT_NON_FINITE

    if reached_max_steps():
        print(f"the run is already at step {trainer.steps} >= --max-steps {args.max_steps}; nothing to do")
        return 0
    bar = None
    with DeferredInterrupt() as interrupt:
        try:
            while epoch < args.epochs:
                start = batches.position if batches.position < len(batches) else 0
                bar = tqdm(total=len(batches), initial=start, desc=f"epoch {epoch + 1}/{args.epochs}",
                           unit="step", disable=args.no_progress, dynamic_ncols=True)
                clock["t0"] = time.perf_counter()
                for real in batches:                 # the rest of this epoch (all of it, unless resumed)
                    stats = trainer.train_step(real)     # 0-d device arrays: no waiting for the GPU here
                    if ema is not None:
                        ema.update(G)
                    pending.add(trainer.steps, epoch, stats)
                    bar.update(1)
                    if len(pending) >= args.log_every:
                        log(bar)
                    if args.sample_every and trainer.steps % args.sample_every == 0:
                        save_samples(f"samples_step_{trainer.steps:07d}.png")
                    mid_epoch = batches.position < len(batches)     # the epoch end saves anyway
                    if mid_epoch and interrupt.requested:
                        raise KeyboardInterrupt
                    if mid_epoch and reached_max_steps():
                        raise StopTraining
                log(bar)
                bar.close()
                end_of_epoch(epoch)
                epoch += 1
                if interrupt.requested:
                    raise KeyboardInterrupt
                if reached_max_steps():
                    raise StopTraining
            print(f"finished {args.epochs} epochs ({trainer.steps} steps); outputs in {out}")
            return 0
        except FloatingPointError as e:              # NonFiniteLossError, or non-finite weights
            if bar is not None:
                bar.close()
            return diverged(e)
        except (StopTraining, KeyboardInterrupt) as stop:
            try:
                log(bar)
                if bar is not None:
                    bar.close()
                write_metrics()
                save_samples(f"samples_step_{trainer.steps:07d}.png")
                save(epoch)
            except FloatingPointError as e:
                return diverged(e)
            if isinstance(stop, KeyboardInterrupt):
                print(f"interrupted at step {trainer.steps} (epoch {epoch + 1}, batch {batches.position} of "
                      f"{len(batches)}); saved {ckpt_path}; continue with --resume --out {out}", flush=True)
                return EXIT_INTERRUPTED
            print(f"reached --max-steps {args.max_steps} at step {trainer.steps}; saved {ckpt_path}", flush=True)
            return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:                    # before training started (loading data, building models)
        print("\ninterrupted before training started; nothing was saved", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
