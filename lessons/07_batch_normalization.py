# %% [markdown]
# # Lesson 7: batch normalisation -- forward, backward, batch vs running statistics
#
#     python lessons/07_batch_normalization.py [--quick] [--out DIR]
#
# BatchNorm standardises every feature (every channel, for images) over the batch, then applies
# a learned scale `gamma` and shift `beta`.  In training it uses the batch's own mean and
# variance, so each sample's output depends on its batchmates; it also keeps running averages of
# those statistics, which replace them when the model is evaluated (`training=False`).  Its
# backward pass must account for the mean and variance depending on every input.
#
# Each part below is one function; the last cell, `main()`, runs them in order.  They share one
# random generator and one `BatchNorm` layer, passed from part to part.

# %%
from __future__ import annotations

import sys

try:
    import _common as C  # first: sets up the path (and BLAS threads) before NumPy loads
except ModuleNotFoundError:  # a notebook whose working directory is the repository root
    sys.path.insert(0, "lessons")
    import _common as C
import numpy as np

from tinygan.gradcheck import check_layer_gradients
from tinygan.layers import BatchNorm

TRUE_MEAN = np.array([5.0, -2.0, 0.0])
TRUE_STD = np.array([3.0, 0.5, 10.0])


def draw(rng, n):
    """n samples of 3 features with means TRUE_MEAN and standard deviations TRUE_STD."""
    return (TRUE_MEAN + TRUE_STD * rng.standard_normal((n, 3))).astype(np.float32)


# %% [markdown]
# ## 1. Training mode: normalise with the batch's statistics
#
# One batch of 64 samples through `BatchNorm(3, momentum=0.9)`.  With `gamma = 1` and `beta = 0`
# (their initial values) the output is `(x - mean) / sqrt(var + eps)` per feature: mean 0, std 1.

# %%
def training_mode(bn, rng):
    """One batch in training mode: the output's statistics, and its distance from the formula."""
    C.section("Training mode: normalise with the batch's statistics")
    x = draw(rng, 64)
    y = bn.forward(x, training=True)
    C.show("input  per-feature mean", str(np.round(x.mean(0), 3)))
    C.show("input  per-feature std", str(np.round(x.std(0), 3)))
    C.show("output per-feature mean", str(np.round(y.mean(0), 6)))
    C.show("output per-feature std", str(np.round(y.std(0), 4)))
    xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + bn.eps)           # the formula, for comparison
    formula_diff = float(np.abs(y - xhat).max())
    C.show("max |BatchNorm - (x - mean)/sqrt(var + eps)|", formula_diff, ".1e")
    C.show("running_mean after one batch (momentum 0.9)", str(np.round(bn.buffers["running_mean"], 3)))
    return y, formula_diff


# %% [markdown]
# ### Running statistics converge
#
# `running = 0.9 * running + 0.1 * batch` (Keras' momentum convention): after one batch it holds
# only 10% of the batch mean.  It converges over many batches.

# %%
def running_statistics(bn, rng, n_batches):
    """Train-mode forwards of n_batches - 1 more batches; the running mean after each batch."""
    C.say("""running = 0.9 * running + 0.1 * batch (Keras' momentum convention): after one batch
             it holds only 10% of the batch mean.  It converges over many batches:""")
    history = [bn.buffers["running_mean"].copy()]
    for _ in range(n_batches - 1):
        bn.forward(draw(rng, 64), training=True)
        history.append(bn.buffers["running_mean"].copy())
    history = np.array(history)
    for b in (1, 10, 30, n_batches):
        C.show(f"running_mean after {b} batch{'es' if b > 1 else ''}", str(np.round(history[b - 1], 3)))
    C.show("true mean", str(TRUE_MEAN))
    C.show("running_var -> true var", f"{np.round(bn.buffers['running_var'], 2)} -> {TRUE_STD ** 2}")
    return history


# %% [markdown]
# ## 2. What `training=False` changes
#
# In training mode sample 0's output depends on who else is in the batch; in evaluation mode it
# is a fixed affine map of sample 0 alone, using the running statistics.  We put the same sample
# into two different batches, then try a batch of one sample in both modes.

# %%
def training_vs_evaluation(bn, rng):
    """How much sample 0's output changes with its batchmates, in training and in eval mode."""
    C.section("What training=False changes")
    C.say("""Training mode: a sample's output depends on its batchmates; evaluation mode: a fixed
             affine map with the running statistics.  The same sample in two different batches:""")
    sample = draw(rng, 1)
    batch_a = np.concatenate([sample, draw(rng, 15)])
    batch_b = np.concatenate([sample, draw(rng, 15) + 3.0])       # batchmates shifted by +3
    dependence = {}
    for training in (True, False):
        out_a, out_b = bn.forward(batch_a, training=training), bn.forward(batch_b, training=training)
        dependence[training] = float(np.abs(out_a[0] - out_b[0]).max())
    train_dep, eval_dep = dependence[True], dependence[False]
    single = bn.forward(sample, training=False)                   # a batch of one is fine here
    C.show("training: sample 0 output changes by", train_dep, ".3f")
    C.show("eval:     sample 0 output changes by", eval_dep, ".1e")
    C.show("eval on a batch of one sample works", str(np.round(single[0], 3)))
    try:
        bn.forward(sample, training=True)
        one_sample_error = "(no error)"
    except Exception as e:                                        # ShapeError: no variance of one value
        one_sample_error = f"{type(e).__name__}: {e}"
    print(f"  training on a batch of one -> {one_sample_error}")
    C.say("""For a GAN this matters twice: the discriminator sees real and fake halves in separate
             batches (StackedGANTrainer does that, so BatchNorm cannot tell them apart by their
             statistics alone), and sampling from a trained generator uses training=False.""")
    return train_dep, eval_dep


# %% [markdown]
# ## 3. Frozen BatchNorm (`trainable = False`)
#
# A forward pass in training mode on wildly different data, with the layer frozen: do the running
# averages move?

# %%
def frozen(bn, rng) -> float:
    """How far a frozen training-mode forward moves the running mean."""
    C.section("Frozen BatchNorm (trainable = False)")
    before = bn.buffers["running_mean"].copy()
    bn.trainable = False
    bn.forward(draw(rng, 64) + 100.0, training=True)              # wildly different data
    bn.trainable = True
    frozen_change = float(np.abs(bn.buffers["running_mean"] - before).max())
    C.show("running_mean change after a frozen forward", frozen_change, ".1e")
    C.say("""A frozen layer still normalises with batch statistics in training mode but leaves its
             running averages alone: lesson 9 freezes the discriminator exactly like this.""")
    return frozen_change


# %% [markdown]
# ## 4. Backward, checked against central differences (float64)
#
# With `xhat = (x - mean) * inv_std` and `G = dL/dy`, per feature over its `m` values:
#
#     dL/dx = gamma * inv_std / m * (m G - sum(G) - xhat * sum(G * xhat))
#
# The two sums are what the batch statistics add: moving one input moves the mean and variance
# that every output was normalised with.  In evaluation mode they vanish (the statistics are
# constants).  Gradient checks for dense and image inputs, in both modes:

# %%
def backward(rng) -> dict:
    """check_layer_gradients of BatchNorm with random gamma, beta and running statistics."""
    C.section("Backward, checked against central differences (float64)")
    C.say("""dL/dx = gamma * inv_std / m * (m G - sum(G) - xhat * sum(G * xhat)): the two sums are
             what the batch statistics add.""")
    grad_errors = {}
    cases = {"dense (N, F), training": ((16, 3), True), "images (N, C, H, W), training": ((4, 2, 3, 3), True),
             "dense (N, F), eval": ((16, 3), False), "images (N, C, H, W), eval": ((4, 2, 3, 3), False)}
    for name, (shape, training) in cases.items():
        layer = BatchNorm(shape[1]).astype(np.float64)
        layer.params["gamma"][...] = rng.uniform(0.5, 2.0, shape[1])
        layer.params["beta"][...] = rng.standard_normal(shape[1])
        layer.buffers["running_mean"][...] = rng.standard_normal(shape[1])
        layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, shape[1])
        # (training mode updates the running averages at every call, but does not read them)
        errs = check_layer_gradients(layer, 3 * rng.standard_normal(shape) + 1, training=training)
        grad_errors[name] = errs
        C.show(name, ", ".join(f"d{k} {e:.1e}" for k, e in errs.items()))
    return grad_errors


# %% [markdown]
# ## The figure
#
# Left: the running mean approaching the true means.  Right: three features on very different
# scales, and all of them after the (evaluation-mode) BatchNorm, on one common scale.

# %%
def plot(args, bn, history):
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
    steps = np.arange(1, len(history) + 1)
    for f in range(3):
        line, = axes[0].plot(steps, history[:, f], label=f"feature {f}")
        axes[0].axhline(TRUE_MEAN[f], color=line.get_color(), ls=":")
    axes[0].set_xlabel("training batches")
    axes[0].set_title("running_mean (dotted: true mean)")
    axes[0].legend()
    bins = np.linspace(-8, 20, 60)
    xs = draw(np.random.default_rng(5), 2000)
    for f in range(3):
        axes[1].hist(xs[:, f], bins=bins, alpha=0.4, label=f"x, feature {f}")
    axes[1].hist(bn.forward(xs, training=False).ravel(), bins=bins, histtype="step", color="k", lw=1.5,
                 label="all features after BN (eval)")
    axes[1].set_title("one scale for every feature")
    axes[1].legend(fontsize=8)
    C.save_figure(fig, args.out / "batchnorm.png")


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "07_batch_normalization", "Lesson 7: batch normalisation "
                        "-- forward, backward, batch vs running statistics")
    C.title("Lesson 7: batch normalisation")
    rng = np.random.default_rng(0)
    bn = BatchNorm(3, momentum=0.9, name="bn")
    y, formula_diff = training_mode(bn, rng)
    history = running_statistics(bn, rng, n_batches=60 if args.quick else 200)
    train_dep, eval_dep = training_vs_evaluation(bn, rng)
    frozen_change = frozen(bn, rng)
    grad_errors = backward(rng)
    plot(args, bn, history)
    return {"output_mean": np.abs(y.mean(0)).max().item(), "output_std": y.std(0).tolist(),
            "formula_diff": formula_diff, "running_mean_error": float(np.abs(history[-1] - TRUE_MEAN).max()),
            "train_dependence": train_dep, "eval_dependence": eval_dep, "frozen_change": frozen_change,
            "gradcheck": grad_errors}


if __name__ == "__main__":
    main()
