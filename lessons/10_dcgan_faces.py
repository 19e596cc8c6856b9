# %% [markdown]
# # Lesson 10: a DCGAN on faces -- from noise to face-like images in a minute of CPU
#
#     python lessons/10_dcgan_faces.py [--quick] [--out DIR] [--data PATH] [--steps N] [--base-filters F]
#
# The DCGAN (Radford et al., 2016) replaces the dense layers of lesson 8 with transposed
# convolutions in G (4x4 -> 8x8 -> ... -> 64x64) and strided convolutions in D, with BatchNorm in
# between.  `tinygan.models.dcgan64_generator` / `dcgan64_discriminator` build it; `base_filters`
# sets the width (64 in the paper; 8 here, so that a CPU trains it in seconds).  The data are the
# embedded procedural faces (`load_faces(None)`), or CelebA (or any image folder) with `--data`.
# A real run trains for hours; this one shows the first steps: from a grey mush to face-shaped
# blobs with hair, skin and eyes.
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
from tinygan.images import make_grid, save_image_grid
from tinygan.models import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import Adam


def add_arguments(parser):
    parser.add_argument("--data", default=None,
                        help="CelebA folder/zip or any image folder (default: embedded procedural faces)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default 120; 20 with --quick)")
    parser.add_argument("--base-filters", type=int, default=None,
                        help="DCGAN width (default 8; 4 with --quick)")
    parser.add_argument("--images", type=int, default=None,
                        help="training images (default 512; 64 with --quick)")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="Adam learning rate for G and D (default 1e-3: high, for a short run; "
                             "DCGAN uses 2e-4)")


# %% [markdown]
# ## 1. Data
#
# `load_faces` returns a face set: uint8 images, and `faces.batch(indices)` hands out float32
# NCHW batches scaled to [-1, 1], the range of G's tanh output.

# %%
def the_data(args, n_images):
    """The training faces, and a batch of 64 of them (saved as real.png)."""
    C.section("Data")
    if args.data:
        faces = load_faces(args.data, 64, limit=n_images)
    else:
        faces = load_faces(None, 64, n=n_images, use_cache=False, progress=False)
    print(faces.summary())
    real = faces.batch(np.arange(min(64, len(faces))))            # float32 NCHW in [-1, 1]
    C.show("a batch of real images", f"{real.shape} {real.dtype}, range [{real.min():.0f}, {real.max():.0f}]")
    save_image_grid(real, args.out / "real.png", nrow=8, scale=2)
    print(f"  [grid] {args.out / 'real.png'}")
    return faces, real


# %% [markdown]
# ## 2. The models
#
# G: noise `(N, latent)` is reshaped to `(latent, 1, 1)` and grown by 4x4 transposed convolutions
# (stride 2: no checkerboard from uneven overlap, lesson 6) to 64x64, ending in tanh so pixels
# land in [-1, 1] like the data.  D mirrors it with 4x4 stride-2 convolutions and LeakyReLU down
# to one logit.  Every weight starts as N(0, 0.02) (the paper's initialisation).

# %%
def the_models(base, latent):
    C.section(f"Models: DCGAN 64x64, base_filters {base}, latent {latent}")
    G = dcgan64_generator(latent, base_filters=base, seed=0)
    D = dcgan64_discriminator(base_filters=base, seed=1)
    print(G.summary())
    print(D.summary())
    C.say(f"""Every weight starts as N(0, 0.02).  G grows noise (N, {latent}) by 4x4 stride-2
              transposed convolutions to a 64x64 tanh image; D mirrors it with 4x4 stride-2
              convolutions down to one logit.""")
    return G, D


# %% [markdown]
# ## 3. Training
#
# Watch the numbers: within a few steps D rejects the grey mush (accuracy near 100%, G's loss
# high); as G picks up colours and layout, D has to work harder.  A fixed batch of noise is
# rendered before training and at a few checkpoints, so the grids are comparable.

# %%
def training(args, G, D, faces, steps, latent, half_batch):
    """StackedGANTrainer steps; G's samples of a fixed noise batch before and after, the stats."""
    trainer = StackedGANTrainer(G, D, Adam(args.lr, beta1=0.5), Adam(args.lr, beta1=0.5), latent_dim=latent,
                                seed=0)
    z_fixed = trainer.backend.asarray(np.random.default_rng(123).standard_normal((64, latent)))
    before = G.forward(z_fixed, training=False)
    save_image_grid(before, args.out / "samples_step0000.png", nrow=8, scale=2)
    print(f"  [grid] {args.out / 'samples_step0000.png'}  (untrained G)")

    C.section(f"Training: {steps} steps, {half_batch} real + {half_batch} fake images per D step, "
              f"{2 * half_batch} per G step")
    C.say("""Watch the numbers: within a few steps D rejects the grey mush (accuracy near 100%,
             G's loss high); as G picks up colours and layout, D has to work harder.""")
    batches = Minibatches(faces, half_batch, seed=0)
    grid_steps = sorted({max(1, steps // 4), max(1, steps // 2), steps})
    log_every = max(1, steps // 8)
    history = []
    with C.Stopwatch() as clock:
        for step in range(1, steps + 1):
            stats = trainer.train_step(batches.next_batch()).as_floats()
            history.append(stats)
            if step % log_every == 0 or step == steps:
                print(f"  step {step:4d}  D loss {stats['d_loss']:.3f}  G loss {stats['g_loss']:.3f}  "
                      f"D acc real {stats['d_acc_real']:.2f} fake {stats['d_acc_fake']:.2f}")
            if step in grid_steps:
                save_image_grid(G.forward(z_fixed, training=False), args.out / f"samples_step{step:04d}.png",
                                nrow=8, scale=2)
    after = G.forward(z_fixed, training=False)
    C.show("seconds per training step", clock.seconds / steps, ".2f")
    print(f"  [grids] {args.out}/samples_step*.png at steps {', '.join(map(str, grid_steps))}")
    return before, after, history, clock.seconds / steps


# %% [markdown]
# ## 4. Before and after
#
# The crudest statistics G must get right: the mean colour and the contrast (pixel standard
# deviation) of its samples, against the real faces'.  The untrained G, sampled in evaluation
# mode, is a flat grey: its BatchNorm layers use their initial running statistics (mean 0,
# variance 1, lesson 7), which do not rescale the tiny activations of N(0, 0.02) weights.
# Lesson 11 replaces these crude statistics with a proper distance between image distributions.

# %%
def channel_means(images):
    """Mean of each colour channel over a batch: the crudest statistic G must get right."""
    return np.asarray(images, dtype=np.float64).mean(axis=(0, 2, 3))


def before_and_after(args, G, faces, real, before, after, history) -> dict:
    """Colour and contrast before and after; saves G's weights and the before/after figure."""
    C.section("Before and after")
    real_all = faces.batch(np.arange(len(faces)))
    target = channel_means(real_all)
    err_before = float(np.abs(channel_means(before) - target).max())
    err_after = float(np.abs(channel_means(after) - target).max())
    C.show("mean R, G, B of the real faces", str(np.round(target, 3)))
    C.show("mean R, G, B of G's samples, before", str(np.round(channel_means(before), 3)))
    C.show("mean R, G, B of G's samples, after", str(np.round(channel_means(after), 3)))
    C.show("pixel std: real / before / after",
           f"{real_all.std():.3f} / {float(before.std()):.3f} / {float(after.std()):.3f}")
    C.say("""The untrained G, sampled in evaluation mode, is a flat grey (its BatchNorm layers still
             hold their initial running statistics).  After training, G has begun to find the
             palette and the large-scale layout (a skin-coloured oval framed by hair).  Longer
             runs give better faces, e.g. --data path/to/celeba --images 5000 --steps 3000
             --base-filters 16 (tens of minutes on a CPU); the step time above grows about with
             base_filters squared.""")
    G.save_weights(args.out / "generator.npz")
    print(f"  [weights] {args.out / 'generator.npz'}")

    steps = len(history)
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4), gridspec_kw={"width_ratios": [1, 1, 1, 1.3]})
    for ax, imgs, name in ((axes[0], real[:36], "real"), (axes[1], before[:36], "G at step 0"),
                           (axes[2], after[:36], f"G at step {steps}")):
        ax.imshow(make_grid(imgs, nrow=6))
        ax.set_title(name)
        ax.axis("off")
    s = np.arange(1, steps + 1)
    axes[3].plot(s, [h["d_loss"] for h in history], label="D loss")
    axes[3].plot(s, [h["g_loss"] for h in history], label="G loss")
    axes[3].set_xlabel("step")
    axes[3].legend()
    axes[3].set_title("losses")
    C.save_figure(fig, args.out / "before_after.png")
    return {"color_error_before": err_before, "color_error_after": err_after,
            "std_before": float(before.std()), "std_after": float(after.std()),
            "std_real": float(real_all.std())}


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick` or `--data path/to/celeba --steps 500`), or call it
# yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "10_dcgan_faces", "Lesson 10: a DCGAN on faces "
                        "-- from noise to face-like images in a minute of CPU", add_arguments)
    C.title("Lesson 10: a DCGAN on faces")
    steps = args.steps or (20 if args.quick else 120)
    base = args.base_filters or (4 if args.quick else 8)
    n_images = args.images or (64 if args.quick else 512)
    latent, half_batch = 64, (8 if args.quick else 16)
    faces, real = the_data(args, n_images)
    G, D = the_models(base, latent)
    before, after, history, seconds_per_step = training(args, G, D, faces, steps, latent, half_batch)
    out = {"steps": steps, "base_filters": base, "sample_shape": tuple(after.shape),
           "sample_range": (float(after.min()), float(after.max()))}
    out.update(before_and_after(args, G, faces, real, before, after, history))
    out.update({"final_stats": history[-1],
                "finite": bool(np.isfinite([list(h.values()) for h in history]).all()),
                "grids": sorted(p.name for p in args.out.glob("samples_step*.png")),
                "seconds_per_step": seconds_per_step})
    return out


if __name__ == "__main__":
    main()
