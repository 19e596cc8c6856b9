"""Lesson 5: convolution as im2col + one matrix product, checked against loops.

    python lessons/05_convolution_im2col.py [--quick] [--out DIR]

A convolution slides a (C, kh, kw) window over the image and takes a dot product with each
filter at each position.  Written as loops that is six nested for's.  tinygan's Conv2D instead
copies every window into one row of a matrix (im2col) and does a single matrix product, which
NumPy and CuPy hand to BLAS.  Same numbers, a fraction of the time.
"""
from __future__ import annotations

import _common as C  # first: sets up the path (and BLAS threads) before NumPy loads
import numpy as np

from tinygan.gradcheck import check_layer_gradients
from tinygan.layers import Conv2D
from tinygan.layers.im2col import col2im, conv_output_size, im2col, pad_images


def conv_by_loops(x, W, b, stride, pad):
    """The definition: y[n, o, i, j] = b[o] + sum_{c,u,v} W[o, c, u, v] * xpad[n, c, i*s + u, j*s + v]."""
    n, c, h, w = x.shape
    co, _, kh, kw = W.shape
    ho, wo = conv_output_size(h, kh, stride, pad), conv_output_size(w, kw, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    y = np.zeros((n, co, ho, wo), dtype=x.dtype)
    for s in range(n):
        for o in range(co):
            for i in range(ho):
                for j in range(wo):
                    window = xp[s, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    y[s, o, i, j] = np.sum(window * W[o]) + b[o]   # the sum runs over c, u, v
    return y


def main(argv=None) -> dict:
    args = C.parse_args(argv, __file__, __doc__.splitlines()[0])
    C.title("Lesson 5: convolution as im2col + matrix product")
    rng = np.random.default_rng(0)

    # -- what im2col builds ----------------------------------------------------------------------
    C.section("im2col: one row per window")
    x = rng.standard_normal((2, 3, 7, 7))
    k, s, p = 3, 2, 1
    cols, (ho, wo) = im2col(x, k, k, s, p)
    C.show("x (N, C, H, W)", str(x.shape))
    C.show(f"kernel {k}x{k}, stride {s}, padding {p} -> output", f"{ho}x{wo}")
    C.show("cols (N*Ho*Wo, C*kh*kw)", str(cols.shape))
    n_, i_, j_ = 1, 2, 3
    row = (n_ * ho + i_) * wo + j_
    window = pad_images(x, p)[n_, :, i_ * s:i_ * s + k, j_ * s:j_ * s + k]
    C.show(f"row {row} == padded window (n={n_}, i={i_}, j={j_})?", bool(np.array_equal(cols[row], window.ravel())))
    C.show("duplication: cols.size / x.size", cols.size / x.size, ".2f")

    # -- Conv2D vs loops ---------------------------------------------------------------------------
    C.section("Conv2D.forward vs the six loops")
    conv = Conv2D(3, 4, kernel_size=k, stride=s, padding=p, init="he", rng=np.random.default_rng(1)).astype(np.float64)
    conv.params["b"][...] = rng.standard_normal(4)
    y = conv.forward(x)
    y_loops = conv_by_loops(x, conv.params["W"], conv.params["b"], s, p)
    W2 = conv.params["W"].reshape(4, -1)
    y_matmul = (cols @ W2.T + conv.params["b"]).reshape(2, ho, wo, 4).transpose(0, 3, 1, 2)
    loop_diff = float(np.abs(y - y_loops).max())
    C.show("output shape", str(y.shape))
    C.show("max |Conv2D - loops|", loop_diff, ".1e")
    C.show("max |Conv2D - (cols @ W.T + b) reshaped|", float(np.abs(y - y_matmul).max()), ".1e")

    # -- backward ------------------------------------------------------------------------------------
    C.section("Backward: col2im is im2col's adjoint")
    C.say("""dL/dW = dY^T @ cols (one more matrix product), and dL/dx sends each row of window
             gradients back to the pixels it came from, summing where windows overlap: col2im.
             Being the adjoint means <im2col(x), c> = <x, col2im(c)> for every x and c.""")
    c_rand = rng.standard_normal(cols.shape)
    lhs = float(np.sum(cols * c_rand))
    rhs = float(np.sum(x * col2im(c_rand, x.shape, k, k, s, p)))
    adjoint_err = abs(lhs - rhs) / abs(lhs)
    C.show("<im2col(x), c>", lhs, ".10f")
    C.show("<x, col2im(c)>", rhs, ".10f")
    grad_errors = check_layer_gradients(conv, rng.standard_normal((2, 3, 5, 5)))
    for key, e in grad_errors.items():
        C.show(f"gradient check d/d{key}", e, ".1e")

    # -- speed ---------------------------------------------------------------------------------------
    C.section("Speed")
    shape = (2, 3, 16, 16) if args.quick else (8, 3, 32, 32)
    xb = rng.standard_normal(shape).astype(np.float32)
    big = Conv2D(3, 16, 4, 2, 1, rng=np.random.default_rng(2))
    with C.Stopwatch() as t_loops:
        yl = conv_by_loops(xb, big.params["W"], big.params["b"], 2, 1)
    with C.Stopwatch() as t_im2col:
        repeats = 20
        for _ in range(repeats):
            yi = big.forward(xb)
    t_fast = t_im2col.seconds / repeats
    big_err = float(np.abs(yi - yl).max() / np.abs(yl).max())   # float32 rounding, ~1e-7
    C.show(f"input {shape}, 16 filters 4x4 stride 2", f"output {yi.shape}")
    C.show("loops (s)", t_loops.seconds, ".4f")
    C.show("im2col + matmul (s)", t_fast, ".5f")
    C.show("speed-up", t_loops.seconds / t_fast, ".0f")
    C.show("max difference / max |y|  (float32)", big_err, ".1e")

    # -- a picture of im2col ---------------------------------------------------------------------
    plt = C.pyplot()
    img = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    small_cols, _ = im2col(img, 3, 3, 1, 0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    axes[0].imshow(img[0, 0], cmap="viridis")
    for (r, c_), v in np.ndenumerate(img[0, 0]):
        axes[0].text(c_, r, int(v), ha="center", va="center", color="w")
    axes[0].add_patch(plt.Rectangle((0.5, -0.5), 3, 3, fill=False, ec="red", lw=2))
    axes[0].set_title("5x5 image; the red 3x3 window is output (0, 1)")
    axes[1].imshow(small_cols, cmap="viridis")
    for (r, c_), v in np.ndenumerate(small_cols):
        axes[1].text(c_, r, int(v), ha="center", va="center", color="w", fontsize=8)
    axes[1].add_patch(plt.Rectangle((-0.5, 0.5), 9, 1, fill=False, ec="red", lw=2))
    axes[1].set_title("im2col: 9 windows x 9 pixels; conv = cols @ W.T")
    axes[1].set_xlabel("(c, u, v) inside the window")
    axes[1].set_ylabel("window (i, j)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    C.save_figure(fig, args.out / "im2col.png")

    return {"loop_max_diff": loop_diff, "gradcheck": grad_errors, "adjoint_rel_err": adjoint_err,
            "speedup": t_loops.seconds / t_fast, "large_rel_diff": big_err,
            "row_is_window": bool(np.array_equal(cols[row], window.ravel()))}


if __name__ == "__main__":
    main()
