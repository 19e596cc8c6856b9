"""Face aging on CelebA: a conditional DCGAN G(z, age), an age classifier, and latent projection.

    python examples/face_aging.py --run runs/aging32                    # train (or load) + evaluate
    python examples/face_aging.py --run runs/aging32 --evaluate         # load, evaluate on held-out faces
    python examples/face_aging.py --run runs/aging32 --age me.jpg you.png   # age your own photos

"Old" means CelebA's *Young* attribute is -1 (the annotators did not judge the person young);
CelebA has no ages.  ``--age-rule not_young_or_gray`` also counts grey-haired faces as old.
See docs/face_aging.md.

The last ``--holdout`` images of the dataset (file order; 1,000 of the shared 10k sample) are
never used for training; ``--evaluate`` measures on them:

* the age classifier's accuracy and balanced accuracy;
* for held-out *young* faces: the share of plain reconstructions G(z*, young) the classifier calls
  old, against the share of aged faces G(z*, old) it calls old;
* the mean reconstruction error (pixel MSE in [-1, 1] units) of the projection;
* a sheet of strips input | reconstruction | aged (PNG).

A run folder holds config.json, generator.npz, discriminator.npz, classifier.npz (weights, written
atomically with Sequential.save_weights), gan_checkpoint.npz (the full training state, via
tinygan.checkpoint: an interrupted run resumes where it stopped), samples.png, evaluation.json and
the strip sheets.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("tinygan") is None:      # a checkout that was not pip-installed
    sys.path.insert(0, str(ROOT))

from tinygan.aging import (AGE_CLASSES, AGE_RULES, OLD, YOUNG, age_faces, age_labels,  # noqa: E402
                           evaluate_aging, load_face_photos, reage, save_strips)
from tinygan.backend import get_backend  # noqa: E402
from tinygan.checkpoint import (load_checkpoint, restore_training_state, save_checkpoint,  # noqa: E402
                                training_state)
from tinygan.gan.conditional import BalancedBatches, ConditionalStackedGANTrainer  # noqa: E402
from tinygan.images import save_image_grid  # noqa: E402
from tinygan.io import atomic_path  # noqa: E402
from tinygan.models.age_classifier import (age_classifier, classification_report,  # noqa: E402
                                           classifier_step, predict_logits)
from tinygan.models.conditional import build_conditional_gan  # noqa: E402
from tinygan.optimizers import Adam  # noqa: E402

DEFAULT_DATA = Path("../shared/data/celeba-10k")
FILES = ("config.json", "generator.npz", "discriminator.npz", "classifier.npz")
MODEL_KEYS = ("image_size", "base_filters", "latent_dim", "clf_filters", "age_rule")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None,
                   help=f"CelebA folder with img_align_celeba/ and list_attr_celeba.txt (default {DEFAULT_DATA} "
                        "if present)")
    p.add_argument("--run", default="runs/face_aging", help="run folder: loaded if it holds trained models, "
                                                             "else trained into")
    p.add_argument("--retrain", action="store_true", help="train even if --run already holds models")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "auto"])
    p.add_argument("--image-size", type=int, default=64, choices=[32, 64])
    p.add_argument("--base-filters", type=int, default=64, help="GAN width (DCGAN: 64)")
    p.add_argument("--latent-dim", type=int, default=100)
    p.add_argument("--clf-filters", type=int, default=16, help="age classifier width")
    p.add_argument("--age-rule", default="not_young", choices=[r for r in AGE_RULES if r != "gray_hair"],
                   help="what counts as old (see docs/face_aging.md)")
    p.add_argument("--epochs", type=float, default=5.0,
                   help="GAN epochs: passes of the real half batches over the training images")
    p.add_argument("--max-minutes", type=float, default=None, help="stop GAN training after this long")
    p.add_argument("--clf-epochs", type=float, default=3.0, help="age classifier epochs")
    p.add_argument("--batch-size", type=int, default=64,
                   help="GAN batch: D sees batch/2 real + batch/2 generated, G a full batch")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use only the first LIMIT training images")
    p.add_argument("--holdout", type=int, default=1000, help="last images of the dataset kept out of training")
    p.add_argument("--evaluate", action="store_true", help="evaluate on the held-out images")
    p.add_argument("--eval-n", type=int, default=None, help="held-out images to project (default: all)")
    p.add_argument("--age", nargs="+", metavar="PHOTO", default=None, help="face photos to age")
    p.add_argument("--input-age", default="auto", choices=["auto", "young", "old"],
                   help="age label of the --age photos (auto: the classifier decides)")
    p.add_argument("--out", default=None, help="folder for --age strips (default RUN/aged)")
    p.add_argument("--strength", type=float, default=1.0,
                   help="age label used for aging: weights (1 - S, S) for (young, old); 1 is the plain 'old' "
                        "label, S > 1 extrapolates past anything seen in training (stronger, less faithful)")
    p.add_argument("--steps", type=int, default=200, help="Adam steps of latent projection")
    p.add_argument("--proj-lr", type=float, default=0.05, help="step size of latent projection")
    p.add_argument("--restarts", type=int, default=2, help="random starts per face in projection")
    p.add_argument("--feature-weight", type=float, default=0.0,
                   help="weight of D-feature matching in projection (0: pixels only)")
    p.add_argument("--prior-weight", type=float, default=1e-3, help="weight of ||z||^2 in projection")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--save-every", type=int, default=500)
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


NEEDS = ("Face aging needs a CelebA folder holding img_align_celeba/ (or img_align_celeba.zip) AND "
         "list_attr_celeba.txt, whose Young attribute gives the age labels; pass it with --data PATH.")


def find_data(arg) -> Path:
    candidates = [Path(arg)] if arg else [DEFAULT_DATA, ROOT / DEFAULT_DATA]
    for c in candidates:
        if c.exists():
            return c
    where = arg or f"{DEFAULT_DATA} (relative to the working folder or to the repository)"
    sys.exit(f"face_aging: no data at {where}.  {NEEDS}")


def load_data(args, image_size):
    from tinygan.data import load_faces
    path = find_data(args.data)
    ds = load_faces(str(path), image_size, progress=False)
    log(ds.summary())
    if ds.attributes is None or "Young" not in ds.attr_names:
        sys.exit(f"face_aging: {path} has images but no CelebA attribute file with a Young column.  {NEEDS}")
    if args.holdout >= len(ds):
        sys.exit(f"face_aging: --holdout {args.holdout} leaves no training images of {len(ds)}")
    n_train = len(ds) - args.holdout
    train = ds.subset(np.arange(n_train), f"{ds.name}[train]")
    held = ds.subset(np.arange(n_train, len(ds)), f"{ds.name}[held-out]")
    if args.limit is not None:
        train = train.subset(np.arange(min(args.limit, len(train))), f"{ds.name}[train, limit]")
    y_train, y_held = age_labels(train, args.age_rule), age_labels(held, args.age_rule)
    keep_t, keep_h = np.flatnonzero(y_train >= 0), np.flatnonzero(y_held >= 0)
    if len(keep_t) < len(train) or len(keep_h) < len(held):
        log(f"dropping {len(train) - len(keep_t)} training and {len(held) - len(keep_h)} held-out images "
            f"that have no attribute row")
        train, y_train = train.subset(keep_t), y_train[keep_t]
        held, y_held = held.subset(keep_h), y_held[keep_h]
    log(f"training images: {len(train)} ({y_train.mean():.1%} old); held-out: {len(held)} "
        f"({y_held.mean():.1%} old); old = {args.age_rule}")
    return train, y_train, held, y_held


# -- models -------------------------------------------------------------------------------------

def build_models(cfg, backend):
    G, D = build_conditional_gan(cfg["image_size"], cfg["latent_dim"], 2, cfg["base_filters"], seed=cfg["seed"])
    C = age_classifier(cfg["image_size"], cfg["clf_filters"], seed=cfg["seed"] + 2)
    return G.to(backend), D.to(backend), C.to(backend)


def run_is_complete(run: Path, cfg: dict) -> bool:
    """Finished training: config.json records the GAN steps (written last) and every file is there."""
    return "gan_steps" in cfg and all((run / f).is_file() for f in FILES)


def save_config(run: Path, cfg: dict) -> None:
    with atomic_path(run / "config.json") as tmp:
        tmp.write_text(json.dumps(cfg, indent=2))


def train_classifier(C, train, y_train, held, y_held, args, backend):
    bs = 64
    batches = BalancedBatches(train, y_train, bs, seed=args.seed + 7, backend=backend)
    steps = max(1, int(args.clf_epochs * len(train) / bs))
    opt = Adam(lr=1e-3, beta1=0.9)
    rng = np.random.default_rng(args.seed + 8)
    log(f"age classifier: {C.num_params():,} parameters, {steps} steps of {bs} (balanced young/old)")
    t0, losses = time.time(), []
    for step in range(1, steps + 1):
        if step == int(0.7 * steps):
            opt.lr *= 0.3                  # a late, smaller step size settles BatchNorm and weights
        x, y = batches.next_batch()
        loss, _ = classifier_step(C, opt, x, y, flip=True, rng=rng)
        losses.append(loss)
        if step % args.log_every == 0 or step == steps:
            log(f"  classifier step {step}/{steps}  loss {float(np.mean([float(v) for v in losses])):.3f}  "
                f"({time.time() - t0:.0f} s)")
            losses = []
    rep = classification_report(predict_logits(C, held.images, backend=backend), y_held)
    log(f"  held-out: accuracy {rep['accuracy']:.3f}, balanced accuracy {rep['balanced_accuracy']:.3f} "
        f"(recall old {rep['recall_old']:.3f}, young {rep['recall_young']:.3f}; n={rep['n']})")
    return rep


def sample_sheet(G, backend, path, n=10, seed=123):
    """Row 1: G(z, young); row 2: G(z, old) for the same z; then again for 10 more z."""
    z = backend.asarray(np.random.default_rng(seed).standard_normal((2 * n, G.latent_dim)))
    young = G.forward(z, np.full(2 * n, YOUNG), training=False)
    old = G.forward(z, np.full(2 * n, OLD), training=False)
    xp = backend.xp
    rows = xp.concatenate([young[:n], old[:n], young[n:], old[n:]])
    save_image_grid(rows, path, nrow=n, scale=3)


def train_gan(G, D, train, y_train, args, backend, run: Path, cfg: dict):
    """The GAN loop; resumes from RUN/gan_checkpoint.npz (weights, optimizer moments, noise and
    batch order) when an earlier session was interrupted."""
    half = args.batch_size // 2
    batches = BalancedBatches(train, y_train, half, seed=args.seed + 3, backend=backend)
    trainer = ConditionalStackedGANTrainer(G, D, Adam(args.lr, 0.5), Adam(args.lr, 0.5), backend=backend,
                                           seed=args.seed)
    ckpt = run / "gan_checkpoint.npz"
    if ckpt.is_file():
        restore_training_state(load_checkpoint(ckpt), trainer, batches=batches, path=ckpt)
        log(f"resumed the GAN from {ckpt} at step {trainer.steps}")
    steps = max(1, int(args.epochs * len(train) / half))
    log(f"conditional GAN: G {G.num_params():,} and D {D.num_params():,} parameters; {steps} steps "
        f"(batch {args.batch_size}: {half} real, balanced young/old)"
        + (f", at most {args.max_minutes} min" if args.max_minutes else ""))

    def save():
        G.save_weights(run / "generator.npz")
        D.save_weights(run / "discriminator.npz")
        save_checkpoint(ckpt, training_state(trainer, batches=batches, config=cfg))
        sample_sheet(G, backend, run / "samples.png")

    t0, hist, first = time.time(), [], trainer.steps
    while trainer.steps < steps:
        x, y = batches.next_batch()
        hist.append(trainer.train_step(x, y))
        step = trainer.steps
        if step % args.log_every == 0 or step == steps:
            floats = [s.as_floats() for s in hist]      # one host copy per step, not per number
            f = {k: np.mean([row[k] for row in floats]) for k in floats[0]}
            el = time.time() - t0
            log(f"  GAN step {step}/{steps}  d_loss {f['d_loss']:.3f}  g_loss {f['g_loss']:.3f}  "
                f"D acc real {f['d_acc_real']:.2f} fake {f['d_acc_fake']:.2f}  "
                f"({el:.0f} s, {el / (step - first):.2f} s/step)")
            hist = []
        if step % args.save_every == 0:
            save()
        if args.max_minutes and time.time() - t0 > 60 * args.max_minutes:
            log(f"  time budget of {args.max_minutes} min reached at step {step}")
            break
    save()
    return {"gan_steps": trainer.steps, "gan_seconds_this_session": round(time.time() - t0, 1),
            "gan_epochs_done": round(trainer.steps * half / len(train), 2)}


# -- evaluation -----------------------------------------------------------------------------------

def projection_kwargs(args, D):
    return dict(steps=args.steps, lr=args.proj_lr, restarts=args.restarts, prior_weight=args.prior_weight,
                D=D if args.feature_weight > 0 else None, feature_weight=args.feature_weight, seed=args.seed)


def aging_target(strength: float):
    """Label weights (young, old) = (1 - strength, strength); 1 is the plain one-hot 'old'."""
    return np.array([1.0 - strength, strength])


def evaluate(G, D, C, held, y_held, args, backend, run: Path) -> dict:
    n = len(held) if args.eval_n is None else min(args.eval_n, len(held))
    idx = np.arange(n)
    x = held.batch(idx, backend)
    y = y_held[idx]
    clf = classification_report(predict_logits(C, held.images, backend=backend), y_held)
    log(f"classifier on {clf['n']} held-out faces: accuracy {clf['accuracy']:.3f}, balanced accuracy "
        f"{clf['balanced_accuracy']:.3f} (recall old {clf['recall_old']:.3f}, young {clf['recall_young']:.3f})")
    log(f"projecting {n} held-out faces: {args.steps} Adam steps, {args.restarts} restarts ...")
    t0 = time.time()
    res = age_faces(G, x, backend.asarray(y, dtype=np.int64), target=OLD, **projection_kwargs(args, D))
    log(f"  done in {time.time() - t0:.0f} s; mean pixel MSE {res.projection.errors[0]:.4f} at the random "
        f"start -> {res.projection.final_error.mean():.4f}")
    out = {"classifier": clf, "n_projected": n, "projection_steps": args.steps, "restarts": args.restarts,
           "error_curve": [round(float(e), 5) for e in res.projection.errors[::max(1, args.steps // 20)]]}
    plain = res
    for strength in sorted({1.0, args.strength}):
        if strength != 1.0:         # same z*, an extrapolated label: only G's forward pass again
            res = reage(G, plain, aging_target(strength))
        key = "" if strength == 1.0 else f"_strength{strength:g}"
        log(f"  aged with label weights (young, old) = ({1 - strength:g}, {strength:g}):")
        for name, sel in (("young", y == YOUNG), ("old", y == OLD), ("all", np.ones(n, bool))):
            if not sel.any():
                continue
            ev = evaluate_aging(res.take(np.flatnonzero(sel)), C)
            out[f"held_out_{name}{key}"] = ev
            log(f"  held-out {name:5s} (n={ev['n']}): called old -- inputs {ev['share_input_called_old']:.3f}, "
                f"reconstructions {ev['share_reconstruction_called_old']:.3f}, aged {ev['share_aged_called_old']:.3f}; "
                f"mean reconstruction MSE {ev['mean_reconstruction_error']:.4f}; mean |aged - reconstruction| "
                f"{ev['mean_abs_change_aged_vs_reconstruction']:.4f}")
        young = np.flatnonzero(y == YOUNG)[:24]
        path = save_strips(res.take(young), run / f"eval_strips_young{key}.png", scale=3, columns=3)
        log(f"  strips (input | reconstruction | aged) of {len(young)} young held-out faces: {path}")
        old = np.flatnonzero(y == OLD)[:12]
        if len(old):
            save_strips(res.take(old), run / f"eval_strips_old{key}.png", scale=3, columns=3)
    with atomic_path(run / "evaluation.json") as tmp:
        tmp.write_text(json.dumps(out, indent=2))
    return out


def age_photos(G, D, C, args, backend, run: Path) -> None:
    out_dir = Path(args.out) if args.out else run / "aged"
    x = load_face_photos(args.age, G.image_shape[-1], backend=backend)
    if args.input_age == "auto":
        logits = predict_logits(C, x)
        labels = (logits > 0).astype(np.int64)
        for p, l, v in zip(args.age, labels, logits):
            log(f"{p}: the classifier says {AGE_CLASSES[l]} (logit {v:+.2f})")
    else:
        labels = np.full(len(args.age), OLD if args.input_age == "old" else YOUNG)
    if args.strength == 1.0 and (labels == OLD).any():
        log("note: a face projected with the old label is redrawn with the same label, so its 'aged' "
            "picture equals its reconstruction; use --input-age young or --strength 2 to push further")
    res = age_faces(G, x, backend.asarray(labels, dtype=np.int64), target=aging_target(args.strength),
                    **projection_kwargs(args, D))
    aged_old = predict_logits(C, res.aged) > 0
    for i, p in enumerate(args.age):
        path = save_strips(res.take([i]), out_dir / f"aged_{Path(p).stem}.png", scale=4)
        log(f"{p}: reconstruction MSE {res.projection.final_error[i]:.4f}; aged face called "
            f"{'old' if aged_old[i] else 'young'}; strip input | reconstruction | aged -> {path}")


def main(argv=None) -> dict:
    args = parse_args(argv)
    backend = get_backend(args.backend)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    log(f"backend {backend}; run folder {run}")
    result = {}

    saved = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else None
    if args.retrain:
        (run / "gan_checkpoint.npz").unlink(missing_ok=True)
        saved = None
    if saved is not None and run_is_complete(run, saved):
        cfg = saved
        G, D, C = build_models(cfg, backend)
        G.load_weights(run / "generator.npz")
        D.load_weights(run / "discriminator.npz")
        C.load_weights(run / "classifier.npz")
        log(f"loaded the trained models from {run}; their settings from config.json override the "
            f"command line: {', '.join(f'{k}={cfg[k]}' for k in MODEL_KEYS)}")
        trained_now = False
    else:
        if saved is not None and (run / "gan_checkpoint.npz").is_file():
            cfg = {k: saved[k] for k in MODEL_KEYS + ("seed",)}      # the interrupted run's models
            log(f"{run} holds an unfinished run; continuing it with its settings "
                f"{', '.join(f'{k}={cfg[k]}' for k in MODEL_KEYS)}")
        else:
            cfg = {k: getattr(args, k) for k in MODEL_KEYS} | {"seed": args.seed}
        G, D, C = build_models(cfg, backend)
        trained_now = True

    need_data = trained_now or args.evaluate
    if need_data:
        args.image_size = cfg["image_size"]
        args.age_rule = cfg["age_rule"]
        train, y_train, held, y_held = load_data(args, cfg["image_size"])
    if trained_now:
        training_settings = {"holdout": args.holdout, "limit": args.limit, "batch_size": args.batch_size,
                             "epochs": args.epochs, "clf_epochs": args.clf_epochs}
        save_config(run, cfg | training_settings)
        if (run / "classifier.npz").is_file() and (run / "gan_checkpoint.npz").is_file():
            C.load_weights(run / "classifier.npz")          # an interrupted session got this far
            log(f"loaded the age classifier trained earlier from {run / 'classifier.npz'}")
        else:
            result["classifier_training"] = train_classifier(C, train, y_train, held, y_held, args, backend)
            C.save_weights(run / "classifier.npz")
        result["gan_training"] = train_gan(G, D, train, y_train, args, backend, run, cfg)
        cfg |= result["gan_training"]
        save_config(run, cfg | training_settings)          # now with gan_steps: the run is complete
        log(f"models saved in {run}; samples (rows: young, old for the same z) in {run / 'samples.png'}")
    if args.evaluate or trained_now:
        result["evaluation"] = evaluate(G, D, C, held, y_held, args, backend, run)
    if args.age:
        age_photos(G, D, C, args, backend, run)
    return result


if __name__ == "__main__":
    main()
