"""Face data for tinygan: CelebA or any image folder/zip, an embedded procedural dataset, batches.

Entry point::

    from tinygan.data import load_faces, Minibatches
    faces = load_faces()                                   # embedded procedural faces (no download)
    faces = load_faces("../shared/data/celeba-10k", 64)    # CelebA folder, zip, or any image folder
    train, held_out = faces.split(1000, seed=0)
    for x in Minibatches(train, 64, seed=0, backend="numpy"):   # (64, 3, 64, 64) float32 in [-1, 1]
        ...

Images are cached on disk as uint8 memmaps (see :mod:`tinygan.data.cache`), so a second load
starts in about a second whatever the dataset size.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tinygan.data.batches import FaceDataset, Minibatches, ScaledImages
from tinygan.data.cache import cache_dir
from tinygan.data.celeba import (
    CELEBA_CROP,
    AttributeTable,
    ImageFileError,
    find_source,
    load_celeba,
    parse_attributes,
    preprocess_image,
)
from tinygan.data.procedural import DEFAULT_N, draw_face, embedded_faces
from tinygan.errors import DataError, DataWarning
from tinygan.images import save_image_grid

EMBEDDED_NAMES = ("embedded", "procedural")

__all__ = ["load_faces", "load_celeba", "embedded_faces", "FaceDataset", "Minibatches", "ScaledImages",
           "parse_attributes", "AttributeTable", "find_source", "preprocess_image", "draw_face",
           "save_image_grid", "cache_dir", "CELEBA_CROP", "DataError", "DataWarning", "ImageFileError"]


def load_faces(source=None, image_size=64, *, n: int | None = None, seed: int = 0,
               limit: int | None = None, require: Mapping[str, bool] | None = None,
               cache_dir=None, use_cache: bool = True, progress: bool = True, **celeba_kwargs) -> FaceDataset:
    """The one way to get faces.

    source=None (or "embedded")  ``n`` procedural faces (default 5,000) drawn from ``seed``
    source=path                  CelebA folder/zip or any image folder, via :func:`load_celeba`
                                 (``crop``, ``attr_file``, ``workers``, ``resample`` pass through)

    ``require`` filters by attribute (CelebA attributes, or the embedded set's synthetic ones);
    ``limit`` keeps the first ``limit`` images.  Raises :class:`~tinygan.errors.DataError` naming
    the path (or the setting) and what was expected when the data cannot be used as given.
    """
    if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
        raise DataError(f"limit must be a positive number of images (or None for all), got {limit!r}")
    if source is None or (isinstance(source, str) and source in EMBEDDED_NAMES):
        if celeba_kwargs:
            raise TypeError(f"load_faces: options {sorted(celeba_kwargs)} only apply to image folders, "
                            f"not to the embedded procedural faces")
        count = n if n is not None else (limit if limit is not None else DEFAULT_N)
        ds = embedded_faces(count, image_size=image_size, seed=seed, cache_dir=cache_dir,
                            use_cache=use_cache, progress=progress)
        if limit is not None and limit < len(ds):
            ds = ds.subset(range(limit))
        if require:
            unknown = [a for a in require if a not in ds.attr_names]
            if unknown:
                raise DataError(f"unknown attribute name(s) {unknown} for the embedded faces; valid names: "
                                f"{', '.join(ds.attr_names)}")
            ds = ds.filter(require)
            if len(ds) == 0:
                raise DataError(f"none of the {count} embedded faces match the attribute filter "
                                f"{dict(require)}")
        return ds
    if n is not None:
        raise TypeError("load_faces: n= sets the size of the embedded dataset; use limit= for a folder")
    return load_celeba(Path(source), image_size, require=require, limit=limit, cache_dir=cache_dir,
                       use_cache=use_cache, progress=progress, **celeba_kwargs)
