# %% [markdown]
# # Lesson 5: convolution as im2col + one matrix product -- which is all Conv2D is
#
#     python lessons/05_convolution_im2col.py [--quick] [--out DIR]
#
# A convolution slides a (C, kh, kw) window over the image and takes a dot product with each
# filter at each position.  Written as loops that is six nested for's (`tinygan.kernels.reference`
# has them).  im2col instead copies every window into one column of a matrix, so the whole
# convolution is a single matrix product, which NumPy and CuPy hand to BLAS.  This lesson builds
# the convolution from im2col by hand, forward and backward, and checks that it gives the loops'
# numbers and exactly what tinygan's `Conv2D` gives: the layer *is* these few lines.
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
from tinygan.kernels.im2col import col2im, im2col, pad_images
from tinygan.kernels.reference import conv2d_loops
from tinygan.layers import Conv2D

# %% [markdown]
# ## 1. im2col: one column per window
#
# A batch of 2 images, 3 channels, 7x7, and a 3x3 kernel at stride 2 with padding 1: a 4x4
# output.  `im2col` returns a `(C*kh*kw, N*Ho*Wo)` matrix whose column `(n*Ho + i)*Wo + j` is the
# padded window under output pixel `(i, j)` of image `n`.  Overlapping windows are copied more
# than once.

# %%
k, s, p = 3, 2, 1                      # the kernel size, stride and padding of parts 1 to 3
ho = wo = (7 + 2 * p - k) // s + 1     # the output size for a 7x7 input


def im2col_builds(x):
    """im2col of x; checks one column against the window it should hold."""
    C.section("im2col: one column per window")
    cols = im2col(x, k, k, s, p)
    C.show("x (N, C, H, W)", str(x.shape))
    C.show(f"kernel {k}x{k}, stride {s}, padding {p} -> output", f"{ho}x{wo}")
    C.show("cols (C*kh*kw, N*Ho*Wo)", str(cols.shape))
    n_, i_, j_ = 1, 2, 3
    column = (n_ * ho + i_) * wo + j_
    window = pad_images(x, p)[n_, :, i_ * s:i_ * s + k, j_ * s:j_ * s + k]
    column_is_window = bool(np.array_equal(cols[:, column], window.ravel()))
    C.show(f"column {column} == padded window (n={n_}, i={i_}, j={j_})?", column_is_window)
    C.show("duplication: cols.size / x.size", cols.size / x.size, ".2f")
    return cols, column_is_window


# %% [markdown]
# ## 2. Forward: `y = W2 @ cols + b`
#
# With the filters as the rows of `W2 = W.reshape(C_out, C*kh*kw)`, one product takes every
# filter's dot product with every window.  Its `(C_out, N*Ho*Wo)` result has one row per output
# channel; reshaping and swapping two axes gives the NCHW image.  We compare it with the six
# loops (`conv2d_loops`) and with `Conv2D.forward`.

# %%
def forward(rng, x, cols):
    """The convolution by hand; its distance from the loops and from Conv2D.forward."""
    C.section("Forward: y = W2 @ cols + b")
    C.say("""One product W2 @ cols takes every filter's dot product with every window; reshaping
             and swapping two axes gives the NCHW image.""")
    conv = Conv2D(3, 4, kernel_size=k, stride=s, padding=p, init="he", rng=np.random.default_rng(1),
                  name="conv").astype(np.float64)
    conv.params["b"][...] = rng.standard_normal(4)
    W, b = conv.params["W"], conv.params["b"]
    W2 = W.reshape(4, -1)
    y_by_hand = (W2 @ cols + b.reshape(-1, 1)).reshape(4, 2, ho, wo).transpose(1, 0, 2, 3)
    y_loops = conv2d_loops(x, W, b, s, p)
    y_layer = conv.forward(x)
    loop_diff = float(np.abs(y_by_hand - y_loops).max())
    layer_diff = float(np.abs(y_layer - y_by_hand).max())
    C.show("output shape", str(y_by_hand.shape))
    C.show("max |by hand - six loops|", loop_diff, ".1e")
    C.show("max |Conv2D.forward - by hand|", layer_diff, ".1e")
    C.say("""The loops sum the same 27 products per output in another order: float64 rounding,
             ~1e-16.  Conv2D.forward runs the very same operations: a difference of exactly 0.""")
    return conv, y_layer, loop_diff, layer_diff


# %% [markdown]
# ## 3. Backward: two more products and col2im
#
# Given `dY = dL/dy` as a `(C_out, N*Ho*Wo)` matrix, differentiating `y = W2 @ cols` gives
# `dW = dY @ cols^T` and `dcols = W2^T @ dY`.  Each column of `dcols` is the gradient of one
# window; `col2im` adds it back onto the pixels the window came from, summing where windows
# overlap.  That makes col2im the adjoint of im2col: `<im2col(x), c> = <x, col2im(c)>` for every
# `x` and `c`.  Finally a gradient check of the layer.

# %%
def backward(rng, conv, x, cols, y_layer):
    """The backward pass by hand vs Conv2D.backward, the adjoint identity, and a gradient check."""
    C.section("Backward: two more products and col2im")
    C.say("""dW = dY @ cols^T and dcols = W2^T @ dY; col2im adds each window's gradient back onto
             its pixels, which makes it the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>.""")
    W = conv.params["W"]
    W2 = W.reshape(4, -1)
    dy = rng.standard_normal(y_layer.shape)
    dY = dy.transpose(1, 0, 2, 3).reshape(4, -1)
    dW = (dY @ cols.T).reshape(W.shape)
    dx_by_hand = col2im(W2.T @ dY, x.shape, k, k, s, p)
    conv.zero_grad()
    dx_layer = conv.backward(dy)
    backward_diff = max(float(np.abs(dx_layer - dx_by_hand).max()),
                        float(np.abs(conv.grads["W"] - dW).max()))
    C.show("max |Conv2D.backward - by hand| (dx and dW)", backward_diff, ".1e")
    c_rand = rng.standard_normal(cols.shape)
    lhs = float(np.sum(cols * c_rand))
    rhs = float(np.sum(x * col2im(c_rand, x.shape, k, k, s, p)))
    adjoint_err = abs(lhs - rhs) / abs(lhs)
    C.show("<im2col(x), c>", lhs, ".10f")
    C.show("<x, col2im(c)>", rhs, ".10f")
    grad_errors = check_layer_gradients(conv, rng.standard_normal((2, 3, 5, 5)))
    for key, e in grad_errors.items():
        C.show(f"gradient check d/d{key}", e, ".1e")
    return backward_diff, adjoint_err, grad_errors


# %% [markdown]
# ## 4. Speed
#
# The six loops against `Conv2D.forward` (im2col + one matrix product) on a larger batch, 16
# filters 4x4 at stride 2, in float32.

# %%
def speed(args, rng):
    """Seconds of the loops and of Conv2D.forward; their speed ratio and relative difference."""
    C.section("Speed")
    shape = (2, 3, 16, 16) if args.quick else (8, 3, 32, 32)
    xb = rng.standard_normal(shape).astype(np.float32)
    big = Conv2D(3, 16, 4, 2, 1, rng=np.random.default_rng(2))
    with C.Stopwatch() as t_loops:
        yl = conv2d_loops(xb, big.params["W"], big.params["b"], 2, 1)
    repeats = 20
    with C.Stopwatch() as t_im2col:
        for _ in range(repeats):
            yi = big.forward(xb)
    t_fast = t_im2col.seconds / repeats
    big_err = float(np.abs(yi - yl).max() / np.abs(yl).max())   # float32 rounding, ~1e-7
    C.show(f"input {shape}, 16 filters 4x4 stride 2", f"output {yi.shape}")
    C.show("loops (s)", t_loops.seconds, ".4f")
    C.show("im2col + matmul (s)", t_fast, ".5f")
    C.show("speed-up", t_loops.seconds / t_fast, ".0f")
    C.show("max difference / max |y|  (float32)", big_err, ".1e")
    C.say("""Lesson 13 shows how tinygan.kernels makes this faster still on a CPU, with the same
             numbers.""")
    return t_loops.seconds / t_fast, big_err


# %% [markdown]
# ## 5. A picture of im2col
#
# A 5x5 image with pixel values 0 to 24 and its im2col matrix for a 3x3 kernel at stride 1: each
# column is one window (the red one is output pixel (0, 1)).

# %%
def picture(args):
    plt = C.pyplot()
    img = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    small_cols = im2col(img, 3, 3, 1, 0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    axes[0].imshow(img[0, 0], cmap="viridis")
    for (r, c_), v in np.ndenumerate(img[0, 0]):
        axes[0].text(c_, r, int(v), ha="center", va="center", color="w")
    axes[0].add_patch(plt.Rectangle((0.5, -0.5), 3, 3, fill=False, ec="red", lw=2))
    axes[0].set_title("5x5 image; the red 3x3 window is output (0, 1)")
    axes[1].imshow(small_cols, cmap="viridis")
    for (r, c_), v in np.ndenumerate(small_cols):
        axes[1].text(c_, r, int(v), ha="center", va="center", color="w", fontsize=8)
    axes[1].add_patch(plt.Rectangle((0.5, -0.5), 1, 9, fill=False, ec="red", lw=2))
    axes[1].set_title("im2col: 9 pixels x 9 windows; conv = W2 @ cols")
    axes[1].set_xlabel("window (i, j)")
    axes[1].set_ylabel("(c, u, v) inside the window")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    C.save_figure(fig, args.out / "im2col.png")


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "05_convolution_im2col", "Lesson 5: convolution as im2col "
                        "+ one matrix product -- which is all Conv2D is")
    C.title("Lesson 5: convolution as im2col + matrix product")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 7))
    cols, column_is_window = im2col_builds(x)
    conv, y_layer, loop_diff, layer_diff = forward(rng, x, cols)
    backward_diff, adjoint_err, grad_errors = backward(rng, conv, x, cols, y_layer)
    speedup, big_err = speed(args, rng)
    picture(args)
    return {"loop_max_diff": loop_diff, "layer_max_diff": layer_diff, "backward_max_diff": backward_diff,
            "gradcheck": grad_errors, "adjoint_rel_err": adjoint_err,
            "speedup": speedup, "large_rel_diff": big_err,
            "column_is_window": column_is_window}


if __name__ == "__main__":
    main()
