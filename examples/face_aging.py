"""Face aging on CelebA: a conditional DCGAN G(z, age), an age classifier, and latent projection.

    python examples/face_aging.py --run runs/aging32                    # train (or continue) + evaluate
    python examples/face_aging.py --run runs/aging32 --evaluate         # load, evaluate on held-out faces
    python examples/face_aging.py --run runs/aging32 --age me.jpg you.png   # age your own photos

"Old" means CelebA's *Young* attribute is -1 (the annotators did not judge the person young);
CelebA has no ages.  ``--age-rule not_young_or_gray`` also counts grey-haired faces as old.
See docs/face_aging.md; the pieces are in tinygan.aging.

The last ``--holdout`` images of the dataset (file order; 1,000 of the shared 10k sample) are
never used for training; ``--evaluate`` measures on them:

* the age classifier's accuracy and balanced accuracy;
* for held-out *young* faces: the share of plain reconstructions G(z*, young) the classifier calls
  old, against the share of aged faces G(z*, old) it calls old;
* the mean reconstruction error (pixel MSE in [-1, 1] units) of the projection;
* a sheet of strips input | reconstruction | aged (PNG).

Only training writes models: ``--evaluate`` and ``--age`` need a finished run and never train.
A run keeps the settings it was trained with (config.json): continuing an interrupted run,
``--evaluate`` and ``--age`` use them and refuse a flag that would change one; ``--evaluate``
reads the run's own data folder and held-out images unless ``--data`` says where it moved.
A run folder holds config.json, generator.npz, discriminator.npz, classifier.npz (weights, written
atomically), gan_checkpoint.npz (the full training state: an interrupted run continues where it
stopped; Ctrl-C, SIGTERM and SIGHUP save it and exit), samples.png, evaluation.json and the strips.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tinygan import aging, training
from tinygan.aging import OLD, YOUNG
from tinygan.checkpoint import restore_training_state, training_state
from tinygan.data import load_faces
from tinygan.errors import ConfigError, DataError
from tinygan.gan import ConditionalStackedGANTrainer
from tinygan.io import atomic_path
from tinygan.models import age_classifier, build_conditional_gan
from tinygan.optimizers import Adam
from tinygan.schedules import SCHEDULES
from tinygan.training import cli
from tinygan.training.guard import check_losses

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path("../shared/data/celeba-10k")
FILES = ("config.json", "generator.npz", "discriminator.npz", "classifier.npz")


# Settings that define a run: a run continued after an interruption, or loaded to --evaluate or
# --age, keeps its own (from config.json); giving one with another value is an error.
RUN_DEFAULTS = {"image_size": 64, "base_filters": 64, "latent_dim": 100, "clf_filters": 16,
                "age_rule": "not_young", "seed": 0, "holdout": 1000, "limit": None, "batch_size": 64,
                "lr": 2e-4, "lr_schedule": "constant", "lr_decay": 0.0, "warmup_steps": 0, "lr_steps": None}
MODEL_KEYS = ("image_size", "base_filters", "latent_dim", "clf_filters", "age_rule")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run = dict(default=argparse.SUPPRESS)          # absent unless given: see settings()
    p.add_argument("--data", type=cli.path_text, default=None,
                   help=f"CelebA folder with img_align_celeba/ and list_attr_celeba.txt (default: the run's, "
                        f"else {DEFAULT_DATA} if present)")
    p.add_argument("--run", type=cli.path_text, default="runs/face_aging",
                   help="run folder: loaded if it holds trained models, else trained into")
    p.add_argument("--retrain", action="store_true", help="train even if --run already holds models")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "auto"])
    p.add_argument("--image-size", type=int, choices=[32, 64], **run, help="64 (default) or 32")
    p.add_argument("--base-filters", type=cli.positive_int, **run, help="GAN width (DCGAN: 64)")
    p.add_argument("--latent-dim", type=cli.positive_int, **run, help="noise dimension (100)")
    p.add_argument("--clf-filters", type=cli.positive_int, **run, help="age classifier width (16)")
    p.add_argument("--age-rule", **run, help="what counts as old (not_young; see docs/face_aging.md)",
                   choices=[r for r in aging.AGE_RULES if r != "gray_hair"])
    p.add_argument("--epochs", type=cli.positive_float, default=5.0,
                   help="GAN epochs: passes of the real half batches over the training images")
    p.add_argument("--max-minutes", type=cli.positive_float, help="stop GAN training after this long")
    p.add_argument("--clf-epochs", type=cli.positive_float, default=3.0, help="age classifier epochs")
    p.add_argument("--batch-size", type=cli.positive_int, **run,
                   help="GAN batch (64), a multiple of 4: D sees batch/2 real (balanced young/old) + batch/2 "
                        "generated, G a full batch")
    p.add_argument("--lr", type=cli.positive_float, **run, help="learning rate (2e-4)")
    p.add_argument("--lr-schedule", choices=sorted(SCHEDULES), **run,
                   help="constant (default), inverse-time (lr / (1 + decay * step)), linear or cosine to 0")
    p.add_argument("--lr-decay", type=cli.non_negative_float, **run, help="decay of inverse-time (0)")
    p.add_argument("--warmup-steps", type=cli.non_negative_int, **run, help="ramp the lr up over N steps (0)")
    p.add_argument("--lr-steps", type=cli.positive_int, **run, help="length of linear/cosine (GAN steps)")
    p.add_argument("--seed", type=cli.seed, **run, help="seed of every random choice (0)")
    p.add_argument("--limit", type=cli.positive_int, **run, help="use only the first LIMIT training images")
    p.add_argument("--holdout", type=cli.positive_int, **run,
                   help="last images of the dataset kept out of training (1000)")
    p.add_argument("--evaluate", action="store_true", help="evaluate a trained run on the held-out images")
    p.add_argument("--eval-n", type=cli.positive_int, help="held-out images to project (default: all)")
    p.add_argument("--age", nargs="+", type=cli.path_text, metavar="PHOTO",
                   help="face photos to age (needs a trained run)")
    p.add_argument("--input-age", default="auto", choices=["auto", "young", "old"],
                   help="age label of the --age photos (auto: the classifier decides)")
    p.add_argument("--out", type=cli.path_text, help="folder for --age strips (default RUN/aged)")
    p.add_argument("--strength", type=cli.finite_float, default=1.0,
                   help="age label used for aging: weights (1 - S, S) for (young, old); 1 is the plain 'old' "
                        "label, S > 1 extrapolates past anything seen in training (stronger, less faithful)")
    p.add_argument("--steps", type=cli.positive_int, default=200, help="Adam steps of latent projection")
    p.add_argument("--proj-lr", type=cli.positive_float, default=0.05, help="step size of latent projection")
    p.add_argument("--restarts", type=cli.positive_int, default=2, help="random starts per face, projecting")
    p.add_argument("--feature-weight", type=cli.non_negative_float, default=0.0,
                   help="weight of D-feature matching in projection (0: pixels only)")
    p.add_argument("--prior-weight", type=cli.non_negative_float, default=1e-3,
                   help="weight of ||z||^2 in projection")
    p.add_argument("--log-every", type=cli.positive_int, default=100)
    p.add_argument("--save-every", type=cli.positive_int, default=500, help="save the GAN every N steps")
    args = p.parse_args(argv)
    batch_size = getattr(args, "batch_size", RUN_DEFAULTS["batch_size"])
    cli.require(batch_size % 4 == 0, f"--batch-size must be a multiple of 4 (half real, those half "
                                     f"young and half old), got {batch_size}")
    return args


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


NEEDS = ("Face aging needs a CelebA folder holding img_align_celeba/ (or img_align_celeba.zip) AND "
         "list_attr_celeba.txt, whose Young attribute gives the age labels; pass it with --data PATH.")


def find_data(arg, saved=None) -> Path:
    """--data, else the folder the run was trained on, else the shared CelebA sample."""
    if saved and not arg and not Path(saved).exists():
        raise ConfigError(f"the run's data {saved} no longer exists; if it moved, give its new place "
                          f"with --data")
    candidates = [Path(arg or saved)] if arg or saved else [DEFAULT_DATA, ROOT / DEFAULT_DATA]
    for c in candidates:
        if c.exists():
            return c.resolve()
    where = arg or f"{DEFAULT_DATA} (relative to the working folder or to the repository)"
    raise DataError(f"no data at {where}.  {NEEDS}")


def load_data(data: Path, cfg: dict):
    """(train, y_train, held, y_held): the last cfg["holdout"] images are held out, labels by age rule."""
    ds = load_faces(str(data), cfg["image_size"], progress=False)
    log(ds.summary())
    if ds.attributes is None or "Young" not in ds.attr_names:
        raise DataError(f"{data} has images but no CelebA attribute file with a Young column.  {NEEDS}")
    holdout = cfg["holdout"]
    cli.require(holdout < len(ds), f"--holdout {holdout} leaves no training images of the {len(ds)} in "
                                   f"{data}")
    n_train = len(ds) - holdout
    train = ds.subset(np.arange(n_train), f"{ds.name}[train]")
    held = ds.subset(np.arange(n_train, len(ds)), f"{ds.name}[held-out]")
    if cfg["limit"] is not None:
        train = train.subset(np.arange(min(cfg["limit"], len(train))), f"{ds.name}[train, limit]")
    y_train, y_held = aging.age_labels(train, cfg["age_rule"]), aging.age_labels(held, cfg["age_rule"])
    keep_t, keep_h = np.flatnonzero(y_train >= 0), np.flatnonzero(y_held >= 0)
    if len(keep_t) < len(train) or len(keep_h) < len(held):
        log(f"dropping {len(train) - len(keep_t)} training and {len(held) - len(keep_h)} held-out images "
            f"that have no attribute row")
        train, y_train = train.subset(keep_t), y_train[keep_t]
        held, y_held = held.subset(keep_h), y_held[keep_h]
    if len(train) == 0 or len(held) == 0:
        raise DataError(f"{data}: no {'training' if len(train) == 0 else 'held-out'} image has an attribute "
                        f"row in its list_attr_celeba.txt")
    log(f"training images: {len(train)} ({y_train.mean():.1%} old); held-out: {len(held)} "
        f"({y_held.mean():.1%} old); old = {cfg['age_rule']}")
    return train, y_train, held, y_held


def check_batches_fit(y_train, batch_size: int, age_rule: str) -> None:
    """D's real half batch holds batch_size / 4 young and as many old faces: both ages must have them."""
    young, old = (int(n) for n in np.bincount(y_train, minlength=2))
    quarter = batch_size // 4
    if min(young, old) == 0:
        raise DataError(f"the training images hold no {'old' if young else 'young'} faces (old = "
                        f"{age_rule}); face aging needs both")
    cli.require(min(young, old) >= quarter, f"--batch-size {batch_size} needs {quarter} young and {quarter} "
                f"old training faces per step, but there are {young} young and {old} old (old = {age_rule}): "
                f"use a --batch-size of at most {4 * min(young, old)}, or more images")


def build_models(cfg, backend):
    G, D = build_conditional_gan(cfg["image_size"], cfg["latent_dim"], 2, cfg["base_filters"],
                                 seed=cfg["seed"])
    C = age_classifier(cfg["image_size"], cfg["clf_filters"], seed=cfg["seed"] + 2)
    return G.to(backend), D.to(backend), C.to(backend)


def trained_settings(run: training.RunFolder) -> dict:
    """The settings of the finished run in ``run``; ConfigError saying what is missing otherwise."""
    train_first = f"train first with: python examples/face_aging.py --run {run}"
    if not (run / "generator.npz").is_file():
        raise ConfigError(f"no trained model in {run} (expected generator.npz); {train_first}")
    cfg = run.read_config()
    missing = [f for f in FILES if not (run / f).is_file()]
    if cfg is None or missing:
        raise ConfigError(f"no trained model in {run}: {', '.join(missing)} missing; {train_first}")
    if "gan_steps" not in cfg:
        raise ConfigError(f"no trained model in {run}: its training did not finish (config.json has no "
                          f"gan_steps); continue it with: python examples/face_aging.py --run {run}")
    return checked_config(cfg, run)


SAVED_CHECKS = {"image_size": lambda v: v in (32, 64), "age_rule": lambda v: v in aging.AGE_RULES,
                "limit": lambda v: v is None or (type(v) is int and v > 0),
                "seed": lambda v: type(v) is int and v >= 0,
                "lr": lambda v: type(v) in (int, float) and 0 < v < float("inf"),
                "lr_schedule": lambda v: v in SCHEDULES,
                "lr_decay": lambda v: type(v) in (int, float) and 0 <= v < float("inf"),
                "warmup_steps": lambda v: type(v) is int and v >= 0,
                "lr_steps": lambda v: v is None or (type(v) is int and v > 0)}
# runs of older versions did not save these
OPTIONAL = ("limit", "lr", "batch_size", "lr_schedule", "lr_decay", "warmup_steps", "lr_steps")
TRAINED = "trained models keep the settings they were trained with"
RETRAIN = "Leave those flags out, or train a new run (another --run, or --retrain) to change them."


def checked_config(cfg: dict, run: training.RunFolder) -> dict:
    """A saved config.json, each setting checked as its flag would be (the file may have been edited)."""
    bad = []
    for k in RUN_DEFAULTS:
        if k not in cfg:
            bad += [] if k in OPTIONAL else [f"{k} is missing"]
        elif not SAVED_CHECKS.get(k, lambda v: type(v) is int and v > 0)(cfg[k]):
            bad.append(f"{k}={cfg[k]!r}")
    if bad:
        raise ConfigError(f"{run.config_path} holds settings no run of this script wrote ({'; '.join(bad)}); "
                          f"restore it, or train again with --retrain")
    return cfg


def gan_steps(epochs: float, n_train: int, batch_size: int) -> int:
    """GAN steps of a run: ``epochs`` passes over the training images, batch_size / 2 real per step."""
    return max(1, int(epochs * n_train / (batch_size // 2)))


def train_gan(G, D, train, y_train, args, backend, run: training.RunFolder, cfg: dict,
              schedule=None) -> tuple[dict, int]:
    """The GAN loop; continues from RUN/gan_checkpoint.npz (weights, optimizer moments, noise and
    batch order) when an earlier session was interrupted.  Returns (summary, exit code): 0, or
    128 + signal number when a stop signal ended it (after saving)."""
    half = cfg["batch_size"] // 2
    batches = aging.BalancedBatches(train, y_train, half, seed=cfg["seed"] + 3, backend=backend)
    trainer = ConditionalStackedGANTrainer(G, D, Adam(cfg["lr"], 0.5, schedule=schedule),
                                           Adam(cfg["lr"], 0.5, schedule=schedule), backend=backend,
                                           seed=cfg["seed"])
    ckpt = training.Checkpointer(run / "gan_checkpoint.npz")
    if ckpt.path.is_file() and not args.retrain:
        restore_training_state(ckpt.load(), trainer, batches=batches, path=ckpt.path)
        log(f"resumed the GAN from {ckpt.path} at step {trainer.steps}")
    steps = gan_steps(args.epochs, len(train), cfg["batch_size"])
    log(f"conditional GAN: G {G.num_params():,} and D {D.num_params():,} parameters; {steps} steps "
        f"(batch {cfg['batch_size']}: {half} real, balanced young/old)"
        + (f", at most {args.max_minutes} min" if args.max_minutes else ""))

    def host_rows(stats, first):      # one host copy per step; epochs of the real half batches
        return [dict(s.as_floats(), step=first + i + 1, epoch=(first + i) * half // len(train))
                for i, s in enumerate(stats)]

    def save():                       # the checkpoint first: it refuses non-finite weights
        ckpt.save(training_state(trainer, batches=batches, config=cfg))
        G.save_weights(run / "generator.npz")
        D.save_weights(run / "discriminator.npz")
        aging.sample_sheet(G, backend, run / "samples.png")

    t0, hist, start = time.time(), [], trainer.steps
    first = start                     # the step before the rows in hist
    with training.DeferredInterrupt() as interrupt, training.stop_on_divergence(ckpt, "Try a lower --lr."):
        while trainer.steps < steps and not interrupt.requested:
            x, y = batches.next_batch()
            hist.append(trainer.train_step(x, y))
            step = trainer.steps
            if step % args.log_every == 0 or step == steps or interrupt.requested:
                rows = host_rows(hist, first)
                check_losses(rows)                    # a NaN stops the run; the last save stays
                f = {k: np.mean([r[k] for r in rows]) for k in rows[0] if k not in ("step", "epoch")}
                el = time.time() - t0
                log(f"  GAN step {step}/{steps}  d_loss {f['d_loss']:.3f}  g_loss {f['g_loss']:.3f}  "
                    f"D acc real {f['d_acc_real']:.2f} fake {f['d_acc_fake']:.2f}  "
                    f"({el:.0f} s, {el / (step - start):.2f} s/step)")
                hist, first = [], step
            if step % args.save_every == 0:
                save()
            if args.max_minutes and time.time() - t0 > 60 * args.max_minutes:
                log(f"  time budget of {args.max_minutes} min reached at step {step}")
                break
        check_losses(host_rows(hist, first))
        save()
    if interrupt.requested:
        log(f"{interrupt.name}: saved the GAN at step {trainer.steps} in {ckpt.path}; continue with "
            f"python examples/face_aging.py --run {run}")
    return ({"gan_steps": trainer.steps, "gan_seconds_this_session": round(time.time() - t0, 1),
             "gan_epochs_done": round(trainer.steps * half / len(train), 2)}, interrupt.exit_code)


def projection_kwargs(args, D, seed: int):
    return dict(steps=args.steps, lr=args.proj_lr, restarts=args.restarts, prior_weight=args.prior_weight,
                D=D if args.feature_weight > 0 else None, feature_weight=args.feature_weight, seed=seed)


def evaluate(G, D, C, held, y_held, args, backend, run: training.RunFolder, seed: int) -> dict:
    n = len(held) if args.eval_n is None else min(args.eval_n, len(held))
    x, y = held.batch(np.arange(n), backend), y_held[:n]
    log(f"projecting {n} held-out faces: {args.steps} Adam steps, {args.restarts} restarts ...")
    t0 = time.time()
    report, results = aging.evaluate_held_out(G, C, x, y, strengths=(args.strength,), held_images=held.images,
                                              held_labels=y_held, backend=backend,
                                              **projection_kwargs(args, D, seed))
    clf = report["classifier"]
    def num(v):                       # a recall is undefined (NaN) when the held-out faces lack that age
        return "n/a" if v != v else f"{v:.3f}"
    log(f"classifier on {clf['n']} held-out faces: accuracy {num(clf['accuracy'])}, balanced accuracy "
        f"{num(clf['balanced_accuracy'])} (recall old {num(clf['recall_old'])}, young "
        f"{num(clf['recall_young'])})")
    log(f"  done in {time.time() - t0:.0f} s; mean pixel MSE {report['error_curve'][0]:.4f} at the random "
        f"start -> {results[1.0].projection.final_error.mean():.4f}")
    for strength, res in results.items():
        key = "" if strength == 1.0 else f"_strength{strength:g}"
        log(f"  aged with label weights (young, old) = ({1 - strength:g}, {strength:g}):")
        for name in ("young", "old", "all"):
            ev = report.get(f"held_out_{name}{key}")
            if ev:
                log(f"  held-out {name:5s} (n={ev['n']}): called old -- inputs "
                    f"{ev['share_input_called_old']:.3f}, reconstructions "
                    f"{ev['share_reconstruction_called_old']:.3f}, aged {ev['share_aged_called_old']:.3f}; "
                    f"mean reconstruction MSE {ev['mean_reconstruction_error']:.4f}; "
                    f"mean |aged - reconstruction| {ev['mean_abs_change_aged_vs_reconstruction']:.4f}")
        young, old = np.flatnonzero(y == YOUNG)[:24], np.flatnonzero(y == OLD)[:12]
        path = aging.save_strips(res.take(young), run / f"eval_strips_young{key}.png", scale=3, columns=3)
        log(f"  strips (input | reconstruction | aged) of {len(young)} young held-out faces: {path}")
        if len(old):
            aging.save_strips(res.take(old), run / f"eval_strips_old{key}.png", scale=3, columns=3)
    with atomic_path(run / "evaluation.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return report


def check_photos(args, run: training.RunFolder, cfg: dict):
    """(photos, out folder) for --age: each photo read and the folder made writable before any work."""
    if not args.age:
        return None
    out_dir = Path(args.out) if args.out else run / "aged"
    aging.load_face_photos(args.age, cfg["image_size"])           # DataError naming a bad photo
    training.prepare_output_folder(out_dir, "--out" if args.out else None, hint="choose another with --out")
    stems = [Path(p).stem for p in args.age]
    names = [f"aged_{Path(p).stem if stems.count(Path(p).stem) == 1 else Path(p).name.replace('.', '_')}.png"
             for p in args.age]                                  # me.jpg and me.png get one strip each
    return [(p, out_dir / name) for p, name in zip(args.age, names)]


def age_photos(G, D, C, photos, args, backend, seed: int) -> None:
    paths = [p for p, _ in photos]
    x = aging.load_face_photos(paths, G.image_shape[-1], backend=backend)
    if args.input_age == "auto":
        logits = aging.predict_logits(C, x)
        labels = (logits > 0).astype(np.int64)
        for p, label, v in zip(paths, labels, logits):
            log(f"{p}: the classifier says {aging.AGE_CLASSES[label]} (logit {v:+.2f})")
    else:
        labels = np.full(len(paths), OLD if args.input_age == "old" else YOUNG)
    if args.strength == 1.0 and (labels == OLD).any():
        log("note: a face projected with the old label is redrawn with the same label, so its 'aged' "
            "picture equals its reconstruction; use --input-age young or --strength 2 to push further")
    res = aging.age_faces(G, x, backend.asarray(labels, dtype=np.int64),
                          target=aging.strength_target(args.strength), **projection_kwargs(args, D, seed))
    aged_old = aging.predict_logits(C, res.aged) > 0
    for i, (p, out) in enumerate(photos):
        path = aging.save_strips(res.take([i]), out, scale=4)
        log(f"{p}: reconstruction MSE {res.projection.final_error[i]:.4f}; aged face called "
            f"{'old' if aged_old[i] else 'young'}; strip input | reconstruction | aged -> {path}")


def main(argv=None) -> int:
    args = parse_args(argv)
    run = training.RunFolder(args.run)
    given = cli.given(args, RUN_DEFAULTS)
    saved = None if args.retrain else run.read_config()
    finished = saved is not None and "gan_steps" in saved and all((run / f).is_file() for f in FILES)
    if ((args.evaluate or args.age) and not args.retrain) or finished:   # load; never train or write a model
        saved = trained_settings(run)
        cfg, _ = training.resolve_settings(RUN_DEFAULTS, given, saved, kept_because=TRAINED, instead=RETRAIN)
        backend = cli.backend_from_flag(args.backend)
        photos = check_photos(args, run, cfg)
        G, D, C = build_models(cfg, backend)
        for model, name in ((G, "generator"), (D, "discriminator"), (C, "classifier")):
            model.load_weights(run / f"{name}.npz")
        log(f"loaded the trained models from {run}: {', '.join(f'{k}={cfg[k]}' for k in MODEL_KEYS)}")
        if args.evaluate or not args.age:
            run.prepare()                                     # evaluation.json and strips go there
            held = load_data(find_data(args.data, saved.get("data")), cfg)[2:]
            evaluate(G, D, C, *held, args, backend, run, cfg["seed"])
        if args.age:
            age_photos(G, D, C, photos, args, backend, cfg["seed"])
        return 0

    resuming = saved is not None and (run / "gan_checkpoint.npz").is_file()
    if resuming:                                              # an interrupted run: its own settings
        cfg, _ = training.resolve_settings(RUN_DEFAULTS, given, checked_config(saved, run), instead=RETRAIN)
        log(f"{run} holds an unfinished run; continuing it with its settings "
            f"{', '.join(f'{k}={cfg[k]}' for k in RUN_DEFAULTS)}")
    else:
        cfg, _ = training.resolve_settings(RUN_DEFAULTS, given)
    data = find_data(args.data, saved.get("data") if resuming else None)
    backend = cli.backend_from_flag(args.backend)
    run.prepare()                                             # also removes temp files of killed runs
    photos = check_photos(args, run, cfg)                     # now, not after hours of training
    log(f"backend {backend}; run folder {run}")
    G, D, C = build_models(cfg, backend)
    train, y_train, held, y_held = load_data(data, cfg)
    check_batches_fit(y_train, cfg["batch_size"], cfg["age_rule"])
    schedule = cli.schedule_from_settings(cfg, given, gan_steps(args.epochs, len(train), cfg["batch_size"]))
    training_settings = {"data": str(data), "epochs": args.epochs, "clf_epochs": args.clf_epochs}
    run.write_config(cfg | training_settings)
    if resuming and (run / "classifier.npz").is_file():
        C.load_weights(run / "classifier.npz")                  # an interrupted session got this far
        log(f"loaded the age classifier trained earlier from {run / 'classifier.npz'}")
    else:
        clf_batch = min(64, 2 * int(np.bincount(y_train, minlength=2).min()))     # 64 unless data is tiny
        aging.train_age_classifier(C, train, y_train, args.clf_epochs, backend, seed=cfg["seed"],
                                   batch_size=clf_batch, log=log, log_every=args.log_every)
        C.save_weights(run / "classifier.npz")
    summary, code = train_gan(G, D, train, y_train, args, backend, run, cfg, schedule)
    if code:
        return code
    run.write_config(cfg | training_settings | summary)         # now with gan_steps: the run is finished
    log(f"models saved in {run}; samples (rows: young, old for the same z) in {run / 'samples.png'}")
    evaluate(G, D, C, held, y_held, args, backend, run, cfg["seed"])
    if args.age:
        age_photos(G, D, C, photos, args, backend, cfg["seed"])
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_command(main))
