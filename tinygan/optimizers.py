"""First-order optimizers that update parameters in place.

    opt = Adam(lr=2e-4, beta1=0.5)
    model.zero_grad()
    model.backward(dloss)                       # adds into the gradients
    opt.step(model.trainable_parameters())      # [(key, param, grad), ...], key e.g. "conv1.W"

Per-parameter state (moments) lives in ``opt.state[key][slot]`` as arrays on the parameter's
backend, created at the first step that sees the key.  The step count ``iterations`` is one per
optimizer (as in Keras), not per parameter: a parameter first updated at step t is bias-corrected
with that t.  Hyperparameters (``lr``, ``beta1``, ...) are plain attributes, settable between steps.

``schedule`` (a :mod:`tinygan.schedules` object, optional) scales ``lr`` per step: the update with
index t (``iterations`` before it) uses ``current_lr = lr * schedule.factor(t)``.

``state_dict()`` is a flat ``{str: array or scalar}`` (npz-friendly): ``"optimizer"`` (class name),
``"iterations"``, every hyperparameter, ``"schedule"`` (the schedule's settings as JSON, "" for
none), optimizer-wide scalars (Nadam's ``m_schedule``) and one ``"{slot}/{key}"`` entry per state
array (e.g. ``"m/conv1.W"``), copied but left on its backend.
``load_state_dict`` restores all of it, hyperparameters included (set them afterwards to change them).
"""
from __future__ import annotations

import json
import math

import numpy as np

from . import kernels
from .backend import get_array_module, to_numpy
from .errors import CheckpointError, ShapeError
from .io import load_npz, save_npz_atomic
from .schedules import schedule_from_config


class Optimizer:
    """Base class: subclasses list their hyperparameters and per-parameter ``slots``, compute the
    step's scalar coefficients once in ``_begin_step`` and update one parameter in ``_update``."""

    hyperparams: tuple = ("lr",)
    slots: tuple = ()      # names of the per-parameter state arrays this optimizer may keep
    scalars: tuple = ()    # optimizer-wide state beyond ``iterations`` (saved in state_dict)

    def __init__(self, lr: float, schedule=None):
        self.lr = float(lr)                # the base learning rate
        self.schedule = schedule
        self.step_lr = self.lr             # the learning rate of the update being (or last) taken
        self.iterations = 0
        self.state: dict = {}      # key -> {slot: array}
        self._checked = set()      # keys whose state has been checked against (and moved to) their parameter

    # -- what subclasses provide -------------------------------------------------------------
    def _needed_slots(self) -> tuple:
        """Slots every parameter must have now (SGD without momentum needs none)."""
        return self.slots

    def _begin_step(self):
        """Scalar coefficients shared by every parameter in this step (``self.iterations`` is already t)."""
        return None

    def _update(self, p, g, state, coeffs):
        raise NotImplementedError

    # -- stepping ------------------------------------------------------------------------------
    @property
    def current_lr(self) -> float:
        """The learning rate of the next update: ``lr`` times the schedule's factor for it."""
        return self.lr if self.schedule is None else self.lr * self.schedule.factor(self.iterations)

    def step(self, params) -> None:
        """Apply one update to every ``(key, param, grad)`` in ``params``, in place.

        The gradients are read, not cleared: call the model's ``zero_grad()`` before the next
        backward."""
        params = list(params)
        # Check (and create) all state before touching anything, so an error leaves no half-step.
        for key, p, g in params:
            if key not in self._checked or not set(self._needed_slots()) <= self.state[key].keys():
                self._prepare(key, p, g)      # new key, or a slot needed since (SGD momentum set)
        self.step_lr = self.current_lr        # the learning rate _begin_step and _update use
        self.iterations += 1
        coeffs = self._begin_step()
        # self._update(p, g, state, coeffs) for each parameter (tinygan.kernels may split big ones
        # between worker threads)
        kernels.update(self, [(p, g, self.state[key]) for key, p, g in params], coeffs)

    def _prepare(self, key, p, g):
        if tuple(g.shape) != tuple(p.shape):
            raise ShapeError(f"{type(self).__name__}: gradient of '{key}' has shape {tuple(g.shape)}, "
                             f"the parameter has shape {tuple(p.shape)}")
        xp = get_array_module(p)
        state = self.state.setdefault(key, {})
        for slot, a in state.items():
            if tuple(a.shape) != tuple(p.shape):
                name = type(self).__name__
                raise CheckpointError(f"{name}: state '{slot}/{key}' has shape {tuple(a.shape)}, "
                                      f"but parameter '{key}' has shape {tuple(p.shape)}")
            if get_array_module(a) is not xp or a.dtype != p.dtype:
                state[slot] = xp.asarray(to_numpy(a) if xp is np else a, dtype=p.dtype)
        for slot in self._needed_slots():
            if slot not in state:
                state[slot] = xp.zeros_like(p)
        self._checked.add(key)

    # -- saving and restoring ------------------------------------------------------------------
    def state_dict(self) -> dict:
        d = {"optimizer": type(self).__name__, "iterations": self.iterations,
             "schedule": "" if self.schedule is None else json.dumps(self.schedule.to_config())}
        for name in self.hyperparams + self.scalars:
            d[name] = getattr(self, name)
        for key, state in self.state.items():
            for slot, a in state.items():
                d[f"{slot}/{key}"] = a.copy()
        return d

    def load_state_dict(self, d: dict, params=None) -> None:
        """Restore ``state_dict()`` output (or its npz round trip) exactly.

        With ``params`` (the ``(key, param, grad)`` list that will be stepped) every entry is checked
        against its parameter now, and a parameter without saved state is an error; otherwise each
        entry is checked at the first step that sees its key.  Mismatches raise CheckpointError naming
        the entry and both shapes.
        """
        name = type(self).__name__
        if "optimizer" in d and str(d["optimizer"]) != name:
            raise CheckpointError(f"{name}: state was saved by a {str(d['optimizer'])} optimizer")
        missing = [k for k in ("iterations",) + self.hyperparams + self.scalars if k not in d]
        if missing:
            raise CheckpointError(f"{name}: state is missing {missing}")
        new_state: dict = {}
        for k, v in d.items():
            if k in ("optimizer", "iterations", "schedule") + self.hyperparams + self.scalars:
                continue
            slot, sep, key = k.partition("/")
            if not sep or slot not in self.slots:
                raise CheckpointError(f"{name}: unexpected state entry '{k}'; expected scalars "
                                      f"{list(self.hyperparams + self.scalars)} and entries "
                                      f"'<slot>/<param key>' with slot in {list(self.slots)}")
            new_state.setdefault(key, {})[slot] = v

        # Hyperparameters first: they decide which slots are needed (SGD momentum).
        old = {n: getattr(self, n) for n in self.hyperparams}
        for n in self.hyperparams:
            setattr(self, n, type(old[n])(d[n].item() if hasattr(d[n], "item") else d[n]))
        try:
            for key, state in new_state.items():
                lacking = [s for s in self._needed_slots() if s not in state]
                if lacking:
                    raise CheckpointError(f"{name}: state for parameter '{key}' lacks {lacking}")
                ref = self.state.get(key, {})
                for slot, a in state.items():
                    if slot in ref and tuple(a.shape) != tuple(ref[slot].shape):
                        raise CheckpointError(f"{name}: state '{slot}/{key}' has shape {tuple(a.shape)}, "
                                              f"but this optimizer's parameter '{key}' has shape "
                                              f"{tuple(ref[slot].shape)}")
            if params is not None:
                params = list(params)
                keys = {key for key, _, _ in params}
                lacking = sorted(keys - set(new_state))
                if lacking and self._needed_slots():
                    raise CheckpointError(f"{name}: state has no entries for parameters {lacking}")
                for key, p, _ in params:
                    for slot, a in new_state.get(key, {}).items():
                        if tuple(a.shape) != tuple(p.shape):
                            raise CheckpointError(f"{name}: state '{slot}/{key}' has shape {tuple(a.shape)}, "
                                                  f"but parameter '{key}' has shape {tuple(p.shape)}")
        except CheckpointError:
            for n, v in old.items():
                setattr(self, n, v)
            raise

        self.iterations = int(d["iterations"])
        if "schedule" in d:                   # absent in checkpoints from before schedules: keep ours
            config = str(d["schedule"])
            self.schedule = schedule_from_config(json.loads(config)) if config else None
        for n in self.scalars:
            setattr(self, n, float(d[n]))
        # Copies, so that stepping never writes into the caller's dict.
        self.state = {key: {slot: a.copy() for slot, a in state.items()} for key, state in new_state.items()}
        self._checked = set()
        if params is not None:
            for key, p, g in params:
                self._prepare(key, p, g)

    def save(self, path) -> None:
        """``state_dict()`` to a .npz (host copies), written atomically."""
        save_npz_atomic(path, {k: to_numpy(v) for k, v in self.state_dict().items()})

    def load(self, path, params=None) -> None:
        """Restore what ``save`` wrote; ``params`` as in ``load_state_dict``."""
        self.load_state_dict(load_npz(path), params=params)

    def to(self, xp):
        """Move all state arrays onto the array module ``xp`` (numpy or cupy)."""
        for state in self.state.values():
            for slot, a in state.items():
                state[slot] = to_numpy(a) if xp is np else xp.asarray(a)
        return self

    def __repr__(self):
        hp = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.hyperparams)
        if self.schedule is not None:
            hp += f", schedule={self.schedule!r}"
        return f"{type(self).__name__}({hp})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, PyTorch formulation:

        buf = momentum * buf + g                      (buf starts at 0)
        p  -= lr * (g + momentum * buf)   if nesterov else   lr * buf

    For a constant lr this equals Keras' v = momentum * v - lr * g; p += v (v = -lr * buf).
    Without momentum no state is kept and the update is p -= lr * g.
    """

    hyperparams = ("lr", "momentum", "nesterov")
    slots = ("momentum",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, schedule=None):
        super().__init__(lr, schedule)
        if momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _needed_slots(self):
        return self.slots if self.momentum else ()

    def _begin_step(self):
        return self.step_lr

    def _update(self, p, g, state, coeffs):
        lr, mu = coeffs, self.momentum
        if not mu:
            p -= lr * g
            return
        buf = state["momentum"]
        buf *= mu
        buf += g
        if self.nesterov:
            tmp = buf * mu
            tmp += g
            tmp *= lr
            p -= tmp
        else:
            p -= lr * buf


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction, PyTorch's formula (eps after the square root):

        m = beta1 m + (1 - beta1) g            v = beta2 v + (1 - beta2) g^2
        p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Defaults are the DCGAN settings (lr 2e-4, beta1 0.5).
    """

    hyperparams = ("lr", "beta1", "beta2", "eps")
    slots = ("m", "v")

    def __init__(self, lr: float = 2e-4, beta1: float = 0.5, beta2: float = 0.999, eps: float = 1e-8,
                 schedule=None):
        super().__init__(lr, schedule)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def _begin_step(self):
        t = self.iterations
        step_size = self.step_lr / (1 - self.beta1 ** t)
        inv_sqrt_bc2 = 1 / math.sqrt(1 - self.beta2 ** t)
        return step_size, inv_sqrt_bc2

    def _update(self, p, g, state, coeffs):
        xp = get_array_module(p)
        step_size, inv_sqrt_bc2 = coeffs
        b1, b2 = self.beta1, self.beta2
        m, v = state["m"], state["v"]
        tmp = g * (1 - b1)              # the one temporary, reused below
        m *= b1
        m += tmp
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v *= b2
        v += tmp
        xp.sqrt(v, out=tmp)
        tmp *= inv_sqrt_bc2
        tmp += self.eps
        xp.divide(m, tmp, out=tmp)
        tmp *= step_size
        p -= tmp


class Nadam(Optimizer):
    """Nesterov Adam exactly as Keras 2 (``keras.optimizers.Nadam``) computes it (Dozat, 2016).

    With t = iterations (1 at the first step) and ``m_schedule`` an optimizer-wide product
    starting at 1 (it is state, saved by ``state_dict``):

        mu_t       = beta1 (1 - 0.5 * 0.96^(t * schedule_decay))      momentum warm-up schedule
        mu_t1      = beta1 (1 - 0.5 * 0.96^((t + 1) * schedule_decay))
        sched_new  = m_schedule * mu_t ;   sched_next = sched_new * mu_t1 ;   m_schedule <- sched_new
        g'         = g / (1 - sched_new)
        m          = beta1 m + (1 - beta1) g ;   m' = m / (1 - sched_next)
        v          = beta2 v + (1 - beta2) g^2 ; v' = v / (1 - beta2^t)
        m_bar      = (1 - mu_t) g' + mu_t1 m'
        p         -= lr * m_bar / (sqrt(v') + eps)

    Defaults are Keras' (lr 2e-3, eps 1e-7 = K.epsilon()).  The scalars are computed once per step
    in Python floats; only the per-element work touches the arrays.
    """

    hyperparams = ("lr", "beta1", "beta2", "eps", "schedule_decay")
    slots = ("m", "v")
    scalars = ("m_schedule",)

    def __init__(self, lr: float = 2e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7,
                 schedule_decay: float = 0.004, schedule=None):
        super().__init__(lr, schedule)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.schedule_decay = float(schedule_decay)
        self.m_schedule = 1.0

    def _begin_step(self):
        t, b1, sd = self.iterations, self.beta1, self.schedule_decay
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * sd))
        mu_t1 = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * sd))
        sched_new = self.m_schedule * mu_t
        sched_next = sched_new * mu_t1
        self.m_schedule = sched_new
        # lr * m_bar = c_g * g + c_m * m  (lr folded into both coefficients)
        c_g = self.step_lr * (1 - mu_t) / (1 - sched_new)
        c_m = self.step_lr * mu_t1 / (1 - sched_next)
        inv_sqrt_bc2 = 1 / math.sqrt(1 - self.beta2 ** t)
        return c_g, c_m, inv_sqrt_bc2

    def _update(self, p, g, state, coeffs):
        xp = get_array_module(p)
        c_g, c_m, inv_sqrt_bc2 = coeffs
        b1, b2 = self.beta1, self.beta2
        m, v = state["m"], state["v"]
        num = g * (1 - b1)              # two temporaries, reused below
        m *= b1
        m += num
        den = g * c_g
        xp.multiply(m, c_m, out=num)
        num += den                      # lr * m_bar
        xp.multiply(g, g, out=den)
        den *= 1 - b2
        v *= b2
        v += den
        xp.sqrt(v, out=den)
        den *= inv_sqrt_bc2
        den += self.eps
        num /= den
        p -= num


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "nadam": Nadam}
