"""The stacked GAN step: who learns when, what a frozen discriminator still does, exact resumption.

All on tiny DCGANs (base_filters=4, 64x64, half batches of 4) so each test takes well under a
second on a 2-core CPU; BatchNorm is present in both networks, which is what makes freezing subtle.
Comparisons are bit-for-bit (np.array_equal): nothing here may change a weight at all, and NumPy
on one machine is deterministic, so no tolerance is needed.
"""
import copy

import numpy as np
import pytest

from tinygan.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from tinygan.data import Minibatches
from tinygan.gan import GeneratorEMA, StackedGANTrainer
from tinygan.losses import binary_cross_entropy_with_logits
from tinygan.models import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import Adam
from tinygan.training import NonFiniteLossError, PendingStats
from tinygan.training.guard import first_non_finite

LATENT = 8


def make_trainer(seed=0):
    G = dcgan64_generator(LATENT, base_filters=4, seed=seed)
    D = dcgan64_discriminator(base_filters=4, seed=seed + 1)
    return StackedGANTrainer(G, D, Adam(2e-4, 0.5), Adam(2e-4, 0.5), latent_dim=LATENT, seed=seed + 2)


def real_batch(n=4, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, 64, 64)).astype(np.float32)


def params_of(model):
    return {k: p.copy() for k, p, _ in model.parameters()}


def buffers_of(model):
    return {f"{layer.name}.{k}": b.copy() for layer in model.layers for k, b in layer.buffers.items()}


def assert_same(before, after):
    assert before.keys() == after.keys()
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert not changed, f"changed: {changed}"


def test_generator_step_leaves_discriminator_weights_and_running_stats_unchanged():
    """G's step runs through D frozen: D's parameters AND its BatchNorm running averages stay
    bit-for-bit the same (frozen BatchNorm normalises with batch statistics but does not update
    its running estimates), while G's parameters do move."""
    tr = make_trainer()
    tr.train_step(real_batch())                     # so D's optimizer has moments that could act
    d_params, d_bufs, g_params = params_of(tr.D), buffers_of(tr.D), params_of(tr.G)
    tr.generator_step(8)
    assert_same(d_params, params_of(tr.D))
    assert_same(d_bufs, buffers_of(tr.D))
    assert any(not np.array_equal(g_params[k], p) for k, p in params_of(tr.G).items())
    assert tr.D.trainable                           # the trainer unfreezes D afterwards


def test_discriminator_step_leaves_generator_parameters_unchanged():
    """D's step changes no parameter of G (it only asks G for fakes), while D's parameters move."""
    tr = make_trainer()
    tr.train_step(real_batch())
    g_params, d_params = params_of(tr.G), params_of(tr.D)
    tr.discriminator_step(real_batch(seed=1))
    assert_same(g_params, params_of(tr.G))
    assert any(not np.array_equal(d_params[k], p) for k, p in params_of(tr.D).items())


def test_discriminator_step_steps_on_the_sum_of_the_real_and_the_fake_halves_gradients():
    """The D step is the recipe: zero D's gradients, backward the real half, backward the fake
    half (each with weight 0.5: D's loss is their mean), one step.  Replayed here by hand from
    copies; the gradients D keeps after its step are that sum, bit for bit."""
    tr = make_trainer()
    tr.train_step(real_batch())                     # non-zero gradients left over from a step
    G, D = copy.deepcopy(tr.G), copy.deepcopy(tr.D)
    noise = copy.deepcopy(tr.noise_rng)
    real = real_batch(seed=1)
    tr.discriminator_step(real)

    fake = G.forward(tr.backend.asarray(noise.standard_normal((4, LATENT))), training=True)
    halves = []
    for images, target in ((real, 1.0), (fake, 0.0)):
        D.zero_grad()
        _, grad = binary_cross_entropy_with_logits(D.forward(images, training=True), target)
        D.backward(0.5 * grad)
        halves.append([g.copy() for _, _, g in D.parameters()])
    for (key, _, g), g_real, g_fake in zip(tr.D.parameters(), *halves):
        np.testing.assert_array_equal(g, g_real + g_fake, err_msg=key)


def test_discriminator_step_moves_generator_batchnorm_running_stats():
    """What the trainer does, documented: D's step draws its fakes from G in *training* mode
    (batch statistics, as in the Keras recipe), so G's BatchNorm running averages -- buffers,
    not parameters -- are updated during D's step."""
    tr = make_trainer()
    g_bufs = buffers_of(tr.G)
    tr.discriminator_step(real_batch())
    moved = [k for k, b in buffers_of(tr.G).items() if not np.array_equal(g_bufs[k], b)]
    assert moved and all("running" in k for k in moved)


def test_frozen_discriminator_passes_nonzero_input_gradient_but_no_parameter_gradients():
    """With D.trainable = False, backward still returns dL/dx (how G learns through D), non-zero,
    while D's parameter gradients stay untouched (zero) and it offers no trainable parameters."""
    tr = make_trainer()
    D = tr.D
    D.zero_grad()
    D.trainable = False
    try:
        x = real_batch()
        logits = D.forward(x, training=True)
        dx = D.backward(np.ones_like(logits))
        assert dx.shape == x.shape
        assert np.abs(dx).max() > 0
        assert all(np.abs(g).max() == 0 for _, _, g in D.parameters())
        assert D.trainable_parameters() == []
    finally:
        D.trainable = True


def assert_tree_equal(a, b, path="state"):
    """Nested dicts equal: arrays bit for bit (same dtype and shape), everything else by ==."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: keys differ"
        for k in a:
            assert_tree_equal(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), f"{path} differs"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _run(trainer, batches, ema, steps):
    """(d_loss, g_loss) per step, host floats (converted once at the end, as the trainer advises)."""
    stats = []
    for _ in range(steps):
        stats.append(trainer.train_step(batches.next_batch()))
        ema.update(trainer.G)
    return [(float(s.d_loss), float(s.g_loss)) for s in stats]


def _new_run(data):
    tr = make_trainer()
    batches = Minibatches(data, 4, seed=3)        # 12 images / 4 = 3 batches per epoch
    ema = GeneratorEMA(tr.G, decay=0.9)
    return tr, batches, ema


def test_resumed_training_repeats_the_uninterrupted_steps_bit_for_bit(tmp_path):
    """Train 5 steps straight; separately train 2, checkpoint to disk, rebuild everything from
    scratch (other initial weights, fresh iterator), load, train 3 more.  Steps 3-5 give the same
    losses and the final G, D, EMA weights and optimizer moments are identical, bit for bit.
    The cut falls mid-epoch (2 of 3 batches) and the run crosses an epoch boundary afterwards,
    so the iterator's shuffle state must be restored too."""
    data = np.random.default_rng(5).integers(0, 256, (12, 3, 64, 64), dtype=np.uint8)

    tr_a, batches_a, ema_a = _new_run(data)
    losses_a = _run(tr_a, batches_a, ema_a, 5)

    tr_b, batches_b, ema_b = _new_run(data)
    _run(tr_b, batches_b, ema_b, 2)
    save_checkpoint(tmp_path / "last.npz", training_state(tr_b, batches=batches_b, ema=ema_b))

    tr_c = StackedGANTrainer(dcgan64_generator(LATENT, base_filters=4, seed=11),
                             dcgan64_discriminator(base_filters=4, seed=12),
                             Adam(2e-4, 0.5), Adam(2e-4, 0.5), latent_dim=LATENT, seed=99)
    batches_c = Minibatches(data, 4, seed=77)
    ema_c = GeneratorEMA(tr_c.G, decay=0.9)
    restore_training_state(load_checkpoint(tmp_path / "last.npz"), tr_c, batches=batches_c, ema=ema_c)
    losses_c = _run(tr_c, batches_c, ema_c, 3)

    assert losses_c == losses_a[2:]
    assert_tree_equal(tr_a.state_dict(), tr_c.state_dict())      # weights, moments, steps, RNG
    assert_tree_equal(ema_a.state_dict(), ema_c.state_dict())
    # Minibatches.state_dict() also reports the constructor's seed, for information only: loading
    # restores the RNG state itself and leaves that label alone, so it is left out here.
    drop_seed = lambda d: {k: v for k, v in d.items() if k != "seed"}         # noqa: E731
    assert_tree_equal(drop_seed(batches_a.state_dict()), drop_seed(batches_c.state_dict()))

def test_pending_stats_copy_a_window_at_once_and_name_the_first_non_finite_step():
    """PendingStats keeps step statistics as arrays and converts a window in one go; a NaN loss in
    the window is found at its exact step, and the error message names step and loss."""
    tr = make_trainer()
    pending = PendingStats()
    for step in (1, 2, 3):
        stats = tr.train_step(real_batch(seed=step))
        if step == 2:
            stats.g_loss = np.float32(np.nan)
        pending.add(step, 0, stats)
    rows = pending.flush()
    assert [r["step"] for r in rows] == [1, 2, 3] and len(pending) == 0
    bad = first_non_finite(rows)
    assert bad["step"] == 2
    with pytest.raises(NonFiniteLossError, match=r"non-finite g_loss at step 2 .*g_loss=nan"):
        raise NonFiniteLossError(bad["step"], bad["epoch"], bad)
