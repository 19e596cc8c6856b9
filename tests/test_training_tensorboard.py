"""TensorBoard logging: what the event files hold, read back record by record."""
import struct
import sys

import numpy as np
import pytest

from tinygan.errors import ConfigError

tensorboardX = pytest.importorskip("tensorboardX", reason='the tensorboard extra is not installed '
                                   '(pip install -e ".[tensorboard]")')
from tensorboardX.proto.event_pb2 import Event  # noqa: E402

from tinygan.training.tensorboard import TensorBoardLogger  # noqa: E402


def read_events(folder):
    """Every Event in the folder's event files.  An event file is a sequence of TFRecords:
    uint64 length, uint32 CRC of the length, the serialized Event, uint32 CRC of the data."""
    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            events.append(Event.FromString(data[pos + 12:pos + 12 + length]))
            pos += 12 + length + 4
    return events


def scalars(events):
    """{tag: [(step, value), ...]} of the scalar summaries."""
    out = {}
    for e in events:
        for v in e.summary.value:
            if v.HasField("simple_value"):
                out.setdefault(v.tag, []).append((e.step, v.simple_value))
    return out


def rows(steps):
    return [{"step": s, "epoch": 0, "d_loss": 0.5 + s, "g_loss": 2.0 - s, "d_acc_real": 0.75,
             "d_acc_fake": 0.25, "d_lr": 2e-4, "g_lr": 1e-4} for s in steps]


def test_step_rows_become_scalar_curves_by_step(tmp_path):
    log = TensorBoardLogger(tmp_path)
    log.log_steps(rows([1, 2]), images_per_sec=64.0)
    log.close()
    curves = scalars(read_events(tmp_path))
    # simple_value is a float32: 0.5 + s and 2 - s are exact in float32, the rates to 1e-7 relative.
    assert curves["loss/D"] == [(1, 1.5), (2, 2.5)]
    assert curves["loss/G"] == [(1, 1.0), (2, 0.0)]
    assert curves["accuracy/D_on_generated"] == [(1, 0.25), (2, 0.25)]
    assert curves["learning_rate/D"][0][1] == pytest.approx(2e-4, rel=1e-7)
    assert curves["speed/images_per_sec"] == [(2, 64.0)]


def test_evaluations_are_logged_at_their_step(tmp_path):
    log = TensorBoardLogger(tmp_path)
    log.log_eval(40, 1, {"holdout_real_acc": 0.625, "generated_acc": 0.875})
    log.close()
    curves = scalars(read_events(tmp_path))
    assert curves["eval/D_on_held_out_real"] == [(40, 0.625)]
    assert curves["eval/D_on_generated"] == [(40, 0.875)]


def test_a_sample_grid_is_stored_as_a_png_image(tmp_path):
    from io import BytesIO

    from PIL import Image
    grid = np.zeros((6, 10, 3), np.uint8)
    grid[:, :5, 0] = 255                       # left half red
    log = TensorBoardLogger(tmp_path)
    log.log_image("samples", grid, 7)
    log.close()
    images = [(e.step, v.image) for e in read_events(tmp_path) for v in e.summary.value
              if v.HasField("image")]
    assert len(images) == 1 and images[0][0] == 7
    decoded = np.asarray(Image.open(BytesIO(images[0][1].encoded_image_string)).convert("RGB"))
    assert np.array_equal(decoded, grid)


def test_without_tensorboardx_the_error_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)      # import now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[tensorboard\]"'):
        TensorBoardLogger(tmp_path)
