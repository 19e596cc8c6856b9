# %% [markdown]
# # Lesson 6: transposed convolution -- the adjoint of convolution, and its checkerboards
#
#     python lessons/06_transposed_convolution.py [--quick] [--out DIR]
#
# A generator must go from a small tensor up to an image.  The DCGAN does it with transposed
# convolutions: the linear map whose matrix is the transpose of a convolution's.  So a stride-2
# convolution halves the size and the transposed one, with the same weights, doubles it -- and
# computes exactly what the convolution's backward pass does to a gradient.  Each input pixel
# "stamps" a copy of the kernel onto the output; where the stamps overlap unevenly a constant
# input comes out as a checkerboard (Odena et al., "Deconvolution and checkerboard artifacts").
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
from tinygan.layers import Conv2D, Conv2DTranspose

# %% [markdown]
# ## 1. `Conv2DTranspose` is the adjoint (transpose) of `Conv2D`
#
# A convolution is linear, `y = A x` for some big sparse matrix `A`.  Its transpose `A^T` is
# defined by `<A x, y> = <x, A^T y>` for all `x`, `y`.  We give `Conv2D(2 -> 3)` and
# `Conv2DTranspose(3 -> 2)` the same 4x4 stride-2 kernel array and check it, then compare the
# transposed layer's forward pass with the convolution's backward pass, and gradient-check it.

# %%
def the_adjoint():
    """<conv(x), y> vs <x, convT(y)>, conv.backward vs convT.forward, and convT's gradient check."""
    C.section("Conv2DTranspose is the adjoint (transpose) of Conv2D")
    C.say("""<A x, y> = <x, A^T y> for all x, y defines the transpose.  Conv2D(2 -> 3) and
             Conv2DTranspose(3 -> 2) with the same 4x4 stride-2 kernel array:""")
    rng = np.random.default_rng(0)
    conv = Conv2D(2, 3, 4, stride=2, padding=1, use_bias=False, rng=np.random.default_rng(1))
    conv.astype(np.float64)
    convT = Conv2DTranspose(3, 2, 4, stride=2, padding=1, use_bias=False).astype(np.float64)
    convT.params["W"][...] = conv.params["W"]     # both are stored (3, 2, 4, 4), PyTorch's layout
    x = rng.standard_normal((2, 2, 8, 8))
    ax = conv.forward(x)
    y = rng.standard_normal(ax.shape)
    aty = convT.forward(y)
    lhs, rhs = float(np.sum(ax * y)), float(np.sum(x * aty))
    adjoint_err = abs(lhs - rhs) / abs(lhs)
    C.show("x -> Conv2D -> shape", f"{x.shape} -> {ax.shape}")
    C.show("y -> Conv2DTranspose -> shape", f"{y.shape} -> {aty.shape}")
    C.show("<conv(x), y>", lhs, ".12f")
    C.show("<x, convT(y)>", rhs, ".12f")
    C.show("relative difference", adjoint_err, ".1e")
    conv.forward(x)
    backward_diff = float(np.abs(conv.backward(y) - aty).max())
    C.show("max |conv.backward(y) - convT(y)|", backward_diff, ".1e")
    C.say("""So Conv2DTranspose.forward is Conv2D.backward (a col2im scatter) and its backward is
             Conv2D.forward (an im2col gather).  Gradient check of the transposed layer:""")
    convT_b = Conv2DTranspose(3, 2, 4, 2, 1, rng=np.random.default_rng(2)).astype(np.float64)
    grad_errors = check_layer_gradients(convT_b, rng.standard_normal((2, 3, 3, 3)))
    for key, e in grad_errors.items():
        C.show(f"gradient check d/d{key}", e, ".1e")
    return adjoint_err, backward_diff, grad_errors


# %% [markdown]
# ## 2. Checkerboard artifacts: kernel 3 vs kernel 4 at stride 2
#
# Feed a constant 8x8 image through a stride-2 transposed convolution whose kernel is all ones:
# each output pixel counts the stamps that cover it.  With kernel 3 the stamps (3 wide, 2 apart)
# overlap on every other row and column: counts 1, 2 and 4 in a checkerboard, before any
# learning.  With kernel 4 (divisible by the stride) every interior pixel is covered exactly
# 2 x 2 times.  That is why the DCGAN uses 4x4 kernels at stride 2.

# %%
SIZE = 8     # the constant input image is SIZE x SIZE


def overlap_pattern(kernel, stride, padding, output_padding, size):
    """Conv2DTranspose of a constant image with an all-ones kernel: how many stamps hit each pixel."""
    layer = Conv2DTranspose(1, 1, kernel, stride, padding, output_padding, use_bias=False).astype(np.float64)
    layer.params["W"][...] = 1.0
    return layer.forward(np.ones((1, 1, size, size)))[0, 0]


def stamp_counts():
    """The stamp counts with kernels 3 and 4, and how uneven they are inside the border."""
    C.section("Checkerboard artifacts: kernel 3 vs kernel 4 at stride 2")
    C.say("""A constant 8x8 image through a stride-2 transposed convolution with an all-ones
             kernel: each output pixel counts the stamps that cover it.  Kernel 3 overlaps
             unevenly (a checkerboard of 1, 2 and 4); kernel 4, divisible by the stride, covers
             every interior pixel 2 x 2 times.""")
    k3 = overlap_pattern(3, 2, 1, 1, SIZE)    # output_padding 1: 8 -> 16, like the k4 layer
    k4 = overlap_pattern(4, 2, 1, 0, SIZE)
    interior = (slice(1, -1), slice(1, -1))   # the outermost ring sees the zero padding
    unevenness = {"k3": float(k3[interior].max() / k3[interior].min()),
                  "k4": float(k4[interior].max() / k4[interior].min())}
    C.show("output size, kernel 3 / kernel 4", f"{k3.shape} / {k4.shape}")
    print("  kernel 3, top-left 6x6 of the counts:")
    print("\n".join("    " + " ".join(f"{v:2.0f}" for v in r) for r in k3[:6, :6]))
    print("  kernel 4, top-left 6x6 of the counts:")
    print("\n".join("    " + " ".join(f"{v:2.0f}" for v in r) for r in k4[:6, :6]))
    C.show("interior max/min, kernel 3", unevenness["k3"])
    C.show("interior max/min, kernel 4", unevenness["k4"])
    return k3, k4, {"interior_unevenness": unevenness,
                    "k3_values": sorted(set(k3[interior].ravel().tolist())),
                    "k4_values": sorted(set(k4[interior].ravel().tolist()))}


# %% [markdown]
# ### Random kernels, two layers
#
# Random positive kernels show the same on average: over many of them the output of a constant
# input stays uneven with kernel 3 and flat with kernel 4.  Stacking layers (as a generator does)
# multiplies the patterns.  The figure shows the counts of one layer and the mean output of two.

# %%
def random_kernels(args, k3, k4) -> dict:
    """Two stacked layers with random positive kernels, averaged: std/mean of the output."""
    C.say("""Random positive kernels show the same on average, and stacking two layers (as a
             generator does) multiplies the patterns:""")
    n_kernels = 50 if args.quick else 400
    stack_k3 = np.zeros((4 * SIZE, 4 * SIZE))
    stack_k4 = np.zeros((4 * SIZE, 4 * SIZE))
    for i in range(n_kernels):
        r = np.random.default_rng(100 + i)
        for kernel, op, acc in ((3, 1, stack_k3), (4, 0, stack_k4)):
            out = np.ones((1, 1, SIZE, SIZE))
            for _ in range(2):                        # two upsampling layers: 8 -> 16 -> 32
                layer = Conv2DTranspose(1, 1, kernel, 2, 1, op, use_bias=False).astype(np.float64)
                layer.params["W"][...] = np.abs(r.standard_normal(layer.params["W"].shape))
                out = layer.forward(out)
            acc += out[0, 0] / n_kernels
    inner = (slice(4, -4), slice(4, -4))
    stack_cv = {"k3": float(stack_k3[inner].std() / stack_k3[inner].mean()),
                "k4": float(stack_k4[inner].std() / stack_k4[inner].mean())}
    C.show("random positive kernels averaged", n_kernels)
    C.show("2 layers, kernel 3: std/mean of the output", stack_cv["k3"], ".3f")
    C.show("2 layers, kernel 4: std/mean of the output", stack_cv["k4"], ".3f")

    plt = C.pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(8.5, 8))
    panels = [(k3, "1 layer, kernel 3, stride 2: stamp counts"),
              (k4, "1 layer, kernel 4, stride 2: stamp counts"),
              (stack_k3, "2 layers, kernel 3: mean output"), (stack_k4, "2 layers, kernel 4: mean output")]
    for ax_, (img, name) in zip(axes.ravel(), panels):
        im = ax_.imshow(img, cmap="magma", interpolation="nearest")
        ax_.set_title(name, fontsize=10)
        ax_.set_xticks([])
        ax_.set_yticks([])
        fig.colorbar(im, ax=ax_, fraction=0.046)
    fig.suptitle("Transposed convolution of a constant image")
    C.save_figure(fig, args.out / "checkerboard.png")
    return stack_cv


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "06_transposed_convolution", "Lesson 6: transposed convolution "
                        "-- the adjoint of convolution, and its checkerboards")
    C.title("Lesson 6: transposed convolution")
    adjoint_err, backward_diff, grad_errors = the_adjoint()
    k3, k4, counts = stamp_counts()
    stack_cv = random_kernels(args, k3, k4)
    return {"adjoint_rel_err": adjoint_err, "backward_equals_transpose": backward_diff,
            "gradcheck": grad_errors, "interior_unevenness": counts["interior_unevenness"],
            "stacked_cv": stack_cv, "k3_values": counts["k3_values"], "k4_values": counts["k4_values"]}


if __name__ == "__main__":
    main()
