"""Age labels: what "young" and "old" mean for a face dataset, and label weights for aging.

CelebA has no ages.  Its annotators ticked a binary *Young* box; a face is **old when Young is
-1** (not judged young: an annotator's impression, with no stated age threshold; 22 % of CelebA
faces), optionally also when Gray_Hair is +1 (rule ``"not_young_or_gray"``).  The embedded
procedural faces have no Young attribute; there "old" simply means grey hair, a stand-in for
teaching only.
"""
from __future__ import annotations

import numpy as np

from ..backend import to_numpy

YOUNG, OLD = 0, 1
AGE_CLASSES = ("young", "old")
AGE_RULES = ("auto", "not_young", "not_young_or_gray", "gray_hair")


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


def strength_target(strength: float) -> np.ndarray:
    """Label weights (young, old) = (1 - strength, strength): 1 is the plain one-hot "old"; above 1
    extrapolates past anything G saw in training (stronger aging, less faithful)."""
    return np.array([1.0 - strength, strength])


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
