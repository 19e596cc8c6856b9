# %% [markdown]
# # Lesson 4: optimizers -- SGD, momentum, Adam and Nadam on the same curved valley
#
#     python lessons/04_optimizers.py [--quick] [--out DIR]
#
# Every tinygan optimizer takes a list of `(key, param, grad)` triples and updates the parameters
# IN PLACE.  Here the "model" is one 2-vector `p = (x, y)` and the loss is Rosenbrock's banana
# valley `f = (1 - x)^2 + 100 (y - x^2)^2`, minimum 0 at (1, 1): steep across the valley, nearly
# flat along it -- the shape that makes plain gradient descent crawl.
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

from tinygan.optimizers import SGD, Adam, Nadam

START = (-1.5, 2.0)


def rosenbrock(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def rosenbrock_grad(p, out):
    """Writes the gradient into ``out`` (the array the optimizer holds a reference to)."""
    x, y = p
    out[0] = -2 * (1 - x) - 400 * x * (y - x * x)
    out[1] = 200 * (y - x * x)


# %% [markdown]
# ## 1. The calling convention, and the update in place
#
# `opt.step([("p", p, g)])` changes `p` itself: the optimizer keeps no copy of the model.  Adam's
# first step moves every coordinate by about `lr`, whatever the gradient's size: with bias
# correction `m / sqrt(v) = g / |g|` at t = 1.  Its state lives in `opt.state` under the
# parameter's key.

# %%
def calling_convention():
    """One Adam step from START: is it in place, and how far does each coordinate move?"""
    C.section("The calling convention, and the update in place")
    p = np.array(START)
    g = np.zeros(2)
    rosenbrock_grad(p, g)
    opt = Adam(lr=0.02, beta1=0.9)
    before, ref = p.copy(), p
    opt.step([("p", p, g)])
    C.show("p before, gradient", f"{before}, {g}")
    C.show("p after one Adam step", str(p))
    C.show("still the same array object (in place)?", ref is p)
    first_step = np.abs(p - before)
    C.say("""Adam's first step moves every coordinate by about lr, whatever the gradient's size
             (m / sqrt(v) = g / |g| at t = 1).""")
    C.show("|step| per coordinate (lr = 0.02)", str(np.round(first_step, 6)))
    C.show("opt.state['p'] slots", str(sorted(opt.state["p"])))
    return ref is p, first_step


# %% [markdown]
# ## 2. The race: four optimizers from the same start
#
# Plain SGD's learning rate is capped by the steepest curvature: at the start the second
# derivative across the valley is ~1900, and `lr = 1e-3` is already near the `2/1900` limit where
# it would diverge, so along the flat valley floor it crawls.  Momentum accumulates the consistent
# downhill component.  Adam and Nadam divide each coordinate's step by its gradient's running RMS,
# so flat and steep directions move at similar speeds (Nadam adds a Nesterov look-ahead to Adam's
# momentum).

# %%
def run(opt, steps):
    """``steps`` steps of ``opt`` from START: the path, the loss at each point, the final p."""
    p = np.array(START)
    g = np.zeros_like(p)
    path, losses = [p.copy()], [rosenbrock(p)]
    for _ in range(steps):
        rosenbrock_grad(p, g)
        opt.step([("p", p, g)])
        path.append(p.copy())
        losses.append(rosenbrock(p))
    return np.array(path), np.array(losses), p


def race(args, steps):
    """Each optimizer for ``steps`` steps; returns them, their runs and SGD's largest stable lr."""
    C.section(f"{steps} steps of each optimizer from {START}")
    C.say("""SGD's step is capped by the steep direction, so it crawls along the flat one; momentum
             accumulates the downhill component; Adam and Nadam scale each coordinate's step by its
             gradient's running RMS.""")
    x0, y0 = START
    h_xx = 2 - 400 * y0 + 1200 * x0 ** 2          # d2f/dx2 at the start
    C.show("d2f/dx2 at the start; SGD diverges for lr >", f"{h_xx:.0f}; {2 / h_xx:.2e}")
    configs = {"SGD lr=1e-3": SGD(lr=1e-3),
               "SGD+momentum 0.9 lr=2e-4": SGD(lr=2e-4, momentum=0.9),
               "Adam lr=0.02 beta1=0.9": Adam(lr=0.02, beta1=0.9),
               "Nadam lr=0.02": Nadam(lr=0.02)}
    results = {}
    for name, opt in configs.items():
        path, losses, final = run(opt, steps)
        results[name] = (path, losses)
        C.show(f"{name}: loss", f"{losses[-1]:.2e} at ({final[0]:.4f}, {final[1]:.4f})")

    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    xs, ys = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
    axes[0].contour(xs, ys, np.log10(rosenbrock((xs, ys)) + 1e-3), levels=20, cmap="Greys", linewidths=0.6)
    for name, (path, losses) in results.items():
        axes[0].plot(path[:, 0], path[:, 1], lw=1.2, label=name)
        axes[1].semilogy(losses, label=name)
    axes[0].plot(*START, "ko")
    axes[0].plot(1, 1, "r*", ms=12)
    axes[0].set_title("trajectories on log10 f (start o, minimum *)")
    axes[0].set_xlim(-2, 2)
    axes[0].set_ylim(-1, 3)
    axes[1].set_title("loss f(p)")
    axes[1].set_xlabel("step")
    axes[1].legend(fontsize=8)
    C.save_figure(fig, args.out / "optimizers_rosenbrock.png")
    return configs, results, 2 / h_xx


# %% [markdown]
# ### Nadam's spikes
#
# Nadam's curve has spikes.  Its Nesterov step weights the current gradient by `(1 - mu_t)`, where
# Keras' warm-up schedule `mu_t` starts near `beta1/2`, while Adam's `m` gives it only
# `1 - beta1 = 0.1`.  When the path bends and a large gradient arrives after a quiet stretch in
# which `v` (the gradient's RMS) has decayed, Nadam takes one large step up the valley wall, then
# recovers.

# %%
def nadam_spikes(configs, results) -> dict:
    """The weight Nadam gives the current gradient, its worst jump, and each optimizer's largest step."""
    nadam = configs["Nadam lr=0.02"]
    mu_t = nadam.beta1 * (1 - 0.5 * 0.96 ** (nadam.iterations * nadam.schedule_decay))
    losses = results["Nadam lr=0.02"][1]
    worst_jump = float(np.max(losses[1:] / np.minimum.accumulate(losses)[:-1]))
    C.say("""Nadam's curve has spikes: its Nesterov step weights the current gradient by (1 - mu_t),
             far more than Adam's 1 - beta1 = 0.1, so a large gradient after a quiet stretch
             throws it up the valley wall, and it recovers.""")
    largest = {name: float(np.abs(np.diff(path, axis=0)).max()) for name, (path, _) in results.items()}
    C.show("Nadam: weight of the current gradient, last step", 1 - mu_t, ".2f")
    C.show("Nadam: worst loss / best loss so far", worst_jump, ".3g")
    C.show("largest single step, Adam / Nadam (lr 0.02)",
           f"{largest['Adam lr=0.02 beta1=0.9']:.3f} / {largest['Nadam lr=0.02']:.3f}")
    return largest


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "04_optimizers",
                        "Lesson 4: optimizers -- SGD, momentum, Adam and Nadam on the same curved valley")
    C.title("Lesson 4: optimizers")
    steps = 1500 if args.quick else 3000
    in_place, first_step = calling_convention()
    configs, results, sgd_lr_limit = race(args, steps)
    largest = nadam_spikes(configs, results)
    finals = {name: float(losses[-1]) for name, (_, losses) in results.items()}
    return {"in_place": in_place, "adam_first_step": first_step.tolist(), "final_loss": finals,
            "steps": steps, "sgd_lr_limit": sgd_lr_limit,
            "largest_step": largest}


if __name__ == "__main__":
    main()
