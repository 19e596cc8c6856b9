"""Lesson 2: a dense layer by hand -- forward, backward and a gradient check.

    python lessons/02_dense_layer.py [--quick] [--out DIR]

tinygan has no autograd: every layer writes its own backward.  For Dense, y = x @ W + b, and
with G = dL/dy the chain rule gives dL/dx = G @ W.T, dL/dW = x.T @ G, dL/db = sum of G's rows.
We run tinygan.layers.Dense, compare it with those three lines, check it against central
differences (tinygan.gradcheck) and watch a deliberately wrong backward fail the check.
"""
from __future__ import annotations

import _common as C  # first: sets up the path (and BLAS threads) before NumPy loads
import numpy as np

from tinygan.gradcheck import check_layer_gradients, check_loss_gradient
from tinygan.layers import Dense
from tinygan.losses import mean_squared_error
from tinygan.optimizers import SGD


class DenseWithBiasBug(Dense):
    """A plausible mistake: averaging the bias gradient over the batch instead of summing it."""

    def backward(self, grad):
        dx = super().backward(grad)
        self.grads["b"][...] = grad.mean(axis=0)
        return dx


def main(argv=None) -> dict:
    args = C.parse_args(argv, __file__, __doc__.splitlines()[0])
    C.title("Lesson 2: a dense layer by hand")
    rng = np.random.default_rng(0)

    # -- forward -----------------------------------------------------------------------------------
    C.section("Forward: y = x @ W + b")
    layer = Dense(3, 2, rng=np.random.default_rng(1), name="fc")
    layer.params["b"][...] = [0.5, -0.5]                 # a non-zero bias, so we see it at work
    x = rng.standard_normal((4, 3)).astype(np.float32)  # 4 samples, 3 features
    y = layer.forward(x)
    W, b = layer.params["W"], layer.params["b"]
    C.show("x, W, b shapes", f"{x.shape}, {W.shape}, {b.shape}")
    C.show("y shape", str(y.shape))
    forward_diff = float(np.abs(y - (x @ W + b)).max())
    C.show("max |layer.forward(x) - (x @ W + b)|", forward_diff, ".1e")

    # -- backward ----------------------------------------------------------------------------------
    C.section("Backward: the chain rule, written out")
    C.say("""Take the loss L = mean((y - t)^2) from tinygan.losses.  It returns L and
             G = dL/dy; layer.backward(G) returns dL/dx and fills layer.grads.""")
    t = rng.standard_normal((4, 2)).astype(np.float32)
    loss, G = mean_squared_error(y, t)
    dx = layer.backward(G)
    C.show("loss", float(loss))
    backward_diff = max(float(np.abs(dx - G @ W.T).max()),
                        float(np.abs(layer.grads["W"] - x.T @ G).max()),
                        float(np.abs(layer.grads["b"] - G.sum(axis=0)).max()))
    C.show("dx, dW, db shapes", f"{dx.shape}, {layer.grads['W'].shape}, {layer.grads['b'].shape}")
    C.show("max difference from G@W.T, x.T@G, sum(G)", backward_diff, ".1e")

    # -- gradient check ----------------------------------------------------------------------------
    C.section("Gradient check: does backward agree with central differences?")
    C.say("""check_layer_gradients perturbs every entry of x, W and b by +-1e-5 and measures the
             scalar L = sum(y * r) for a fixed random r, in float64 (lesson 1 shows why).
             A correct backward agrees to ~1e-10; the library's tolerance is 1e-6.""")
    layer64 = Dense(3, 2, rng=np.random.default_rng(1)).astype(np.float64)
    layer64.params["b"][...] = [0.5, -0.5]
    x64 = x.astype(np.float64)
    errors = check_layer_gradients(layer64, x64)
    for k, e in errors.items():
        C.show(f"relative error of d/d{k}", e, ".1e")
    loss_error = check_loss_gradient(mean_squared_error, y.astype(np.float64), t.astype(np.float64))
    C.show("relative error of the MSE loss gradient", loss_error, ".1e")

    C.say("""Now a backward with a bug: the bias gradient averaged over the batch instead of
             summed (the loss already divides by n; dividing twice is a classic slip).""")
    buggy = DenseWithBiasBug(3, 2, rng=np.random.default_rng(1)).astype(np.float64)
    buggy_errors = check_layer_gradients(buggy, x64)
    for k, e in buggy_errors.items():
        C.show(f"buggy layer: relative error of d/d{k}", e, ".1e")
    C.say("The check points at exactly the wrong parameter: 'b' fails, 'x' and 'W' still pass.")

    # -- learning ----------------------------------------------------------------------------------
    C.section("Learning: forward, backward, optimizer step")
    C.say("""Fit the layer to a linear map t = x @ W_true + b_true with plain SGD.  The optimizer
             takes (key, param, grad) triples and updates the parameters in place.""")
    W_true = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]], np.float32)
    b_true = np.array([0.3, -0.7], np.float32)
    model = Dense(3, 2, rng=np.random.default_rng(3), name="fit")
    opt = SGD(lr=0.1)
    params = [(f"fit.{k}", p, model.grads[k]) for k, p in model.params.items()]
    steps = 60 if args.quick else 300
    losses = []
    for step in range(steps):
        xb = rng.standard_normal((32, 3)).astype(np.float32)
        loss, G = mean_squared_error(model.forward(xb), xb @ W_true + b_true)
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

    return {"forward_max_diff": forward_diff, "backward_max_diff": backward_diff,
            "gradcheck": errors, "loss_gradcheck": loss_error, "buggy_gradcheck": buggy_errors,
            "first_loss": losses[0], "final_loss": losses[-1], "W_error": w_err}


if __name__ == "__main__":
    main()
