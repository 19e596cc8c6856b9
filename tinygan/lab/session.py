"""One training run of the lab: lesson 8's dense GAN on a 2-D distribution, stepped on request,
and everything the page draws, computed from it as plain lists (JSON-ready).

The training is tinygan's own: ``dense_generator``/``dense_discriminator`` and
``StackedGANTrainer.train_step``, as in lessons/08_first_gan.py.  "Freeze D" is composed from the
trainer's public pieces: only ``generator_step`` runs, and D's loss is measured without a step.
"""
from __future__ import annotations

import math

import numpy as np

from ..gan import StackedGANTrainer
from ..layers.activations import stable_sigmoid
from ..losses import binary_cross_entropy_with_logits
from ..models import dense_discriminator, dense_generator
from ..optimizers import SGD, Adam, Nadam
from . import datasets
from .settings import DEFAULTS, LIVE, check_body, check_settings

LATENT = 2            # 2-D noise, so G's mapping of a noise grid can be drawn
HALF_BATCH = 64       # lesson 8: 64 real and 64 generated points for D, 128 for G
N_SHOWN = 1000        # real and generated points drawn (the generated ones from fixed noise)
HEAT_N = 40           # D's output on a HEAT_N x HEAT_N grid of cell centres (the page smooths it)
NOISE_LINES, LINE_POINTS, NOISE_EXTENT = 11, 25, 2.0   # G's mapping: grid lines over [-2, 2]^2 in z
DECIMALS = 2          # 0.01 on a plane 6 wide drawn 300 pixels wide: half a pixel


def _noise_grid() -> np.ndarray:
    """(2 * NOISE_LINES, LINE_POINTS, 2): lines of constant z2, then lines of constant z1."""
    u = np.linspace(-NOISE_EXTENT, NOISE_EXTENT, LINE_POINTS)
    v = np.linspace(-NOISE_EXTENT, NOISE_EXTENT, NOISE_LINES)
    rows = np.stack(np.broadcast_arrays(u[None, :], v[:, None]), axis=-1)
    return np.concatenate([rows, rows[..., ::-1]]).astype(np.float32)


def _plane() -> np.ndarray:
    """(HEAT_N**2, 2) cell centres, row by row from the bottom (y = -EXTENT) up."""
    centres = np.linspace(-datasets.EXTENT, datasets.EXTENT, 2 * HEAT_N + 1)[1::2]
    gx, gy = np.meshgrid(centres, centres)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


NOISE_GRID, PLANE = _noise_grid(), _plane()


def make_optimizer(kind: str, lr: float):
    """SGD without momentum, or Adam/Nadam with beta1 = 0.5 (the GAN setting of lesson 8)."""
    if kind == "sgd":
        return SGD(lr)
    return {"adam": Adam, "nadam": Nadam}[kind](lr, beta1=0.5)


def _rounded(a, decimals: int = 3):
    """The array's values rounded, as (nested) lists, with None for NaN and infinities (not JSON)."""
    a = np.round(np.asarray(a, dtype=np.float64), decimals)
    return a.tolist() if np.isfinite(a).all() else _none_for_nonfinite(a.tolist())


def _none_for_nonfinite(x):
    if isinstance(x, list):
        return [_none_for_nonfinite(v) for v in x]
    return x if math.isfinite(x) else None


class History:
    """Per-step values, at most ``2 * keep`` rows: when full, neighbouring rows are averaged in
    pairs and from then on each row averages twice as many steps, so a long run's curve stays
    the same size and keeps its shape."""

    def __init__(self, names, keep: int = 300):
        self.names, self.keep = tuple(names), keep
        self.rows: list = []              # [last step, mean of each value]
        self.stride, self._sum, self._count = 1, np.zeros(len(self.names)), 0

    def add(self, step: int, *values: float) -> None:
        self._sum += values
        self._count += 1
        if self._count < self.stride:
            return
        self.rows.append([step, *(self._sum / self._count)])
        self._sum[:], self._count = 0, 0
        if len(self.rows) >= 2 * self.keep:
            pairs = zip(self.rows[::2], self.rows[1::2])
            self.rows = [[b[0], *((np.array(a[1:]) + b[1:]) / 2)] for a, b in pairs]
            self.stride *= 2

    @property
    def last_step(self) -> int | None:
        return self.rows[-1][0] if self.rows else None

    def as_dict(self, decimals: int = 4) -> dict:
        cols = np.array(self.rows, dtype=np.float64).reshape(-1, 1 + len(self.names))
        return {"step": cols[:, 0].astype(int).tolist(),
                **{n: _rounded(cols[:, i + 1], decimals) for i, n in enumerate(self.names)}}


class LabSession:
    """``reset(changes)`` starts a run, ``update(changes)`` changes a live setting, ``train(n)``
    takes n training steps, ``state()`` is what the page draws.  Not thread-safe: the server
    holds a lock around every call."""

    def __init__(self, settings: dict | None = None):
        self.settings = dict(DEFAULTS)
        self.reset(settings or {})

    # -- settings ------------------------------------------------------------------------------
    def reset(self, changes: dict) -> None:
        """Start again from ``seed`` with the current settings updated by ``changes``."""
        s = check_settings({**self.settings, **changes})
        self.shape = datasets.make_shape(s["dataset"], s["points"])
        hidden = (s["width"], s["width"])
        self.G = dense_generator(LATENT, (2,), hidden=hidden, batchnorm=False, tanh_output=False,
                                 seed=s["seed"])
        self.D = dense_discriminator((2,), hidden=hidden, seed=s["seed"] + 1)
        self.trainer = StackedGANTrainer(self.G, self.D, make_optimizer(s["optimizer"], s["lr_g"]),
                                         make_optimizer(s["optimizer"], s["lr_d"]), latent_dim=LATENT,
                                         g_loss=s["g_loss"], seed=s["seed"])
        self.data_rng = np.random.default_rng(s["seed"] + 100)
        z_rng = np.random.default_rng(s["seed"] + 200)
        self.z_shown = z_rng.standard_normal((N_SHOWN, LATENT)).astype(np.float32)
        self.real_shown = self.shape.sample(np.random.default_rng(s["seed"] + 300), N_SHOWN)
        with np.errstate(all="ignore"):
            for _ in range(s["d_head_start"]):
                self.trainer.discriminator_step(self.shape.sample(self.data_rng, HALF_BATCH))
        self.settings = s
        self.steps = 0
        self.losses = History(("d_loss", "g_loss"))
        self.modes = History(("covered",))
        self.last = dict.fromkeys(("d_loss", "g_loss", "d_acc_real", "d_acc_fake", "g_grad_norm"))
        self.diverged = None

    def update(self, changes: dict) -> None:
        """Change live settings (learning rates, optimizer, G's loss, freezing D) between steps.
        A new optimizer kind starts with fresh moments; a new learning rate keeps them."""
        changes = check_body(changes, LIVE)
        s = {**self.settings, **changes}
        t = self.trainer
        if s["optimizer"] != self.settings["optimizer"]:
            t.g_opt = make_optimizer(s["optimizer"], s["lr_g"])
            t.d_opt = make_optimizer(s["optimizer"], s["lr_d"])
        t.g_opt.lr, t.d_opt.lr = s["lr_g"], s["lr_d"]
        t.g_loss_kind = s["g_loss"]
        self.settings = s

    # -- training ------------------------------------------------------------------------------
    def _measure_d(self, real):
        """D's loss and accuracies on ``real`` and as many generated points, without a step."""
        fake = self.trainer.generate(self.trainer.sample_noise(len(real)))
        logits_real, logits_fake = self.D.forward(real, training=False), self.D.forward(fake, training=False)
        loss_real, _ = binary_cross_entropy_with_logits(logits_real, 1.0)
        loss_fake, _ = binary_cross_entropy_with_logits(logits_fake, 0.0)
        return 0.5 * (loss_real + loss_fake), (logits_real > 0).mean(), (logits_fake < 0).mean()

    def train(self, n: int) -> None:
        """n training steps; stops early (and for good, until a reset) when a loss is not finite."""
        with np.errstate(all="ignore"):         # overflow is reported as divergence, not warned
            self._train(n)

    def _train(self, n: int) -> None:
        for _ in range(n):
            if self.diverged:
                return
            real = self.shape.sample(self.data_rng, HALF_BATCH)
            if self.settings["freeze_d"]:
                d_loss, acc_real, acc_fake = self._measure_d(real)
                g_loss = self.trainer.generator_step(2 * HALF_BATCH)
            else:
                stats = self.trainer.train_step(real)
                d_loss, g_loss = stats.d_loss, stats.g_loss
                acc_real, acc_fake = stats.d_acc_real, stats.d_acc_fake
            self.steps += 1
            d_loss, g_loss = float(d_loss), float(g_loss)
            if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
                self.diverged = (f"training diverged at step {self.steps} (D loss {d_loss}, "
                                 f"G loss {g_loss}): lower the learning rates and reset")
                return
            self.losses.add(self.steps, d_loss, g_loss)
            self.last.update(d_loss=d_loss, g_loss=g_loss, d_acc_real=float(acc_real),
                             d_acc_fake=float(acc_fake))
        if n:
            grads = [g for _, _, g in self.G.trainable_parameters()]
            self.last["g_grad_norm"] = float(np.sqrt(sum(float((g * g).sum()) for g in grads)))

    # -- what the page draws -------------------------------------------------------------------
    def state(self) -> dict:
        with np.errstate(all="ignore"):
            return self._state()

    def _state(self) -> dict:
        s = self.settings
        # one forward pass of G for the shown points and the noise grid, one of D for the points
        # and the plane: a few large matrix products are cheaper than many small ones
        g_out = self.G.forward(np.concatenate([self.z_shown, NOISE_GRID.reshape(-1, LATENT)]), training=False)
        fake, mapped = g_out[:N_SHOWN], g_out[N_SHOWN:].reshape(NOISE_GRID.shape)
        d_out = stable_sigmoid(self.D.forward(np.concatenate([fake, PLANE]), training=False))
        d_of_fake, heat = d_out[:N_SHOWN], d_out[N_SHOWN:]

        cov = datasets.coverage(fake, self.shape)
        if self.modes.last_step != self.steps:
            self.modes.add(self.steps, cov.covered)
        freeze = s["freeze_d"]
        return {
            "step": self.steps,
            "settings": s,
            "diverged": self.diverged,
            "real": _rounded(self.real_shown, DECIMALS),
            "fake": _rounded(fake, DECIMALS),
            "heat": {"n": HEAT_N, "extent": datasets.EXTENT, "values": _rounded(heat.ravel(), DECIMALS)},
            "mapping": {"lines": _rounded(mapped, DECIMALS), "noise_extent": NOISE_EXTENT},
            "losses": self.losses.as_dict(),
            "modes": {"covered": cov.covered, "total": cov.n_modes, "on_data": round(cov.on_data, 4),
                      "per_mode": _rounded(cov.per_mode, 4), "history": self.modes.as_dict(0)},
            "readout": {**{k: (round(v, 5) if v is not None and math.isfinite(v) else None)
                           for k, v in self.last.items()},
                        "d_of_fake": _rounded(d_of_fake.mean(), 4)},
            "computed_by": {
                "points": f"real: tinygan.lab.datasets.{s['dataset']}().sample; generated: G.forward(z) "
                          "with G = tinygan.models.dense_generator",
                "heat": "stable_sigmoid(D.forward(plane)) with D = tinygan.models.dense_discriminator",
                "mapping": "G.forward(noise grid): the same dense_generator, applied to grid lines in z",
                "losses": ("StackedGANTrainer.generator_step; D frozen, its loss only measured "
                           "(binary_cross_entropy_with_logits)" if freeze else
                           "StackedGANTrainer.train_step -> StepStats (binary_cross_entropy_with_logits)"),
                "modes": "tinygan.lab.datasets.coverage: share of G's points within 3 std of each mode",
            },
        }


def use_one_core() -> None:
    """One BLAS thread and no tinygan worker threads, for the whole process: the lab's matrices
    are small (128 x 128), and there a second thread costs more in hand-offs than it saves --
    on a busy 2-core machine threads that wait for each other made a step 25 times slower."""
    from threadpoolctl import threadpool_limits

    from ..kernels import set_num_threads
    threadpool_limits(1, user_api="blas")
    set_num_threads(1)
