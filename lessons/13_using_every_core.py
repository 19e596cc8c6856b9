"""Lesson 13: using every CPU core -- threads, the GIL, and what threads may change.

    python lessons/13_using_every_core.py [--quick] [--out DIR]

NumPy computes on one core, except inside BLAS (the matrix products).  On a 2-core machine that
leaves one core idle while a convolution gathers its im2col matrix or BatchNorm takes its means.
tinygan.parallel splits the layers' work between worker threads instead.  Python threads only
run at once while NumPy has let go of the interpreter lock (the GIL), so the first question is:
which NumPy operations do?  Then: what splitting gains, and that it changes no result.
"""
from __future__ import annotations

import _common as C  # first: sets up the path (and BLAS threads) before NumPy loads
import threading
import time

import numpy as np

from tinygan import parallel
from tinygan.backend import get_backend
from tinygan.gan.stacked import StackedGANTrainer
from tinygan.layers import Conv2DTranspose
from tinygan.layers.im2col import im2col_t
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


def layer_step(layer, x, grad):
    """Forward and backward once; the numbers a training step would use."""
    y = layer.forward(x)
    dx = layer.backward(grad)
    return {"y": y, "dx": dx, "dW": layer.grads["W"].copy()}


def dcgan_steps(filters: int, batch: int, steps: int, seed: int = 0):
    """A few StackedGANTrainer steps of a small 64x64 DCGAN: (losses per step, seconds per step)."""
    G = dcgan64_generator(32, filters, 3, seed=seed)
    D = dcgan64_discriminator(filters, 3, seed=seed + 1)
    trainer = StackedGANTrainer(G, D, Adam(2e-4, 0.5), Adam(2e-4, 0.5), latent_dim=32,
                                backend=get_backend("numpy"), seed=seed)
    real = np.random.default_rng(seed).uniform(-1, 1, (batch // 2, 3, 64, 64)).astype(np.float32)
    trainer.train_step(real)                       # warm-up: first-touch allocations
    losses, times = [], []
    for _ in range(steps):
        start = time.perf_counter()
        stats = trainer.train_step(real).as_floats()
        times.append(time.perf_counter() - start)
        losses.append((stats["d_loss"], stats["g_loss"]))
    return np.array(losses), float(np.median(times))


def main(argv=None) -> dict:
    args = C.parse_args(argv, __file__, __doc__.splitlines()[0])
    C.title("Lesson 13: using every CPU core")
    quick = args.quick
    repeats = 5 if quick else 15
    rng = np.random.default_rng(0)
    cores = max(2, parallel.num_threads())
    before = parallel.num_threads()
    out = {}
    try:
        # -- which NumPy operations let go of the GIL? ---------------------------------------------
        C.section("The GIL: who lets go of it?")
        x = rng.standard_normal((16, 64, 32, 32)).astype(np.float32)
        a = rng.standard_normal((512, 1024)).astype(np.float32)
        b = rng.standard_normal((1024, 1024)).astype(np.float32)
        jobs = {"im2col gather (rows of 16 pixels)": lambda: im2col_t(x, 4, 4, 2, 1),
                "matrix product (BLAS)": lambda: a @ b}
        slowdown = {}
        for name, fn in jobs.items():
            alone = seconds_per_call(fn, repeats)
            beside = seconds_beside_python_loop(fn, repeats)
            slowdown[name] = beside / alone
            C.show(f"{name}: alone", f"{1e3 * alone:.2f} ms")
            C.show(f"{name}: beside a Python loop", f"{1e3 * beside:.2f} ms ({beside / alone:.1f}x)")
        C.say("""The matrix product itself runs undisturbed beside a busy Python thread: BLAS
                 releases the GIL for the whole product.  What it loses is the wait to get the GIL
                 back when it returns, up to one switch interval (5 ms).  The gather slows down
                 several times: NumPy releases the GIL only around long inner loops, and im2col's
                 are 16 pixels long, so the copying thread keeps asking for the GIL back.  Two threads
                 gathering at once therefore gain nothing, but a thread that gathers beside one that
                 multiplies does: both cores work.  (If other programs keep the cores busy, both
                 numbers grow.)""")
        out["slowdown_gather"] = slowdown["im2col gather (rows of 16 pixels)"]
        out["slowdown_matmul"] = slowdown["matrix product (BLAS)"]

        # -- one layer, one worker and two ---------------------------------------------------------
        C.section("One Conv2DTranspose, with 1 and 2 worker threads")
        C.say("""Conv2DTranspose cuts the batch into chunks.  Each worker takes a share of them and
                 does, per chunk, the matrix product and then the col2im scatter; BLAS is limited to
                 one thread inside the workers (they are the parallelism now).""")
        n = 16 if quick else 64
        layer = Conv2DTranspose(128, 64, 4, 2, 1, use_bias=False, rng=np.random.default_rng(1))
        xin = rng.standard_normal((n, 128, 16, 16)).astype(np.float32)
        grad = rng.standard_normal((n, 64, 32, 32)).astype(np.float32)
        results, seconds = {}, {}
        for workers in (1, cores):
            parallel.set_num_threads(workers)
            results[workers] = layer_step(layer, xin, grad)
            seconds[workers] = seconds_per_call(lambda: layer_step(layer, xin, grad), repeats)
            C.show(f"{workers} worker(s): {len(layer.chunks)} chunks, forward + backward",
                   f"{1e3 * seconds[workers]:.1f} ms")
        diffs = {k: float(np.abs(results[1][k] - results[cores][k]).max() / np.abs(results[1][k]).max())
                 for k in results[1]}
        for k, d in diffs.items():
            C.show(f"max |{k}(1) - {k}({cores})| / max |{k}|", d, ".1e")
        C.say("""The outputs agree to float32 rounding at worst.  y and dx are the same sums in the
                 same order, only computed on other threads.  dW is summed per worker first and the
                 workers' sums are added up after: when the chunks differ from the one-worker run,
                 that is another order of float32 additions (~1e-7).  For a given number of workers the
                 order is fixed, so a run repeats bit for bit.""")
        out["layer_rel_diff"] = max(diffs.values())
        out["layer_speedup"] = seconds[1] / seconds[cores]
        together = threading.Barrier(2, timeout=10)    # passes only if both parts run at once

        def probe(part):
            together.wait()
            return threading.current_thread().name

        parallel.set_num_threads(2)
        names = parallel.map_parts(probe, [0, 1], size=parallel.MIN_PARALLEL_SIZE)
        out["worker_threads"] = len(set(names))

        # -- a whole training step ------------------------------------------------------------------
        C.section("A DCGAN training step, with 1 and 2 worker threads")
        filters, batch, steps = (8, 16, 2) if quick else (32, 64, 3)
        step_losses, step_seconds = {}, {}
        for workers in (1, cores):
            parallel.set_num_threads(workers)
            step_losses[workers], step_seconds[workers] = dcgan_steps(filters, batch, steps)
            C.show(f"{workers} worker(s): one step (f={filters}, batch {batch})",
                   f"{1e3 * step_seconds[workers]:.0f} ms")
        loss_diff = float(np.abs(step_losses[1] - step_losses[cores]).max())
        C.show("max |loss(1) - loss(2)| over the steps", loss_diff, ".1e")
        C.say("""The losses drift apart a little from step to step.  The chunks differ between one
                 and two workers, so products are rounded differently (~1e-7), and Adam amplifies
                 that: early on, its step is about lr * sign(gradient), and a gradient near zero whose
                 sign flips with the rounding moves its weight by a full lr.  Training takes another
                 path of the same kind; neither is more right.

                 BatchNorm splits its features between the workers, the activations the rows of the
                 batch, Adam flat pieces of the weights; small arrays stay on one thread, because
                 handing work to a thread costs tens of microseconds.  benchmarks/NOTES.md has the
                 measurements behind each choice.""")
        out["step_loss_diff"] = loss_diff
        out["step_speedup"] = step_seconds[1] / step_seconds[cores]

        plt = C.pyplot()
        fig, ax = plt.subplots(figsize=(6, 3))
        labels = ["Conv2DTranspose\nfwd + bwd", f"DCGAN step\n(f={filters})"]
        ones = [1e3 * seconds[1], 1e3 * step_seconds[1]]
        twos = [1e3 * seconds[cores], 1e3 * step_seconds[cores]]
        pos = np.arange(2)
        ax.bar(pos - 0.2, ones, 0.4, label="1 worker")
        ax.bar(pos + 0.2, twos, 0.4, label=f"{cores} workers")
        ax.set_xticks(pos, labels)
        ax.set_ylabel("ms")
        ax.legend()
        ax.set_title("The same work on one core and on all of them")
        C.save_figure(fig, args.out / "workers.png")
    finally:
        parallel.set_num_threads(before)
    return out


if __name__ == "__main__":
    main()
