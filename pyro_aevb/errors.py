"""One exception type for everything a user can get wrong.

The command line catches :class:`AevbInputError` and prints its message on one
line with exit status 2; Python callers get an ordinary ``ValueError`` subclass
whose message names the problem (shape, range, NaN, missing file, ...).
"""


class AevbInputError(ValueError):
    """Bad user input: arguments, data files or run directories."""
