"""tinygan.training.loggers: the CSV backend of the logger interface."""
from PIL import Image

from tinygan.training import CSVLogger, MetricsHistory, MetricsLogger

ROWS = [dict(step=s, epoch=0, d_loss=0.7, g_loss=0.9, d_acc_real=0.5, d_acc_fake=0.5) for s in (1, 2)]


def test_the_csv_logger_writes_metrics_eval_and_the_loss_plot_from_its_history(tmp_path):
    history = MetricsHistory()
    logger = CSVLogger(tmp_path, history, title="test")
    logger.log_steps(ROWS, images_per_sec=50.0)
    logger.log_eval(2, 0, {"holdout_real_acc": 1.0, "generated_acc": 0.5})
    logger.write()
    assert len(history) == 2 and history.evals == [(2.0, 0.0, 1.0, 0.5)]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    assert rows == [f"{s},1,0.7,0.9,0.5,0.5,50" for s in (1, 2)]
    assert (tmp_path / "eval.csv").read_text().splitlines()[1:] == ["2,1,1,0.5"]
    assert Image.open(tmp_path / "losses.png").format == "PNG"


def test_the_base_logger_accepts_everything_and_writes_nothing(tmp_path):
    """A backend overrides what it needs (TensorBoard: log_steps and log_eval)."""
    logger = MetricsLogger()
    logger.log_steps(ROWS, 1.0)
    logger.log_eval(2, 0, {"holdout_real_acc": 1.0, "generated_acc": 0.5})
    logger.write()
    assert list(tmp_path.iterdir()) == []
