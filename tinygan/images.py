"""Turning NCHW image batches in [-1, 1] into pictures: grids for samples, PNGs written atomically.

The trainer calls :func:`save_image_grid` every few hundred steps while a viewer may be reading
the same file, so the PNG is written under a temporary name and moved into place with
``os.replace`` (atomic on POSIX and Windows): a reader sees the old grid or the new one, never half.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from tinygan.backend import to_numpy
from tinygan.errors import ShapeError
from tinygan.io import atomic_path


def to_uint8(images) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] (NumPy or CuPy) -> (N, H, W, C) uint8 on the host.

    Values outside [-1, 1] (an untrained generator's output can overshoot) are clipped.
    """
    x = to_numpy(images)
    if x.ndim == 3:  # (N, H, W) greyscale
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ShapeError(f"to_uint8: expected images shaped (N, 3, H, W) or (N, 1, H, W), got {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    # +0.5 then floor = round half up; maps -1 -> 0 and +1 -> 255 exactly.
    x = np.floor((np.clip(x.astype(np.float32), -1.0, 1.0) + 1.0) * 127.5 + 0.5)
    return x.astype(np.uint8).transpose(0, 2, 3, 1)


def make_grid(images, nrow: int | None = None, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one (rows*H', nrow*W', 3) uint8 picture.

    ``nrow`` images per row (default: a square-ish grid); ``padding`` pixels of ``pad_value``
    between and around tiles.  Empty cells at the end stay ``pad_value``.
    """
    tiles = to_uint8(images)
    n, h, w, c = tiles.shape
    if n == 0:
        raise ShapeError("make_grid: got an empty batch (N=0); expected at least one image")
    if c == 1:
        tiles = np.repeat(tiles, 3, axis=3)
    nrow = max(1, int(nrow) if nrow else math.ceil(math.sqrt(n)))
    ncol_rows = math.ceil(n / nrow)
    grid = np.full((ncol_rows * (h + padding) + padding, nrow * (w + padding) + padding, 3),
                   pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top:top + h, left:left + w] = tiles[i]
    return grid


def save_png_atomic(picture: np.ndarray | Image.Image, path) -> Path:
    """Write an (H, W, 3) uint8 array or a PIL image to ``path`` as PNG, atomically."""
    path = Path(path)
    img = picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def save_image_grid(images, path, nrow: int | None = 10, padding: int = 2, pad_value: int = 255,
                    scale: int = 1) -> Path:
    """Save (N, C, H, W) images in [-1, 1] (NumPy or CuPy) as one PNG grid, atomically.

    ``nrow`` images per row (10 gives the usual 10x10 grid for 100 samples); ``scale`` > 1
    enlarges the grid with nearest-neighbour so small 32x32 samples stay crisp when viewed.
    Returns the path written.
    """
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)
    img = Image.fromarray(grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return save_png_atomic(img, path)
