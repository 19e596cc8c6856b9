"""The lab's 2-D distributions, and how many of their modes a set of generated points covers.

Each distribution is a noiseless *shape* -- reference points, each labelled with the mode it
belongs to -- plus Gaussian noise of standard deviation ``STD`` in each coordinate:

* ``ring``:   8 points on a circle of radius 2 (lesson 8's ring of 8 Gaussians); a mode per point;
* ``spiral``: a curve of one and a half turns, cut into 8 equal stretches, one mode each;
* ``moons``:  two interleaved half circles, each cut into 4 arcs (8 modes);
* ``drawn``:  the points a student draws, grouped into at most 8 modes by k-means.

A generated point is *on the data* when it lies within 3 STD of the shape (for the ring: of a
centre, lesson 8's "high quality"); a mode is *covered* when at least 1% of the generated points
are on the data there.  So a generator that spreads evenly covers all 8 modes, and a collapsed
one, its points squeezed into one place, covers one or two.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STD = 0.05
N_MODES = 8
MIN_SHARE = 0.01
EXTENT = 3.0                      # every shape lies inside [-EXTENT, EXTENT]^2, as do the panels
MAX_DRAWN = 1000
NAMES = ("ring", "spiral", "moons", "drawn")


@dataclass
class Shape:
    """Noiseless reference points (M, 2) and the mode of each (M,); a sample is a reference point
    drawn with probability ``weights`` plus N(0, STD^2) noise."""
    points: np.ndarray
    modes: np.ndarray
    weights: np.ndarray

    @property
    def n_modes(self) -> int:
        return int(self.modes.max()) + 1

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n points, float32 (n, 2)."""
        i = rng.choice(len(self.points), size=n, p=self.weights)
        return (self.points[i] + STD * rng.standard_normal((n, 2))).astype(np.float32)


def _even(points: np.ndarray, modes: np.ndarray) -> Shape:
    return Shape(points.astype(np.float32), modes, np.full(len(points), 1.0 / len(points)))


def ring() -> Shape:
    angle = 2 * np.pi * np.arange(N_MODES) / N_MODES
    return _even(2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1), np.arange(N_MODES))


def spiral(m: int = 400) -> Shape:
    """r grows linearly with the angle, from 0.3 to 2.5 over 1.5 turns; points evenly spaced in
    the angle, so the inner stretches hold as many samples as the outer, longer ones."""
    t = (np.arange(m) + 0.5) / m
    angle, r = 3 * np.pi * t, 0.3 + 2.2 * t
    return _even(np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1), (t * N_MODES).astype(int))


def moons(m: int = 400) -> Shape:
    """scikit-learn's two moons, centred and scaled by 1.6 to fill the plane like the ring."""
    half = m // 2
    theta = np.pi * (np.arange(half) + 0.5) / half
    upper = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    lower = np.stack([1 - np.cos(theta), 0.5 - np.sin(theta)], axis=1)
    points = 1.6 * (np.concatenate([upper, lower]) - [0.5, 0.25])
    arc = (theta / np.pi * (N_MODES // 2)).astype(int)
    return _even(points, np.concatenate([arc, arc + N_MODES // 2]))


def kmeans_labels(points: np.ndarray, k: int, iterations: int = 20) -> np.ndarray:
    """Labels 0..k'-1 (k' <= k) of a deterministic k-means: farthest-point start, Lloyd steps."""
    centres = [points[0]]
    for _ in range(1, k):
        d = np.min([((points - c) ** 2).sum(axis=1) for c in centres], axis=0)
        if d.max() == 0:
            break                                   # fewer distinct points than k
        centres.append(points[d.argmax()])
    centres = np.array(centres)
    for _ in range(iterations):
        labels = ((points[:, None] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        centres = np.array([points[labels == j].mean(axis=0) if (labels == j).any() else centres[j]
                            for j in range(len(centres))])
    labels = ((points[:, None] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
    return np.unique(labels, return_inverse=True)[1].reshape(-1)   # no empty label numbers


def drawn(points) -> Shape:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return _even(points, kmeans_labels(points, N_MODES))


def make_shape(name: str, points=None) -> Shape:
    if name == "drawn":
        return drawn(points)
    return {"ring": ring, "spiral": spiral, "moons": moons}[name]()


@dataclass
class Coverage:
    covered: int          # modes with at least MIN_SHARE of the points on the data there
    n_modes: int
    on_data: float        # share of the points within 3 STD of the shape
    per_mode: list        # share of the points on the data in each mode


def coverage(points: np.ndarray, shape: Shape) -> Coverage:
    """How many of ``shape``'s modes the points (N, 2) cover; see the module docstring."""
    points = np.asarray(points, dtype=np.float32)
    finite = np.isfinite(points).all(axis=1)
    ref = shape.points
    # squared distances as |p|^2 + |r|^2 - 2 p.r: one (N, M) matrix product instead of (N, M, 2)
    d2 = (points ** 2).sum(axis=1)[:, None] + (ref ** 2).sum(axis=1)[None] - 2 * points @ ref.T
    nearest = d2.argmin(axis=1)
    on_data = finite & (d2[np.arange(len(points)), nearest] <= (3 * STD) ** 2)
    per_mode = np.bincount(shape.modes[nearest[on_data]], minlength=shape.n_modes) / max(len(points), 1)
    return Coverage(int((per_mode >= MIN_SHARE).sum()), shape.n_modes, float(on_data.mean()),
                    per_mode.tolist())
