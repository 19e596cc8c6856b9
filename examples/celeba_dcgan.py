#!/usr/bin/env python
"""Train a DCGAN on faces with tinygan: every gradient by hand, on NumPy (CPU) or CuPy (GPU).

    python examples/celeba_dcgan.py                                   # embedded faces, DCGAN 64x64
    python examples/celeba_dcgan.py --data ../shared/data/celeba-10k --epochs 5
    python examples/celeba_dcgan.py --resume                          # continue runs/celeba_dcgan
    python examples/sample.py --run runs/celeba_dcgan                 # draw from the result
    mpiexec -n 4 python examples/celeba_dcgan.py --backend cupy ...   # 4 GPUs: docs/distributed.md

Each step is the Keras recipe (tinygan.gan.StackedGANTrainer): D learns from half a batch of real and
half a batch of generated images, then G learns through the frozen D.  --out gets config.json, sample
grids from a fixed noise, losses.png, metrics.csv, eval.csv (D's accuracy on held-out and generated
faces) and last.npz, the checkpoint, after every epoch and every --save-every steps.  Ctrl-C, SIGTERM
and SIGHUP finish the step, save and exit (130, 143, 129); --resume continues exactly (bit for bit on
NumPy).  A NaN loss stops the run (exit 3) and keeps the last good checkpoint.  See tinygan.training.
Under mpiexec every rank (process) trains on its share of each --batch-size batch, the gradients are
averaged, and rank 0 alone prints and writes (tinygan.distributed).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tinygan import distributed, training
from tinygan.checkpoint import restore_training_state, training_state
from tinygan.data import Minibatches, load_faces
from tinygan.gan import GeneratorEMA, StackedGANTrainer, StepStats
from tinygan.images import make_grid, save_png_atomic
from tinygan.metrics import accuracy_as_in_training
from tinygan.models import build_gan
from tinygan.optimizers import OPTIMIZERS
from tinygan.schedules import SCHEDULES
from tinygan.training import cli

# Settings that define a run.  A resumed run takes them from its checkpoint (so `--resume --out DIR`
# is enough); giving one with a different value is an error, because it could not continue exactly.
RUN_DEFAULTS = {
    "data": None, "limit": None,  # None: the embedded procedural faces; all of them
    "holdout": None,              # held-out real images for D's accuracy (default min(500, N / 10))
    "model": "dcgan", "image_size": 64, "latent_dim": 100,
    "base_filters": 64,           # DCGAN width (the paper's 64); small values make tiny test models
    "batch_size": 64,             # D sees batch_size / 2 real + batch_size / 2 generated, G batch_size
    "optimizer": None,            # adam at 64x64 (DCGAN paper), nadam at 128x128 (Keras face GANs)
    "lr": 2e-4, "beta1": 0.5, "g_loss": "non_saturating", "real_label": 1.0,   # 0.9: label smoothing
    "lr_schedule": "constant", "lr_decay": 0.0, "warmup_steps": 0,
    "lr_steps": None,             # steps of a linear/cosine schedule (default: --epochs x steps/epoch)
    "ema": False, "ema_decay": 0.999, "ema_start": 1000, "seed": 0,
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    run = dict(default=argparse.SUPPRESS)          # absent unless given: see resolve_settings
    p.add_argument("--backend", default="auto", choices=["numpy", "cupy", "auto"], help="auto: cupy if any")
    p.add_argument("--data", type=cli.path_text, **run,
                   help="CelebA folder/zip or any image folder (default: embedded faces)")
    p.add_argument("--limit", type=cli.positive_int, **run, help="use only the first N images")
    p.add_argument("--holdout", type=cli.non_negative_int, **run, help="images to judge D (N/10, max 500)")
    p.add_argument("--model", choices=["dcgan", "mlp"], **run, help="dcgan (default) or mlp (dense GAN)")
    p.add_argument("--image-size", type=int, choices=[64, 128], **run, help="64 (default) or 128")
    p.add_argument("--base-filters", type=cli.positive_int, **run, help="DCGAN width f (default 64)")
    p.add_argument("--latent-dim", type=cli.positive_int, **run, help="noise dimension (default 100)")
    p.add_argument("--batch-size", type=cli.positive_int, **run, help="global batch, even (default 64)")
    p.add_argument("--optimizer", choices=["adam", "nadam"], **run, help="default adam at 64, nadam at 128")
    p.add_argument("--lr", type=cli.positive_float, **run, help="learning rate of both optimizers (2e-4)")
    p.add_argument("--beta1", type=cli.probability, **run, help="first-moment decay in [0, 1) (0.5)")
    p.add_argument("--lr-schedule", choices=sorted(SCHEDULES), **run, help="constant (default), "
                   "inverse-time (Keras: lr / (1 + decay * step)), linear or cosine to 0 over --lr-steps")
    p.add_argument("--lr-decay", type=cli.non_negative_float, **run, help="decay of inverse-time (0)")
    p.add_argument("--warmup-steps", type=cli.non_negative_int, **run, help="ramp the lr up over N steps")
    p.add_argument("--lr-steps", type=cli.positive_int, **run,
                   help="linear/cosine length in steps (epochs x steps per epoch)")
    p.add_argument("--g-loss", choices=["non_saturating", "saturating"], **run, help="G's loss")
    p.add_argument("--label-smoothing", dest="real_label", nargs="?", const=0.9, **run,
                   type=cli.number_in(0, 1, low_open=True), help="D's target for real images (0.9 if bare)")
    p.add_argument("--ema", action="store_true", **run, help="sample from an average of G's weights")
    p.add_argument("--ema-decay", type=cli.probability, **run, help="EMA decay per step (0.999)")
    p.add_argument("--ema-start", type=cli.non_negative_int, **run, help="steps before averaging (1000)")
    p.add_argument("--seed", type=cli.seed, **run, help="seed of every random choice (default 0)")
    p.add_argument("--epochs", type=cli.positive_int, default=25, help="total epochs (default 25)")
    p.add_argument("--max-steps", type=cli.positive_int, help="stop after this many steps in total")
    p.add_argument("--out", type=cli.path_text, default="runs/celeba_dcgan", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out/last.npz")
    p.add_argument("--save-every", type=cli.non_negative_int, default=0, help="checkpoint every N steps too")
    p.add_argument("--sample-every", type=cli.non_negative_int, default=0, help="also sample every N steps")
    p.add_argument("--log-every", type=cli.positive_int, default=10, help="steps per progress update (10)")
    p.add_argument("--keep-checkpoints", action="store_true", help="also keep epoch_XXX.npz")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of progress bars")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files to --out")
    args = p.parse_args(argv)
    if getattr(args, "data", None) is not None:
        args.data = str(Path(args.data).expanduser().resolve())
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    backend = cli.backend_from_flag(args.backend)
    comm = distributed.init(backend)        # under `mpiexec -n N`: rank comm.rank of N; else one process
    run = training.RunFolder(args.out, communicator=comm)          # rank 0 reads and writes for all

    # ---- settings: the defaults, or the resumed run's own, then the command line --------------
    checkpoint = run.load_checkpoint() if args.resume else run.check_no_run()
    given = cli.given(args, RUN_DEFAULTS)
    cfg, notes = training.resolve_settings(RUN_DEFAULTS, given, checkpoint and checkpoint["config"],
                                           may_change=("data",))
    cli.require(cfg["ema"] or not {"ema_decay", "ema_start"} & set(given), "--ema-decay and --ema-start "
                "set the generator average, which needs --ema")
    cfg["optimizer"] = cfg["optimizer"] or ("adam" if cfg["image_size"] == 64 else "nadam")
    seed, latent, batch_size = cfg["seed"], cfg["latent_dim"], cfg["batch_size"]
    half = batch_size // 2                 # D sees half a batch of real and half of generated images
    cli.check_batch_size(batch_size, comm.size)            # the global batch, shared by the ranks
    run.prepare()                                            # also removes temp files of killed runs
    print(f"backend: {backend.name} ({backend.dtype.name})" + f", {comm.size} ranks" * (comm.size > 1)
          + "".join(f"\nnote: {n}" for n in notes))

    # ---- data: real faces in [-1, 1], NCHW; a few held out to measure the discriminator -------
    with comm.root_first():                  # rank 0 decodes and caches; the other ranks read its cache
        faces = load_faces(cfg["data"], cfg["image_size"], limit=cfg["limit"], progress=not args.no_progress)
    print(faces.summary())
    n_holdout = cfg["holdout"] if cfg["holdout"] is not None else min(500, len(faces) // 10)
    cli.check_batch_fits(len(faces), n_holdout, batch_size)
    train_set, holdout = faces.split(n_holdout, seed=seed)
    # The same seeded global batches on every rank; each rank loads its share (comm.shard).
    batches = Minibatches(train_set, half, seed=seed + 3, backend=backend, shard=comm.shard)
    held_out = holdout.batch(np.arange(len(holdout)), backend) if len(holdout) >= 2 else None
    print(f"training on {len(train_set)} images ({len(batches)} steps per epoch of {half} real + {half} "
          f"generated for D, {batch_size} generated for G); {len(holdout)} held out")

    # ---- models and optimizers ----------------------------------------------------------------
    G, D = build_gan(cfg["model"], cfg["image_size"], latent, seed=seed, base_filters=cfg["base_filters"])
    G, D = G.to(backend), D.to(backend)
    print(G.summary(), D.summary(), sep="\n")
    schedule = cli.schedule_from_settings(cfg, given, steps=args.epochs * len(batches))  # lr x factor(step)
    g_opt = OPTIMIZERS[cfg["optimizer"]](lr=cfg["lr"], beta1=cfg["beta1"], schedule=schedule)
    d_opt = OPTIMIZERS[cfg["optimizer"]](lr=cfg["lr"], beta1=cfg["beta1"], schedule=schedule)
    trainer = StackedGANTrainer(G, D, g_opt, d_opt, latent_dim=latent, backend=backend, g_loss=cfg["g_loss"],
                                real_label=cfg["real_label"], seed=seed + 2, communicator=comm)
    ema = GeneratorEMA(G, cfg["ema_decay"], cfg["ema_start"]) if cfg["ema"] else None
    # The same 100 noise vectors every epoch, so the grids show how one set of faces evolves.
    fixed_noise = np.random.default_rng(seed + 4).standard_normal((100, latent)).astype(np.float32)

    # ---- outputs; on --resume, the state to continue from -------------------------------------
    history = training.MetricsHistory()
    title = f"{cfg['model']} {cfg['image_size']}px, {len(train_set)} images, batch {batch_size}"
    loggers = training.run_loggers(run, history, title, tensorboard=args.tensorboard,
                                   resumed_at=checkpoint["step"] if checkpoint else 0)
    log = training.ProgressLog(loggers, batch_size, args.log_every, bar=not args.no_progress,
                               communicator=comm)                    # losses: means over the ranks
    ckpt = training.Checkpointer(run.checkpoint_path, keep_epochs=args.keep_checkpoints, writer=run.writer)
    epoch = 0                                                # completed epochs
    if checkpoint is not None:
        restore_training_state(checkpoint, trainer, batches=batches, ema=ema, history=history, path=ckpt.path)
        fixed_noise, epoch = checkpoint["extra"]["fixed_noise"], checkpoint["epoch"]
        print(f"resumed from {ckpt.path}: {epoch} epochs done, step {trainer.steps}, "
              f"batch {batches.position} of {len(batches)} in the current epoch")
    run_config = {**cfg, "backend": backend.name, "n_images": len(faces), "n_train": len(train_set),
                  "n_holdout": len(holdout), "steps_per_epoch": len(batches)}
    run.write_config({**run_config, "epochs": args.epochs, "max_steps": args.max_steps})

    def save_samples(name):
        if not run.writer:                                    # rank 0 alone draws and writes
            return
        rng = np.random.default_rng([seed, 11])           # the average's BatchNorm, from unseen noise
        model = G if ema is None else ema.model_for_sampling(
            backend.asarray(rng.standard_normal((batch_size, latent))) for _ in range(8))
        grid = make_grid(training.generate(model, fixed_noise, backend), nrow=10)
        for path in (run / name, run / "samples_latest.png"):
            save_png_atomic(grid, path)
        log.log_image("samples", grid, trainer.steps)

    def save(epochs_done, epoch_end=None):
        log.flush()                                          # the checkpoint's history ends at this step
        ckpt.save(training_state(trainer, batches=batches, ema=ema, epoch=epochs_done, history=history,
                                 config=run_config, extra={"fixed_noise": fixed_noise}), epoch_end=epoch_end)
        log.write()                                          # after: a failing plot costs no checkpoint
        log.restart_clock()                                  # saving does not count against images/s

    # ---- training -----------------------------------------------------------------------------
    max_steps = args.max_steps or np.inf
    if trainer.steps >= max_steps or epoch >= args.epochs:
        print(f"the run is already at step {trainer.steps}, {epoch} epochs done (--max-steps "
              f"{args.max_steps}, --epochs {args.epochs}); nothing to do")
        return 0
    stop = False
    # A rank that fails aborts all (none waits forever); the NaN guard stops every rank alike.
    with (training.DeferredInterrupt(communicator=comm) as interrupt,
          comm.abort_on_error(agreed=(training.TrainingDiverged,)),
          training.stop_on_divergence(ckpt, hint="Try a lower --lr, or --label-smoothing.",
                                      before=log.finish)):
        while epoch < args.epochs and not stop:
            log.start_epoch(epoch, args.epochs, len(batches), batches.position % len(batches))
            for real in batches:                             # the rest of this epoch (all, unless resumed)
                d_loss, acc_real, acc_fake = trainer.discriminator_step(real)   # (1) D: real vs generated
                g_loss = trainer.generator_step(batch_size // comm.size)        # (2) G: fool the frozen D
                trainer.steps += 1
                if ema is not None:
                    ema.update(G)
                log.add(trainer.steps, epoch, StepStats(d_loss, g_loss, acc_real, acc_fake),
                        {"d_lr": d_opt.step_lr, "g_lr": g_opt.step_lr})
                if args.sample_every and trainer.steps % args.sample_every == 0:
                    save_samples(f"samples_step_{trainer.steps:07d}.png")
                stop = interrupt.requested_on_any_rank() or trainer.steps >= max_steps   # on any rank
                mid_epoch = batches.position < len(batches)              # the epoch's end saves anyway
                if mid_epoch and (stop or (args.save_every and trainer.steps % args.save_every == 0)):
                    save(epoch)
                if stop:
                    break
            if batches.position == len(batches):             # the epoch is complete
                log.flush()
                log.close()
                if held_out is not None:                     # D as in training, on held-out and fake faces
                    z = np.random.default_rng([seed, 7, epoch]).standard_normal((len(holdout), latent))
                    acc = accuracy_as_in_training(G, D, held_out, z, batch_size=half // comm.size)
                    log.log_eval(trainer.steps, epoch, {"holdout_real_acc": acc["real"],
                                                        "generated_acc": acc["fake"]})
                    log.message(f"epoch {epoch + 1}: D calls {acc['real']:.1%} of {len(holdout)} held-out "
                                f"real faces real and {acc['fake']:.1%} of as many generated faces fake")
                save_samples(f"samples_epoch_{epoch + 1:03d}.png")
                epoch += 1
                save(epoch, epoch_end=epoch)
                log.message(f"epoch {epoch} done at step {trainer.steps}; saved {ckpt.path}")
                stop = stop or interrupt.requested_on_any_rank()
    log.close()
    if not stop:
        log.message(f"finished {args.epochs} epochs ({trainer.steps} steps); outputs in {run}")
        return 0
    save_samples(f"samples_step_{trainer.steps:07d}.png")
    if interrupt.requested:
        log.message(f"interrupted at step {trainer.steps} (epoch {epoch + 1}, batch {batches.position} of "
                    f"{len(batches)}); saved {ckpt.path}; continue with --resume --out {run}")
        return interrupt.exit_code
    log.message(f"reached --max-steps {args.max_steps} at step {trainer.steps}; saved {ckpt.path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_command(main))
