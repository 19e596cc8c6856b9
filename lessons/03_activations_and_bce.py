# %% [markdown]
# # Lesson 3: activations and binary cross-entropy -- and the two ways to write G's loss
#
#     python lessons/03_activations_and_bce.py [--quick] [--out DIR]
#
# A GAN's discriminator ends in one logit and is trained with binary cross-entropy (BCE).  This
# lesson shows the activations' forward and backward passes, why BCE must be computed from the
# logit (sigmoid then log overflows to inf for large logits), and why the generator minimises
# `-log D(G(z))` rather than the original `log(1 - D(G(z)))`, whose gradient vanishes just when G
# needs it most.
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

from tinygan.gradcheck import check_layer_gradients
from tinygan.layers import LeakyReLU, ReLU, Sigmoid, Tanh
from tinygan.losses import binary_cross_entropy, binary_cross_entropy_with_logits

# %% [markdown]
# ## 1. Activations: forward, and backward with dy = 1
#
# Feeding `dy = 1` into an activation's backward pass gives its local derivative.  Each keeps only
# what its backward needs: ReLU a mask, Tanh and Sigmoid their own output
# (`tanh' = 1 - y^2`, `sigmoid' = y (1 - y)`).  Then a gradient check of each, in float64.

# %%
def activations(args) -> dict:
    """Each activation's curve and derivative (plotted), and its gradient check."""
    C.section("Activations: forward, and backward with dy = 1 (the local derivative)")
    xs = np.linspace(-5, 5, 201 if args.quick else 1001)
    acts = {"ReLU": ReLU(), "LeakyReLU(0.2)": LeakyReLU(0.2), "Tanh": Tanh(), "Sigmoid": Sigmoid()}
    curves = {}
    for name, act in acts.items():
        y = act.forward(xs[None, :])
        dy = act.backward(np.ones_like(y))
        curves[name] = (y[0], dy[0])
    C.say("""Each keeps only what its backward needs: ReLU a mask, Tanh and Sigmoid their own
             output (tanh' = 1 - y^2, sigmoid' = y (1 - y)).  Gradient check in float64:""")
    act_errors = {}
    xcheck = np.random.default_rng(0).standard_normal((4, 6))
    for name, act in acts.items():
        act_errors[name] = check_layer_gradients(act, xcheck.copy())["x"]
        C.show(f"{name}: relative error of dx", act_errors[name], ".1e")
    C.show("largest derivative of Sigmoid (at 0)", float(curves["Sigmoid"][1].max()))
    C.show("derivative of Sigmoid at x = 5", float(curves["Sigmoid"][1][-1]), ".2e")

    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, (y, dy) in curves.items():
        axes[0].plot(xs, y, label=name)
        axes[1].plot(xs, dy, label=name)
    axes[0].set_title("forward y(x)")
    axes[1].set_title("backward: dy/dx")
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("x")
        ax.legend()
    C.save_figure(fig, args.out / "activations.png")
    return act_errors


# %% [markdown]
# ## 2. Binary cross-entropy: from the probability or from the logit?
#
# D gives a fake image (target 0) the logit `x`.  The exact loss is `log(1 + e^x)`, about `x` for
# large `x`, and its gradient with respect to `x` is `sigmoid(x)`, about 1: a confident wrong answer
# should be punished hard.  Three ways to compute it, in float32:
#
# * naive: sigmoid, then log;
# * tinygan's `binary_cross_entropy` on the probability, which clips it to `[1e-7, 1 - 1e-7]`, as
#   Keras does;
# * tinygan's `binary_cross_entropy_with_logits`, which computes
#   `max(x, 0) - x t + log1p(exp(-|x|))` and so only ever exponentiates `-|x| <= 0`.

# %%
def naive_bce(logit, target, dtype=np.float32):
    """The textbook two steps: s = 1 / (1 + exp(-x)), then -(t log s + (1 - t) log(1 - s))."""
    x = np.asarray(logit, dtype=dtype)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        s = 1 / (1 + np.exp(-x))
        return float(-(target * np.log(s) + (1 - target) * np.log(1 - s)))


def bce_from_probability_or_logit():
    """The three BCEs at growing logits (a table), and where the naive one first overflows."""
    C.section("Binary cross-entropy: from the probability or from the logit?")
    C.say("""A fake (target 0) with logit x: the exact loss is log(1 + e^x), about x, and its
             gradient sigmoid(x), about 1.  Naive (sigmoid, then log), tinygan's
             binary_cross_entropy on the clipped probability, and binary_cross_entropy_with_logits,
             in float32:""")
    table_logits = [0.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0]
    print(f"  {'logit':>7} {'naive':>10} {'clipped BCE':>12} {'its grad':>9} "
          f"{'BCE w/ logits':>14} {'its grad':>9}")
    rows = {}
    for v in table_logits:
        x32 = np.array([v], np.float32)
        naive = naive_bce(v, 0.0)
        with np.errstate(over="ignore"):
            probs = 1 / (1 + np.exp(-x32))      # what a Sigmoid output layer would hand over
        clipped, clipped_grad = binary_cross_entropy(probs, 0.0)
        # dL/dx = dL/dp * dp/dx: the clipped loss's gradient passes back through the sigmoid
        clipped_dx = float(clipped_grad[0] * probs[0] * (1 - probs[0]))
        exact, exact_grad = binary_cross_entropy_with_logits(x32, 0.0)
        rows[v] = (naive, float(clipped), clipped_dx, float(exact), float(exact_grad[0]))
        print(f"  {v:7g} {naive:10.4g} {float(clipped):12.4g} {clipped_dx:9.3g} "
              f"{float(exact):14.6g} {float(exact_grad[0]):9.3g}")
    # Where does the naive form first give inf, in each precision?
    grid = np.arange(1.0, 60.0, 0.5)
    first_inf = {dt.__name__: float(next(v for v in grid if np.isinf(naive_bce(v, 0.0, dt))))
                 for dt in (np.float32, np.float64)}
    C.show("naive BCE is first inf at logit (float32)", first_inf["float32"])
    C.show("naive BCE is first inf at logit (float64)", first_inf["float64"])
    C.say("""Naive: sigmoid(x) rounds to exactly 1 and log(1 - 1) = -inf.  Clipped: finite but
             wrong (stuck near 16) and, worse, zero gradient: a saturated D learns nothing from its
             worst mistakes.  From the logit, max(x, 0) - x t + log1p(exp(-|x|)) only ever
             exponentiates -|x| <= 0, so it is exact for any x and its gradient stays
             sigmoid(x) - t.  tinygan's discriminators therefore end in a logit, not a Sigmoid.""")
    return rows, first_inf


# %% [markdown]
# ## 3. The generator's loss: `log(1 - D(G(z)))` vs `-log D(G(z))`
#
# Goodfellow et al.'s minimax game has G minimise `log(1 - D(G(z)))`.  Early in training D easily
# spots fakes, `D(G(z)) = p` is near 0, and there the curve is flat:
# `d/dlogit log(1 - p) = -p -> 0`.  The non-saturating loss `-log p` pushes G the same way
# (towards p = 1) but its gradient, `-(1 - p)`, is about -1 there.  Both are computed with the
# library's `binary_cross_entropy_with_logits` (saturating: minus the BCE against target 0, as
# `StackedGANTrainer(g_loss="saturating")` computes it).

# %%
def per_element(loss_fn, logits, target):
    """Loss and dloss/dlogit of a library loss, one logit at a time (the library averages)."""
    out = [loss_fn(np.array([v], np.float64), target) for v in logits]
    return np.array([float(loss) for loss, _ in out]), np.array([float(g[0]) for _, g in out])


def generator_losses(args) -> dict:
    """Both losses and their gradients over D(G(z)) in (0, 1): a table, a figure, and the ratio."""
    C.section("The generator's loss: log(1 - D(G(z))) vs -log D(G(z))")
    C.say("""Where D(G(z)) = p is near 0 (early training), log(1 - p) is flat (gradient -p) while
             -log p keeps a gradient of -(1 - p), about -1.  Both through the library's
             binary_cross_entropy_with_logits:""")
    p = np.linspace(1e-3, 1 - 1e-3, 999)
    logits = np.log(p / (1 - p))
    bce0, dbce0 = per_element(binary_cross_entropy_with_logits, logits, 0.0)
    sat_loss, sat_grad = -bce0, -dbce0                                    # log(1 - p)
    ns_loss, ns_grad = per_element(binary_cross_entropy_with_logits, logits, 1.0)  # -log p
    probe = [0.001, 0.01, 0.1, 0.5, 0.9]
    print(f"  {'D(G(z))':>8} {'log(1-p)':>10} {'grad':>9} {'-log p':>9} {'grad':>9}")
    for q in probe:
        i = int(np.argmin(np.abs(p - q)))
        print(f"  {q:8.3g} {sat_loss[i]:10.4g} {sat_grad[i]:9.3g} {ns_loss[i]:9.4g} {ns_grad[i]:9.3g}")
    i1 = int(np.argmin(np.abs(p - 0.001)))
    ratio = ns_grad[i1] / sat_grad[i1]
    C.show("|grad| ratio non-sat. / sat. at p = 0.001", float(ratio), ".0f")

    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(p, sat_loss, label="saturating  log(1 - D(G(z)))")
    axes[0].plot(p, ns_loss, label="non-saturating  -log D(G(z))")
    axes[0].set_ylabel("G's loss (minimised)")
    axes[1].plot(p, np.abs(sat_grad), label="saturating: |grad| = p")
    axes[1].plot(p, np.abs(ns_grad), label="non-saturating: |grad| = 1 - p")
    axes[1].set_ylabel("|dloss / dlogit|")
    for ax in axes:
        ax.set_xlabel("D(G(z)): D's probability that the fake is real")
        ax.axvspan(0, 0.1, color="red", alpha=0.08)
        ax.legend(fontsize=8)
    axes[0].set_title("early training lives in the shaded strip")
    axes[1].set_title("gradient reaching G")
    C.save_figure(fig, args.out / "generator_losses.png")
    return {"sat_grad_at_p001": float(sat_grad[i1]), "nonsat_grad_at_p001": float(ns_grad[i1])}


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "03_activations_and_bce", "Lesson 3: activations and binary cross-entropy "
                        "-- and the two ways to write G's loss")
    C.title("Lesson 3: activations and binary cross-entropy")
    act_errors = activations(args)
    rows, first_inf = bce_from_probability_or_logit()
    g_losses = generator_losses(args)
    return {"activation_gradcheck": act_errors, "bce_table": rows, "first_inf_logit": first_inf,
            "naive_at_100": rows[100.0][0], "logits_at_100": rows[100.0][3],
            "logits_grad_at_100": rows[100.0][4], "clipped_grad_at_100": rows[100.0][2],
            "logits_at_1000": rows[1000.0][3], **g_losses}


if __name__ == "__main__":
    main()
