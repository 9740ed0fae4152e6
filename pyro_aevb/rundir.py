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

    def __init__(self, path, lock: RunLock, made_folders: tuple = (), made_lock: bool = False):
        self.path = Path(path)
        self.lock = lock
        # what open() made, removed again by abandon(): the folder and its missing parents (the deepest first), .lock
        self._made_folders, self._made_lock = made_folders, made_lock
        self._written = False  # whether a file of the run was written

    @classmethod
    def open(cls, path, resume: bool = False, overwrite: bool = False) -> "RunDirectory":
        """Create ``path`` if needed and take its lock; refuse a folder that holds a run unless ``resume`` (continue
        it) or ``overwrite`` (start afresh there); remove a killed writer's temporary files.

        A refusal leaves the folder as it was (:meth:`abandon`): the folder (with the parents made for it) or
        ``.lock`` made only to refuse are removed, an existing ``.lock`` gets its contents back; a resume of a
        missing folder makes nothing.

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
        made = tuple(folder for folder in (path, *path.parents) if not folder.exists())
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            _remove_made_folders(made)  # the parents made before the failing one
            raise StorageError(f"cannot create the run directory {path}: {e.strerror or e}") from None
        made_lock = not (path / LOCK).exists()
        try:
            lock = RunLock(path).acquire()  # first: a second writer is told so, whatever is there
        except BaseException:
            _remove_made_folders(made)
            raise
        directory = cls(path, lock, made, made_lock)
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
        no other writer holds it), an existing ``.lock`` gets its old contents back, the folders it made are removed
        where empty.  After a write: :meth:`close`."""
        if not self._written and self.lock.held:
            if self._made_lock:
                (self.path / LOCK).unlink(missing_ok=True)
            else:
                self.lock.restore()
        self.close()
        if not self._written:
            _remove_made_folders(self._made_folders)

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


def _remove_made_folders(made: tuple) -> None:
    """Remove the folders of ``made`` (the deepest first) while they are empty; another process's files are left."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:  # not empty (another process's files), or gone: it and its parents are left
            return


def resume_state(path: Optional[Path]) -> dict:
    """The checkpoint to resume from in ``path`` (a rank that does not write reads it too)."""
    if path is None:
        raise AevbInputError("resume needs a run directory")
    return load_checkpoint_to_resume(path)
