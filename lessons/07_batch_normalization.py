"""Lesson 7: batch normalisation -- forward, backward, batch vs running statistics.

    python lessons/07_batch_normalization.py [--quick] [--out DIR]

BatchNorm standardises every feature (every channel, for images) over the batch, then applies a
learned scale gamma and shift beta.  In training it uses the batch's own mean and variance, so
each sample's output depends on its batchmates; it also keeps running averages of those
statistics, which replace them when the model is evaluated (training=False).  Its backward
pass must account for the mean and variance depending on every input.
"""
from __future__ import annotations

import _common as C  # first: sets up the path (and BLAS threads) before NumPy loads
import numpy as np

from tinygan.gradcheck import check_layer_gradients
from tinygan.layers import BatchNorm

TRUE_MEAN = np.array([5.0, -2.0, 0.0])
TRUE_STD = np.array([3.0, 0.5, 10.0])


def draw(rng, n):
    return (TRUE_MEAN + TRUE_STD * rng.standard_normal((n, 3))).astype(np.float32)


def main(argv=None) -> dict:
    args = C.parse_args(argv, __file__, __doc__.splitlines()[0])
    C.title("Lesson 7: batch normalisation")
    rng = np.random.default_rng(0)

    # -- forward in training mode --------------------------------------------------------------
    C.section("Training mode: normalise with the batch's statistics")
    bn = BatchNorm(3, momentum=0.9, name="bn")
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
    C.say("""running = 0.9 * running + 0.1 * batch (Keras' momentum convention): after one batch
             it holds only 10% of the batch mean.  It converges over many batches:""")

    # -- running statistics converge ------------------------------------------------------------
    n_batches = 60 if args.quick else 200
    history = [bn.buffers["running_mean"].copy()]
    for _ in range(n_batches - 1):
        bn.forward(draw(rng, 64), training=True)
        history.append(bn.buffers["running_mean"].copy())
    history = np.array(history)
    for b in (1, 10, 30, n_batches):
        C.show(f"running_mean after {b} batch{'es' if b > 1 else ''}", str(np.round(history[b - 1], 3)))
    C.show("true mean", str(TRUE_MEAN))
    C.show("running_var -> true var", f"{np.round(bn.buffers['running_var'], 2)} -> {TRUE_STD ** 2}")
    running_mean_err = float(np.abs(history[-1] - TRUE_MEAN).max())

    # -- training vs evaluation -----------------------------------------------------------------
    C.section("What training=False changes")
    C.say("""In training mode sample 0's output depends on who else is in the batch; in evaluation
             mode it is a fixed affine map of sample 0 alone, using the running statistics.
             Put the same sample into two different batches:""")
    sample = draw(rng, 1)
    batch_a = np.concatenate([sample, draw(rng, 15)])
    batch_b = np.concatenate([sample, draw(rng, 15) + 3.0])       # batchmates shifted by +3
    train_dep = float(np.abs(bn.forward(batch_a, training=True)[0] - bn.forward(batch_b, training=True)[0]).max())
    eval_dep = float(np.abs(bn.forward(batch_a, training=False)[0] - bn.forward(batch_b, training=False)[0]).max())
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

    # -- frozen -----------------------------------------------------------------------------------
    C.section("Frozen BatchNorm (trainable = False)")
    before = bn.buffers["running_mean"].copy()
    bn.trainable = False
    bn.forward(draw(rng, 64) + 100.0, training=True)              # wildly different data
    bn.trainable = True
    frozen_change = float(np.abs(bn.buffers["running_mean"] - before).max())
    C.show("running_mean change after a frozen forward", frozen_change, ".1e")
    C.say("""A frozen layer still normalises with batch statistics in training mode but leaves its
             running averages alone: lesson 9 freezes the discriminator exactly like this.""")

    # -- backward ---------------------------------------------------------------------------------
    C.section("Backward, checked against central differences (float64)")
    C.say("""With xhat = (x - mean) * inv_std and G = dL/dy, per feature over its m values:
             dL/dx = gamma * inv_std / m * (m G - sum(G) - xhat * sum(G * xhat)).  The two sums are
             what the batch statistics add: moving one input moves the mean and variance that
             every output was normalised with.""")
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

    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
    steps = np.arange(1, n_batches + 1)
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

    return {"output_mean": np.abs(y.mean(0)).max().item(), "output_std": y.std(0).tolist(),
            "formula_diff": formula_diff, "running_mean_error": running_mean_err,
            "train_dependence": train_dep, "eval_dependence": eval_dep, "frozen_change": frozen_change,
            "gradcheck": grad_errors}


if __name__ == "__main__":
    main()
