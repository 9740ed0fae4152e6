"""The run directory and its one owner.

A run directory holds ``config.json`` (what the run is), ``metrics.jsonl`` (one row per finished epoch),
``checkpoint.pt`` and ``checkpoint.prev.pt`` (the state, :mod:`pyro_aevb.checkpoint`), ``data.pt`` when its rows
were made in Python, and ``.lock``.  :class:`RunDirectory` is the only code that decides about it:

* :meth:`RunDirectory.open` for writing: create the folder, take the lock (one writer at a time; a second one
  is refused with :class:`~pyro_aevb.errors.RunLocked`, exit status 4), refuse a folder that already holds a run
  unless the run is resumed or overwritten, and remove the temporary files a killed writer left;
* every write of the run's files (atomic: :func:`pyro_aevb.checkpoint.atomic_write`) and the reads a resume needs.

The trainer writes through it; ``runs.train`` opens it before anything else, so a second writer is told so
whatever state the folder is in.  Readers (``load_run``, ``evaluate``, ``plot``) never lock.
"""

import warnings
from pathlib import Path
from typing import Iterable, Optional

from .checkpoint import (CHECKPOINT, LOCK, METRICS, RunLock, check_resumable, load_checkpoint_to_resume, read_metrics,
                         remove_stale_temp_files, save_checkpoint, write_config, write_data, write_metrics)
from .errors import AevbInputError, StorageError


class RunDirectory:
    """A run directory opened for writing by this process (:meth:`open`)."""

    def __init__(self, path, lock: RunLock, made: tuple = ()):
        self.path = Path(path)
        self.lock = lock
        self._made = made  # what open() made: the folder and/or .lock, removed again by abandon()
        self._written = False  # whether a file of the run was written

    @classmethod
    def open(cls, path, resume: bool = False, overwrite: bool = False) -> "RunDirectory":
        """Create ``path`` if needed and take its lock; refuse a folder that holds a run unless ``resume`` (continue
        it) or ``overwrite`` (start afresh there); remove a killed writer's temporary files.

        A refusal leaves the folder as it was (:meth:`abandon`): the folder or ``.lock`` made only to refuse are
        removed, an existing ``.lock`` gets its contents back; a resume of a missing folder makes nothing.

        :raises AevbInputError: both ``resume`` and ``overwrite``, ``path`` is a file, the folder holds a run (not
            resumed or overwritten), or ``resume`` and it holds no checkpoint.
        :raises StorageError: the folder cannot be created.
        :raises RunLocked: another process writes it.
        """
        path = Path(path)
        if resume and overwrite:
            raise AevbInputError("resume continues the run in the directory and overwrite replaces it: choose one")
        if path.exists() and not path.is_dir():
            raise AevbInputError(f"{path} is a file, not a run directory")
        if resume and not path.exists():  # refused before anything is made there
            raise AevbInputError(f"{path} does not exist: there is no run to resume; start the run without resume "
                                 "(CLI: without --resume)")
        made = () if path.exists() else (path,)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the run directory {path}: {e.strerror or e}") from None
        made += () if (path / LOCK).exists() else (path / LOCK,)
        try:
            lock = RunLock(path).acquire()  # first: a second writer is told so, whatever is there
        except BaseException:
            if path in made:
                _remove_if_empty(path)
            raise
        directory = cls(path, lock, made)
        try:
            if resume:
                check_resumable(path)
            if not (resume or overwrite) and directory.holds_run:
                raise AevbInputError(f"{path} already holds a run: continue it with resume=True (CLI: --resume), "
                                     "start afresh with overwrite=True (CLI: --overwrite), or choose another run "
                                     "directory")
            if not (resume or overwrite) and (path / METRICS).exists() and read_metrics(path):
                warnings.warn(f"{path} has a metrics.jsonl but no checkpoint: starting a fresh run there (its "
                              "metrics are replaced)", RuntimeWarning, stacklevel=2)
            remove_stale_temp_files(path)
        except BaseException:
            directory.abandon()
            raise
        return directory

    @property
    def holds_run(self) -> bool:
        """Whether a checkpoint of a run is there."""
        return (self.path / CHECKPOINT).exists()

    def close(self) -> None:
        """Release the lock (also released when the process ends)."""
        self.lock.release()

    def abandon(self) -> None:
        """Close the directory of a command refused before it wrote any file of the run, leaving the folder as it
        was: the ``.lock`` and the folder :meth:`open` made are removed (the lock file while still held, so that
        no other writer holds it), an existing ``.lock`` gets its old contents back.  After a write: :meth:`close`."""
        if not self._written and self.lock.held:
            lock = self.path / LOCK
            if lock in self._made:
                lock.unlink(missing_ok=True)
            else:
                self.lock.restore()
        self.close()
        if not self._written and self.path in self._made:
            _remove_if_empty(self.path)

    def reacquire(self) -> None:
        """Take the lock again (a trainer that fits once more after :meth:`close`)."""
        self.lock.acquire()

    # ------------------------------------------------------------------ the run's files
    def write_config(self, config: dict) -> None:
        self._written = True
        write_config(self.path, config)

    def write_metrics(self, rows: Iterable[dict]) -> None:
        self._written = True
        write_metrics(self.path, rows)

    def save_checkpoint(self, state: dict) -> None:
        self._written = True
        save_checkpoint(self.path, state)

    def write_data(self, state: dict) -> None:
        self._written = True
        write_data(self.path, state)

    def __str__(self) -> str:
        return str(self.path)


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:  # not empty (another process's files): left
        pass


def resume_state(path: Optional[Path]) -> dict:
    """The checkpoint to resume from in ``path`` (a rank that does not write reads it too)."""
    if path is None:
        raise AevbInputError("resume needs a run directory")
    return load_checkpoint_to_resume(path)
