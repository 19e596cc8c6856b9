"""Face aging's pictures: photos in, strips (input | reconstruction | aged) and sample sheets out."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from ..backend import get_array_module, get_backend
from ..data import preprocess_image
from ..errors import DataError
from ..images import make_grid, save_image_grid, save_png_atomic
from .labels import OLD, YOUNG
from .projection import AgingResult


def strips(result: AgingResult):
    """(3N, C, H, W): input, reconstruction, aged for each face in turn (a grid with nrow=3)."""
    xp = get_array_module(result.input)
    trip = xp.stack([result.input, result.reconstruction, result.aged], axis=1)
    return trip.reshape((-1,) + tuple(result.input.shape[1:]))


def save_strips(result: AgingResult, path, scale: int = 2, columns: int = 1) -> Path:
    """One PNG: a row ``input | reconstruction | aged`` per face (``columns`` such triples per row)."""
    grid = make_grid(strips(result), nrow=3 * columns, padding=2)
    img = Image.fromarray(grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return save_png_atomic(img, path)


def sample_sheet(G, backend, path, n: int = 10, seed: int = 123) -> Path:
    """Four rows of ``n``: G(z, young), G(z, old) for the same z, then again for ``n`` more z."""
    z = backend.asarray(np.random.default_rng(seed).standard_normal((2 * n, G.latent_dim)))
    young = G.forward(z, np.full(2 * n, YOUNG), training=False)
    old = G.forward(z, np.full(2 * n, OLD), training=False)
    rows = backend.xp.concatenate([young[:n], old[:n], young[n:], old[n:]])
    return save_image_grid(rows, path, nrow=n, scale=3)


def _photo_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise DataError(f"photo {path} cannot be read: {type(e).__name__}: {e}; expected a JPEG or PNG "
                        f"image") from e


def load_face_photos(paths, image_size: int, crop: str = "auto", backend=None):
    """Face photos -> (N, 3, S, S) floats in [-1, 1] on ``backend``, preprocessed as the data module does.

    crop ``"auto"``: the CelebA face box for aligned CelebA-shaped images (178x218 or 89x109,
    aspect ratio 0.8165), else the largest centred square; or any crop the data module accepts.
    A missing, unreadable or non-image path raises DataError naming it.
    """
    be = get_backend(backend if backend is not None else "numpy")
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            raise DataError(f"photo {p} is a folder; expected an image file (JPEG or PNG)")
        if not p.is_file():
            raise DataError(f"no such photo: {p}")
        c = crop
        if c == "auto":
            w, h = _photo_size(p)
            c = "celeba" if math.isclose(w / h, 178 / 218, rel_tol=0.01) else "square"
        pixels, _ = preprocess_image(str(p), image_size, crop=c)
        out.append(pixels)
    raw = np.stack(out)
    return be.asarray(raw.astype(np.float32) / 127.5 - 1.0)
