"""Judging face aging with the age classifier: does the classifier call the aged faces old?

The control is the reconstruction G(z*, a): it differs from the aged face G(z*, old) only in the
label, so "share of aged faces called old" minus "share of reconstructions called old" is what
the label change did, and the reconstruction error says how faithful the projection was.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, to_numpy
from .classifier import called_old, classification_report, predict_logits
from .labels import OLD, YOUNG, strength_target
from .projection import AgingResult, age_faces, reage


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


def evaluate_held_out(G, C, x, labels, strengths=(1.0,), held_images=None, held_labels=None, backend=None,
                      **project_kwargs) -> tuple[dict, dict]:
    """Project held-out faces ``x`` (N, C, H, W, on G's backend) with their age ``labels`` (N,) and
    judge them aged at each of ``strengths`` (label weights (1 - s, s), see :func:`strength_target`).

    Returns (report, results): ``report`` holds the classifier's report on ``held_images`` /
    ``held_labels`` (all held-out faces; default ``x``), the projection's error curve, and per
    strength and group (young, old, all) :func:`evaluate_aging`'s numbers under keys
    ``held_out_<group>`` (plain strength 1) or ``held_out_<group>_strength<s>``; ``results`` maps
    each strength to its AgingResult (for pictures).  ``project_kwargs`` go to :func:`project`.
    """
    y = np.asarray(labels)
    held_images = x if held_images is None else held_images
    held_labels = y if held_labels is None else held_labels
    logits = predict_logits(C, held_images, backend=backend)
    report = {"classifier": classification_report(logits, held_labels)}
    plain = age_faces(G, x, get_array_module(x).asarray(y, dtype=np.int64), target=OLD, **project_kwargs)
    steps = project_kwargs.get("steps", 200)
    report.update(n_projected=int(len(y)), projection_steps=steps, restarts=project_kwargs.get("restarts", 1),
                  error_curve=[round(float(e), 5) for e in plain.projection.errors[::max(1, steps // 20)]])
    results = {}
    for strength in sorted({1.0, *strengths}):
        res = plain if strength == 1.0 else reage(G, plain, strength_target(strength))
        key = "" if strength == 1.0 else f"_strength{strength:g}"
        for group, sel in (("young", y == YOUNG), ("old", y == OLD), ("all", np.ones(len(y), bool))):
            if sel.any():
                report[f"held_out_{group}{key}"] = evaluate_aging(res.take(np.flatnonzero(sel)), C)
        results[strength] = res
    return report, results
