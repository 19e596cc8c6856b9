"""Lesson 12: face aging -- a conditional GAN, an age judge, and a walk back into latent space.

    python lessons/12_face_aging.py [--quick] [--out DIR] [--data auto|embedded|PATH]

A GAN maps noise z to faces.  Give both networks the age as an extra input and the generator
learns G(z, young) and G(z, old): for the same z, "the same face" at two ages.  To age a *given*
photo we then need its z: we find it by gradient descent on z through the frozen generator
(latent projection), and redraw it with the old label.  A separately trained age classifier
judges the result.

"Old" here: CelebA has no ages, only a binary *Young* attribute ticked by annotators, so a face
is "old" when Young is -1.  Without CelebA the lesson uses the embedded procedural faces, which
have no ages at all; there "old" is a clearly artificial stand-in: grey hair.

Everything is tiny (32x32 images, 8 filters) so that it finishes in under a minute on 2 CPU cores.
"""
from __future__ import annotations

import os

# Before NumPy loads its BLAS: one thread per process.  The matrices of a tiny model are too small
# to gain from threads, and on a busy 2-core machine OpenBLAS's waiting threads made this lesson
# ten times slower (99 s instead of 10 s).  Set OPENBLAS_NUM_THREADS yourself to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import _common as C  # noqa: E402

from tinygan.aging import OLD, YOUNG, age_faces, age_labels, called_old, reage, strips
from tinygan.backend import to_numpy
from tinygan.data import load_faces
from tinygan.gan.conditional import BalancedBatches, ConditionalStackedGANTrainer
from tinygan.gradcheck import check_layer_gradients
from tinygan.images import make_grid
from tinygan.models.age_classifier import (age_classifier, classification_report, classifier_step,
                                           predict_logits)
from tinygan.models.conditional import LabelConcat, build_conditional_gan, one_hot
from tinygan.optimizers import Adam

CELEBA = Path("../shared/data/celeba-10k")
SIZE, LATENT = 32, 32


def add_arguments(parser):
    parser.add_argument("--data", default="auto",
                        help="'auto' (CelebA at ../shared/data/celeba-10k if present, else the embedded "
                             "procedural faces), 'embedded', or a CelebA folder with list_attr_celeba.txt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gan-lr", type=float, default=None,
                        help="Adam step size of G and D (default 2e-3 with --quick, else 1e-3)")


def find_celeba(choice):
    if choice == "embedded":
        return None
    for p in ([Path(choice)] if choice != "auto" else [CELEBA, C.ROOT / CELEBA]):
        if p.exists() and any(p.rglob("list_attr_celeba.txt")):
            return p
    if choice != "auto":
        raise SystemExit(f"lesson 12: {choice} holds no CelebA images with list_attr_celeba.txt")
    return None


def main(argv=None) -> dict:
    args = C.parse_args(argv, __file__, __doc__.splitlines()[0], add_arguments)
    t_start = time.perf_counter()
    quick = args.quick
    C.title("Lesson 12: face aging with a conditional GAN")
    out = {}

    # -- 1. data and labels ----------------------------------------------------------------------
    C.section("What 'old' means, and how many old faces there are")
    celeba = find_celeba(args.data)
    n_hold = 32 if quick else 64
    if celeba is not None:
        n_train = 1500 if quick else 4000
        faces = load_faces(str(celeba), SIZE, progress=False)
        labels = age_labels(faces, "not_young")
        idx = np.concatenate([np.arange(n_train), np.arange(len(faces) - n_hold, len(faces))])
        C.say(f"""Data: CelebA at {celeba}.  A face is OLD when its Young attribute is -1, i.e.
                  the annotators did not tick "young" -- a judgement about looks, not an age.""")
    else:
        n_train = 600 if quick else 2000
        faces = load_faces(None, SIZE, n=n_train + n_hold, seed=args.seed, progress=False)
        labels = age_labels(faces, "gray_hair")
        idx = np.arange(n_train + n_hold)
        C.say("""Data: the embedded procedural faces (no CelebA found).  They have no ages, so we
                 use a stand-in that is honest about being one: a face is OLD when its hair is
                 grey.  Everything below works the same with CelebA's Young attribute.""")
    faces, labels = faces.subset(idx), labels[idx]
    train, held = faces.subset(np.arange(n_train)), faces.subset(np.arange(n_train, len(faces)))
    y_train, y_held = labels[:n_train], labels[n_train:]
    C.show("training faces / held-out faces", f"{len(train)} / {len(held)}")
    C.show("share of training faces that are 'old'", f"{y_train.mean():.1%}")
    C.say("""Old faces are the minority.  If real batches were drawn at random, D would see 'old'
             real faces rarely but our random 'old' fakes half the time, and could learn "old
             label -> probably fake" without looking at the face.  So every real batch is drawn
             label-balanced: half young, half old (BalancedBatches).""")

    # -- 2. the conditional networks ---------------------------------------------------------------
    C.section("G(z, age) and D(x, age): the label is concatenated")
    G, D = build_conditional_gan(SIZE, LATENT, base_filters=8, seed=args.seed)
    C.show("G's input: z entries + one-hot age", f"{LATENT} + 2 = {G.net.input_shape[0]}")
    C.show("D's input channels: RGB + one label map per class", f"3 + 2 = {D.net.input_shape[0]}")
    C.show("parameters of G / D", f"{G.num_params():,} / {D.num_params():,}")
    C.say("""The concatenation is a layer without parameters.  Its backward pass only slices: the
             gradient flowing into [x | labels] is split, x's part is passed on, the labels'
             part is dropped (labels are data).  A numerical gradient check confirms it:""")
    layer = LabelConcat(2, "maps")
    layer.labels = one_hot(np.array([0, 1]), 2, dtype=np.float64)
    err = check_layer_gradients(layer, np.random.default_rng(0).standard_normal((2, 3, 4, 4)))["x"]
    C.show("relative error of the label-map concat's gradient", f"{err:.1e}")
    out["concat_gradcheck"] = err

    # -- 3. the judge ----------------------------------------------------------------------------
    C.section("An age classifier to judge the results")
    clf = age_classifier(SIZE, 8, seed=args.seed)
    clf_steps = 60 if quick else 300
    opt = Adam(2e-3, 0.9)
    batches = BalancedBatches(train, y_train, 32, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    for step in range(clf_steps):
        if step == int(0.7 * clf_steps):
            opt.lr *= 0.3
        classifier_step(clf, opt, *batches.next_batch(), rng=rng)
    rep = classification_report(predict_logits(clf, held.images), y_held)
    C.show(f"held-out accuracy after {clf_steps} balanced steps", f"{rep['accuracy']:.3f}")
    C.show("held-out balanced accuracy (mean of both recalls)", f"{rep['balanced_accuracy']:.3f}")
    C.say("""Balanced accuracy is the honest number when classes are unequal: calling everyone
             young would score the majority share as accuracy but exactly 0.5 balanced.""")
    out["classifier_accuracy"], out["classifier_balanced_accuracy"] = rep["accuracy"], rep["balanced_accuracy"]

    # -- 4. training ---------------------------------------------------------------------------------
    gan_steps = 150 if quick else 800
    C.section(f"Training the conditional GAN for {gan_steps} steps")
    lr = args.gan_lr or (2e-3 if quick else 1e-3)
    C.say(f"""Each step is the Keras recipe with labels: D sees 16 real faces with their true labels
             and 16 fakes G(z, y) with random y; then G learns through the frozen D to make
             D(G(z, y), y) say "real".  Only the combination of face and label can fool D, so G
             must make 'old' fakes look old.  (A tiny model tolerates Adam at {lr:g}, five to
             ten times the usual DCGAN step of 2e-4.)""")
    trainer = ConditionalStackedGANTrainer(G, D, Adam(lr, 0.5), Adam(lr, 0.5), seed=args.seed)
    gan_batches = BalancedBatches(train, y_train, 16, seed=args.seed + 1)
    with C.Stopwatch() as sw:
        for step in range(1, gan_steps + 1):
            stats = trainer.train_step(*gan_batches.next_batch())
            if step % (gan_steps // 4) == 0:
                s = stats.as_floats()
                C.show(f"step {step}: D loss / G loss", f"{s['d_loss']:.3f} / {s['g_loss']:.3f}")
    C.show("training time", f"{sw.seconds:.1f} s")

    z = np.random.default_rng(7).standard_normal((64, LATENT)).astype(np.float32)
    as_young = G.forward(z, np.full(64, YOUNG), training=False)
    as_old = G.forward(z, np.full(64, OLD), training=False)
    C.show("same z: share called old, drawn young", f"{called_old(clf, as_young).mean():.2f}")
    C.show("same z: share called old, drawn old", f"{called_old(clf, as_old).mean():.2f}")

    # -- 5. projection and aging ---------------------------------------------------------------------
    C.section("Latent projection: which z draws this face?")
    steps = 100 if quick else 200
    young_idx = np.flatnonzero(y_held == YOUNG)
    x = held.batch(young_idx)
    C.say(f"""For each of {len(young_idx)} held-out young faces x we start from a random z and run
              {steps} Adam steps on z alone, minimising ||G(z, young) - x||^2 per pixel (+ 0.001
              ||z||^2 to stay where G was trained).  G is frozen and in inference mode, so its
              BatchNorm layers are fixed affine maps and G.backward hands us dLoss/dz.""")
    res = age_faces(G, x, np.full(len(young_idx), YOUNG), target=OLD, steps=steps, lr=0.05, restarts=2,
                    seed=args.seed)
    curve = res.projection.errors
    for t in sorted({0, 10, steps // 4, steps // 2, steps}):
        C.show(f"mean pixel MSE after {t} steps", f"{curve[t]:.4f}")
    out["initial_error"], out["final_error"] = float(curve[0]), float(curve[-1])
    out["error_curve"] = curve

    C.section("Aging: same z, label old")
    rec_old = called_old(clf, res.reconstruction).mean()
    aged_old = called_old(clf, res.aged).mean()
    C.show("reconstructions G(z*, young) called old", f"{rec_old:.2f}")
    C.show("aged faces G(z*, old) called old", f"{aged_old:.2f}")
    C.say("""The reconstructions are the control: same z, same networks, only the label differs.
             If the aged faces are called old far more often, the label -- and nothing else --
             made them look old to an independent judge.  Look at the figure: the reconstruction
             is a blurry likeness (a tiny G cannot draw every face), and the aged column keeps
             its pose and colours while the age cue changes.""")
    out["share_reconstruction_called_old"], out["share_aged_called_old"] = float(rec_old), float(aged_old)
    strong = reage(G, res, [-1.0, 2.0])
    C.say("""Labels can also be weights.  (-1, 2) is "twice as old": a point on the line through
             the two labels that G never saw in training.  The change grows, and so does the risk
             that it stops looking like the same person.""")
    C.show("label weights (-1, 2): share called old", f"{called_old(clf, strong.aged).mean():.2f}")
    out["share_strength2_called_old"] = float(called_old(clf, strong.aged).mean())
    if celeba is not None:
        C.say("""A caveat for CelebA: a minute of training gives this tiny G only face-coloured blobs,
                 and the classifier, trained on real photos, is then judging pictures unlike any it
                 has seen, so read its verdicts on them as a weak signal.  examples/face_aging.py
                 trains a wider model for longer (docs/face_aging.md has the numbers).""")

    # -- 6. figure -------------------------------------------------------------------------------------
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2, 3.2], "wspace": 0.25})
    axes[0].imshow(make_grid(strips(res.take(np.arange(min(8, len(young_idx))))), nrow=3))
    axes[0].set_title("held-out: input | reconstruction | aged", fontsize=10)
    pairs = np.stack([to_numpy(as_young[:8]), to_numpy(as_old[:8])], axis=1).reshape(16, 3, SIZE, SIZE)
    axes[1].imshow(make_grid(pairs, nrow=2))
    axes[1].set_title("samples, same z:\nyoung label | old label", fontsize=10)
    for a in axes[:2]:
        a.axis("off")
    axes[2].plot(curve)
    axes[2].set_xlabel("Adam steps on z")
    axes[2].set_ylabel("mean pixel MSE")
    axes[2].set_title("latent projection: reconstruction error", fontsize=10)
    out["figure"] = C.save_figure(fig, args.out / "face_aging.png")
    out["seconds"] = time.perf_counter() - t_start
    C.show("lesson time", f"{out['seconds']:.1f} s")
    return out


if __name__ == "__main__":
    main()
