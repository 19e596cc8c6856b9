# %% [markdown]
# # Lesson 1: arrays and backends -- NumPy vs CuPy, NCHW images, float32 vs float64
#
#     python lessons/01_arrays_and_backends.py [--quick] [--out DIR]
#
# tinygan runs the same code on NumPy (CPU) and CuPy (GPU).  This lesson shows which one runs
# here, how a batch of images is laid out (NCHW), and why training uses float32 while gradient
# checks use float64: a central difference in float32 cannot resolve the change it measures.
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

from tinygan.backend import BackendUnavailableError, cupy_available, get_array_module, get_backend, to_numpy
from tinygan.gradcheck import check_layer_gradients, numeric_gradient, relative_error
from tinygan.images import to_uint8
from tinygan.layers import Dense

# %% [markdown]
# ## 1. NumPy or CuPy?
#
# A `Backend` bundles an array module (`numpy` or `cupy`) with the default dtype.  `"auto"` picks
# CuPy when it imports and sees a GPU, otherwise NumPy.  Code that only transforms arrays never
# asks; it looks the module up from its input with `get_array_module`.

# %%
def which_backend() -> dict:
    C.section("NumPy or CuPy?")
    C.say("get_backend('auto') picks CuPy when it imports and sees a GPU, otherwise NumPy.")
    be = get_backend("auto")
    C.show("get_backend('auto')", repr(be))
    C.show("cupy_available()", cupy_available())
    try:
        get_backend("cupy")
        cupy_message = "(CuPy works here)"
    except BackendUnavailableError as e:
        cupy_message = str(e)
    print(f"  get_backend('cupy') says: {cupy_message}")
    x = be.asarray(np.arange(6).reshape(2, 3))            # host array -> this backend, float32
    C.show("be.asarray(...) dtype, module", f"{x.dtype}, {get_array_module(x).__name__}")
    C.show("to_numpy(x) type", type(to_numpy(x)).__name__)
    return {"backend": be.name, "cupy_available": cupy_available()}


# %% [markdown]
# ## 2. Images are NCHW: (batch, channels, height, width)
#
# PIL and matplotlib hold one image as (H, W, C).  tinygan (like PyTorch and the cuDNN default)
# stacks images as (N, C, H, W): each colour channel is one contiguous H x W plane, which is what
# the convolution's im2col reads.  Moving to NCHW is a transpose, which NumPy does as a view (only
# the strides change); a copy makes each plane contiguous.

# %%
def nchw_layout() -> dict:
    C.section("Images are NCHW: (batch, channels, height, width)")
    C.say("""tinygan stacks images as (N, C, H, W): each colour channel is one contiguous H x W
             plane.  From (H, W, C) that is a transpose (a view), then a copy.""")
    hwc = np.random.default_rng(0).integers(0, 256, size=(4, 5, 3), dtype=np.uint8)   # one "photo"
    chw = hwc.transpose(2, 0, 1)                           # a view: no pixel moved yet
    C.show("one image as (H, W, C)", str(hwc.shape))
    C.show("transposed view (C, H, W), strides in bytes", f"{chw.shape}, {chw.strides}")
    C.show("  ... is it C-contiguous?", bool(chw.flags.c_contiguous))
    batch = np.ascontiguousarray(np.stack([chw, chw[:, :, ::-1]]), dtype=np.float32)
    batch = batch / 127.5 - 1                              # 2 images (one mirrored) in [-1, 1]
    C.show("batch as (N, C, H, W)", str(batch.shape))
    C.show("strides in bytes (N, C, H, W)", str(batch.strides))
    C.show("  ... C-contiguous: each plane is H*W floats", bool(batch.flags.c_contiguous))
    C.show("batch[0, 1] is the green plane, shape", str(batch[0, 1].shape))
    back = to_uint8(batch)                                 # the library's way back, for saving
    C.show("to_uint8(batch) -> (N, H, W, C)", str(back.shape))
    C.show("round trip recovers the pixels exactly", bool(np.array_equal(back[0], hwc)))
    return {"nchw_shape": tuple(batch.shape), "round_trip_exact": bool(np.array_equal(back[0], hwc))}


# %% [markdown]
# ## 3. float32 vs float64
#
# Training uses float32: half the memory and bandwidth, and GPUs are much faster at it.  A
# gradient check cannot: it divides the difference `f(x+h) - f(x-h)` by `2h`, and in float32 both
# `x+h` and `f` carry only ~7 significant digits.  The rounding error, about `eps/h`, swamps the
# answer unless `h` is large, and a large `h` brings truncation error ~`h^2`.  In float64 the two
# meet near 1e-10.  Below: `tinygan.gradcheck.numeric_gradient` on `d/dx sum(tanh(x))`, whose
# exact gradient is `1 - tanh(x)^2`, for steps `h` from 1e-9 to 0.1.

# %%
def central_difference_errors(dtype, steps, seed=0):
    """Relative error of tinygan's central difference for d/dx sum(tanh(x)) at each step h."""
    x = np.random.default_rng(seed).uniform(-2, 2, size=8).astype(dtype)
    exact = 1.0 - np.tanh(x.astype(np.float64)) ** 2
    errors = []
    for h in steps:
        num = numeric_gradient(lambda: np.tanh(x).sum(), x, h=h)   # f is computed in x's dtype
        errors.append(relative_error(num, exact))
    return np.array(errors)


def float32_vs_float64(args) -> dict:
    C.section("float32 vs float64")
    eps32, eps64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)
    C.show("machine epsilon float32", eps32, ".2e")
    C.show("machine epsilon float64", eps64, ".2e")
    C.show("float32: 1 + 1e-8 == 1 ?", bool(np.float32(1) + np.float32(1e-8) == np.float32(1)))
    C.show("a 64x3x64x64 batch in float32 / float64 (MB)",
           f"{64 * 3 * 64 * 64 * 4 / 2**20:.1f} / {64 * 3 * 64 * 64 * 8 / 2**20:.1f}")
    C.say("""Training uses float32, but a gradient check divides f(x+h) - f(x-h) by 2h, which
             float32 cannot resolve.  The central difference of d/dx sum(tanh(x)) against the exact
             1 - tanh(x)^2, by step h:""")
    steps = np.logspace(-9, -1, 9 if args.quick else 33)
    err32 = central_difference_errors(np.float32, steps)
    err64 = central_difference_errors(np.float64, steps)
    print(f"  {'h':>8}  {'float32 rel. error':>18}  {'float64 rel. error':>18}")
    for h, e32, e64 in zip(steps, err32, err64):
        if np.isclose(np.log10(h) % 2, 1) or np.isclose(np.log10(h) % 2, 0):  # every decade
            print(f"  {h:8.0e}  {e32:18.2e}  {e64:18.2e}")
    i5 = int(np.argmin(np.abs(steps - 1e-5)))
    C.say("""For small h the float32 difference f(x+h) - f(x-h) is a few units in the last place:
             the estimates come out quantised in steps of ulp/2h, some exactly 0 (error 1).""")
    C.show("best float32 error (at h)", f"{err32.min():.1e} (h={steps[err32.argmin()]:.0e})")
    C.show("best float64 error (at h)", f"{err64.min():.1e} (h={steps[err64.argmin()]:.0e})")

    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(steps, err32, "o-", label="float32")
    ax.loglog(steps, err64, "s-", label="float64")
    ax.axhline(1e-6, color="grey", ls=":", label="gradcheck tolerance 1e-6")
    ax.set_xlabel("step h")
    ax.set_ylabel("relative error of the central difference")
    ax.set_title("d/dx sum(tanh x): rounding (left) vs truncation (right)")
    ax.legend()
    C.save_figure(fig, args.out / "central_difference_error.png")
    return {"err32_at_1e-5": float(err32[i5]), "err64_at_1e-5": float(err64[i5]),
            "best_err32": float(err32.min()), "best_err64": float(err64.min())}


# %% [markdown]
# ### The same in a real check
#
# One `Dense` layer through `tinygan.gradcheck.check_layer_gradients` (h = 1e-5), once in float32
# and once in float64.  The library's tolerance is 1e-6.

# %%
def dense_check_in_both_precisions() -> dict:
    C.say("""The same in a real check: one Dense layer, tinygan.gradcheck.check_layer_gradients
             (h = 1e-5), once in float32 and once in float64.  The library's tolerance is 1e-6.""")
    rng = np.random.default_rng(1)
    x32 = rng.standard_normal((4, 5)).astype(np.float32)
    layer32 = Dense(5, 3, rng=np.random.default_rng(2))
    errs32 = check_layer_gradients(layer32, x32)
    layer64 = Dense(5, 3, rng=np.random.default_rng(2)).astype(np.float64)
    errs64 = check_layer_gradients(layer64, x32.astype(np.float64))
    for k in errs64:
        C.show(f"Dense grad '{k}' relative error f32 / f64", f"{errs32[k]:.1e} / {errs64[k]:.1e}")
    return {"dense_check_float32": max(errs32.values()), "dense_check_float64": max(errs64.values())}


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "01_arrays_and_backends",
                        "Lesson 1: arrays and backends -- NumPy vs CuPy, NCHW images, float32 vs float64")
    C.title("Lesson 1: arrays and backends")
    out = which_backend()
    out.update(nchw_layout())
    out.update(float32_vs_float64(args))
    out.update(dense_check_in_both_precisions())
    return out


if __name__ == "__main__":
    main()
