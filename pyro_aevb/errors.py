"""The errors a user can meet, each with its exit status on the command line.

Every failure the library anticipates is an :class:`AevbError` whose message is
one line that says what happened and what to do; the command line prints it as
``pyro-aevb: error: ...`` and exits with the class's ``exit_status``:

====  ==========================  =====================================================
 2    :class:`AevbInputError`     bad arguments, data, model/guide (breaks the contract)
 3    :class:`TrainingDiverged`   the loss, a parameter or a distribution argument became NaN/inf
                                  (or an argument reached its support's edge; :mod:`pyro_aevb.divergence`)
 4    :class:`RunLocked`          another process is writing the run directory
 5    :class:`StorageError`       a file could not be written or read (disk full, ...)
 130  :class:`Interrupted`        Ctrl-C / SIGTERM
====  ==========================  =====================================================

:class:`AevbInputError` is also a ``ValueError``, so Python callers can catch either.
"""


class AevbError(Exception):
    """A failure the library anticipates; ``exit_status`` is what the command line returns."""

    exit_status = 1


class AevbInputError(AevbError, ValueError):
    """Bad user input: arguments, data files, run directories, models that break the contract."""

    exit_status = 2


class TrainingDiverged(AevbError):
    """The loss, a parameter or a distribution argument became non-finite (or reached the edge of its support)
    after an update; the last good checkpoint is untouched."""

    exit_status = 3


class RunLocked(AevbError):
    """Another process holds the run directory's lock."""

    exit_status = 4


class StorageError(AevbError):
    """Writing or reading a run's files failed at the operating-system level (disk full, permissions)."""

    exit_status = 5


class Interrupted(AevbError):
    """Stopped by the user (Ctrl-C) or a termination signal."""

    exit_status = 130
