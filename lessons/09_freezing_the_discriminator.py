# %% [markdown]
# # Lesson 9: the stacked model -- freezing the discriminator, and what goes wrong if you forget
#
#     python lessons/09_freezing_the_discriminator.py [--quick] [--out DIR]
#
# The Keras recipe trains G through a "stacked" model G -> D: generated samples are labelled real
# and the loss's gradient flows back through D into G.  D must be FROZEN for that step: it still
# passes gradients to its input (that is how G learns), but its own weights must not move.  If
# they did, the step would also teach D to call fakes real -- D would be helping G cheat.
# `tinygan.gan.StackedGANTrainer` sets `D.trainable = False` around its generator step; here we
# verify that, then do the step by hand without freezing and measure the damage.
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
from tinygan.losses import binary_cross_entropy_with_logits
from tinygan.models import dcgan64_discriminator, dcgan64_generator, dense_discriminator, dense_generator
from tinygan.optimizers import Adam

LATENT = 2

# %% [markdown]
# ## 1. Setup
#
# G and D are small dense nets (`tinygan.models.dense_gan`).  D first trains alone for 60 steps,
# so it tells real points from G's current output.  We keep a fixed set of 512 of G's samples and
# ask D about them; since this set never changes, any change in D's verdict on it comes from D's
# weights alone.  `setup()` builds this starting point; every experiment below starts from an
# identical copy of it.

# %%
def real_points(rng, n):
    """The data: one Gaussian blob around (2, 2)."""
    return (np.array([2.0, 2.0]) + 0.5 * rng.standard_normal((n, 2))).astype(np.float32)


def max_change(before: dict, after: dict, keys) -> float:
    return max(float(np.abs(after[k] - before[k]).max()) for k in keys)


def d_verdict(D, fakes):
    """D's mean probability that ``fakes`` are real, and its accuracy on them (eval mode)."""
    logits = D.forward(fakes, training=False)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    return float(p.mean()), float((logits < 0).mean())


def setup(seed=0, d_warmup=60):
    G = dense_generator(LATENT, (2,), hidden=(32, 32), batchnorm=False, tanh_output=False, seed=seed)
    D = dense_discriminator((2,), hidden=(32, 32), seed=seed + 1)
    trainer = StackedGANTrainer(G, D, Adam(1e-3, beta1=0.5), Adam(1e-3, beta1=0.5), latent_dim=LATENT,
                                seed=seed)
    rng = np.random.default_rng(seed + 10)
    for _ in range(d_warmup):                 # teach D to tell the blob from G's initial output
        trainer.discriminator_step(real_points(rng, 64))
    fixed_fakes = G.forward(trainer.sample_noise(512), training=False)
    return G, D, trainer, fixed_fakes


def the_setup():
    """The starting point, and D's verdict on the fixed fakes there."""
    C.section("Setup")
    G, D, trainer, fixed_fakes = setup()
    p0, acc0 = d_verdict(D, fixed_fakes)
    C.say("""D first trains alone for 60 steps.  A fixed set of 512 of G's samples never changes,
             so any change in D's verdict on it comes from D's weights alone.""")
    C.show("D(fake) on the fixed fakes, mean probability", p0, ".4f")
    C.show("D's accuracy on the fixed fakes", acc0, ".1%")
    return (G, D, trainer, fixed_fakes), (p0, acc0)


# %% [markdown]
# ## 2. `StackedGANTrainer.generator_step`: D frozen
#
# One generator step of the trainer.  We compare D's and G's weights (`state_dict()`) before and
# after, and D's verdict on the fixed fakes.

# %%
def the_frozen_step(start, p0) -> dict:
    """One trainer.generator_step: how far D's and G's weights move, and D's verdict after it."""
    C.section("StackedGANTrainer.generator_step: D frozen")
    G, D, trainer, fixed_fakes = start
    param_keys = [k for k, _, _ in D.parameters()]
    d_before, g_before = D.state_dict(), G.state_dict()
    trainer.generator_step(128)
    d_after, g_after = D.state_dict(), G.state_dict()
    frozen_param = max_change(d_before, d_after, param_keys)
    g_moved = max_change(g_before, g_after, list(g_before))
    p1, acc1 = d_verdict(D, fixed_fakes)
    C.show("max |change| of D's weights", frozen_param, ".1e")
    C.show("max |change| of G's weights", g_moved, ".2e")
    C.show("D(fake) on the fixed fakes, before -> after", f"{p0:.4f} -> {p1:.4f}")
    d_trainable_after = D.trainable
    C.show("D is trainable again after the step?", d_trainable_after)
    C.say("""Inside the step D.trainable was False: every D layer still computed its input gradient
             (G needs it) but skipped its parameter gradients, and Sequential.trainable_parameters()
             left D out of the optimizer step.""")
    return {"frozen_param_change": frozen_param, "g_change": g_moved, "p_fake_frozen": (p0, p1),
            "d_trainable_after": d_trainable_after}


# %% [markdown]
# ## 3. The same step by hand, forgetting to freeze D
#
# Below, D stays trainable and the optimizer is handed G's and D's parameters, as a Keras model
# compiled before setting `D.trainable = False` would do.  The labels say "these fakes are real",
# so D's gradient is the one that makes it believe exactly that.

# %%
def the_forgotten_freeze(p0, acc0) -> dict:
    """The generator step written out with D left trainable, from the identical starting point."""
    C.section("The same step by hand, forgetting to freeze D")
    C.say("""D stays trainable and the optimizer gets G's and D's parameters.  The labels say
             "these fakes are real", so D learns exactly that.""")
    G, D, trainer, fixed_fakes = setup()                  # the identical starting point
    param_keys = [k for k, _, _ in D.parameters()]
    combined_opt = Adam(1e-3, beta1=0.5)
    d_before = D.state_dict()
    D.trainable = True                                    # <- the bug: no D.trainable = False
    fake = G.forward(trainer.sample_noise(128), training=True)
    logits = D.forward(fake, training=True)
    loss, grad = binary_cross_entropy_with_logits(logits, 1.0)
    G.zero_grad()
    D.zero_grad()
    G.backward(D.backward(grad))
    combined_opt.step(G.trainable_parameters() + D.trainable_parameters())
    d_after = D.state_dict()
    bad_param = max_change(d_before, d_after, param_keys)
    p_bad, acc_bad = d_verdict(D, fixed_fakes)
    C.show("max |change| of D's weights", bad_param, ".2e")
    C.show("D(fake) on the fixed fakes, before -> after", f"{p0:.4f} -> {p_bad:.4f}")
    C.show("D's accuracy on the fixed fakes, before -> after", f"{acc0:.1%} -> {acc_bad:.1%}")
    C.say("""One step and D already rates the very same fakes as more real: G's step also trained D
             to lose.""")
    return {"unfrozen_param_change": bad_param, "p_fake_unfrozen": (p0, p_bad),
            "acc_fake_unfrozen": (acc0, acc_bad)}


# %% [markdown]
# ## 4. Several generator steps in a row, frozen vs forgotten
#
# No discriminator steps in between: with D frozen its accuracy on the fixed fakes cannot change;
# with the freeze forgotten, every G step teaches D to accept the fakes.

# %%
def several_steps(args, n_steps) -> dict:
    """D's accuracy on the fixed fakes after each of n_steps generator steps, both ways."""
    C.section(f"{n_steps} generator steps in a row, frozen vs forgotten")
    curves = {}
    for frozen in (True, False):
        G, D, trainer, fixed_fakes = setup()
        opt = Adam(1e-3, beta1=0.5)
        acc = [d_verdict(D, fixed_fakes)[1]]
        for _ in range(n_steps):
            if frozen:
                trainer.generator_step(128)
            else:
                fake = G.forward(trainer.sample_noise(128), training=True)
                _, grad = binary_cross_entropy_with_logits(D.forward(fake, training=True), 1.0)
                G.zero_grad()
                D.zero_grad()
                G.backward(D.backward(grad))
                opt.step(G.trainable_parameters() + D.trainable_parameters())
            acc.append(d_verdict(D, fixed_fakes)[1])
        curves["frozen" if frozen else "forgotten"] = acc
    C.show("D's accuracy on the fixed fakes, frozen",
           f"{curves['frozen'][0]:.1%} -> {curves['frozen'][-1]:.1%}")
    C.show("D's accuracy on the fixed fakes, forgotten",
           f"{curves['forgotten'][0]:.1%} -> {curves['forgotten'][-1]:.1%}")

    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(curves["frozen"], "o-", label="D frozen (StackedGANTrainer)")
    ax.plot(curves["forgotten"], "s-", c="C3", label="D not frozen")
    ax.set_xlabel("generator steps (no discriminator steps in between)")
    ax.set_ylabel("D's accuracy on a fixed set of fakes")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("G steps must not train D")
    ax.legend()
    C.save_figure(fig, args.out / "frozen_vs_forgotten.png")
    return curves


# %% [markdown]
# ## 5. A discriminator with BatchNorm: its running statistics are protected too
#
# The dense D above has no BatchNorm (with real and fake halves normalised separately, a BatchNorm
# on 2-D points would subtract each half's mean: exactly the difference in location D has to
# see).  The DCGAN discriminator has BatchNorm layers, whose running mean and variance are state
# as well.  A tiny DCGAN (`base_filters` 4, 64x64): one frozen generator step, then one forward
# pass through an unfrozen D.

# %%
def batchnorm_buffers():
    """How far D's BatchNorm buffers move in a generator step, and in one unfrozen forward pass."""
    C.section("A discriminator with BatchNorm: its running statistics are protected too")
    C.say("""The DCGAN discriminator has BatchNorm layers, whose running mean and variance are
             state as well.  A tiny DCGAN (base_filters 4, 64x64):""")
    G64 = dcgan64_generator(latent_dim=16, base_filters=4, seed=0)
    D64 = dcgan64_discriminator(base_filters=4, seed=1)
    trainer64 = StackedGANTrainer(G64, D64, Adam(), Adam(), latent_dim=16, seed=0)
    bn_keys = [f"{layer.name}.{k}" for layer in D64.layers for k in layer.buffers]
    before = D64.state_dict()
    trainer64.generator_step(8)
    frozen_buffer = max_change(before, D64.state_dict(), bn_keys)
    D64.forward(G64.forward(trainer64.sample_noise(8), training=True), training=True)   # D not frozen
    bad_buffer = max_change(before, D64.state_dict(), bn_keys)
    C.show("BatchNorm buffers in D", f"{len(bn_keys)} ({bn_keys[0]}, ...)")
    C.show("max |change| after generator_step (frozen)", frozen_buffer, ".1e")
    C.show("max |change| after one unfrozen forward pass", bad_buffer, ".2e")
    C.say("""A frozen BatchNorm in training mode still normalises with the batch's statistics
             (so G gets the gradient of the function D was trained as) but leaves its running
             averages alone: generator-step batches are not D's training data.""")
    return {"frozen_buffer_change": frozen_buffer, "unfrozen_buffer_change": bad_buffer}


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "09_freezing_the_discriminator", "Lesson 9: the stacked model "
                        "-- freezing the discriminator, and what goes wrong if you forget")
    C.title("Lesson 9: freezing the discriminator")
    start, (p0, acc0) = the_setup()
    out = the_frozen_step(start, p0)
    out.update(the_forgotten_freeze(p0, acc0))
    out["acc_curves"] = several_steps(args, n_steps=10 if args.quick else 40)
    out.update(batchnorm_buffers())
    return out


if __name__ == "__main__":
    main()
