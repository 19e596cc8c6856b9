"""Latent projection: find the z for which G(z, age) draws a given face; then redraw it at another age.

For a photo x of age a, minimise over z

    ||G(z, a) - x||^2 / P  +  w_f ||phi(G(z, a)) - phi(x)||^2 / F  +  w_p ||z||^2 / L

by Adam on z alone, through the frozen generator: the same backward pass that adds into G's parameter
gradients in training also returns dL/dz, its input gradient (frozen, G adds nothing to its own
gradients).  G runs in inference mode, so each BatchNorm is a fixed per-channel affine map and
the images of a batch do not influence each other.  phi is an optional hidden layer of D (feature
matching: D's features care about edges and textures rather than exact pixels); the prior term
keeps z where G was trained (z ~ N(0, I)).  P, F, L are the pixel, feature and latent counts per
image, so each weight means the same thing at any image size.

Aging keeps z* and changes the label: G(z*, old) is the same "latent face" drawn old.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module, to_numpy
from ..optimizers import Adam
from ..sequential import frozen
from .labels import OLD, target_labels


@dataclass
class ProjectionResult:
    """What :func:`project` found, per image (host arrays unless noted).

    z              (N, latent_dim) on the backend: the best latent per image
    reconstruction (N, C, H, W) on the backend: G(z, label)
    errors         (steps + 1,) mean over images of the pixel MSE along the chosen restarts' paths
                   (entry 0: the random start, entry t: after t Adam steps)
    objective      (steps + 1,) the same for the full objective (MSE + feature + prior terms)
    final_error    (N,) pixel MSE of each reconstruction (in [-1, 1] units, so 0.01 ~ 5 % of the range)
    restart        (N,) which restart won
    """
    z: object
    reconstruction: object
    errors: np.ndarray
    objective: np.ndarray
    final_error: np.ndarray
    restart: np.ndarray

    def take(self, indices) -> ProjectionResult:
        """The result for a subset of the images (the curves stay those of the whole projection)."""
        idx = np.asarray(indices, dtype=np.int64)
        dev = get_array_module(self.z).asarray(idx)
        return ProjectionResult(self.z[dev], self.reconstruction[dev], self.errors, self.objective,
                                self.final_error[idx], self.restart[idx])


def _project_chunk(G, x, labels, steps, lr, restarts, prior_weight, D, feature_weight, feature_layers,
                   rng):
    xp = get_array_module(x)
    n, r = x.shape[0], restarts
    dtype = x.dtype
    L = G.latent_dim
    P = int(np.prod(x.shape[1:]))
    # Restarts ride along as extra rows: row i * r + k is restart k of image i.
    xr = xp.repeat(x, r, axis=0)
    lab = xp.repeat(labels, r, axis=0)
    # Drawn restart-major, so restart 0 of every image starts where a single-start run would.
    # (Each chunk has its own seeded generator, so this holds for every chunk.)
    z = xp.asarray(rng.standard_normal((r, n, L)).transpose(1, 0, 2).reshape(n * r, L), dtype=dtype)
    gz = xp.zeros_like(z)
    opt = Adam(lr=lr, beta1=0.9, beta2=0.999)
    use_feat = D is not None and feature_weight > 0
    if use_feat:
        target_feat = D.features(xr, lab, feature_layers, training=False).copy()
        F = int(np.prod(target_feat.shape[1:]))
    best_obj = xp.full((n * r,), np.inf, dtype=dtype)
    best_z = z.copy()
    mse_hist, obj_hist = [], []
    for t in range(steps + 1):
        out = G.forward(z, lab, training=False)
        diff = out - xr
        mse = (diff * diff).reshape(n * r, -1).mean(axis=1)
        obj = mse + prior_weight * (z * z).mean(axis=1)
        if use_feat:
            fdiff = D.features(out, lab, feature_layers, training=False) - target_feat
            obj = obj + feature_weight * (fdiff * fdiff).reshape(n * r, -1).mean(axis=1)
        mse_hist.append(mse)
        obj_hist.append(obj)
        better = obj < best_obj
        best_obj = xp.where(better, obj, best_obj)
        best_z = xp.where(better[:, None], z, best_z)
        if t == steps:
            break
        # d/dG of sum_i mse_i = 2 diff / P per image; the rows are independent.
        grad = diff * (2.0 / P)
        if use_feat:
            grad += D.features_backward(fdiff * (2.0 * feature_weight / F))
        gz[...] = G.backward(grad)
        gz += z * (2.0 * prior_weight / L)
        opt.step([("z", z, gz)])
    # Pick, per image, the restart whose best point has the lowest objective.
    best = best_obj.reshape(n, r).argmin(axis=1)
    rows = xp.arange(n) * r + best
    z_best = best_z[rows]
    recon = G.forward(z_best, labels, training=False)
    final = ((recon - x) ** 2).reshape(n, -1).mean(axis=1)
    mse_path = xp.stack(mse_hist)[:, rows]          # (steps + 1, n)
    obj_path = xp.stack(obj_hist)[:, rows]
    return z_best, recon, to_numpy(mse_path), to_numpy(obj_path), to_numpy(final), to_numpy(best)


def project(G, x, labels, steps: int = 200, lr: float = 0.05, restarts: int = 1, prior_weight: float = 1e-3,
            D=None, feature_weight: float = 0.0, feature_layers: int = 2, seed: int = 0,
            batch_size: int = 64) -> ProjectionResult:
    """Find z with G(z, labels) ~ x by Adam on z through the frozen generator (inference mode).

    G          a :class:`~tinygan.models.conditional.ConditionalGenerator` (left unchanged)
    x          (N, C, H, W) faces in [-1, 1] on G's backend
    labels     (N,) age classes (0 young, 1 old) of the faces, or (N, K) label weights
    steps, lr  Adam steps on z and their step size (beta1 0.9)
    restarts   random starts per image; the lowest objective reached on any path wins (each path
               keeps its best point, as Adam need not end on its lowest one)
    prior_weight  w_p of the ||z||^2 / L term
    D, feature_weight, feature_layers  optional feature matching on the first ``feature_layers``
               layers of the conditional discriminator D (frozen, inference mode)
    seed       the starting points come from ``np.random.default_rng([seed, chunk start])`` on
               the host, so NumPy and CuPy start from the same z
    batch_size images per chunk (each chunk holds batch_size * restarts rows)
    """
    if steps < 0 or restarts < 1:
        raise ValueError(f"project: need steps >= 0 and restarts >= 1, got {steps} and {restarts}")
    xp = get_array_module(x)
    labels = xp.asarray(labels)
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"project: {labels.shape[0]} labels for {x.shape[0]} images")
    parts = []
    with contextlib.ExitStack() as stack:
        for model in (G, D):
            if model is not None:
                stack.enter_context(frozen(model))
        for s in range(0, x.shape[0], batch_size):
            parts.append(_project_chunk(G, x[s:s + batch_size], labels[s:s + batch_size], steps, lr,
                                        restarts, prior_weight, D, feature_weight, feature_layers,
                                        np.random.default_rng([seed, s])))
    z = xp.concatenate([p[0] for p in parts])
    recon = xp.concatenate([p[1] for p in parts])
    mse_path = np.concatenate([p[2] for p in parts], axis=1)
    obj_path = np.concatenate([p[3] for p in parts], axis=1)
    return ProjectionResult(z, recon, mse_path.mean(axis=1), obj_path.mean(axis=1),
                            np.concatenate([p[4] for p in parts]), np.concatenate([p[5] for p in parts]))


@dataclass
class AgingResult:
    """input, reconstruction G(z*, label) and aged G(z*, target), each (N, C, H, W) on the backend,
    plus the projection that produced z*."""
    input: object
    reconstruction: object
    aged: object
    projection: ProjectionResult

    @property
    def z(self):
        return self.projection.z

    def take(self, indices) -> AgingResult:
        """The result for the images at ``indices`` (host integer array)."""
        idx = np.asarray(indices, dtype=np.int64)
        dev = get_array_module(self.input).asarray(idx)
        return AgingResult(self.input[dev], self.reconstruction[dev], self.aged[dev],
                           self.projection.take(idx))


def age_faces(G, x, labels, target=OLD, **project_kwargs) -> AgingResult:
    """Project faces ``x`` (with their age ``labels``) into G's latent space and redraw them with
    the ``target`` label (default old).  ``project_kwargs`` go to :func:`project`."""
    proj = project(G, x, labels, **project_kwargs)
    return reage(G, AgingResult(x, proj.reconstruction, None, proj), target)


def reage(G, result: AgingResult, target) -> AgingResult:
    """The same projected faces redrawn with another ``target`` (class id or label weights), e.g.
    (-1, 2): twice the 'old' label, an extrapolation past anything G saw in training.  No new
    projection, only one forward pass of G."""
    x = result.input
    tl = target_labels(target, x.shape[0], G.n_classes, get_array_module(x)).astype(x.dtype)
    return AgingResult(x, result.reconstruction, G.forward(result.z, tl, training=False), result.projection)
