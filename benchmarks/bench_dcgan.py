"""Time one training iteration of the 64x64 DCGAN: tinygan against the same model in PyTorch.

    python benchmarks/bench_dcgan.py                          # NumPy, batch 64, PyTorch beside it
    python benchmarks/bench_dcgan.py --batch 64 128 --repeats 7
    python benchmarks/bench_dcgan.py --layers                 # where the time goes, layer by layer
    python benchmarks/bench_dcgan.py --check                  # both sides compute the same step?
    python benchmarks/bench_dcgan.py --kernels plain          # tinygan's plain layer code, no fast passes
    python benchmarks/bench_dcgan.py --backend cupy --batch 128 512 --tf32

What one iteration is (both sides, identical work).  ``--batch B`` is the *full* batch, the
convention of ``StackedGANTrainer.train_step`` (which is what is timed on the tinygan side):

  1. D step: G makes B/2 images (training mode, no backward); D forwards B/2 real images
     (target 1) and, separately, the B/2 generated ones (target 0) -- separately so each half
     gets its own BatchNorm statistics; backward of each half with half the loss weight; one
     Adam step of D on the mean loss.
  2. G step: G makes B fresh images, D (frozen: no parameter gradients, BatchNorm in training
     mode without touching its running averages) scores them, non-saturating loss
     BCEWithLogits(logits, 1), backward through D into G, one Adam step of G.

So D forwards 2B images and G B + B/2 per iteration; "images/s" counts B per iteration.
The PyTorch side is the same architecture (dcgan64: ConvTranspose2d/Conv2d 4x4 without bias,
BatchNorm2d(momentum 0.1 = tinygan's Keras-style 0.9, eps 1e-5), ReLU / LeakyReLU(0.2), Tanh,
one logit), BCEWithLogitsLoss, Adam(2e-4, betas (0.5, 0.999), eps 1e-8), the same recipe: the
D-step fakes are made under ``torch.no_grad()`` (tinygan does no backward through them either),
and in the G step D's parameters have ``requires_grad=False`` and its BatchNorm momentum is 0
(so running statistics stay put, as in tinygan).  Two differences, both small and both against
tinygan: tinygan also computes D's input gradient in the D step (its layers always return dx),
and it draws noise on the host and copies it to the device (PyTorch: ``torch.randn`` on the device).

Timing: warm-up iterations first (``--warmup``), then ``--repeats`` repetitions alternating
tinygan and PyTorch, so background load hits both alike; the median is reported.  On the GPU each
iteration is timed with CUDA events (``cupy.cuda.Event`` / ``torch.cuda.Event``) and a sync.  On
the CPU the table also gives the process's CPU time per iteration (all threads, user + system):
on a machine shared with other jobs it is far steadier than the wall time.

Memory, measured outside the timed repetitions:
  * CPU: each side in a fresh process (``--probe-memory``): the peak resident set size over its
    first two iterations (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` once the model,
    optimizer and batch exist) minus the RSS at that moment -- the working memory of training:
    activations and what backward keeps, im2col buffers, gradients, Adam's moments.  Where
    ``clear_refs`` cannot be written, RSS is sampled every millisecond instead (said in the table).
  * GPU: CuPy's default memory pool ``total_bytes()`` after one more iteration (the pool only
    grows, so that is its high-water mark; cached blocks were freed just before) and PyTorch's
    ``torch.cuda.max_memory_reserved()`` (likewise cache included; ``max_memory_allocated`` is
    printed beside it).  Both include the weights and optimizer state.

``--threads T`` sets the BLAS threads of NumPy (OPENBLAS/MKL/OMP_NUM_THREADS, before NumPy is
imported), tinygan's worker threads (TINYGAN_NUM_THREADS, see tinygan/kernels/threads.py) and
``torch.set_num_threads(T)``; default: all cores.

``--kernels plain`` runs tinygan's layers on their own plain code (``TINYGAN_KERNELS=plain``)
instead of the fast NumPy passes of tinygan/kernels (the default, ``fast``).

``--tf32`` lets both sides use TF32 tensor cores for float32 matrix products (Ampere or newer):
``CUPY_TF32=1`` (read by CuPy at its first matmul; set here before CuPy is imported) and
``torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True``.  Without it
both are off (cuDNN's TF32 default is *on* in PyTorch, so it is switched off explicitly).
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import threading
import time
from pathlib import Path

LATENT, FILTERS, CHANNELS, SIZE = 100, 64, 3, 64


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--batch", type=int, nargs="+", default=[64], help="full batch(es) B, even")
    p.add_argument("--repeats", type=int, default=5, help="timed iterations per side (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per side first")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS, tinygan and torch threads (default: all cores)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matrix units (GPU) on both sides")
    p.add_argument("--layers", action="store_true", help="per-layer forward/backward table instead")
    p.add_argument("--check", action="store_true", help="verify both sides compute the same step")
    p.add_argument("--no-torch", action="store_true", help="time tinygan only")
    p.add_argument("--filters", type=int, default=FILTERS, help="base filters of G and D (64)")
    p.add_argument("--kernels", choices=("fast", "plain"), default="fast",
                   help="tinygan's fast NumPy passes or the layers' plain code (default: fast)")
    p.add_argument("--probe-memory", choices=("tinygan", "pytorch"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if any(b < 2 or b % 2 for b in args.batch):
        p.error(f"--batch must be even (B/2 real + B/2 fake): got {args.batch}")
    return args


def set_threads_env(threads):
    """BLAS thread counts are read when NumPy (OpenBLAS/MKL) loads: this must run before import."""
    if threads:
        for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "TINYGAN_NUM_THREADS"):
            os.environ[var] = str(threads)


# -- timing and memory ------------------------------------------------------------------------------
class Clock:
    """Times a callable: wall milliseconds (host clock on the CPU, CUDA events and a sync on the GPU)
    and, on the CPU, the process's CPU milliseconds too (user + system, all threads), which other
    programs competing for the cores inflate much less than the wall time."""

    def __init__(self, kind: str):
        self.kind = kind          # "cpu", "cupy" or "torch-cuda"

    def measure(self, fn):
        """(wall ms, CPU ms or None)."""
        if self.kind == "cpu":
            t, c = time.perf_counter(), time.process_time()
            fn()
            return (time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3
        if self.kind == "cupy":
            import cupy
            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            return cupy.cuda.get_elapsed_time(start, stop), None
        import torch
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop), None

    def ms(self, fn):
        return self.measure(fn)[0]


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def peak_rss_growth_mib(fn):
    """(peak RSS during fn() minus the RSS before it, in MiB; how it was measured)."""
    before = _status_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                      # "5" resets VmHWM (the peak RSS) to the current RSS
        fn()
        return (_status_kb("VmHWM") - before) / 1024, "VmHWM"
    except OSError:                           # not Linux, or not allowed: sample instead
        pass
    peak, done = [before], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _status_kb("VmRSS"))
            time.sleep(0.001)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    fn()
    done.set()
    t.join()
    return (peak[0] - before) / 1024, "sampled RSS"


def probe_cpu_memory(args, side_name, batch):
    """Run ``--probe-memory`` in a fresh process: the parent's RSS holds both libraries' leftovers."""
    import subprocess
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe-memory", side_name,
           "--batch", str(batch), "--filters", str(args.filters), "--kernels", args.kernels]
    if side_name == "tinygan":
        cmd.append("--no-torch")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("PEAK_MIB "):
            _, mib, how = line.split(" ", 2)
            return float(mib), f"RSS growth ({how}, fresh process)"
    return float("nan"), "probe failed: " + (out.stderr.strip().splitlines() or ["?"])[-1]


def run_memory_probe(args, torch):
    """Child process: peak RSS growth over the first two iterations (the first creates Adam's
    moments) above the RSS once the model, optimizer and batch exist."""
    import numpy as np
    batch = args.batch[0]
    side = TinyganSide("numpy", args.filters) if args.probe_memory == "tinygan" else \
        TorchSide("cpu", args.filters, tf32=False)
    real = side.real_batch(np.random.default_rng(0).uniform(-1, 1, (batch // 2, CHANNELS, SIZE, SIZE))
                           .astype(np.float32))
    mib, how = peak_rss_growth_mib(lambda: (side.step(real), side.step(real)))
    print(f"PEAK_MIB {mib:.1f} {how}")


# -- tinygan side ---------------------------------------------------------------------------------
class TinyganSide:
    def __init__(self, backend_name, filters, seed=0, dtype="float32"):
        from tinygan.backend import get_backend
        from tinygan.gan.stacked import StackedGANTrainer
        from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator
        from tinygan.optimizers import Adam
        self.backend = get_backend(backend_name, dtype=dtype)
        self.G = dcgan64_generator(LATENT, filters, CHANNELS, seed=seed).to(self.backend)
        self.D = dcgan64_discriminator(filters, CHANNELS, seed=seed + 1).to(self.backend)
        self.trainer = StackedGANTrainer(self.G, self.D, Adam(2e-4, 0.5), Adam(2e-4, 0.5),
                                         latent_dim=LATENT, backend=self.backend, seed=seed)
        self.clock = Clock("cupy" if self.backend.name == "cupy" else "cpu")

    def real_batch(self, images):
        return self.backend.asarray(images)

    def step(self, real):
        return self.trainer.train_step(real)

    def gpu_memory(self, real):
        """MiB the CuPy pool holds after one iteration; cached blocks freed first, and the pool
        only grows, so this is its high-water mark."""
        import cupy
        pool = cupy.get_default_memory_pool()
        self.backend.synchronize()
        pool.free_all_blocks()
        self.step(real)
        self.backend.synchronize()
        return pool.total_bytes() / 2**20, "CuPy pool high-water"


# -- PyTorch side ---------------------------------------------------------------------------------
def torch_dcgan64(nn, filters=FILTERS, latent=LATENT, channels=CHANNELS):
    """tinygan's dcgan64_generator / dcgan64_discriminator, layer for layer."""
    f = filters
    g, widths = [nn.Unflatten(1, (latent, 1, 1))], [latent, f * 8, f * 4, f * 2, f]
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        stride, pad = (1, 0) if i == 0 else (2, 1)
        g += [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    g += [nn.ConvTranspose2d(f, channels, 4, 2, 1, bias=False), nn.Tanh()]
    d, widths = [nn.Conv2d(channels, f, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)], [f, f * 2, f * 4, f * 8]
    for cin, cout in zip(widths[:-1], widths[1:]):
        d += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
    d += [nn.Conv2d(f * 8, 1, 4, 1, 0, bias=False), nn.Flatten()]
    return nn.Sequential(*g), nn.Sequential(*d)


def copy_weights_to_torch(tiny_model, torch_model, torch):
    """tinygan layers -> torch modules with parameters, in order (Conv/ConvTranspose W, BN)."""
    from tinygan.backend import to_numpy
    tiny = [layer for layer in tiny_model.layers if layer.params]
    tmods = [m for m in torch_model if any(True for _ in m.parameters(recurse=False))]
    assert len(tiny) == len(tmods), (len(tiny), len(tmods))
    with torch.no_grad():
        for tl, tm in zip(tiny, tmods):
            if "W" in tl.params:
                tm.weight.copy_(torch.from_numpy(to_numpy(tl.params["W"])))
            else:
                tm.weight.copy_(torch.from_numpy(to_numpy(tl.params["gamma"])))
                tm.bias.copy_(torch.from_numpy(to_numpy(tl.params["beta"])))
                tm.running_mean.copy_(torch.from_numpy(to_numpy(tl.buffers["running_mean"])))
                tm.running_var.copy_(torch.from_numpy(to_numpy(tl.buffers["running_var"])))


class TorchSide:
    def __init__(self, device, filters, tf32, dtype="float32"):
        import torch
        from torch import nn
        self.torch, self.device = torch, torch.device(device)
        self.dtype = getattr(torch, dtype)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True     # let cuDNN pick its fastest algorithms
        self.G, self.D = (m.to(self.device, self.dtype) for m in torch_dcgan64(nn, filters))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
        self.bce = nn.BCEWithLogitsLoss()
        self.d_bns = [m for m in self.D if isinstance(m, nn.BatchNorm2d)]
        self.clock = Clock("torch-cuda" if self.device.type == "cuda" else "cpu")
        self.noise = lambda n: torch.randn(n, LATENT, device=self.device, dtype=self.dtype)

    def real_batch(self, images):
        return self.torch.from_numpy(images).to(self.device, self.dtype)

    def d_step(self, real):
        """StackedGANTrainer.discriminator_step, in PyTorch."""
        torch, n = self.torch, real.shape[0]
        with torch.no_grad():
            fake = self.G(self.noise(n))
        self.opt_d.zero_grad(set_to_none=True)
        logits_real = self.D(real)
        loss_real = self.bce(logits_real, torch.ones_like(logits_real))
        (0.5 * loss_real).backward()
        logits_fake = self.D(fake)
        loss_fake = self.bce(logits_fake, torch.zeros_like(logits_fake))
        (0.5 * loss_fake).backward()
        self.opt_d.step()
        return (0.5 * (loss_real + loss_fake)).detach()

    def g_step(self, n):
        """StackedGANTrainer.generator_step, in PyTorch."""
        self.D.requires_grad_(False)               # frozen D: input gradients only
        for bn in self.d_bns:
            bn.momentum = 0.0                       # batch statistics, running averages untouched
        try:
            self.opt_g.zero_grad(set_to_none=True)
            logits = self.D(self.G(self.noise(n)))
            loss = self.bce(logits, self.torch.ones_like(logits))
            loss.backward()
            self.opt_g.step()
        finally:
            self.D.requires_grad_(True)
            for bn in self.d_bns:
                bn.momentum = 0.1
        return loss.detach()

    def step(self, real):
        """StackedGANTrainer.train_step, in PyTorch: D on B/2 real + B/2 fake, then G on B."""
        return self.d_step(real), self.g_step(2 * real.shape[0])

    def gpu_memory(self, real):
        """Peak MiB reserved by PyTorch's caching allocator during one iteration (cache emptied first)."""
        torch = self.torch
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self.step(real)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_reserved() / 2**20,
                f"torch max reserved (allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB)")


def import_torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


# -- modes ----------------------------------------------------------------------------------------
def fmt_row(cells, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def print_table(head, rows):
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    print(fmt_row(head, widths))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt_row(r, widths))


def run_iterations(args, torch):
    import numpy as np
    on_gpu = args.backend == "cupy"
    rows = []
    for batch in args.batch:
        sides = [("tinygan", TinyganSide(args.backend, args.filters))]
        if torch is not None:
            sides.append(("pytorch", TorchSide("cuda" if on_gpu else "cpu", args.filters, args.tf32)))
        images = np.random.default_rng(0).uniform(-1, 1, (batch // 2, CHANNELS, SIZE, SIZE))
        images = images.astype(np.float32)
        reals = {name: side.real_batch(images) for name, side in sides}
        steps = {name: functools.partial(side.step, reals[name]) for name, side in sides}
        for _ in range(args.warmup):
            for name, side in sides:
                side.clock.measure(steps[name])
        wall, cpu = {name: [] for name, _ in sides}, {name: [] for name, _ in sides}
        for _ in range(args.repeats):             # interleaved: background load hits both sides alike
            for name, side in sides:
                w, c = side.clock.measure(steps[name])
                wall[name].append(w)
                cpu[name].append(c)
        if on_gpu:
            mem = {name: side.gpu_memory(reals[name]) for name, side in sides}
        sides = reals = steps = None                # free this batch's models before the next
        if not on_gpu:
            mem = {name: probe_cpu_memory(args, name, batch) for name in wall}
        med = {name: statistics.median(ts) for name, ts in wall.items()}
        for name in wall:
            cpu_med = "-" if on_gpu else f"{statistics.median(cpu[name]):.0f}"
            ratio = f"{med[name] / med['pytorch']:.2f}" if "pytorch" in med else "-"
            cpu_ratio = (f"{statistics.median(cpu[name]) / statistics.median(cpu['pytorch']):.2f}"
                         if "pytorch" in med and not on_gpu else "-")
            device = args.backend if name == "tinygan" else ("cuda" if on_gpu else "cpu")
            rows.append([name, device, batch, f"{med[name]:.1f}", f"{min(wall[name]):.1f}",
                         f"{max(wall[name]):.1f}", cpu_med, f"{batch / med[name] * 1e3:.1f}",
                         ratio, cpu_ratio, f"{mem[name][0]:.0f}", mem[name][1]])
    print(f"\none training iteration (D on B/2 real + B/2 fake, then G on B), median of {args.repeats} "
          f"interleaved repetitions after {args.warmup} warm-up; ratios tinygan / pytorch")
    print_table(["side", "device", "batch B", "median ms", "min ms", "max ms", "CPU ms", "img/s",
                 "ratio", "CPU ratio", "peak MiB", "memory measure"], rows)


def time_layer(clock, forward, backward, repeats):
    fwd, bwd = [], []
    for _ in range(repeats):
        fwd.append(clock.ms(forward))
        bwd.append(clock.ms(backward))
    return statistics.median(fwd), statistics.median(bwd)


def time_torch_layer(clock, tlayer, tx, tdy, warmup, repeats):
    """Median forward and backward ms of one PyTorch module."""
    holder = {}

    def t_forward():
        holder["y"] = tlayer(tx)

    def t_backward():
        holder["y"].backward(tdy)

    for _ in range(warmup):
        t_forward()
        t_backward()
    return time_layer(clock, t_forward, t_backward, repeats)


def run_layers(args, torch):
    """Forward and backward of every layer of G and D at the shapes of a G step (batch B)."""
    import numpy as np

    from tinygan import kernels
    from tinygan.backend import to_numpy
    for batch in args.batch:
        tiny = TinyganSide(args.backend, args.filters)
        tside = None
        if torch is not None:
            tside = TorchSide("cuda" if args.backend == "cupy" else "cpu", args.filters, args.tf32)
            copy_weights_to_torch(tiny.G, tside.G, torch)
            copy_weights_to_torch(tiny.D, tside.D, torch)
        rng = np.random.default_rng(0)
        x = tiny.backend.asarray(rng.standard_normal((batch, LATENT)))
        rows, totals = [], np.zeros(4)
        for tmodel, torch_model in ((tiny.G, tside and tside.G), (tiny.D, tside and tside.D)):
            torch_layers = list(torch_model) if torch_model is not None else [None] * len(tmodel.layers)
            for layer, tlayer in zip(tmodel.layers, torch_layers):
                x_in = x
                y = kernels.forward(layer, x_in, True)          # as Sequential runs each layer
                dy = tiny.backend.asarray(rng.standard_normal(y.shape))
                for _ in range(args.warmup):
                    kernels.forward(layer, x_in, True)
                    kernels.backward(layer, dy)
                f_ms, b_ms = time_layer(tiny.clock, functools.partial(kernels.forward, layer, x_in, True),
                                        functools.partial(kernels.backward, layer, dy), args.repeats)
                row = [f"{tmodel.name.split('_')[1]}.{layer.name}", type(layer).__name__,
                       "x".join(map(str, x_in.shape[1:])) + "->" + "x".join(map(str, y.shape[1:])),
                       f"{f_ms:.2f}", f"{b_ms:.2f}"]
                totals[:2] += (f_ms, b_ms)
                if tlayer is not None:
                    tx = torch.from_numpy(to_numpy(x_in)).to(tside.device).requires_grad_(True)
                    tdy = torch.from_numpy(to_numpy(dy)).to(tside.device)
                    tf_ms, tb_ms = time_torch_layer(tside.clock, tlayer, tx, tdy, args.warmup, args.repeats)
                    totals[2:] += (tf_ms, tb_ms)
                    ratio = (f_ms + b_ms) / (tf_ms + tb_ms) if tf_ms + tb_ms > 0 else float("nan")
                    row += [f"{tf_ms:.2f}", f"{tb_ms:.2f}", f"{ratio:.2f}"]
                rows.append(row)
                x = y
        total = ["total", "", "", f"{totals[0]:.1f}", f"{totals[1]:.1f}"]
        if tside is not None:
            total += [f"{totals[2]:.1f}", f"{totals[3]:.1f}", f"{totals[:2].sum() / totals[2:].sum():.2f}"]
        rows.append(total)
        print(f"\nper layer, batch {batch} (the G-step shapes; D sees B/2 in the D step), {args.backend}, "
              f"median of {args.repeats}; backward = parameter gradients + input gradient")
        head = ["layer", "type", "shape", "fwd ms", "bwd ms"]
        if tside is not None:
            head += ["torch fwd", "torch bwd", "ratio"]
        print_table(head, rows)


def _grad_errors(tiny_model, torch_model):
    """Worst norm-wise relative difference of the parameter gradients, and of the parameters."""
    import numpy as np

    from tinygan.backend import to_numpy
    tparams = [p for m in torch_model for p in m.parameters(recurse=False)]
    worst_g = worst_p = 0.0
    for (_, p, g), tp in zip(tiny_model.parameters(), tparams):
        for a, b, which in ((g, tp.grad, "g"), (p, tp, "p")):
            a, b = to_numpy(a).astype(np.float64), b.detach().cpu().numpy().astype(np.float64)
            err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)
            if which == "g":
                worst_g = max(worst_g, err)
            else:
                worst_p = max(worst_p, err)
    return worst_g, worst_p


def check_one_dtype(args, torch, dtype):
    """D step, then G step, from identical weights and noise; returns the names of failed checks.

    Before the G step PyTorch's D gets tinygan's updated D weights again, so the G step is compared
    from identical weights too (otherwise Adam's first update, ~lr * sign(g) per weight, turns
    float32 rounding of near-zero gradients into weight differences of 2 lr).
    """
    import numpy as np

    from tinygan.backend import to_numpy
    batch = args.batch[0]
    tiny = TinyganSide(args.backend, args.filters, dtype=dtype)
    tside = TorchSide("cuda" if args.backend == "cupy" else "cpu", args.filters, tf32=False, dtype=dtype)
    copy_weights_to_torch(tiny.G, tside.G, torch)
    copy_weights_to_torch(tiny.D, tside.D, torch)
    # The trainer's host noise generator, replayed for PyTorch: same draws in the same order.
    replay = np.random.default_rng(0)
    tside.noise = lambda n: (torch.from_numpy(replay.standard_normal((n, LATENT)))
                             .to(tside.device, tside.dtype))
    images = np.random.default_rng(1).uniform(-1, 1, (batch // 2, CHANNELS, SIZE, SIZE)).astype(np.float32)
    real_t, real_p = tiny.real_batch(images), tside.real_batch(images)
    # Losses: float32 sums in another order differ by ~1e-7 relative; 1e-4 catches any real
    # difference.  float64: the two must agree to rounding (~1e-15), 1e-10 leaves margin.
    # Gradients: float64 only.  In float32 a BatchNorm beta gradient (a sum of terms that nearly
    # cancel) and everything below it carries ~1e-4 of rounding on *both* sides, so float32
    # gradients are printed, not judged.
    loss_tol, grad_tol = (1e-4, None) if dtype == "float32" else (1e-10, 1e-10)
    failures = []

    def judge(what, err, tol):
        verdict = "" if tol is None else ("ok" if err <= tol else "MISMATCH")
        print(f"  {what:<46} {err:9.1e}  {verdict}{'' if tol is None else f' (tol {tol:g})'}")
        if tol is not None and err > tol:
            failures.append(f"{dtype} {what}")

    def loss_rel(a, b):
        return abs(float(to_numpy(a)) - b.item()) / abs(b.item())

    print(f"{dtype}:")
    d_loss, _, _ = tiny.trainer.discriminator_step(real_t)
    d_loss_t = tside.d_step(real_p)
    judge("D step: D loss, relative difference", loss_rel(d_loss, d_loss_t), loss_tol)
    g_err, p_err = _grad_errors(tiny.D, tside.D)
    judge("D step: D gradients, worst relative (norm)", g_err, grad_tol)
    judge("D step: D weights after Adam, worst relative", p_err, grad_tol)

    copy_weights_to_torch(tiny.D, tside.D, torch)
    g_loss = tiny.trainer.generator_step(batch)
    g_loss_t = tside.g_step(batch)
    judge("G step: G loss, relative difference", loss_rel(g_loss, g_loss_t), loss_tol)
    g_err, p_err = _grad_errors(tiny.G, tside.G)
    judge("G step: G gradients, worst relative (norm)", g_err, grad_tol)
    judge("G step: G weights after Adam, worst relative", p_err, grad_tol)

    # One more whole iteration with no re-synchronisation: informative (see the docstring).
    stats = tiny.step(real_t).as_floats()
    d2, g2 = tside.step(real_p)
    judge("next iteration, D loss (not re-synchronised)", abs(stats["d_loss"] - d2.item()) / d2.item(), None)
    judge("next iteration, G loss (not re-synchronised)", abs(stats["g_loss"] - g2.item()) / g2.item(), None)
    return failures


def run_check(args, torch):
    """One training iteration on both sides from identical weights, noise and images."""
    if torch is None:
        sys.exit("--check needs PyTorch")
    print(f"check at batch {args.batch[0]}: tinygan StackedGANTrainer vs the PyTorch recipe")
    failures = check_one_dtype(args, torch, "float32") + check_one_dtype(args, torch, "float64")
    if failures:
        sys.exit(f"check FAILED: {', '.join(failures)}")
    print("check passed: both sides compute the same training step")


def main(argv=None):
    args = parse_args(argv)
    set_threads_env(args.threads)
    os.environ["TINYGAN_KERNELS"] = args.kernels
    os.environ["CUPY_TF32"] = "1" if args.tf32 else "0"   # CuPy reads it at its first float32 matmul
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np
    torch = None if args.no_torch else import_torch()
    if torch is not None:
        torch.set_num_threads(args.threads or os.cpu_count())
        if args.backend == "cupy" and not torch.cuda.is_available():
            print("PyTorch has no CUDA here: timing tinygan only")
            torch = None
    if args.probe_memory:                       # child process of probe_cpu_memory
        run_memory_probe(args, torch)
        return
    from tinygan.backend import get_backend
    backend = get_backend(args.backend)
    print(f"tinygan on {backend.name} (numpy {np.__version__}"
          + (f", cupy {backend.xp.__version__}" if backend.name == "cupy" else "")
          + f"); pytorch {torch.__version__ if torch is not None else 'not used'}; "
          f"threads {args.threads or os.cpu_count()}; tf32 {'on' if args.tf32 else 'off'}; "
          f"filters {args.filters}; tinygan kernels {args.kernels}")
    if args.check:
        run_check(args, torch)
    elif args.layers:
        run_layers(args, torch)
    else:
        run_iterations(args, torch)


if __name__ == "__main__":
    main()
