"""Minibatches (seeded shuffling, epochs, exact resume) and FaceDataset batches/splits."""
import json

import numpy as np
import pytest

from tinygan.backend import get_backend
from tinygan.data import FaceDataset, Minibatches
from tinygan.errors import DataError


def _ids_dataset(n=23, size=4):
    """A FaceDataset whose sample i has every pixel equal to i, so batches reveal their indices."""
    pixels = np.repeat(np.arange(n, dtype=np.uint8), 3 * size * size).reshape(n, 3, size, size)
    attrs = np.where(np.arange(n)[:, None] % 2 == 0, 1, -1).astype(np.int8)
    return FaceDataset(pixels, [f"{i}.png" for i in range(n)], attrs, ["Even"], name="ids")


def _ids(batch):
    """Recover sample indices from an _ids_dataset batch (pixel value v -> v / 127.5 - 1)."""
    return np.rint((np.asarray(batch)[:, 0, 0, 0] + 1) * 127.5).astype(int).tolist()


def _take(mb, k):
    return [_ids(mb.next_batch()) for _ in range(k)]


def test_same_seed_gives_same_batches():
    """Two iterators with one seed serve identical batches, epoch after epoch."""
    ds = _ids_dataset()
    assert _take(Minibatches(ds, 5, seed=3), 12) == _take(Minibatches(ds, 5, seed=3), 12)


def test_different_seeds_give_different_orders():
    """Another seed shuffles differently (23! orders: a collision is practically impossible)."""
    ds = _ids_dataset()
    assert _take(Minibatches(ds, 5, seed=3), 4) != _take(Minibatches(ds, 5, seed=4), 4)


def test_epoch_visits_every_sample_once_and_reshuffles():
    """With drop_last=False an epoch is a permutation of all samples; the next epoch is a new one."""
    ds = _ids_dataset()
    mb = Minibatches(ds, 5, seed=0, drop_last=False)
    first = sum((_ids(x) for x in mb), [])
    second = sum((_ids(x) for x in mb), [])
    assert sorted(first) == sorted(second) == list(range(23))
    assert first != second and mb.epoch == 1


def test_drop_last_gives_full_batches_only():
    """23 samples, batch 5: 4 full batches with drop_last, 5 (last of 3) without."""
    ds = _ids_dataset()
    assert [len(b) for b in Minibatches(ds, 5, drop_last=True)] == [5, 5, 5, 5]
    assert [len(b) for b in Minibatches(ds, 5, drop_last=False)] == [5, 5, 5, 5, 3]


@pytest.mark.parametrize("served", [2, 4, 9])  # mid-epoch, exactly at an epoch end, in epoch 3
def test_resume_from_state_dict_continues_with_the_same_batches(served):
    """Saving state (through JSON, as a checkpoint would), then resuming in a fresh iterator,
    yields exactly the batches the uninterrupted iterator yields next."""
    ds = _ids_dataset()
    reference = Minibatches(ds, 5, seed=7)
    expected = _take(reference, served + 6)[served:]
    interrupted = Minibatches(ds, 5, seed=7)
    _take(interrupted, served)
    state = json.loads(json.dumps(interrupted.state_dict()))
    resumed = Minibatches(ds, 5, seed=123)  # the seed is overridden by the saved RNG state
    resumed.load_state_dict(state)
    assert _take(resumed, 6) == expected


def test_resume_with_for_loops_finishes_the_interrupted_epoch():
    """After resuming mid-epoch, a for loop yields only the rest of that epoch."""
    ds = _ids_dataset()
    mb = Minibatches(ds, 5, seed=1)
    it = iter(mb)
    seen = [_ids(next(it))]
    resumed = Minibatches(ds, 5, seed=1)
    resumed.load_state_dict(mb.state_dict())
    rest = [_ids(x) for x in resumed]
    first_epoch = sum(_take(Minibatches(ds, 5, seed=1), 4), [])
    assert len(rest) == 3 and sorted(sum(seen + rest, [])) == sorted(first_epoch)


def test_load_state_dict_rejects_other_settings():
    """A state from a different batch size is refused with a message naming the setting."""
    ds = _ids_dataset()
    state = Minibatches(ds, 5).state_dict()
    with pytest.raises(ValueError, match="batch_size"):
        Minibatches(ds, 4).load_state_dict(state)


def test_labels_are_yielded_aligned_with_images():
    """labels="Even" yields (x, y) with y True exactly for the even sample indices in x."""
    ds = _ids_dataset()
    for x, y in Minibatches(ds, 5, seed=2, labels="Even"):
        assert np.asarray(y).tolist() == [i % 2 == 0 for i in _ids(x)]


def test_batches_are_backend_float_in_unit_range():
    """A FaceDataset batch is the backend's float dtype in [-1, 1]; float64 backends get float64."""
    ds = _ids_dataset(n=256)
    x = next(iter(Minibatches(ds, 256, backend="numpy")))
    assert x.dtype == np.float32 and x.shape == (256, 3, 4, 4)
    assert x.min() == -1.0 and x.max() == 1.0  # pixel values 0 and 255 map exactly to the ends
    x64 = Minibatches(ds, 8, backend=get_backend("numpy", np.float64)).next_batch()
    assert x64.dtype == np.float64


def test_arrays_uint8_are_scaled_and_floats_pass_through():
    """uint8 arrays are mapped from [0, 255] to [-1, 1]; float arrays are served unchanged."""
    u8 = np.full((6, 3, 2, 2), 255, np.uint8)
    assert np.all(Minibatches(u8, 3).next_batch() == 1.0)
    f = np.random.default_rng(0).normal(size=(6, 3, 2, 2)).astype(np.float32)
    mb = Minibatches(f, 3, seed=0)
    idx = mb.next_indices()
    mb2 = Minibatches(f, 3, seed=0)
    np.testing.assert_array_equal(mb2.next_batch(), f[idx])


def test_batch_larger_than_dataset_is_a_data_error_naming_both_numbers():
    """drop_last=True with fewer samples than one batch would serve nothing: a DataError naming the
    batch size and the sample count (the CLI prints it as one error line)."""
    with pytest.raises(DataError, match=r"batch of 5 is larger than the 3 samples.*at most 3"):
        Minibatches(_ids_dataset(n=3), 5)


def test_empty_dataset_is_a_data_error():
    """No samples at all (e.g. everything held out) is named as such, not as a batch-size problem."""
    with pytest.raises(DataError, match="no samples"):
        Minibatches(_ids_dataset(n=3).subset([]), 1)


def test_split_holding_out_more_than_the_dataset_names_both_numbers():
    """split(60) of 50 images: a DataError (still a ValueError) naming 60 and 50."""
    with pytest.raises(DataError, match=r"cannot hold out 60 of the 50 images"):
        _ids_dataset(n=50).split(60)
    assert issubclass(DataError, ValueError)


def test_split_is_disjoint_complete_and_deterministic():
    """split(n_holdout, seed): disjoint, together all samples, same seed same split."""
    ds = _ids_dataset(n=50)
    train, hold = ds.split(10, seed=0)
    assert len(train) == 40 and len(hold) == 10
    assert sorted(train.filenames + hold.filenames) == sorted(ds.filenames)
    assert ds.split(10, seed=0)[1].filenames == hold.filenames != ds.split(10, seed=1)[1].filenames
    # subsets share storage yet index correctly
    assert _ids(hold.batch(range(len(hold)))) == [int(n[:-4]) for n in hold.filenames]
    assert hold.attributes.shape == (10, 1)


def test_filter_and_labels_on_dataset():
    """filter({"Even": True}) keeps the even samples; labels returns a bool mask."""
    ds = _ids_dataset(n=10)
    assert ds.labels("Even").dtype == bool
    assert ds.filter({"Even": True}).filenames == ["0.png", "2.png", "4.png", "6.png", "8.png"]
    with pytest.raises(KeyError, match="valid names: Even"):
        ds.labels("Odd")
