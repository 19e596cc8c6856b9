# %% [markdown]
# # Lesson 2: a dense layer by hand -- forward, backward and a gradient check
#
#     python lessons/02_dense_layer.py [--quick] [--out DIR]
#
# tinygan has no autograd: every layer writes its own backward.  For `Dense`, `y = x @ W + b`,
# and with `G = dL/dy` the chain rule gives
#
#     dL/dx = G @ W.T        dL/dW = x.T @ G        dL/db = sum of G's rows
#
# We run `tinygan.layers.Dense`, compare it with those three lines, check it against central
# differences (`tinygan.gradcheck`) and watch a deliberately wrong backward fail the check.
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

from tinygan.gradcheck import check_layer_gradients, check_loss_gradient
from tinygan.layers import Dense
from tinygan.losses import mean_squared_error
from tinygan.optimizers import SGD

# %% [markdown]
# ## 1. Forward: `y = x @ W + b`
#
# A `Dense(3, 2)` layer holds `W` (3 x 2) and `b` (2,) in `layer.params`.  Its forward pass on a
# batch of 4 samples with 3 features each is one matrix product and a broadcast addition.

# %%
def forward_pass(x):
    """A Dense(3, 2) layer with a non-zero bias, its output on x, and how far that is from x @ W + b."""
    C.section("Forward: y = x @ W + b")
    layer = Dense(3, 2, rng=np.random.default_rng(1), name="fc")
    layer.params["b"][...] = [0.5, -0.5]                 # a non-zero bias, so we see it at work
    y = layer.forward(x)
    W, b = layer.params["W"], layer.params["b"]
    C.show("x, W, b shapes", f"{x.shape}, {W.shape}, {b.shape}")
    C.show("y shape", str(y.shape))
    forward_diff = float(np.abs(y - (x @ W + b)).max())
    C.show("max |layer.forward(x) - (x @ W + b)|", forward_diff, ".1e")
    return layer, y, forward_diff


# %% [markdown]
# ## 2. Backward: the chain rule, written out
#
# Take the loss `L = mean((y - t)^2)` from `tinygan.losses`.  It returns `L` and `G = dL/dy`;
# `layer.backward(G)` returns `dL/dx` and adds `dL/dW`, `dL/db` into `layer.grads` (they start at
# zero; `layer.zero_grad()` sets them back to zero).  We compare them with the three lines above.

# %%
def backward_pass(layer, x, y, t) -> float:
    C.section("Backward: the chain rule, written out")
    C.say("""The loss returns L and G = dL/dy; layer.backward(G) returns dL/dx and adds dL/dW,
             dL/db into layer.grads.""")
    W = layer.params["W"]
    loss, G = mean_squared_error(y, t)
    dx = layer.backward(G)
    C.show("loss", float(loss))
    backward_diff = max(float(np.abs(dx - G @ W.T).max()),
                        float(np.abs(layer.grads["W"] - x.T @ G).max()),
                        float(np.abs(layer.grads["b"] - G.sum(axis=0)).max()))
    C.show("dx, dW, db shapes", f"{dx.shape}, {layer.grads['W'].shape}, {layer.grads['b'].shape}")
    C.show("max difference from G@W.T, x.T@G, sum(G)", backward_diff, ".1e")
    return backward_diff


# %% [markdown]
# ## 3. Gradient check: does backward agree with central differences?
#
# `check_layer_gradients` perturbs every entry of `x`, `W` and `b` by +-1e-5 and measures the
# scalar `L = sum(y * r)` for a fixed random `r`, in float64 (lesson 1 shows why).  A correct
# backward agrees to ~1e-10; the library's tolerance is 1e-6.  `check_loss_gradient` does the
# same for a loss function's gradient.

# %%
def gradient_check(x, y, t):
    """Relative errors of the float64 Dense layer's gradients and of the MSE loss's gradient."""
    C.section("Gradient check: does backward agree with central differences?")
    C.say("""check_layer_gradients compares backward with central differences (h = 1e-5, float64).
             A correct backward agrees to ~1e-10; the library's tolerance is 1e-6.""")
    layer64 = Dense(3, 2, rng=np.random.default_rng(1)).astype(np.float64)
    layer64.params["b"][...] = [0.5, -0.5]
    errors = check_layer_gradients(layer64, x.astype(np.float64))
    for k, e in errors.items():
        C.show(f"relative error of d/d{k}", e, ".1e")
    loss_error = check_loss_gradient(mean_squared_error, y.astype(np.float64), t.astype(np.float64))
    C.show("relative error of the MSE loss gradient", loss_error, ".1e")
    return errors, loss_error


# %% [markdown]
# ### A backward with a bug
#
# A plausible mistake: the bias gradient averaged over the batch instead of summed (the loss
# already divides by n; dividing twice is a classic slip).  Does the check notice, and where?

# %%
class DenseWithBiasBug(Dense):
    """A plausible mistake: averaging the bias gradient over the batch instead of summing it."""

    def backward(self, grad):
        x, = self.saved_for_backward()
        self.grads["W"] += x.T @ grad
        self.grads["b"] += grad.mean(axis=0)             # the bug: should be grad.sum(axis=0)
        return grad @ self.params["W"].T


def gradient_check_of_a_bug(x) -> dict:
    C.say("""Now a backward with a bug: the bias gradient averaged over the batch instead of
             summed (the loss already divides by n; dividing twice is a classic slip).""")
    buggy = DenseWithBiasBug(3, 2, rng=np.random.default_rng(1)).astype(np.float64)
    buggy_errors = check_layer_gradients(buggy, x.astype(np.float64))
    for k, e in buggy_errors.items():
        C.show(f"buggy layer: relative error of d/d{k}", e, ".1e")
    C.say("The check points at exactly the wrong parameter: 'b' fails, 'x' and 'W' still pass.")
    return buggy_errors


# %% [markdown]
# ## 4. Learning: forward, backward, optimizer step
#
# Fit a fresh layer to a linear map `t = x @ W_true + b_true` with plain SGD.  The optimizer takes
# `(key, param, grad)` triples and updates the parameters in place.  Every step starts with
# `model.zero_grad()`, because `backward` adds into the gradients.

# %%
def learning(args, rng):
    """SGD on fresh batches from rng; returns the loss at every step and the largest error in W."""
    C.section("Learning: forward, backward, optimizer step")
    C.say("Fit the layer to a linear map t = x @ W_true + b_true with plain SGD.")
    W_true = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]], np.float32)
    b_true = np.array([0.3, -0.7], np.float32)
    model = Dense(3, 2, rng=np.random.default_rng(3), name="fit")
    opt = SGD(lr=0.1)
    params = [(f"fit.{k}", p, model.grads[k]) for k, p in model.params.items()]
    steps = 60 if args.quick else 300
    losses = []
    for _ in range(steps):
        xb = rng.standard_normal((32, 3)).astype(np.float32)
        loss, G = mean_squared_error(model.forward(xb), xb @ W_true + b_true)
        model.zero_grad()                 # backward adds into grads: start each step from zero
        model.backward(G)
        opt.step(params)
        losses.append(float(loss))
    w_err = float(np.abs(model.params["W"] - W_true).max())
    C.show("loss at step 1 / last step", f"{losses[0]:.3g} / {losses[-1]:.2e}")
    C.show("max |W - W_true| after training", w_err, ".2e")

    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(np.arange(1, steps + 1), losses)
    ax.set_xlabel("SGD step")
    ax.set_ylabel("MSE loss")
    ax.set_title("Dense(3, 2) learning a linear map")
    C.save_figure(fig, args.out / "dense_fit_loss.png")
    return losses, w_err


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` draws the data and runs the parts in order; it returns the numbers they computed
# (the tests check them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "02_dense_layer",
                        "Lesson 2: a dense layer by hand -- forward, backward and a gradient check")
    C.title("Lesson 2: a dense layer by hand")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3)).astype(np.float32)  # 4 samples, 3 features
    layer, y, forward_diff = forward_pass(x)
    t = rng.standard_normal((4, 2)).astype(np.float32)  # the targets of the loss
    backward_diff = backward_pass(layer, x, y, t)
    errors, loss_error = gradient_check(x, y, t)
    buggy_errors = gradient_check_of_a_bug(x)
    losses, w_err = learning(args, rng)
    return {"forward_max_diff": forward_diff, "backward_max_diff": backward_diff,
            "gradcheck": errors, "loss_gradcheck": loss_error, "buggy_gradcheck": buggy_errors,
            "first_loss": losses[0], "final_loss": losses[-1], "W_error": w_err}


if __name__ == "__main__":
    main()
