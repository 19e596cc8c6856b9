"""Errors a user can act on: each names what was wrong and what was expected."""


class ShapeError(ValueError):
    """An array reached a layer (or a loader, or a model) with the wrong shape."""


class CheckpointError(RuntimeError):
    """A weights or checkpoint file does not fit the model or optimizer it is loaded into."""
