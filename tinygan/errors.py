"""Errors a user can act on: each names what was wrong and what was expected."""


class ShapeError(ValueError):
    """An array reached a layer (or a loader, or a model) with the wrong shape."""


class CheckpointError(RuntimeError):
    """A weights or checkpoint file does not fit the model or optimizer it is loaded into."""


class ConfigError(ValueError):
    """A setting (a command-line flag, a schedule, a run's config) is out of its range."""


class DataError(ValueError):
    """Face data cannot be used as given: a missing or empty image folder, a corrupt zip or image,
    a malformed attribute file, a full disk for the image cache, a batch larger than the data.
    The message names the path (or the numbers) and what was expected."""


class DataWarning(UserWarning):
    """Data was loaded, but not entirely as given (e.g. an unusable attribute file was ignored)."""
