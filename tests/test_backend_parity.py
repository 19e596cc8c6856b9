"""Backend parity: the same weights and inputs give the same outputs and gradients everywhere.

Each case is a function ``run(backend) -> {name: array}`` that builds its layer (or model) from
fixed seeds on ``backend``, runs it and returns every output and gradient.  ``compare`` runs a
case on a *reference* and a *candidate* backend and measures, for every returned array, the
norm-wise relative difference ||cand - ref|| / ||ref||.

* With a GPU: reference NumPy float32, candidate CuPy float32 -- the comparison the GPU path
  needs (different kernels, different summation orders, and CuPy runs the layers' own
  whole-batch code where NumPy runs the fast passes of tinygan.kernels).
* Everywhere: reference NumPy float64, candidate NumPy float32.  That runs the very same
  comparison code on the CPU (so it cannot rot unseen), bounds float32 rounding with the same
  tolerance, and test_planted_difference_is_caught checks that it fails when it should.

Tolerance 1e-4 (norm-wise, float32): float32 rounding is ~1e-7 per operation; single layers
measure <= 4e-7 and the deepest case (a DCGAN step: 8 convolutions, 7 BatchNorms, Adam) <= 2e-6
against float64, so 1e-4 leaves a wide margin, while a wrong index, a missing term or a
dropped chunk gives errors of order 1.  (Norm-wise, not per element: an entry that is a sum of
nearly cancelling terms, e.g. a BatchNorm beta gradient, carries a larger *relative* rounding
error without anything being wrong.)
"""
from __future__ import annotations

import numpy as np
import pytest
from layer_cases import LAYER_CASES, layer_case

from tinygan.backend import cupy_available, get_backend, to_numpy
from tinygan.gan.stacked import StackedGANTrainer
from tinygan.losses import binary_cross_entropy, binary_cross_entropy_with_logits, mean_squared_error
from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import SGD, Adam, Nadam

TOL = 1e-4

requires_gpu = pytest.mark.skipif(not cupy_available(), reason="CuPy with a GPU is not available here")


# -- the comparison ---------------------------------------------------------------------------------
def relative_differences(ref: dict, cand: dict) -> dict:
    """{name: ||cand - ref|| / ||ref||} (float64 on the host); names and shapes must match."""
    assert ref.keys() == cand.keys(), (sorted(ref), sorted(cand))
    out = {}
    for name in ref:
        a, b = to_numpy(ref[name]).astype(np.float64), to_numpy(cand[name]).astype(np.float64)
        assert a.shape == b.shape, (name, a.shape, b.shape)
        out[name] = float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-30))
    return out


def compare(run, reference, candidate, tol=TOL):
    """Run ``run`` on both backends and assert every returned array agrees to ``tol``."""
    ref, cand = run(reference), run(candidate)
    for name, value in cand.items():
        expected_dtype = candidate.dtype if np.issubdtype(to_numpy(value).dtype, np.floating) else None
        assert expected_dtype is None or value.dtype == expected_dtype, \
            f"{name} is {value.dtype} on {candidate}, expected {expected_dtype}"
    errors = relative_differences(ref, cand)
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"{candidate} differs from {reference} beyond {tol:g}: {bad}"
    return errors


PAIRS = [pytest.param((("numpy", np.float64), ("numpy", np.float32)), id="numpy64-vs-numpy32"),
         pytest.param((("numpy", np.float32), ("cupy", np.float32)), id="numpy32-vs-cupy32",
                      marks=[requires_gpu, pytest.mark.cupy]),
         pytest.param((("numpy", np.float32), ("cupy-standin", np.float32)), id="numpy32-vs-cupystandin32",
                      marks=pytest.mark.cupy)]


@pytest.fixture(params=PAIRS)
def pair(request):
    (ra, da), (ca, dc) = request.param
    if ca == "cupy-standin":               # CuPy's API and rules on NumPy (tests/cupy_standin)
        request.getfixturevalue("cupy_standin")
        ca = "cupy"
    return get_backend(ra, dtype=da), get_backend(ca, dtype=dc)


# -- single layers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_outputs_and_gradients_agree_across_backends(pair, case):
    make, shape, training = LAYER_CASES[case]
    compare(layer_case(make, shape, training), *pair)


@pytest.mark.parametrize("loss", [binary_cross_entropy_with_logits, binary_cross_entropy, mean_squared_error])
def test_losses_and_their_gradients_agree_across_backends(pair, loss):
    def run(backend):
        rng = np.random.default_rng(2)
        pred = backend.asarray(rng.uniform(0.05, 0.95, (8, 1)))
        target = backend.asarray(rng.integers(0, 2, (8, 1)))
        value, grad = loss(pred, target)
        return {"loss": value, "grad": grad}
    compare(run, *pair)


@pytest.mark.parametrize("make", [lambda: Adam(1e-2, 0.5), lambda: Nadam(), lambda: SGD(0.1, 0.9, True)],
                         ids=["adam", "nadam", "sgd_nesterov"])
def test_optimizer_steps_agree_across_backends(pair, make):
    def run(backend):
        rng = np.random.default_rng(3)
        p = backend.asarray(rng.standard_normal((4, 5)))
        g = backend.xp.zeros_like(p)
        opt = make()
        for _ in range(3):
            g[...] = backend.asarray(rng.standard_normal((4, 5)))
            opt.step([("w", p, g)])
        return {"p": p, **{f"state {slot}": a for slot, a in opt.state["w"].items()}}
    compare(run, *pair)


# -- a whole DCGAN training step ------------------------------------------------------------------
def dcgan_step(backend, filters=4, latent=8, batch=4):
    """One StackedGANTrainer.train_step of the 64x64 DCGAN (tiny filters) from fixed seeds: D's
    loss, G's loss, and every weight and gradient of G and D afterwards."""
    G = dcgan64_generator(latent, filters, seed=0).to(backend)
    D = dcgan64_discriminator(filters, seed=1).to(backend)
    trainer = StackedGANTrainer(G, D, Adam(2e-4, 0.5), Adam(2e-4, 0.5), latent_dim=latent,
                                backend=backend, seed=0)
    real = backend.asarray(np.random.default_rng(4).uniform(-1, 1, (batch // 2, 3, 64, 64)))
    stats = trainer.train_step(real)
    out = {"d_loss": stats.d_loss, "g_loss": stats.g_loss,
           "fake": trainer.generate(backend.asarray(np.random.default_rng(5).standard_normal((2, latent))))}
    for model in (G, D):
        for key, p, g in model.parameters():
            out[key] = p
            out["grad " + key] = g
        for layer in model.layers:
            for k, b in layer.buffers.items():
                out[f"{layer.name}.{k}"] = b
    return out


def test_one_dcgan_training_step_agrees_across_backends(pair):
    errors = compare(dcgan_step, *pair)
    assert {"d_loss", "g_loss", "grad g_deconv1.W", "grad d_conv1.W"} <= errors.keys()


# -- the comparison itself ------------------------------------------------------------------------
def test_planted_difference_is_caught():
    """The comparison must fail when one gradient of the candidate is wrong (here: its sign)."""
    numpy64, numpy32 = get_backend("numpy", dtype=np.float64), get_backend("numpy", dtype=np.float32)
    run = layer_case(*LAYER_CASES["conv_k4s2p1"][:2])

    def broken_on_candidate(backend):
        out = run(backend)
        if backend is numpy32:
            out["dW"] = -out["dW"]
        return out

    compare(run, numpy64, numpy32)
    with pytest.raises(AssertionError, match="dW"):
        compare(broken_on_candidate, numpy64, numpy32)
