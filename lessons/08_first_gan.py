# %% [markdown]
# # Lesson 8: the first GAN -- a dense GAN learns a ring of 8 Gaussians, and then collapses
#
#     python lessons/08_first_gan.py [--quick] [--out DIR]
#
# The data are 2-D points from 8 Gaussian blobs on a circle (radius 2, std 0.05): small enough to
# plot every sample, and with a count we can check -- how many of the 8 modes does the generator
# cover?  A dense generator (2-D noise -> 2-D point) and a dense discriminator (point -> logit),
# both from `tinygan.models.dense_gan`, are trained with `tinygan.gan.StackedGANTrainer`.  A second
# run with the same networks but a generator that learns 50x faster than its discriminator shows
# mode collapse: all the noise squeezed onto a thin curve that covers at most a mode at a time.
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

from tinygan.gan import StackedGANTrainer
from tinygan.models import dense_discriminator, dense_generator
from tinygan.optimizers import Adam

# %% [markdown]
# ## 1. The data, and how we count modes
#
# A sample is *high quality* when it lies within 3 standard deviations of its nearest centre; a
# mode is *covered* when at least 1% of all samples are high-quality samples of that mode.

# %%
RADIUS, STD, N_MODES = 2.0, 0.05, 8
CENTERS = RADIUS * np.stack([np.cos(np.arange(N_MODES) * 2 * np.pi / N_MODES),
                             np.sin(np.arange(N_MODES) * 2 * np.pi / N_MODES)], axis=1)
LATENT = 2
N_EVAL = 2000


def sample_mixture(rng, n):
    """n points from the mixture, float32 (N, 2)."""
    k = rng.integers(0, N_MODES, n)
    return (CENTERS[k] + STD * rng.standard_normal((n, 2))).astype(np.float32)


def count_modes(points, min_share=0.01):
    """(modes covered, share of high-quality samples).

    A sample is high quality when it lies within 3 std of its nearest centre; a mode is covered
    when at least ``min_share`` of all samples are high-quality samples of that mode.
    """
    d = np.linalg.norm(points[:, None, :] - CENTERS[None], axis=2)
    nearest, good = d.argmin(axis=1), d.min(axis=1) < 3 * STD
    per_mode = np.bincount(nearest[good], minlength=N_MODES)
    return int((per_mode >= min_share * len(points)).sum()), float(good.mean())


# %% [markdown]
# ## 2. The networks
#
# Two dense nets with two hidden layers of 128 units.  One training step
# (`StackedGANTrainer.train_step`): D takes one Adam step on 64 real points (label 1) and 64
# generated ones (label 0); then G takes one Adam step on 128 fresh samples through D, with D
# frozen, pushing D's logit on them up (the non-saturating loss of lesson 3).  Both use
# `Adam(lr = 1e-3, beta1 = 0.5)`.

# %%
def the_networks():
    C.section("The networks")
    G = dense_generator(LATENT, (2,), hidden=(128, 128), batchnorm=False, tanh_output=False)
    D = dense_discriminator((2,), hidden=(128, 128))
    print(G.summary())
    print(D.summary())
    C.say("""One training step (StackedGANTrainer.train_step): D takes one Adam step on 64 real
             points (label 1) and 64 generated ones (label 0); then G takes one Adam step on 128
             fresh samples through D, with D frozen.  Both use Adam(lr = 1e-3, beta1 = 0.5).""")


# %% [markdown]
# ## 3. Run 1: balanced learning rates
#
# `train` runs one GAN and renders the same 2000 noise vectors every 100 steps (so the snapshots
# are comparable), counting the modes they cover.

# %%
def train(g_lr, d_lr, steps, snapshot_steps, seed=0, half_batch=64):
    """Train one GAN; return snapshots {step: samples}, per-100-step mode counts and the trainer."""
    G = dense_generator(LATENT, (2,), hidden=(128, 128), batchnorm=False, tanh_output=False, seed=seed)
    D = dense_discriminator((2,), hidden=(128, 128), seed=seed + 1)
    trainer = StackedGANTrainer(G, D, Adam(g_lr, beta1=0.5), Adam(d_lr, beta1=0.5), latent_dim=LATENT,
                                seed=seed)
    data_rng = np.random.default_rng(seed + 100)
    z_eval = trainer.backend.asarray(np.random.default_rng(seed + 200).standard_normal((N_EVAL, LATENT)))
    snapshots, curve = {}, []
    for step in range(1, steps + 1):
        stats = trainer.train_step(sample_mixture(data_rng, half_batch))
        if step % 100 == 0 or step in snapshot_steps:
            pts = G.forward(z_eval, training=False)       # the same noise every time: comparable
            modes, quality = count_modes(pts)
            if step % 100 == 0:
                curve.append((step, modes, quality))
            if step in snapshot_steps:
                snapshots[step] = pts
                s = stats.as_floats()
                print(f"  step {step:5d}: modes {modes}/8, high-quality {quality:5.1%}, "
                      f"D loss {s['d_loss']:.3f}, G loss {s['g_loss']:.3f}")
    return snapshots, np.array(curve), trainer


def balanced_run(steps, snap):
    """Run 1, and the real data's own count for comparison."""
    C.section(f"Run 1: balanced learning rates, {steps} steps")
    good_snaps, good_curve, _ = train(1e-3, 1e-3, steps, snap)
    real = sample_mixture(np.random.default_rng(7), N_EVAL)
    real_modes, real_quality = count_modes(real)
    good_modes, good_quality = count_modes(good_snaps[steps])
    C.show("real data: modes, high-quality share", f"{real_modes}/8, {real_quality:.1%}")
    C.show("generator after training", f"{good_modes}/8, {good_quality:.1%}")
    return real, good_snaps, good_curve


# %% [markdown]
# ## 4. Run 2: G learns 50x faster than D -- mode collapse
#
# For a fixed D, G's loss is lowest when EVERY sample sits at the single point D rates most real:
# the best reply to a fixed D is a point mass.  Nothing in G's loss rewards variety; only D can,
# by learning that the crowded spot is fake.  If G moves much faster than D, G keeps racing
# towards that point mass (here: a thin curve, the 2-D noise squeezed flat), D lowers its score
# there too slowly, and G jumps on to the next favourite spot: mode collapse, the collapsed cloud
# hopping around (Goodfellow's NIPS 2016 tutorial calls it the Helvetica scenario).
#
# The area the samples fill, `sqrt(det(covariance))`, is ~0 for points squeezed onto a curve.

# %%
def collapsed_run(steps, snap, real, good_snaps):
    """Run 2 (G lr 5e-3, D lr 1e-4); its modes, and the area each point cloud fills."""
    C.section(f"Run 2: G learns 50x faster than D (G lr 5e-3, D lr 1e-4), {steps} steps")
    C.say("""The best reply to a fixed D is a point mass; only D can reward variety.  If G moves
             much faster than D, it keeps racing towards D's favourite spot and the samples
             collapse onto a thin curve that hops from mode to mode.""")
    bad_snaps, bad_curve, _ = train(5e-3, 1e-4, steps, snap)
    bad_modes, bad_quality = count_modes(bad_snaps[steps])
    # sqrt(det(covariance)): the area the samples fill; ~0 for points squeezed onto a curve
    area = {name: float(np.sqrt(np.linalg.det(np.cov(pts.T))))
            for name, pts in (("real", real), ("run 1", good_snaps[steps]), ("run 2", bad_snaps[steps]))}
    C.show("collapsed generator: modes, high-quality share", f"{bad_modes}/8, {bad_quality:.1%}")
    C.show("most modes run 2 ever covered (per 100 steps)", int(bad_curve[:, 1].max()))
    C.show("area sqrt(det cov): real / run 1 / run 2",
           f"{area['real']:.2f} / {area['run 1']:.2f} / {area['run 2']:.3f}")
    C.say("""Cures people use: keep D at least as fast as G (here: equal learning rates), give D a
             look at the whole batch (minibatch discrimination), average G's weights (EMA), or
             change the objective (WGAN-GP, unrolled GANs).""")
    return bad_snaps, bad_curve, area


# %% [markdown]
# ## 5. The figures
#
# The generated points over the real mixture at six moments of each run, and the mode count and
# high-quality share every 100 steps.

# %%
def plot(args, snap, real, runs):
    """``runs``: {name: (snapshots, curve)} for run 1 and run 2."""
    plt = C.pyplot()
    fig, axes = plt.subplots(2, len(snap), figsize=(2.6 * len(snap), 5.6), sharex=True, sharey=True)
    for row, (name, (snaps, _)) in enumerate(runs.items()):
        for col, s in enumerate(snap):
            ax = axes[row, col]
            ax.scatter(real[:500, 0], real[:500, 1], s=2, c="lightgrey")
            ax.scatter(snaps[s][:1000, 0], snaps[s][:1000, 1], s=2, alpha=0.5, c="C0" if row == 0 else "C3")
            m, q = count_modes(snaps[s])
            ax.set_title(f"step {s}: {m}/8 modes", fontsize=9)
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_aspect("equal")
        axes[row, 0].set_ylabel(name)
    fig.suptitle("generated points (colour) over the real mixture (grey)")
    C.save_figure(fig, args.out / "samples_over_training.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for (name, (_, curve)), c in zip(runs.items(), ("C0", "C3")):
        axes[0].plot(curve[:, 0], curve[:, 1], c=c, label=name)
        axes[1].plot(curve[:, 0], curve[:, 2], c=c, label=name)
    axes[0].set_ylabel("modes covered (of 8)")
    axes[1].set_ylabel("share within 3 std of a centre")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.legend()
    C.save_figure(fig, args.out / "modes_over_training.png")


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "08_first_gan", "Lesson 8: the first GAN "
                        "-- a dense GAN learns a ring of 8 Gaussians, and then collapses")
    C.title("Lesson 8: the first GAN")
    steps = 1000 if args.quick else 3000
    snap = [0] + [int(round(steps * f / 5)) for f in range(1, 6)]
    snap[0] = 50 if args.quick else 100
    the_networks()
    real, good_snaps, good_curve = balanced_run(steps, snap)
    bad_snaps, bad_curve, area = collapsed_run(steps, snap, real, good_snaps)
    plot(args, snap, real, {"run 1: balanced": (good_snaps, good_curve),
                            "run 2: G 50x faster": (bad_snaps, bad_curve)})
    real_modes, _ = count_modes(real)
    good_modes, good_quality = count_modes(good_snaps[steps])
    bad_modes, bad_quality = count_modes(bad_snaps[steps])
    return {"steps": steps, "real_modes": real_modes, "modes": good_modes, "quality": good_quality,
            "collapsed_modes": bad_modes, "collapsed_quality": bad_quality,
            "collapsed_max_modes": int(bad_curve[:, 1].max()), "area": area,
            "modes_curve": good_curve[:, 1].tolist(), "collapsed_curve": bad_curve[:, 1].tolist()}


if __name__ == "__main__":
    main()
