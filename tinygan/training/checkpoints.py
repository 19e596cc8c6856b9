"""Saving a run: one checkpoint file, replaced atomically, never with non-finite weights.

The format and its soundness are :mod:`tinygan.checkpoint`'s (one .npz, no pickle, written under a
temporary name and renamed); this adds what a training script decides around it: refuse weights
that are NaN or infinite (the file on disk is the last *good* state), keep a copy per epoch if
asked, and write nothing on the ranks of a data-parallel run other than rank 0.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import CheckpointError
from ..io import atomic_path
from .guard import NonFiniteWeightsError, non_finite_arrays


class Checkpointer:
    """``save(state)`` writes ``state`` (from :func:`tinygan.checkpoint.training_state`) to ``path``.

    keep_epochs  also keep ``epoch_XXX.npz`` beside it after each completed epoch
    writer       False on the ranks of a data-parallel run that must not write (all but rank 0)
    """

    def __init__(self, path, keep_epochs: bool = False, writer: bool = True):
        self.path = Path(path)
        self.keep_epochs = keep_epochs
        self.writer = writer

    def save(self, state: dict, epoch_end: int | None = None) -> Path | None:
        """Check every weight, buffer and optimizer moment, then write; ``epoch_end``: the number of
        the epoch just completed (for ``keep_epochs``).  Raises NonFiniteWeightsError, leaving the
        file on disk as it was, if anything is NaN or infinite."""
        bad = non_finite_arrays({"trainer": state.get("trainer"), "ema": state.get("ema")})
        if bad:
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            raise NonFiniteWeightsError(f"non-finite values in {', '.join(bad[:3])}{more} at step "
                                        f"{state.get('step')}; not overwriting the last good checkpoint")
        if not self.writer:
            return None
        save_checkpoint(self.path, state)
        if self.keep_epochs and epoch_end:
            with atomic_path(self.path.with_name(f"epoch_{epoch_end:03d}.npz")) as tmp:
                shutil.copyfile(self.path, tmp)
        return self.path

    def load(self) -> dict:
        """The saved state; CheckpointError naming the file if it is missing or unreadable."""
        return load_checkpoint(self.path)

    def step_on_disk(self) -> int | None:
        """The step of the checkpoint file, or None if there is none (or it cannot be read)."""
        try:
            return int(load_checkpoint(self.path)["step"])
        except (CheckpointError, KeyError, TypeError, ValueError):
            return None
