"""tinygan.training.checkpoints: the checkpoint a script writes is always the last good state.

States are small hand-made dicts in the layout of tinygan.checkpoint.training_state (a "trainer"
section of weights and moments, "ema", "step"): the format itself is tested in test_checkpoint.py.
"""
import numpy as np
import pytest

from tinygan.checkpoint import load_checkpoint
from tinygan.training import Checkpointer, NonFiniteWeightsError


def state(step, w=1.0):
    return {"trainer": {"G": {"g_dense.W": np.full((2, 3), w, np.float32)},
                        "g_opt": {"m": np.zeros(3, np.float32), "iterations": step}},
            "ema": None, "epoch": 0, "step": step, "config": {"lr": 2e-4}}


def test_save_writes_the_state_and_step_on_disk_reads_its_step(tmp_path):
    ckpt = Checkpointer(tmp_path / "last.npz")
    assert ckpt.step_on_disk() is None
    ckpt.save(state(3))
    assert ckpt.step_on_disk() == 3
    np.testing.assert_array_equal(ckpt.load()["trainer"]["G"]["g_dense.W"], np.ones((2, 3), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_refused_and_the_last_good_checkpoint_stays(bad, tmp_path):
    ckpt = Checkpointer(tmp_path / "last.npz")
    ckpt.save(state(3))
    before = ckpt.path.read_bytes()
    with pytest.raises(NonFiniteWeightsError, match=r"trainer/G/g_dense\.W at step 4; not overwriting"):
        ckpt.save(state(4, w=bad))
    assert ckpt.path.read_bytes() == before


def test_keep_epochs_keeps_a_copy_per_completed_epoch(tmp_path):
    ckpt = Checkpointer(tmp_path / "last.npz", keep_epochs=True)
    ckpt.save(state(2))                      # mid-epoch: no copy
    ckpt.save(state(7), epoch_end=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_001.npz", "last.npz"]
    assert load_checkpoint(tmp_path / "epoch_001.npz")["step"] == 7


def test_a_rank_that_is_not_the_writer_checks_the_weights_but_writes_nothing(tmp_path):
    ckpt = Checkpointer(tmp_path / "last.npz", writer=False)
    assert ckpt.save(state(3)) is None and not ckpt.path.exists()
    with pytest.raises(NonFiniteWeightsError):       # every rank stops on a NaN, not only rank 0
        ckpt.save(state(4, w=np.nan))
