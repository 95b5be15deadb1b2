"""Errors that mean "the user (or a file they gave us) is wrong".

The CLI turns any :class:`UserError` into one line on stderr and a non-zero exit;
everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix; the message says what is wrong and what to do."""


class InvalidArchitecture(UserError, ValueError):
    """An architecture string, token sequence or spec that is not in the space."""


class MissingData(UserError):
    """A table the oracle needs has not been imported into the data directory."""


class CorruptData(UserError):
    """A data file is truncated, tampered with or not in the expected format."""
