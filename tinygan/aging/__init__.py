"""Face aging with a conditional GAN: project a face into G's latent space, then flip the age label.

The recipe (as in Antipov, Baccouche and Dugelay, "Face aging with conditional generative
adversarial networks", 2017, minus their encoder and identity-preserving network):

1. Train G(z, age) and D(x, age) on faces labelled young / old (:mod:`labels`), with real batches
   balanced between the ages (:mod:`batches`) and :class:`tinygan.gan.ConditionalStackedGANTrainer`.
2. Latent projection (:mod:`projection`): for a photo x of age a, find by gradient descent the z
   for which G(z, a) looks like x.
3. Aging: keep z*, change the label; G(z*, old) is the same "latent face" drawn old.
4. Judging (:mod:`classifier`, :mod:`evaluation`): a separately trained age classifier says
   whether the aged faces look old, beside their reconstructions G(z*, a) as the control.

    labels      YOUNG, OLD, age_labels (CelebA's Young attribute, or grey hair), label weights
    batches     BalancedBatches: real batches with equal counts of each age
    projection  project, age_faces, reage
    classifier  classifier_step, train_age_classifier, predict_logits, classification_report
    evaluation  evaluate_aging, evaluate_held_out
    pictures    load_face_photos, strips, save_strips, sample_sheet

The models are :func:`tinygan.models.build_conditional_gan` and :func:`tinygan.models.age_classifier`;
``examples/face_aging.py`` runs it all, ``lessons/12_face_aging.py`` explains it, and
``docs/face_aging.md`` says what "old" means.
"""
from .batches import BalancedBatches
from .classifier import (
    called_old,
    classification_report,
    classifier_step,
    predict_logits,
    train_age_classifier,
)
from .evaluation import evaluate_aging, evaluate_held_out
from .labels import AGE_CLASSES, AGE_RULES, OLD, YOUNG, age_labels, strength_target, target_labels
from .pictures import load_face_photos, sample_sheet, save_strips, strips
from .projection import AgingResult, ProjectionResult, age_faces, project, reage

__all__ = ["YOUNG", "OLD", "AGE_CLASSES", "AGE_RULES", "age_labels", "strength_target", "target_labels",
           "BalancedBatches", "project", "age_faces", "reage", "ProjectionResult", "AgingResult",
           "classifier_step", "train_age_classifier", "predict_logits", "classification_report", "called_old",
           "evaluate_aging", "evaluate_held_out", "load_face_photos", "strips", "save_strips", "sample_sheet"]
