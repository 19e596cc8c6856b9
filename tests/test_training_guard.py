"""tinygan.training.guard: finding NaN/inf losses and weights, and the message that stops the run."""
import numpy as np
import pytest

from tinygan.training import Checkpointer, NonFiniteLossError, TrainingDiverged
from tinygan.training.guard import check_losses, first_non_finite, non_finite_arrays

ROW = {"epoch": 0, "d_acc_real": 0.5, "d_acc_fake": 0.5}


def test_check_losses_names_the_first_step_with_a_non_finite_loss():
    rows = [dict(ROW, step=1, d_loss=0.7, g_loss=0.8), dict(ROW, step=2, d_loss=0.7, g_loss=np.inf),
            dict(ROW, step=3, d_loss=np.nan, g_loss=0.8)]
    check_losses(rows[:1])
    with pytest.raises(NonFiniteLossError, match=r"g_loss at step 2 \(epoch 1\): d_loss=0\.7, g_loss=inf"):
        check_losses(rows)
    assert first_non_finite(rows[2:])["step"] == 3


def test_non_finite_arrays_lists_the_paths_of_float_arrays_with_nan_or_inf():
    tree = {"G": {"w": np.ones(3, np.float32), "b": np.array([1.0, np.nan])},
            "opt": [np.array([np.inf]), np.arange(3)], "steps": 5, "name": "x"}
    assert non_finite_arrays(tree) == ["G/b", "opt/0"]


def test_the_diverged_message_names_the_bad_step_and_the_checkpoint_left_untouched(tmp_path):
    cause = NonFiniteLossError(9, 1, {"d_loss": np.nan, "g_loss": 0.5})
    nothing = TrainingDiverged(cause, Checkpointer(tmp_path / "last.npz"), hint="Try a lower --lr.")
    assert str(nothing) == ("training diverged: non-finite d_loss at step 9 (epoch 2): d_loss=nan, "
                            "g_loss=0.5. Stopping; no checkpoint was written. Try a lower --lr.")
    ckpt = Checkpointer(tmp_path / "last.npz")
    ckpt.save({"trainer": {}, "ema": None, "step": 8})
    assert f"the last good checkpoint {ckpt.path} (step 8) is untouched" in str(TrainingDiverged(cause, ckpt))
    assert TrainingDiverged.exit_code == 3
