"""The dataset object every loader returns, and the seeded minibatch iterator that feeds training.

Storage choice: pixels are kept as **uint8** (N, 3, H, W), usually a read-only ``np.memmap`` of the
on-disk cache, and are scaled to floats in [-1, 1] one batch at a time.  uint8 is a quarter of
float32 (202,599 CelebA faces at 64x64: 2.5 GB instead of 10 GB), needs no RAM beyond the page
cache, and on a GPU backend the batch crosses the PCIe bus as uint8 and is scaled on the device.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping

import numpy as np

from tinygan.backend import Backend, get_backend
from tinygan.errors import DataError

# uint8 -> [-1, 1]: x / 127.5 - 1 maps 0 -> -1 and 255 -> +1 exactly.
_SCALE = 1.0 / 127.5


def _as_backend(backend) -> Backend:
    """None -> NumPy float32; a name -> that backend (float32); a Backend keeps its own dtype."""
    if isinstance(backend, Backend):
        return backend
    return get_backend("numpy" if backend is None else backend)


def uint8_to_float(pixels, backend=None):
    """uint8 (N, 3, H, W) host array -> backend float array in [-1, 1] (scaled on the backend)."""
    be = _as_backend(backend)
    x = be.asarray(pixels, dtype=np.uint8)  # move the small uint8 batch, then scale on the backend
    return x.astype(be.dtype) * be.dtype.type(_SCALE) - be.dtype.type(1.0)


class ScaledImages:
    """Read-only float view of uint8 pixels: ``images[i]`` gives float32 values in [-1, 1].

    Behaves enough like an array (``shape``, ``dtype``, ``len``, indexing, ``np.asarray``) for
    plotting and tests, without converting the whole (possibly 2.5 GB) memmap up front.
    """

    def __init__(self, pixels, rows: np.ndarray | None = None):
        self._pixels = pixels
        self._rows = rows

    @property
    def shape(self) -> tuple[int, ...]:
        n = len(self._pixels) if self._rows is None else len(self._rows)
        return (n,) + tuple(self._pixels.shape[1:])

    dtype = np.dtype(np.float32)
    ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if self._rows is None:
            raw = self._pixels[key]
        elif isinstance(key, tuple):  # images[i, c, y, x]: map only the sample axis
            raw = self._pixels[(self._rows[key[0]],) + key[1:]]
        else:
            raw = self._pixels[self._rows[key]]
        return np.asarray(raw, dtype=np.float32) * np.float32(_SCALE) - np.float32(1.0)

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"ScaledImages(shape={self.shape}, float32 in [-1, 1], stored as uint8)"


class FaceDataset:
    """Face images (N, 3, H, W) with their file names and, for CelebA, 40 binary attributes.

    ``images``      float32 view in [-1, 1] (converted per access; ``pixels`` is the uint8 store)
    ``filenames``   list of N names relative to the source (``"000001.jpg"``)
    ``attributes``  (N, 40) int8 in {-1, +1}, rows with no entry in the attribute file are all 0;
                    ``None`` when there is no attribute file
    ``attr_mask``   (N,) bool, True where the image had an attribute row
    ``attr_names``  the attribute column names (CelebA order)
    ``report``      dict of what was found, matched, skipped and cached (see ``summary()``)

    Subsets (``split``, ``subset``, ``filter``) share the same storage through an index array,
    so splitting a memory-mapped 202k-image dataset costs no copy.
    """

    def __init__(self, pixels, filenames, attributes: np.ndarray | None = None,
                 attr_names=(), report: Mapping | None = None, name: str = "faces",
                 rows: np.ndarray | None = None):
        self._pixels = pixels
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        n = len(pixels) if self._rows is None else len(self._rows)
        self.filenames = list(filenames)
        if len(self.filenames) != n:
            raise ValueError(f"FaceDataset {name!r}: {len(self.filenames)} filenames for {n} images")
        if attributes is not None:
            attributes = np.asarray(attributes, dtype=np.int8)
            if attributes.shape != (n, len(attr_names)):
                raise ValueError(f"FaceDataset {name!r}: attributes shaped {attributes.shape}, "
                                 f"expected ({n}, {len(attr_names)})")
        self.attributes = attributes
        self.attr_names = list(attr_names)
        self.report = dict(report or {})
        self.name = name

    # -- basic array-like facts --------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.filenames)

    @property
    def pixels(self):
        """uint8 (N, 3, H, W) pixels (a fancy-indexed copy for subsets, the memmap otherwise)."""
        return self._pixels if self._rows is None else self._pixels[self._rows]

    @property
    def images(self) -> ScaledImages:
        return ScaledImages(self._pixels, self._rows)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Per-sample shape (3, H, W)."""
        return tuple(self._pixels.shape[1:])

    @property
    def attr_mask(self) -> np.ndarray | None:
        if self.attributes is None:
            return None
        return (self.attributes != 0).all(axis=1)

    def _check_attr(self, name: str) -> int:
        if self.attributes is None:
            raise KeyError(f"dataset {self.name!r} has no attributes (no attribute file was found "
                           f"or given), so it has no label {name!r}")
        if name not in self.attr_names:
            raise KeyError(f"unknown attribute {name!r}; valid names: {', '.join(self.attr_names)}")
        return self.attr_names.index(name)

    def labels(self, name: str) -> np.ndarray:
        """(N,) bool: True where attribute ``name`` is +1 (False where -1 or missing; see attr_mask)."""
        return self.attributes[:, self._check_attr(name)] > 0

    # -- batches -------------------------------------------------------------------------------
    def batch(self, indices, backend=None):
        """Images at ``indices`` as a float array in [-1, 1] on ``backend`` (default NumPy float32)."""
        idx = np.asarray(indices, dtype=np.int64)
        rows = idx if self._rows is None else self._rows[idx]
        # Reading a memmap in ascending row order is sequential-ish on disk; restore order after.
        order = np.argsort(rows, kind="stable")
        raw = np.empty((len(rows),) + self.image_shape, dtype=np.uint8)
        raw[order] = self._pixels[rows[order]]
        return uint8_to_float(raw, backend)

    # -- subsets -------------------------------------------------------------------------------
    def subset(self, indices, name: str | None = None) -> FaceDataset:
        """A dataset of the samples at ``indices`` (sharing storage; no pixel copy)."""
        idx = np.asarray(indices, dtype=np.int64)
        rows = idx if self._rows is None else self._rows[idx]
        report = dict(self.report, images=len(idx), subset_of=self.name)
        return FaceDataset(self._pixels, [self.filenames[i] for i in idx],
                           None if self.attributes is None else self.attributes[idx],
                           self.attr_names, report, name or self.name, rows=rows)

    def split(self, n_holdout: int, seed: int = 0) -> tuple[FaceDataset, FaceDataset]:
        """(train, holdout): ``n_holdout`` samples drawn at random (seeded), the rest for training.

        Both keep ascending source order internally, so the same seed always gives the same split.
        """
        n = len(self)
        if not 0 <= n_holdout <= n:
            raise DataError(f"cannot hold out {n_holdout} of the {n} images of {self.name!r}: the held-out "
                            f"count must be between 0 and {n}")
        perm = np.random.default_rng(seed).permutation(n)
        hold, train = np.sort(perm[:n_holdout]), np.sort(perm[n_holdout:])
        return (self.subset(train, f"{self.name}[train]"), self.subset(hold, f"{self.name}[holdout]"))

    def filter(self, require: Mapping[str, bool]) -> FaceDataset:
        """Keep samples whose attributes equal ``require`` (e.g. ``{"Young": False}``).

        Samples without an attribute row are dropped, as in the loaders.
        """
        keep = self.attr_mask.copy()
        for name, want in require.items():
            keep &= self.labels(name) == bool(want)
        return self.subset(np.flatnonzero(keep), f"{self.name}{dict(require)}")

    # -- reporting -----------------------------------------------------------------------------
    def summary(self) -> str:
        """Human-readable account of where the images came from and what was matched/skipped."""
        r = self.report
        c, h, w = self.image_shape
        lines = [f"{self.name}: {len(self)} images, {c}x{h}x{w}, stored uint8, served float in [-1, 1]"]
        if "source" in r:
            lines.append(f"  source: {r['source']} ({r.get('source_kind', '?')}), "
                         f"{r.get('files_found', '?')} image files found")
        if r.get("crop") is not None:
            lines.append(f"  crop: {r['crop']} box {r.get('crop_box')}, resized with {r.get('resample')}")
        if r.get("attr_file"):
            lines.append(f"  attributes: {r['attr_file']}: {r.get('attr_rows_present')} rows present of "
                         f"{r.get('attr_rows_announced')} announced, {r.get('attr_rows_malformed', 0)} "
                         f"malformed lines skipped")
            lines.append(f"  images with attribute rows: {r.get('images_with_attrs')}, "
                         f"without: {r.get('images_without_attrs')}")
        elif r.get("attr_file_problem"):
            lines.append(f"  attributes: none, the attribute file was ignored: {r['attr_file_problem']}")
        elif "source" in r and r.get("source_kind") != "procedural":
            lines.append("  attributes: none (no list_attr_celeba.txt found or given)")
        if r.get("filter"):
            lines.append(f"  filter {r['filter']}: {r.get('matched_filter')} matched, "
                         f"{r.get('dropped_by_filter')} dropped by value, "
                         f"{r.get('dropped_no_attrs')} dropped for lacking a row")
        if r.get("limit") is not None:
            lines.append(f"  limit: first {r['limit']} of the selected files")
        if r.get("skipped"):
            lines.append(f"  skipped {r['skipped']} unreadable files, e.g. {r.get('skipped_examples')}")
        if r.get("duplicate_paths"):
            lines.append(f"  {r['duplicate_paths']} files reached again through links were loaded once")
        if r.get("upscaled"):
            n_loaded = r.get("images", len(self))
            examples = f", e.g. {r.get('upscaled_examples', [])[:3]}" if r["upscaled"] < n_loaded else ""
            lines.append(f"  upscaled {r['upscaled']} of {n_loaded} images: their crop (smallest "
                         f"{r.get('smallest_crop')}) is smaller than {h}x{w}{examples}")
        if "cache_path" in r:
            how = "cache hit" if r.get("cache_hit") else f"built, decoded {r.get('decoded_this_call')} files"
            lines.append(f"  cache: {r['cache_path']} ({how})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        attrs = f", {len(self.attr_names)} attributes" if self.attributes is not None else ""
        return f"FaceDataset({self.name!r}, {len(self)} images {c}x{h}x{w}{attrs})"


class Minibatches:
    """Seeded, shuffled minibatches over a FaceDataset or an (N, ...) array, epoch after epoch.

    ``for x in batches:`` runs through what is left of the current epoch (then the next loop
    starts a new, reshuffled epoch); ``next_batch()`` returns the next batch across epoch
    boundaries.  Batches are backend arrays of the backend's float dtype; FaceDatasets and uint8
    arrays are scaled to [-1, 1], float arrays are passed through unchanged.  With ``labels``
    (an attribute name for a FaceDataset, or an (N, ...) array) each item is ``(x, y)``.

    Order comes only from this object's own ``np.random.Generator``, so ``state_dict()`` (RNG
    state at the start of the epoch + batches already served) and ``load_state_dict()`` let a
    resumed run see exactly the batches the interrupted run would have seen.

    ``shard``: a function that picks, from each batch's sample indices, the ones this process
    loads: a data-parallel rank's share (``communicator.shard``, :mod:`tinygan.distributed`).
    The order, the number of batches and the state stay those of the whole batches.
    """

    def __init__(self, data, batch_size: int, seed: int = 0, backend=None, drop_last: bool = True,
                 labels=None, shuffle: bool = True, shard=None):
        self.data = data
        self.n = len(data)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise DataError(f"Minibatches: batch size must be >= 1, got {batch_size}")
        if self.n == 0:
            raise DataError("Minibatches: no samples to draw batches from (the training set is empty)")
        if drop_last and self.n < self.batch_size:
            raise DataError(f"Minibatches: a batch of {self.batch_size} is larger than the {self.n} samples "
                            f"to draw from; use a batch size of at most {self.n}, or more data")
        self.backend = _as_backend(backend)
        self.drop_last, self.shuffle, self.seed = drop_last, shuffle, seed
        if isinstance(labels, str):
            labels = data.labels(labels)
        if labels is not None:
            labels = np.asarray(labels)
            if len(labels) != self.n:
                raise ValueError(f"Minibatches: {len(labels)} labels for {self.n} samples")
        self.labels = labels
        self.shard = shard
        self._rng = np.random.default_rng(seed)
        self.epoch = 0            # epochs started so far, minus one
        self.position = 0         # batches already served in the current epoch
        self._order = None        # this epoch's permutation, drawn lazily
        self._epoch_rng_state = None

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    batches_per_epoch = property(__len__)

    def _ensure_order(self) -> np.ndarray:
        if self._order is None:
            # Remember the state *before* the shuffle: restoring it regenerates this permutation.
            self._epoch_rng_state = copy.deepcopy(self._rng.bit_generator.state)
            self._order = self._rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        return self._order

    def _roll_epoch_if_done(self) -> None:
        if self.position >= len(self):
            self.epoch += 1
            self.position = 0
            self._order = None

    def _take(self, idx):
        if isinstance(self.data, FaceDataset):
            x = self.data.batch(idx, self.backend)
        else:
            raw = self.data[idx]  # NumPy, memmap or CuPy array
            x = uint8_to_float(raw, self.backend) if raw.dtype == np.uint8 else self.backend.asarray(raw)
        if self.labels is None:
            return x
        y = self.labels[idx]
        return x, self.backend.asarray(y, dtype=y.dtype)

    def next_indices(self) -> np.ndarray:
        """Sample indices of the next batch (advances the position, crossing epochs)."""
        self._roll_epoch_if_done()
        order = self._ensure_order()
        start = self.position * self.batch_size
        self.position += 1
        return order[start:start + self.batch_size]

    def next_batch(self):
        """The next batch (this process's share of it, with ``shard``), starting a new shuffled
        epoch when the current one is used up."""
        indices = self.next_indices()
        return self._take(indices if self.shard is None else self.shard(indices))

    def __iter__(self) -> Iterator:
        self._roll_epoch_if_done()
        while self.position < len(self):
            yield self.next_batch()

    # -- resuming ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain-Python (JSON-safe) state: RNG state at the start of this epoch and the position."""
        epoch, position = self.epoch, self.position
        if position >= len(self):  # epoch used up: the next batch opens a new one from the current state
            epoch, position, rng_state = epoch + 1, 0, self._rng.bit_generator.state
        elif self._order is not None:
            rng_state = self._epoch_rng_state
        else:
            rng_state = self._rng.bit_generator.state
        return {"epoch": epoch, "position": position, "rng_state": copy.deepcopy(rng_state),
                "n": self.n, "batch_size": self.batch_size, "drop_last": self.drop_last,
                "shuffle": self.shuffle,
                "seed": int(self.seed) if isinstance(self.seed, (int, np.integer)) else None}

    def load_state_dict(self, state: Mapping) -> None:
        for key in ("n", "batch_size", "drop_last", "shuffle"):
            if state[key] != getattr(self, key):
                raise ValueError(f"Minibatches.load_state_dict: saved {key}={state[key]!r} but this "
                                 f"iterator has {key}={getattr(self, key)!r}; the resumed run must use "
                                 f"the same data and batch settings")
        self._rng.bit_generator.state = copy.deepcopy(dict(state["rng_state"]))
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = None  # redrawn from the restored state on the next batch

    def __repr__(self) -> str:
        return (f"Minibatches(n={self.n}, batch_size={self.batch_size}, epoch={self.epoch}, "
                f"position={self.position}/{len(self)}, backend={self.backend})")
