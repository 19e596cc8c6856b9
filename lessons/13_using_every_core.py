# %% [markdown]
# # Lesson 13: making it fast -- tinygan.kernels computes the layers' math faster, same numbers
#
#     python lessons/13_using_every_core.py [--quick] [--out DIR]
#
# `tinygan/layers/` is the math: each pass is a few whole-batch array operations (lesson 5).  On
# a CPU that leaves speed on the table: im2col and col2im copy more than they need, the im2col
# matrix of a whole batch is too big for the CPU caches, and NumPy computes on one core except
# inside the matrix products.  `tinygan/kernels/` holds faster versions of the same passes, and
# `Sequential` uses them on NumPy unless told otherwise (`tinygan.kernels.use("plain")`).  This
# lesson measures each trick and checks that the numbers do not change.
#
# Each part below is one function; the last cell, `main()`, runs them in order (and afterwards
# restores the kernels and worker threads it found).

# %%
from __future__ import annotations

import functools
import sys
import threading
import time

try:
    import _common as C  # first: sets up the path (and BLAS threads) before NumPy loads
except ModuleNotFoundError:  # a notebook whose working directory is the repository root
    sys.path.insert(0, "lessons")
    import _common as C
import numpy as np

from tinygan import kernels
from tinygan.backend import get_backend
from tinygan.gan.stacked import StackedGANTrainer
from tinygan.kernels import threads
from tinygan.kernels.fast_im2col import col2im_phases, im2col_strided
from tinygan.kernels.im2col import col2im, im2col
from tinygan.layers import Conv2DTranspose
from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import Adam


def seconds_per_call(fn, repeats: int) -> float:
    """Median wall time of fn()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# %% [markdown]
# ## 1. im2col and col2im with fewer, longer loops
#
# The plain `im2col` copies one strided slice of the image per kernel offset (16 for a 4x4
# kernel); `im2col_strided` copies all windows at once from a strided view.  The plain `col2im`
# adds 16 slices into a padded image; `col2im_phases` sums the offsets that land on the same
# output phase (stride 2: 4 phases) in a small buffer and writes each phase once.

# %%
def faster_primitives(x, repeats) -> dict:
    """Plain vs fast im2col and col2im on x: times and max relative differences."""
    C.section("1. im2col and col2im with fewer, longer loops")
    C.say("""im2col_strided copies all windows at once from a strided view; col2im_phases sums the
             offsets that land on the same output phase and writes each phase once.""")
    cols = im2col(x, 4, 4, 2, 1)
    prim = {"im2col": (lambda: im2col(x, 4, 4, 2, 1), lambda: im2col_strided(x, 4, 4, 2, 1)),
            "col2im": (lambda: col2im(cols, x.shape, 4, 4, 2, 1),
                       lambda: col2im_phases(cols, x.shape, 4, 4, 2, 1))}
    prim_diff = {}
    for name, (plain, fast) in prim.items():
        a, b = plain(), fast()
        prim_diff[name] = float(np.abs(a - b).max() / np.abs(a).max())
        t_plain, t_fast = seconds_per_call(plain, repeats), seconds_per_call(fast, repeats)
        C.show(f"{name} on {x.shape}: plain / fast", f"{1e3 * t_plain:.1f} / {1e3 * t_fast:.1f} ms")
        C.show(f"{name}: max |plain - fast| / max |plain|", prim_diff[name], ".1e")
    C.say("""im2col only copies: the two agree exactly.  col2im adds the same terms in another
             order: float32 rounding at most.""")
    return prim_diff


# %% [markdown]
# ## 2. Threads and the GIL: who lets go of it?
#
# Each operation is timed alone, and on a second thread while this thread spins in pure Python.
# The spinning thread needs the GIL all the time.  An operation that releases it for its whole
# length runs undisturbed; one that needs it often must wait for the spinning thread to hand it
# over, which Python forces only every few milliseconds (`sys.getswitchinterval()`).  At the end,
# a check that `tinygan.kernels.threads` really runs two parts on two threads at once.

# %%
def seconds_beside_python_loop(fn, repeats: int) -> float:
    """Median time of fn() on a second thread while this thread spins in pure Python.

    The spinning thread needs the GIL all the time.  An operation that releases it for its whole
    length runs undisturbed; one that needs it often must wait for the spinning thread to hand it
    over, which Python forces only every few milliseconds (sys.getswitchinterval())."""
    times, done = [], threading.Event()

    def worker():
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    spins = 0
    while not done.is_set():
        spins += 1
    thread.join()
    return float(np.median(times))


def threads_and_the_gil(rng, x, repeats) -> dict:
    """How much a gather and a matrix product slow down beside a busy Python thread."""
    C.section("2. Threads and the GIL: who lets go of it?")
    a = rng.standard_normal((512, 1024)).astype(np.float32)
    b = rng.standard_normal((1024, 1024)).astype(np.float32)
    xs = x[:8]
    jobs = {"im2col gather (rows of 16 pixels)": lambda: im2col_strided(xs, 4, 4, 2, 1),
            "matrix product (BLAS)": lambda: a @ b}
    slowdown = {}
    for name, fn in jobs.items():
        alone = seconds_per_call(fn, repeats)
        beside = seconds_beside_python_loop(fn, repeats)
        slowdown[name] = beside / alone
        C.show(f"{name}: alone", f"{1e3 * alone:.2f} ms")
        C.show(f"{name}: beside a Python loop", f"{1e3 * beside:.2f} ms ({beside / alone:.1f}x)")
    C.say("""A matrix product runs undisturbed beside a busy Python thread: BLAS releases the GIL
             for the whole product (it only waits, up to one switch interval, to get it back).
             The gather slows down several times: NumPy releases the GIL only around long inner
             loops, and im2col's are 16 pixels long.  So two threads gathering at once gain
             nothing, but a thread that gathers beside one that multiplies does: both cores
             work.  tinygan.kernels.threads therefore hands whole chunks of a batch (gather,
             product, scatter) to worker threads, with BLAS at one thread inside each.""")
    together = threading.Barrier(2, timeout=10)    # passes only if both parts run at once

    def probe(part):
        together.wait()
        return threading.current_thread().name

    kernels.set_num_threads(2)
    return {"slowdown_gather": slowdown["im2col gather (rows of 16 pixels)"],
            "slowdown_matmul": slowdown["matrix product (BLAS)"],
            "worker_threads": len(set(threads.map_parts(probe, [0, 1], size=threads.MIN_PARALLEL_SIZE)))}


# %% [markdown]
# ## 3. One `Conv2DTranspose`: the layer's own code, and the fast pass on 1 and 2 workers
#
# The fast pass cuts the batch into chunks whose matrices fit the CPU cache (~8 MB), so each
# chunk's product and scatter run on data still in the cache, and spreads the chunks over the
# workers.  Its result must be the layer's, to rounding: checked in float64, then timed in
# float32.

# %%
def relative_difference(a: dict, b: dict) -> float:
    """Largest max|a - b| / max|a| over the arrays of two runs."""
    return max(float(np.abs(a[k] - b[k]).max() / np.abs(a[k]).max()) for k in a)


def layer_step(layer, x, grad):
    """One forward and backward through tinygan.kernels (as Sequential runs a layer)."""
    y = kernels.forward(layer, x)
    layer.zero_grad()
    dx = kernels.backward(layer, grad)
    return {"y": y, "dx": dx, "dW": layer.grads["W"].copy()}


def one_layer(rng, n, cores, repeats):
    """Plain, fast on 1 worker, fast on ``cores``: float64 differences, float32 seconds."""
    C.section("3. One Conv2DTranspose: the layer's own code, and the fast pass on 1 and 2 workers")
    C.say("""The fast pass cuts the batch into cache-sized chunks and spreads them over the
             workers.  Checked in float64, then timed in float32:""")
    variants = [("plain", 1), ("fast", 1), ("fast", cores)]
    diffs, seconds = {}, {}
    for dtype in (np.float64, np.float32):
        layer = Conv2DTranspose(128, 64, 4, 2, 1, use_bias=False, rng=np.random.default_rng(1))
        layer.astype(dtype)
        xin = rng.standard_normal((n, 128, 16, 16)).astype(dtype)
        grad = rng.standard_normal((n, 64, 32, 32)).astype(dtype)
        results = {}
        for mode, workers in variants:
            kernels.use(mode)
            kernels.set_num_threads(workers)
            results[(mode, workers)] = layer_step(layer, xin, grad)
            if dtype == np.float32:
                step = functools.partial(layer_step, layer, xin, grad)
                seconds[(mode, workers)] = seconds_per_call(step, repeats)
                label = "the layer's own code" if mode == "plain" else f"fast pass, {workers} worker(s)"
                C.show(f"{label}: forward + backward",
                       f"{1e3 * seconds[(mode, workers)]:.1f} ms")
        if dtype == np.float64:
            for v in variants[1:]:
                diffs[v] = relative_difference(results[("plain", 1)], results[v])
                C.show(f"float64: {v[0]} on {v[1]} worker(s) vs plain, max rel. difference",
                       diffs[v], ".1e")
    C.say("""Same numbers: the chunks sum the weight gradient in another order (float64
             rounding, ~1e-16).  For a given number of workers the order is fixed, so a run
             repeats bit for bit.""")
    return diffs, seconds


# %% [markdown]
# ## 4. A DCGAN training step, plain and fast
#
# A few `StackedGANTrainer` steps of a small 64x64 DCGAN with the plain layers and with the fast
# kernels on every core, from the same weights and data: the time per step, and how far the
# losses drift apart.

# %%
def dcgan_steps(filters: int, batch: int, steps: int, seed: int = 0):
    """A few StackedGANTrainer steps of a small 64x64 DCGAN: (losses per step, seconds per step)."""
    G = dcgan64_generator(32, filters, 3, seed=seed)
    D = dcgan64_discriminator(filters, 3, seed=seed + 1)
    trainer = StackedGANTrainer(G, D, Adam(2e-4, 0.5), Adam(2e-4, 0.5), latent_dim=32,
                                backend=get_backend("numpy"), seed=seed)
    real = np.random.default_rng(seed).uniform(-1, 1, (batch // 2, 3, 64, 64)).astype(np.float32)
    losses, times = [], []
    for _ in range(steps):
        start = time.perf_counter()
        stats = trainer.train_step(real).as_floats()
        times.append(time.perf_counter() - start)
        losses.append((stats["d_loss"], stats["g_loss"]))
    return np.array(losses), float(np.median(times[1:] or times))   # the first step allocates


def training_step(filters, batch, steps, cores):
    """dcgan_steps with the plain and the fast kernels: the largest loss difference, seconds per step."""
    C.section("4. A DCGAN training step, plain and fast")
    step_losses, step_seconds = {}, {}
    for mode, workers in (("plain", 1), ("fast", cores)):
        kernels.use(mode)
        kernels.set_num_threads(workers)
        step_losses[mode], step_seconds[mode] = dcgan_steps(filters, batch, steps)
        label = "plain layers" if mode == "plain" else f"fast kernels, {workers} workers"
        C.show(f"{label}: one step (f={filters}, batch {batch})",
               f"{1e3 * step_seconds[mode]:.0f} ms")
    loss_diff = float(np.abs(step_losses["plain"] - step_losses["fast"]).max())
    C.show("max |loss(plain) - loss(fast)| over the steps", loss_diff, ".1e")
    C.say("""In float32 the losses drift apart a little from step to step: float32 rounding
             (~1e-7) amplified by Adam, whose early steps are about lr * sign(gradient), so a
             near-zero gradient whose sign flips with the rounding moves its weight by a full lr.
             Training takes another path of the same kind; neither is more right.  BatchNorm
             (features split between workers) and LeakyReLU (max(x, 0.2 x) instead of a select)
             have fast passes too; benchmarks/NOTES.md has the measurements behind each choice,
             and `python benchmarks/bench_dcgan.py --kernels plain` times the plain code.""")
    return loss_diff, step_seconds


# %% [markdown]
# ## 5. The figure
#
# The layer's forward + backward and the training step, plain and fast.

# %%
def plot(args, seconds, step_seconds, cores, filters):
    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    labels = ["Conv2DTranspose\nfwd + bwd", f"DCGAN step\n(f={filters})"]
    plain_ms = [1e3 * seconds[("plain", 1)], 1e3 * step_seconds["plain"]]
    fast_ms = [1e3 * seconds[("fast", cores)], 1e3 * step_seconds["fast"]]
    pos = np.arange(2)
    ax.bar(pos - 0.2, plain_ms, 0.4, label="plain layers")
    ax.bar(pos + 0.2, fast_ms, 0.4, label=f"fast kernels, {cores} workers")
    ax.set_xticks(pos, labels)
    ax.set_ylabel("ms")
    ax.legend()
    ax.set_title("The same numbers, computed faster")
    C.save_figure(fig, args.out / "kernels.png")


# %% [markdown]
# ## Running the lesson
#
# `main(argv)` runs the parts in order and returns the numbers they computed (the tests check
# them).  In a notebook it takes its arguments from the environment variable
# `TINYGAN_LESSON_ARGS` (e.g. `--quick`), or call it yourself: `main(["--quick"])`.

# %%
def main(argv=None) -> dict:
    args = C.parse_args(argv, "13_using_every_core", "Lesson 13: making it fast "
                        "-- tinygan.kernels computes the layers' math faster, same numbers")
    C.title("Lesson 13: making it fast, with the same numbers")
    quick = args.quick
    repeats = 3 if quick else 15
    rng = np.random.default_rng(0)
    cores = max(2, kernels.num_threads())
    workers_before, kernels_before = kernels.num_threads(), kernels.active()
    out = {}
    try:
        x = rng.standard_normal((8 if quick else 64, 64, 32, 32)).astype(np.float32)
        out["primitive_rel_diff"] = faster_primitives(x, repeats)
        out.update(threads_and_the_gil(rng, x, repeats))
        diffs, seconds = one_layer(rng, 8 if quick else 64, cores, repeats)
        out["layer_rel_diff"] = max(diffs.values())
        out["layer_speedup"] = seconds[("plain", 1)] / seconds[("fast", cores)]
        filters, batch, steps = (4, 8, 2) if quick else (32, 64, 4)
        out["step_loss_diff"], step_seconds = training_step(filters, batch, steps, cores)
        out["step_speedup"] = step_seconds["plain"] / step_seconds["fast"]
        plot(args, seconds, step_seconds, cores, filters)
    finally:
        kernels.set_num_threads(workers_before)
        kernels.use(kernels_before)
    return out


if __name__ == "__main__":
    main()
