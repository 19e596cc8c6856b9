# %% [markdown]
# # Lesson 11: judging a GAN -- the discriminator's accuracy and the sliced Wasserstein distance
#
#     python lessons/11_judging_a_gan.py [--quick] [--out DIR] [--data PATH]
#
# A GAN's losses do not say how good its images are: they measure a game against a moving
# opponent.  Two things that do help:
#
# * the discriminator's accuracy on held-out real images and on generated ones
#   (`tinygan.metrics.discriminator_accuracy`): a health check of the game's balance;
# * a distance between the distribution of real and generated images that needs no pretrained
#   network: the sliced Wasserstein distance over Laplacian-pyramid patches (Karras et al. 2018,
#   `tinygan.metrics.sliced_wasserstein_distance`).  Lower is better; real-vs-real sets the floor.
#
# We calibrate SWD on known pairs (real vs real, real vs noise), then train the small DCGAN of
# lesson 10 and watch the distance fall.
#
# Each part below is one function; the last cell, `main()`, runs them in order.

# %%
from __future__ import annotations

import sys

try:
    import _common as C  # first: sets up the path (and BLAS threads) before NumPy loads
except ModuleNotFoundError:  # a notebook whose working directory is the repository root
    sys.path.insert(0, "lessons")
    import _common as C
import numpy as np

from tinygan.data import Minibatches, load_faces
from tinygan.gan import StackedGANTrainer
from tinygan.images import make_grid
from tinygan.metrics import discriminator_accuracy, sliced_wasserstein_distance
from tinygan.models import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import Adam


def add_arguments(parser):
    parser.add_argument("--data", default=None,
                        help="CelebA folder/zip or any image folder (default: embedded procedural faces)")


# %% [markdown]
# ## 1. Data: a training set and a held-out set
#
# The discriminator is judged on real images it never trained on, and SWD compares G's samples
# with those held-out images.

# %%
def the_data(args, n_train, n_eval):
    """The training set, the held-out images, and as many training images as held-out ones."""
    C.section("Data: a training set and a held-out set")
    if args.data:
        faces = load_faces(args.data, 64, limit=n_train + n_eval)
    else:
        faces = load_faces(None, 64, n=n_train + n_eval, use_cache=False, progress=False)
    train, held_out = faces.split(n_eval, seed=0)
    real_eval = held_out.batch(np.arange(len(held_out)))
    real_train = train.batch(np.arange(n_eval))           # as many training images as held-out ones
    C.show("training / held-out images", f"{len(train)} / {len(held_out)}")
    return train, real_eval, real_train


# %% [markdown]
# ## 2. Calibrating the distance on pairs whose answer we know
#
# SWD compares 7x7 patches at each scale of a Laplacian pyramid: 64x64 sees fine detail, 16x16
# the coarse layout and colour.  Two samples of the same distribution are not at distance 0
# (finite samples): real-vs-real is the floor to compare with.  A 4x-blurred copy of real images
# and uniform noise are the known-bad pairs.

# %%
# Fewer descriptors and projections than the paper's (128 per image, 512 directions): enough to
# rank these sets clearly at this sample size, and fast.
SWD_SETTINGS = dict(descriptors_per_image=64, n_directions=64, n_repeats=2, seed=0)


def swd(a, b):
    return sliced_wasserstein_distance(a, b, **SWD_SETTINGS)


def calibrate(real_eval, real_train) -> dict:
    """SWD between the held-out images and real, blurred and noise images, per pyramid level."""
    C.section("Calibrating the distance on pairs whose answer we know (SWD x 1e3)")
    C.say("""SWD compares 7x7 patches at each level of a Laplacian pyramid; real-vs-real (finite
             samples, not 0) is the floor to compare with.""")
    n_eval = len(real_train)
    noise = np.random.default_rng(0).uniform(-1, 1, real_eval.shape).astype(np.float32)
    blurred = real_train.reshape(n_eval, 3, 16, 4, 16, 4).mean(axis=(3, 5)).repeat(4, 2).repeat(4, 3)
    pairs = {"real vs real (other images)": real_train, "real vs 4x-blurred real": blurred,
             "real vs uniform noise": noise}
    calib = {}
    print(f"  {'pair':32s}" + "".join(f"{r:>8d}" for r in (64, 32, 16)) + f"{'mean':>8s}")
    for name, imgs in pairs.items():
        r = swd(real_eval, imgs)
        calib[name] = r.mean
        print(f"  {name:32s}" + "".join(f"{v * 1e3:8.1f}" for v in r.per_level.values())
              + f"{r.mean * 1e3:8.1f}")
    C.say("""Blurring leaves the 16x16 level almost untouched and ruins the 64x64 one: the per-level
             numbers say at which scale a generator is wrong.""")
    return calib


# %% [markdown]
# ## 3. Training the lesson-10 DCGAN, measured as it goes
#
# Every few steps, D's accuracy is measured two ways on the held-out real images and on G's
# samples of a fixed noise batch: with `tinygan.metrics.discriminator_accuracy`, which runs D in
# evaluation mode (BatchNorm's running statistics), and with batch statistics, as the trainer
# runs D (its `d_acc_real` / `d_acc_fake`).  And the SWD between G's samples and the held-out
# images.

# %%
def accuracy_as_trained(D, real, fake):
    """D's accuracy with batch statistics, the way StackedGANTrainer trains it (real and fake in
    separate batches); D is frozen meanwhile, so its BatchNorm running averages stay put."""
    D.trainable = False
    try:
        real_ok = float((D.forward(real, training=True) > 0).mean())
        fake_ok = float((D.forward(fake, training=True) < 0).mean())
    finally:
        D.trainable = True
    return real_ok, fake_ok


def train_and_measure(train, real_eval, steps, every, base, latent, half_batch):
    """Rows of (step, SWD, D accuracy in eval mode real/fake, with batch statistics real/fake),
    and G's final samples."""
    C.section(f"Training the lesson-10 DCGAN (base_filters {base}) and measuring every {every} steps")
    G = dcgan64_generator(latent, base_filters=base, seed=0)
    D = dcgan64_discriminator(base_filters=base, seed=1)
    trainer = StackedGANTrainer(G, D, Adam(1e-3, beta1=0.5), Adam(1e-3, beta1=0.5), latent_dim=latent, seed=0)
    z_eval = trainer.backend.asarray(np.random.default_rng(123).standard_normal((len(real_eval), latent)))
    batches = Minibatches(train, half_batch, seed=0)
    C.say("""D's accuracy two ways: in evaluation mode (tinygan.metrics.discriminator_accuracy, with
             BatchNorm's running statistics), and with batch statistics, as the trainer runs D.""")
    rows = []
    print(f"  {'step':>5} {'SWD x1e3':>9}   {'D acc, eval mode':>17}   {'D acc, batch stats':>19}")
    print(f"  {'':>5} {'':>9}   {'real':>8} {'fake':>8}   {'real':>9} {'fake':>9}")
    for step in range(0, steps + 1):
        if step > 0:
            trainer.train_step(batches.next_batch())
        if step % every == 0:
            fake = G.forward(z_eval, training=False)
            acc = discriminator_accuracy(D, real_eval, fake)
            batch_real, batch_fake = accuracy_as_trained(D, real_eval, fake)
            rows.append((step, swd(real_eval, fake).mean, acc["real"], acc["fake"], batch_real, batch_fake))
            print(f"  {step:5d} {rows[-1][1] * 1e3:9.1f}   {acc['real']:8.2f} {acc['fake']:8.2f}   "
                  f"{batch_real:9.2f} {batch_fake:9.2f}")
    final_fake = G.forward(z_eval, training=False)
    return np.array(rows), final_fake


# %% [markdown]
# ## 4. Reading the numbers
#
# SWD: the untrained G's almost-flat grey scores like noise (each set's patches are normalised by
# that set's own spread, so faint texture is blown up to full contrast; for the same reason SWD
# ignores a global shift in colour).  It falls as G learns, yet stays far above the real-vs-real
# floor: these are a minute's worth of blurry faces.
#
# D's accuracy judges G only relative to the current D, and it swings from step to step.  Near
# 100% on both sets means D is winning (expected early; a warning if it lasts, as G's gradients
# then fade); near 50% on both means D is fooled, or has stopped learning.  In evaluation mode the
# same D gives different and more erratic numbers: its running averages mix statistics of real
# batches and of fake batches, which it never saw together in training.  Use the accuracy to
# watch the balance of the game, and a distance such as SWD (or FID, with a pretrained network)
# to judge the images.

# %%
def describe_balance(real_acc, fake_acc) -> str:
    """A sentence on what two accuracies say about the game."""
    r, f = float(real_acc), float(fake_acc)
    if r >= 0.8 and f >= 0.8:
        return f"D is winning (it gets {r:.0%} of real and {f:.0%} of generated images right)"
    if abs(r - 0.5) < 0.2 and abs(f - 0.5) < 0.2:
        return f"close to a coin toss ({r:.0%} on real, {f:.0%} on generated)"
    if r > f:
        return (f"D still recognises {r:.0%} of real faces but only {f:.0%} of G's samples: G fools "
                f"it on the rest")
    return f"D calls {1 - r:.0%} of real faces fake ({f:.0%} right on G's samples): it is confused"


def reading_the_numbers(args, calib, rows, final_fake):
    """The SWD summary, what D's accuracies say, and the figure."""
    steps = int(rows[-1, 0])
    C.show("SWD x 1e3: untrained G / trained G / noise / real",
           f"{rows[0, 1] * 1e3:.0f} / {rows[-1, 1] * 1e3:.0f} / {calib['real vs uniform noise'] * 1e3:.0f} / "
           f"{calib['real vs real (other images)'] * 1e3:.0f}")
    C.say("""SWD: the untrained G's almost-flat grey scores like noise (each set's patches are
             normalised by that set's own spread).  It falls as G learns, yet stays far above the
             real-vs-real floor: these are a minute's worth of blurry faces.""")
    C.say(f"""D's accuracy judges G only relative to the current D, and swings from step to step.
              Here, at step {steps}, with batch statistics:
              {describe_balance(rows[-1, 4], rows[-1, 5])}.  In evaluation mode the same D gives
              different and more erratic numbers (its running averages mix real and fake batches).
              Use the accuracy to watch the balance of the game, and a distance such as SWD to
              judge the images.""")

    plt = C.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1.2, 1.2, 1]})
    axes[0].plot(rows[:, 0], rows[:, 1] * 1e3, "o-", label="real vs G's samples")
    for (name, v), ls in zip(calib.items(), (":", "-.", "--", (0, (1, 4)))):
        axes[0].axhline(v * 1e3, color="grey", ls=ls, label=name)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("SWD x 1e3 (mean over levels)")
    axes[0].legend(fontsize=7)
    axes[0].set_title("sliced Wasserstein distance")
    axes[1].plot(rows[:, 0], rows[:, 4], "o-", c="C0", label="real, batch statistics")
    axes[1].plot(rows[:, 0], rows[:, 5], "s-", c="C1", label="generated, batch statistics")
    axes[1].plot(rows[:, 0], rows[:, 2], "o:", c="C0", alpha=0.6, label="real, eval mode")
    axes[1].plot(rows[:, 0], rows[:, 3], "s:", c="C1", alpha=0.6, label="generated, eval mode")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].set_xlabel("training step")
    axes[1].set_title("discriminator accuracy")
    axes[1].legend()
    axes[2].imshow(make_grid(final_fake[:25], nrow=5))
    axes[2].set_title(f"G's samples at step {steps}")
    axes[2].axis("off")
    C.save_figure(fig, args.out / "judging.png")


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "11_judging_a_gan", "Lesson 11: judging a GAN "
                        "-- the discriminator's accuracy and the sliced Wasserstein distance", add_arguments)
    C.title("Lesson 11: judging a GAN")
    quick = args.quick
    n_train, n_eval = 512, (64 if quick else 128)
    steps, every = (60, 20) if quick else (100, 20)
    base, latent, half_batch = 8, 64, (8 if quick else 16)
    train, real_eval, real_train = the_data(args, n_train, n_eval)
    calib = calibrate(real_eval, real_train)
    rows, final_fake = train_and_measure(train, real_eval, steps, every, base, latent, half_batch)
    reading_the_numbers(args, calib, rows, final_fake)
    return {"swd_calibration": calib, "swd_curve": rows[:, 1].tolist(), "steps": rows[:, 0].tolist(),
            "swd_initial": float(rows[0, 1]), "swd_final": float(rows[-1, 1]),
            "d_acc_eval_real": rows[:, 2].tolist(), "d_acc_eval_fake": rows[:, 3].tolist(),
            "d_acc_batch_real": rows[:, 4].tolist(), "d_acc_batch_fake": rows[:, 5].tolist()}


if __name__ == "__main__":
    main()
