"""Face aging with a conditional GAN: project a face into G's latent space, then flip the age label.

The recipe (as in Antipov, Baccouche and Dugelay, "Face aging with conditional generative
adversarial networks", 2017, minus their encoder and identity-preserving network):

1. Train G(z, age) and D(x, age) on faces labelled young / old (:mod:`tinygan.gan.conditional`).
2. **Latent projection.**  For a photo x of age a, find the z for which G(z, a) looks like x:

       z* = argmin_z  ||G(z, a) - x||^2 / P  +  w_f ||phi(G(z, a)) - phi(x)||^2 / F  +  w_p ||z||^2 / L

   by gradient descent on z alone (Adam), through the frozen generator: the same backward pass
   that fills G's parameter gradients in training also returns dL/dz, its input gradient.  G runs in inference mode, so each
   BatchNorm is a fixed per-channel affine map and the images of a batch do not influence each
   other.  phi is an optional hidden layer of D (feature matching: D's features care about
   edges and textures rather than exact pixels); the prior term keeps z where G was trained
   (z ~ N(0, I)), away from directions G never saw.  P, F, L are the pixel, feature and latent
   counts per image, so each weight means the same thing at any image size.
3. **Aging.**  Keep z*, change the label: G(z*, old) is the same "latent face" drawn old.

What "old" means: CelebA has no ages.  Its annotators ticked a binary *Young* box; we call a
face **old when Young is -1** (not judged young: an annotator's impression, with no stated age
threshold; 22 % of CelebA faces), optionally also when Gray_Hair is +1 (:func:`age_labels`, rule
``"not_young_or_gray"``).  The embedded procedural faces have no Young attribute; there "old"
simply means grey hair, a stand-in for teaching only.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import get_array_module, to_numpy
from .images import make_grid, save_png_atomic
from .optimizers import Adam
from .sequential import frozen

YOUNG, OLD = 0, 1
AGE_CLASSES = ("young", "old")
AGE_RULES = ("auto", "not_young", "not_young_or_gray", "gray_hair")


# -- labels ---------------------------------------------------------------------------------------

def age_labels(dataset, rule: str = "auto") -> np.ndarray:
    """(N,) int64 age class per image of a FaceDataset: 0 young, 1 old, -1 no attribute row.

    rule ``"not_young"``: old iff CelebA's Young is -1.  ``"not_young_or_gray"``: also old when
    Gray_Hair is +1.  ``"gray_hair"``: old iff Gray_Hair (the embedded faces' stand-in).
    ``"auto"``: ``not_young`` when the dataset has a Young attribute, else ``gray_hair``.
    """
    if rule not in AGE_RULES:
        raise ValueError(f"unknown age rule {rule!r}; expected one of {AGE_RULES}")
    if dataset.attributes is None:
        raise ValueError(f"dataset {dataset.name!r} has no attributes; face aging needs CelebA's "
                         f"list_attr_celeba.txt next to the images (or the embedded faces' Gray_Hair)")
    if rule == "auto":
        rule = "not_young" if "Young" in dataset.attr_names else "gray_hair"
    if rule == "gray_hair":
        old = dataset.labels("Gray_Hair")
    else:
        old = ~dataset.labels("Young")
        if rule == "not_young_or_gray":
            old |= dataset.labels("Gray_Hair")
    out = old.astype(np.int64)
    out[~dataset.attr_mask] = -1
    return out


# -- projection -----------------------------------------------------------------------------------

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

    def take(self, indices) -> "ProjectionResult":
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


# -- aging ------------------------------------------------------------------------------------------

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

    def take(self, indices) -> "AgingResult":
        """The result for the images at ``indices`` (host integer array)."""
        idx = np.asarray(indices, dtype=np.int64)
        dev = get_array_module(self.input).asarray(idx)
        return AgingResult(self.input[dev], self.reconstruction[dev], self.aged[dev], self.projection.take(idx))


def target_labels(target, n: int, n_classes: int, xp):
    """``target`` as (n, n_classes) label weights: a class id (1 = old) or a weight row like (0.3, 0.7)."""
    if np.isscalar(target):
        w = np.zeros(n_classes)
        w[int(target)] = 1.0
    else:
        w = np.asarray(to_numpy(target), dtype=np.float64).reshape(-1)
        if w.shape != (n_classes,):
            raise ValueError(f"target must be a class id or {n_classes} label weights, got {target!r}")
    return xp.asarray(np.tile(w, (n, 1)))


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


def strips(result: AgingResult):
    """(3N, C, H, W): input, reconstruction, aged for each face in turn (a grid with nrow=3)."""
    xp = get_array_module(result.input)
    trip = xp.stack([result.input, result.reconstruction, result.aged], axis=1)
    return trip.reshape((-1,) + tuple(result.input.shape[1:]))


def save_strips(result: AgingResult, path, scale: int = 2, columns: int = 1) -> Path:
    """One PNG: a row ``input | reconstruction | aged`` per face (``columns`` such triples per row)."""
    from PIL import Image
    grid = make_grid(strips(result), nrow=3 * columns, padding=2)
    img = Image.fromarray(grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return save_png_atomic(img, path)


# -- judging ----------------------------------------------------------------------------------------

def called_old(classifier, images, batch_size: int = 256) -> np.ndarray:
    """(N,) bool on the host: the age classifier's verdict (logit > 0 means old)."""
    out = []
    for s in range(0, images.shape[0], batch_size):
        out.append(to_numpy(classifier.forward(images[s:s + batch_size], training=False)).reshape(-1) > 0)
    return np.concatenate(out)


def evaluate_aging(result: AgingResult, classifier, labels=None) -> dict:
    """How the classifier judges inputs, reconstructions and aged faces; mean reconstruction error.

    Returns floats: ``share_input_called_old``, ``share_reconstruction_called_old``,
    ``share_aged_called_old``, ``mean_reconstruction_error`` (pixel MSE),
    ``mean_abs_change_aged_vs_reconstruction`` (mean |aged - reconstruction| per pixel, [-1, 1]
    units), ``n``; with ``labels`` also the classifier's accuracy on the inputs.
    """
    on_in = called_old(classifier, result.input)
    on_rec = called_old(classifier, result.reconstruction)
    on_aged = called_old(classifier, result.aged)
    out = {"n": int(len(on_in)), "share_input_called_old": float(on_in.mean()),
           "share_reconstruction_called_old": float(on_rec.mean()),
           "share_aged_called_old": float(on_aged.mean()),
           "mean_reconstruction_error": float(result.projection.final_error.mean()),
           # How much the label change alters the picture, in the same units as the error.
           "mean_abs_change_aged_vs_reconstruction": float(abs(result.aged - result.reconstruction).mean())}
    if labels is not None:
        y = np.asarray(to_numpy(labels)).astype(bool)
        out["classifier_accuracy_on_inputs"] = float((on_in == y).mean())
    return out


# -- photos -----------------------------------------------------------------------------------------

def load_face_photos(paths, image_size: int, crop: str = "auto", backend=None):
    """Face photos -> (N, 3, S, S) floats in [-1, 1] on ``backend``, preprocessed as the data module does.

    crop ``"auto"``: the CelebA face box for aligned CelebA-shaped images (178x218 or 89x109,
    aspect ratio 0.8165), else the largest centred square; or any crop the data module accepts.
    """
    from PIL import Image

    from .backend import get_backend
    from .data import preprocess_image
    be = get_backend(backend if backend is not None else "numpy")
    out = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise FileNotFoundError(f"no such photo: {p}")
        c = crop
        if c == "auto":
            with Image.open(p) as im:
                w, h = im.size
            c = "celeba" if math.isclose(w / h, 178 / 218, rel_tol=0.01) else "square"
        pixels, _ = preprocess_image(str(p), image_size, crop=c)
        out.append(pixels)
    raw = np.stack(out)
    return be.asarray(raw.astype(np.float32) / 127.5 - 1.0)
