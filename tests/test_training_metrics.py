"""tinygan.training.metrics: the run's rows, kept in the checkpoint and written as CSV."""
import numpy as np
import pytest

from tinygan.training import MetricsHistory


def history(n=3):
    h = MetricsHistory()
    h.add_steps([dict(step=s, epoch=s // 3, d_loss=0.5 + s, g_loss=1.0, d_acc_real=0.75, d_acc_fake=0.25,
                      d_lr=2e-4, g_lr=1e-4 / s) for s in range(1, n + 1)], images_per_sec=128.0)
    h.add_eval(3, 0, 0.9, 0.4)
    return h


def test_a_history_round_trips_through_its_state_dict():
    h = history()
    again = MetricsHistory()
    again.load_state_dict(h.state_dict())
    assert again.steps == h.steps and again.evals == h.evals
    np.testing.assert_array_equal(again.column("d_loss"), [1.5, 2.5, 3.5])


def test_the_csv_files_hold_a_row_per_step_and_per_evaluation_with_epochs_from_1(tmp_path):
    h = history()
    h.write_csv(tmp_path / "metrics.csv")
    h.write_eval_csv(tmp_path / "eval.csv")
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "step,epoch,d_loss,g_loss,d_acc_real,d_acc_fake,d_lr,g_lr,images_per_sec",
        "1,1,1.5,1,0.75,0.25,0.0002,0.0001,128", "2,1,2.5,1,0.75,0.25,0.0002,5e-05,128",
        "3,2,3.5,1,0.75,0.25,0.0002,3.33333e-05,128"]
    assert (tmp_path / "eval.csv").read_text().splitlines() == [
        "step,epoch,holdout_real_acc,generated_acc", "3,1,0.9,0.4"]


def test_a_history_saved_before_the_learning_rates_were_logged_loads_them_as_nan():
    state = history().state_dict()
    lr_at = [state["step_columns"].index(c) for c in ("d_lr", "g_lr")]
    state["step_columns"] = [c for c in state["step_columns"] if c not in ("d_lr", "g_lr")]
    state["steps"] = np.delete(state["steps"], lr_at, axis=1)
    old = MetricsHistory()
    old.load_state_dict(state)
    assert np.isnan(old.column("g_lr")).all()
    np.testing.assert_array_equal(old.column("d_loss"), [1.5, 2.5, 3.5])


def test_a_history_with_other_columns_is_refused():
    state = history().state_dict()
    state["step_columns"] = ["step", "loss"]
    with pytest.raises(ValueError, match="metrics history has columns"):
        MetricsHistory().load_state_dict(state)
