"""tinygan.training.loggers: the CSV backend of the logger interface."""
from PIL import Image

from tinygan.training import CSVLogger, MetricsHistory, MetricsLogger

ROWS = [dict(step=s, epoch=0, d_loss=0.7, g_loss=0.9, d_acc_real=0.5, d_acc_fake=0.5, d_lr=1e-3, g_lr=2e-3)
        for s in (1, 2)]


def test_the_csv_logger_writes_metrics_eval_and_the_loss_plot_from_its_history(tmp_path):
    history = MetricsHistory()
    logger = CSVLogger(tmp_path, history, title="test")
    logger.log_steps(ROWS, images_per_sec=50.0)
    logger.log_eval(2, 0, {"holdout_real_acc": 1.0, "generated_acc": 0.5})
    logger.write()
    assert len(history) == 2 and history.evals == [(2.0, 0.0, 1.0, 0.5)]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    assert rows == [f"{s},1,0.7,0.9,0.5,0.5,0.001,0.002,50" for s in (1, 2)]
    assert (tmp_path / "eval.csv").read_text().splitlines()[1:] == ["2,1,1,0.5"]
    assert Image.open(tmp_path / "losses.png").format == "PNG"


def test_the_base_logger_accepts_everything_and_writes_nothing(tmp_path):
    """A backend overrides what it needs (TensorBoard: log_steps and log_eval)."""
    logger = MetricsLogger()
    logger.log_steps(ROWS, 1.0)
    logger.log_eval(2, 0, {"holdout_real_acc": 1.0, "generated_acc": 0.5})
    logger.write()
    assert list(tmp_path.iterdir()) == []


def test_the_loss_plot_gains_a_learning_rate_panel_when_a_schedule_moved_the_rate(tmp_path):
    """7 inches at 100 dpi without the panel, 8.5 with it."""
    def plot_height(g_lrs):
        history = MetricsHistory()
        history.add_steps([{**r, "g_lr": lr} for r, lr in zip(ROWS, g_lrs)], images_per_sec=50.0)
        CSVLogger(tmp_path, history).write()
        return Image.open(tmp_path / "losses.png").height
    assert plot_height([2e-3, 2e-3]) == 700
    assert plot_height([2e-3, 1e-3]) == 850
