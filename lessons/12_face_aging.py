# %% [markdown]
# # Lesson 12: face aging -- a conditional GAN, an age judge, and a walk back into latent space
#
#     python lessons/12_face_aging.py [--quick] [--out DIR] [--data auto|embedded|PATH]
#
# A GAN maps noise z to faces.  Give both networks the age as an extra input and the generator
# learns `G(z, young)` and `G(z, old)`: for the same z, "the same face" at two ages.  To age a
# *given* photo we then need its z: we find it by gradient descent on z through the frozen
# generator (latent projection), and redraw it with the old label.  A separately trained age
# classifier judges the result.
#
# "Old" here: CelebA has no ages, only a binary *Young* attribute ticked by annotators, so a face
# is "old" when Young is -1.  Without CelebA the lesson uses the embedded procedural faces, which
# have no ages at all; there "old" is a clearly artificial stand-in: grey hair.
#
# Everything is tiny (32x32 images, 8 filters) so that it finishes in under a minute on 2 CPU
# cores.  Each part below is one function; the last cell, `main()`, runs them in order.

# %%
from __future__ import annotations

import os
import sys

# Before NumPy loads its BLAS: one thread per process.  The matrices of a tiny model are too small
# to gain from threads, and on a busy 2-core machine OpenBLAS's waiting threads made this lesson
# ten times slower (99 s instead of 10 s).  Set OPENBLAS_NUM_THREADS yourself to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

try:
    import _common as C  # sets up the path for `import tinygan`
except ModuleNotFoundError:  # a notebook whose working directory is the repository root
    sys.path.insert(0, "lessons")
    import _common as C
import numpy as np  # noqa: E402

from tinygan.aging import (  # noqa: E402
    OLD,
    YOUNG,
    BalancedBatches,
    age_faces,
    age_labels,
    called_old,
    classification_report,
    classifier_step,
    predict_logits,
    reage,
    strips,
)
from tinygan.backend import to_numpy  # noqa: E402
from tinygan.data import load_faces  # noqa: E402
from tinygan.gan import ConditionalStackedGANTrainer  # noqa: E402
from tinygan.gradcheck import check_layer_gradients  # noqa: E402
from tinygan.images import make_grid  # noqa: E402
from tinygan.models import age_classifier  # noqa: E402
from tinygan.models.conditional import LabelConcat, build_conditional_gan, one_hot  # noqa: E402
from tinygan.optimizers import Adam  # noqa: E402

CELEBA = Path("../shared/data/celeba-10k")
SIZE, LATENT = 32, 32


def add_arguments(parser):
    parser.add_argument("--data", default="auto",
                        help="'auto' (CelebA at ../shared/data/celeba-10k if present, else the embedded "
                             "procedural faces), 'embedded', or a CelebA folder with list_attr_celeba.txt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gan-lr", type=float, default=None,
                        help="Adam step size of G and D (default 2e-3 with --quick, else 1e-3)")


# %% [markdown]
# ## 1. What "old" means, and how many old faces there are
#
# With CelebA a face is OLD when its *Young* attribute is -1, i.e. the annotators did not tick
# "young" -- a judgement about looks, not an age.  The embedded procedural faces have no ages, so
# there a face is OLD when its hair is grey: a stand-in that is honest about being one.
#
# Old faces are the minority.  If real batches were drawn at random, D would see "old" real faces
# rarely but our random "old" fakes half the time, and could learn "old label -> probably fake"
# without looking at the face.  So every real batch is drawn label-balanced: half young, half old
# (`BalancedBatches`).

# %%
def find_celeba(choice):
    if choice == "embedded":
        return None
    for p in ([Path(choice)] if choice != "auto" else [CELEBA, C.ROOT / CELEBA]):
        if p.exists() and any(p.rglob("list_attr_celeba.txt")):
            return p
    if choice != "auto":
        raise SystemExit(f"lesson 12: {choice} holds no CelebA images with list_attr_celeba.txt")
    return None


def data_and_labels(args):
    """(training faces, held-out faces), their labels, and the CelebA folder (None: embedded faces)."""
    C.section("What 'old' means, and how many old faces there are")
    celeba = find_celeba(args.data)
    n_hold = 32 if args.quick else 64
    if celeba is not None:
        n_train = 1500 if args.quick else 4000
        faces = load_faces(str(celeba), SIZE, progress=False)
        labels = age_labels(faces, "not_young")
        idx = np.concatenate([np.arange(n_train), np.arange(len(faces) - n_hold, len(faces))])
        C.say(f"""Data: CelebA at {celeba}.  A face is OLD when its Young attribute is -1, i.e.
                  the annotators did not tick "young" -- a judgement about looks, not an age.""")
    else:
        n_train = 600 if args.quick else 2000
        faces = load_faces(None, SIZE, n=n_train + n_hold, seed=args.seed, progress=False)
        labels = age_labels(faces, "gray_hair")
        idx = np.arange(n_train + n_hold)
        C.say("""Data: the embedded procedural faces (no CelebA found).  They have no ages, so a
                 face is OLD when its hair is grey.""")
    faces, labels = faces.subset(idx), labels[idx]
    train, held = faces.subset(np.arange(n_train)), faces.subset(np.arange(n_train, len(faces)))
    y_train, y_held = labels[:n_train], labels[n_train:]
    C.show("training faces / held-out faces", f"{len(train)} / {len(held)}")
    C.show("share of training faces that are 'old'", f"{y_train.mean():.1%}")
    C.say("""Old faces are the minority, so every real batch is drawn label-balanced: half young,
             half old (BalancedBatches).  Otherwise D could learn "old label -> probably fake".""")
    return (train, y_train), (held, y_held), celeba


# %% [markdown]
# ## 2. `G(z, age)` and `D(x, age)`: the label is concatenated
#
# G's input is z with a one-hot age appended; D's input is the image with one constant label map
# per class stacked onto its RGB channels.  The concatenation is a layer without parameters.  Its
# backward pass only slices: the gradient flowing into `[x | labels]` is split, x's part is passed
# on, the labels' part is dropped (labels are data).  A numerical gradient check confirms it.

# %%
def conditional_networks(args):
    """The conditional G and D, and the gradient check of the label-map concatenation."""
    C.section("G(z, age) and D(x, age): the label is concatenated")
    G, D = build_conditional_gan(SIZE, LATENT, base_filters=8, seed=args.seed)
    C.show("G's input: z entries + one-hot age", f"{LATENT} + 2 = {G.net.input_shape[0]}")
    C.show("D's input channels: RGB + one label map per class", f"3 + 2 = {D.net.input_shape[0]}")
    C.show("parameters of G / D", f"{G.num_params():,} / {D.num_params():,}")
    C.say("""The concatenation has no parameters; its backward passes x's part of the gradient on
             and drops the labels' part (labels are data).  A numerical gradient check:""")
    layer = LabelConcat(2, "maps")
    layer.labels = one_hot(np.array([0, 1]), 2, dtype=np.float64)
    err = check_layer_gradients(layer, np.random.default_rng(0).standard_normal((2, 3, 4, 4)))["x"]
    C.show("relative error of the label-map concat's gradient", f"{err:.1e}")
    return G, D, err


# %% [markdown]
# ## 3. An age classifier to judge the results
#
# A small CNN (`tinygan.models.age_classifier`) trained on label-balanced batches of real faces.
# Balanced accuracy (the mean of both classes' recalls) is the honest number when classes are
# unequal: calling everyone young would score the majority share as accuracy but exactly 0.5
# balanced.

# %%
def the_judge(args, train, held):
    """The trained age classifier, and its held-out report."""
    C.section("An age classifier to judge the results")
    (train_faces, y_train), (held_faces, y_held) = train, held
    clf = age_classifier(SIZE, 8, seed=args.seed)
    clf_steps = 60 if args.quick else 300
    opt = Adam(2e-3, 0.9)
    batches = BalancedBatches(train_faces, y_train, 32, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    for step in range(clf_steps):
        if step == int(0.7 * clf_steps):
            opt.lr *= 0.3
        classifier_step(clf, opt, *batches.next_batch(), rng=rng)
    rep = classification_report(predict_logits(clf, held_faces.images), y_held)
    C.show(f"held-out accuracy after {clf_steps} balanced steps", f"{rep['accuracy']:.3f}")
    C.show("held-out balanced accuracy (mean of both recalls)", f"{rep['balanced_accuracy']:.3f}")
    C.say("""Balanced accuracy is the honest number when classes are unequal: calling everyone
             young would score the majority share as accuracy but exactly 0.5 balanced.""")
    return clf, rep


# %% [markdown]
# ## 4. Training the conditional GAN
#
# Each step is the Keras recipe with labels: D sees 16 real faces with their true labels and 16
# fakes `G(z, y)` with random y; then G learns through the frozen D to make `D(G(z, y), y)` say
# "real".  Only the combination of face and label can fool D, so G must make "old" fakes look
# old.  Afterwards the judge looks at the same z drawn with each label.

# %%
def train_the_gan(args, G, D, train, clf):
    """ConditionalStackedGANTrainer steps; then 64 z drawn young and drawn old."""
    gan_steps = 150 if args.quick else 800
    C.section(f"Training the conditional GAN for {gan_steps} steps")
    lr = args.gan_lr or (2e-3 if args.quick else 1e-3)
    C.say(f"""D sees 16 real faces with their labels and 16 fakes G(z, y) with random y; G learns
             through the frozen D to make D(G(z, y), y) say "real".  (A tiny model tolerates Adam
             at {lr:g}, five to ten times the usual DCGAN step of 2e-4.)""")
    trainer = ConditionalStackedGANTrainer(G, D, Adam(lr, 0.5), Adam(lr, 0.5), seed=args.seed)
    gan_batches = BalancedBatches(*train, 16, seed=args.seed + 1)
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
    return as_young, as_old


# %% [markdown]
# ## 5. Latent projection: which z draws this face?
#
# For each held-out young face x we start from a random z and run Adam steps on z alone,
# minimising `||G(z, young) - x||^2` per pixel (+ `0.001 ||z||^2` to stay where G was trained).
# G is frozen and in inference mode, so its BatchNorm layers are fixed affine maps and
# `G.backward` hands us `dLoss/dz`.  `tinygan.aging.age_faces` does this, then redraws each found
# z with the old label.

# %%
def latent_projection(args, G, held):
    """age_faces on the held-out young faces: the projection (and its error curve) and the aged faces."""
    C.section("Latent projection: which z draws this face?")
    held_faces, y_held = held
    steps = 100 if args.quick else 200
    young_idx = np.flatnonzero(y_held == YOUNG)
    x = held_faces.batch(young_idx)
    C.say(f"""For each of {len(young_idx)} held-out young faces x: {steps} Adam steps on z alone,
              minimising ||G(z, young) - x||^2 per pixel (+ 0.001 ||z||^2), G frozen.""")
    res = age_faces(G, x, np.full(len(young_idx), YOUNG), target=OLD, steps=steps, lr=0.05, restarts=2,
                    seed=args.seed)
    curve = res.projection.errors
    for t in sorted({0, 10, steps // 4, steps // 2, steps}):
        C.show(f"mean pixel MSE after {t} steps", f"{curve[t]:.4f}")
    return res


# %% [markdown]
# ## 6. Aging: same z, label old
#
# The reconstructions `G(z*, young)` are the control: same z, same networks, only the label
# differs.  If the aged faces `G(z*, old)` are called old far more often, the label -- and nothing
# else -- made them look old to an independent judge.  Labels can also be weights: (-1, 2) is
# "twice as old", a point on the line through the two labels that G never saw in training.

# %%
def aging(G, clf, res, celeba) -> dict:
    """How often the judge calls the reconstructions, the aged faces and the "twice as old" ones old."""
    C.section("Aging: same z, label old")
    rec_old = called_old(clf, res.reconstruction).mean()
    aged_old = called_old(clf, res.aged).mean()
    C.show("reconstructions G(z*, young) called old", f"{rec_old:.2f}")
    C.show("aged faces G(z*, old) called old", f"{aged_old:.2f}")
    C.say("""The reconstructions are the control: only the label differs.  Look at the figure: the
             reconstruction is a blurry likeness (a tiny G cannot draw every face), and the aged
             column keeps its pose and colours while the age cue changes.""")
    strong = reage(G, res, [-1.0, 2.0])
    C.say("""Label weights (-1, 2), "twice as old": the change grows, and so does the risk that it
             stops looking like the same person.""")
    C.show("label weights (-1, 2): share called old", f"{called_old(clf, strong.aged).mean():.2f}")
    if celeba is not None:
        C.say("""A caveat for CelebA: a minute of training gives this tiny G only face-coloured blobs,
                 and the classifier, trained on real photos, is then judging pictures unlike any it
                 has seen, so read its verdicts on them as a weak signal.  examples/face_aging.py
                 trains a wider model for longer (docs/face_aging.md has the numbers).""")
    return {"share_reconstruction_called_old": float(rec_old), "share_aged_called_old": float(aged_old),
            "share_strength2_called_old": float(called_old(clf, strong.aged).mean())}


# %% [markdown]
# ## 7. The figure
#
# Held-out faces with their reconstruction and aged version, samples of the same z with each
# label, and the projection's error curve.

# %%
def plot(args, res, as_young, as_old):
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 5.2),
                             gridspec_kw={"width_ratios": [3, 2, 3.2], "wspace": 0.25})
    axes[0].imshow(make_grid(strips(res.take(np.arange(min(8, len(res.aged))))), nrow=3))
    axes[0].set_title("held-out: input | reconstruction | aged", fontsize=10)
    pairs = np.stack([to_numpy(as_young[:8]), to_numpy(as_old[:8])], axis=1).reshape(16, 3, SIZE, SIZE)
    axes[1].imshow(make_grid(pairs, nrow=2))
    axes[1].set_title("samples, same z:\nyoung label | old label", fontsize=10)
    for a in axes[:2]:
        a.axis("off")
    axes[2].plot(res.projection.errors)
    axes[2].set_xlabel("Adam steps on z")
    axes[2].set_ylabel("mean pixel MSE")
    axes[2].set_title("latent projection: reconstruction error", fontsize=10)
    return C.save_figure(fig, args.out / "face_aging.png")


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick` or `--data embedded`), or call it yourself:
# `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "12_face_aging", "Lesson 12: face aging -- a conditional GAN, "
                        "an age judge, and a walk back into latent space", add_arguments)
    t_start = time.perf_counter()
    C.title("Lesson 12: face aging with a conditional GAN")
    train, held, celeba = data_and_labels(args)
    G, D, concat_err = conditional_networks(args)
    clf, rep = the_judge(args, train, held)
    as_young, as_old = train_the_gan(args, G, D, train, clf)
    res = latent_projection(args, G, held)
    curve = res.projection.errors
    out = {"concat_gradcheck": concat_err, "classifier_accuracy": rep["accuracy"],
           "classifier_balanced_accuracy": rep["balanced_accuracy"],
           "initial_error": float(curve[0]), "final_error": float(curve[-1]), "error_curve": curve}
    out.update(aging(G, clf, res, celeba))
    out["figure"] = plot(args, res, as_young, as_old)
    out["seconds"] = time.perf_counter() - t_start
    C.show("lesson time", f"{out['seconds']:.1f} s")
    return out


if __name__ == "__main__":
    main()
