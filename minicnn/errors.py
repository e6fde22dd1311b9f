"""Errors a user can act on.

Every message is one line that names the layer, shape or file involved and says what to do.
The CLI turns `UserError` into that line on stderr and exit status 2.
"""


class UserError(Exception):
    """A mistake in what the user asked for (bad argument, missing file, no GPU)."""


class ShapeError(UserError, ValueError):
    """A layer got an input or argument whose shape it cannot work with."""


class DataError(UserError, ValueError):
    """A data or checkpoint file is missing, truncated or corrupt."""


class DeviceError(UserError, RuntimeError):
    """The requested device cannot be used here."""
