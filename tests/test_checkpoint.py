"""Training checkpoints: exact round trips, atomic writes, and clear errors for bad files.

Round trips are compared bit for bit (arrays by dtype, shape and every value, other values by
==): a checkpoint must restore the run exactly, so no tolerance applies.  Models are tiny
DCGANs (base_filters=4) so the whole file runs in a few seconds on a 2-core CPU.
"""
import errno
import io
import json

import numpy as np
import pytest

from tinygan.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from tinygan.data import Minibatches
from tinygan.errors import CheckpointError
from tinygan.gan import GeneratorEMA, StackedGANTrainer
from tinygan.models import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import Adam, Nadam
from tinygan.training import MetricsHistory

LATENT = 8


def make_run(seed=0, base_filters=4, opt=Adam):
    G = dcgan64_generator(LATENT, base_filters=base_filters, seed=seed)
    D = dcgan64_discriminator(base_filters=base_filters, seed=seed + 1)
    trainer = StackedGANTrainer(G, D, opt(lr=2e-4, beta1=0.5), opt(lr=2e-4, beta1=0.5), latent_dim=LATENT,
                                seed=seed + 2)
    data = np.random.default_rng(5).integers(0, 256, (12, 3, 64, 64), dtype=np.uint8)
    batches = Minibatches(data, 4, seed=seed + 3)
    ema = GeneratorEMA(G, decay=0.9)
    return trainer, batches, ema


def trained_state(steps=2, opt=Adam):
    """A run after ``steps`` steps (optimizer moments, EMA and iterator all non-trivial)."""
    trainer, batches, ema = make_run(opt=opt)
    history = MetricsHistory()
    for step in range(1, steps + 1):
        s = trainer.train_step(batches.next_batch())
        ema.update(trainer.G)
        history.add_steps([dict(step=step, epoch=0, **s.as_floats())], images_per_sec=12.5)
    history.add_eval(steps, 0, 0.75, 0.5)
    config = {"model": "dcgan", "lr": 2e-4, "data": None, "seed": 0, "note": "ünïcode"}
    return training_state(trainer, batches=batches, ema=ema, epoch=0, history=history, config=config,
                          extra={"fixed_noise": np.random.default_rng(4).standard_normal((10, LATENT))})


def assert_tree_equal(a, b, path="state"):
    """Nested dicts/lists equal: arrays bit for bit (same dtype and shape), everything else by ==."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_tree_equal(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert list(a) == list(b), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, (np.ndarray, np.generic)):
        assert isinstance(b, np.ndarray), f"{path}: {type(b)} is not an array"
        # The bytes, so that NaN (a history's not-logged column) equals NaN and -0.0 differs from 0.0.
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f"{path} differs"
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"


def test_checkpoint_round_trips_every_part_bit_exactly(tmp_path):
    """save then load gives back weights and BatchNorm buffers, both optimizers' moments, step
    counts and hyperparameters, the noise RNG state (128-bit ints included), the iterator's RNG
    state and position, the EMA, the metrics history, config and extra arrays -- all identical."""
    state = trained_state(steps=2)
    save_checkpoint(tmp_path / "last.npz", state)
    loaded = load_checkpoint(tmp_path / "last.npz")
    assert_tree_equal(state, loaded)
    assert loaded["trainer"]["g_opt"]["iterations"] == 2 and loaded["data"]["position"] == 2


def test_restored_run_continues_with_identical_state(tmp_path):
    """Loading a checkpoint into a run built with other seeds makes its state_dicts equal to the
    saved ones (objects, not just the file, are restored), with Nadam's extra scalar state too."""
    state = trained_state(steps=2, opt=Nadam)
    save_checkpoint(tmp_path / "last.npz", state)
    trainer, batches, ema = make_run(seed=50, opt=Nadam)
    history = MetricsHistory()
    restore_training_state(load_checkpoint(tmp_path / "last.npz"), trainer, batches=batches, ema=ema,
                           history=history, path=tmp_path / "last.npz")
    assert_tree_equal(state["trainer"], trainer.state_dict())
    assert_tree_equal(state["ema"], ema.state_dict())
    assert_tree_equal(state["history"], history.state_dict())
    assert batches.state_dict()["rng_state"] == state["data"]["rng_state"]


def test_checkpoint_loads_without_pickle_and_keeps_config_as_json(tmp_path):
    """The file is a plain npz: np.load(allow_pickle=False) opens it, and the run's config is a
    JSON string in a unicode array, readable without tinygan."""
    save_checkpoint(tmp_path / "c.npz", trained_state(steps=1))
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert z["config"].dtype.kind == "U"
        assert json.loads(str(z["config"]))["note"] == "ünïcode"
        assert "trainer/G/g_deconv1.W" in z.files


def test_write_interrupted_midway_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    """If the process dies while writing (simulated: np.savez writes half its bytes, then a
    KeyboardInterrupt), the previous checkpoint is still there, loads, and is unchanged; no
    temporary file is left behind."""
    path = tmp_path / "last.npz"
    first = trained_state(steps=1)
    save_checkpoint(path, first)
    real_savez = np.savez

    def savez_dies_halfway(file, *args, **kwargs):
        buf = io.BytesIO()
        real_savez(buf, *args, **kwargs)
        file.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, trained_state(steps=2))
    monkeypatch.undo()
    assert_tree_equal(first, load_checkpoint(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]


def test_missing_checkpoint_error_names_the_path(tmp_path):
    """A missing file raises CheckpointError with its path."""
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*nothing\.npz"):
        load_checkpoint(tmp_path / "nothing.npz")


def test_truncated_checkpoint_error_names_the_path(tmp_path):
    """A file cut short (a copy that failed, a full disk) raises CheckpointError naming the path
    and saying it cannot be read -- not a bare zipfile error."""
    path = tmp_path / "last.npz"
    save_checkpoint(path, trained_state(steps=1))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint .*last\.npz cannot be read"):
        load_checkpoint(path)


def test_weights_file_is_not_mistaken_for_a_checkpoint(tmp_path):
    """An npz without the checkpoint header (e.g. from Sequential.save_weights) is refused clearly."""
    G = dcgan64_generator(LATENT, base_filters=4)
    G.save_weights(tmp_path / "g.npz")
    with pytest.raises(CheckpointError, match=r"g\.npz is not a tinygan checkpoint"):
        load_checkpoint(tmp_path / "g.npz")


def test_checkpoint_of_another_architecture_error_names_path_and_shape(tmp_path):
    """Loading a base_filters=4 checkpoint into a base_filters=8 run raises CheckpointError naming
    the file, the layer and both shapes."""
    path = tmp_path / "last.npz"
    save_checkpoint(path, trained_state(steps=1))
    trainer, batches, ema = make_run(base_filters=8)
    with pytest.raises(CheckpointError, match=r"last\.npz does not fit.*g_deconv1\.W of shape"):
        restore_training_state(load_checkpoint(path), trainer, batches=batches, path=path)


def test_checkpoint_of_other_batch_settings_error_names_path(tmp_path):
    """A data iterator with another batch size cannot continue the saved one: CheckpointError
    naming the file and the setting."""
    path = tmp_path / "last.npz"
    save_checkpoint(path, trained_state(steps=1))
    trainer, _, _ = make_run()
    other = Minibatches(np.zeros((12, 3, 64, 64), np.uint8), 6)
    with pytest.raises(CheckpointError, match=r"last\.npz does not fit.*batch_size"):
        restore_training_state(load_checkpoint(path), trainer, batches=other, path=path)


@pytest.mark.parametrize("content, says", [
    (b"", "it is an empty file"), (b"not a zip at all", "it is not an .npz archive"),
    (b"\x93NUMPY" + b"\x00" * 100, "a single array (.npy)"), ("half", "truncated or corrupt")],
    ids=["empty", "random", "npy", "truncated"])
def test_a_weights_file_that_cannot_be_read_is_a_checkpoint_error_naming_it(content, says, tmp_path):
    """Sequential.load_weights on an empty, random, .npy or truncated file names the file and what
    it found (no bare BadZipFile or EOFError, and no advice to allow pickle for random bytes)."""
    G = dcgan64_generator(LATENT, base_filters=4)
    path = tmp_path / "g.npz"
    G.save_weights(path)
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2] if content == "half" else content)
    with pytest.raises(CheckpointError, match=r"weights file .*g\.npz cannot be read") as e:
        G.load_weights(path)
    assert says in str(e.value) and "pickle" not in str(e.value)


def test_a_full_disk_names_the_checkpoint_not_its_temporary_file(tmp_path, monkeypatch):
    """ENOSPC while writing: the OSError names last.npz (what the user knows), the previous
    checkpoint stays, and the temporary file is gone."""
    path = tmp_path / "last.npz"
    save_checkpoint(path, trained_state(steps=1))

    def disk_full(file, *args, **kwargs):
        file.write(b"PK partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError) as e:
        save_checkpoint(path, trained_state(steps=2))
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert load_checkpoint(path)["step"] == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]
