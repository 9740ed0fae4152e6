"""Crash-consistent run directories: a killed run never leaves a half-written or stale file.

A run directory holds ``config.json``, ``metrics.jsonl``, ``checkpoint.pt`` and
``checkpoint.prev.pt`` (the checkpoint before it), and a ``.lock`` file:

* every file is written whole to a temporary file beside it, flushed and
  fsynced, given normal permissions (``0666`` less the umask), then renamed over
  the old one (``os.replace`` is atomic on POSIX), and the directory is fsynced
  so the rename survives a power cut;
* before a new checkpoint replaces ``checkpoint.pt``, the old one is kept as
  ``checkpoint.prev.pt`` (a hard link, renamed atomically): there is always one
  complete checkpoint, and :func:`load_checkpoint` with ``fallback=True`` uses
  the previous one, with a warning, when the newest is unreadable;
* ``metrics.jsonl`` is rewritten whole from the trainer's rows each epoch, so it
  is never torn and a fresh run starts a fresh file; :func:`read_metrics` still
  tolerates a torn last line (files from elsewhere) and non-finite numbers are
  written as ``null`` (valid JSON);
* :class:`RunLock` -- an OS lock (``fcntl.flock``) on ``.lock`` holding the
  writer's PID -- lets one process write a run directory; a second writer gets
  :class:`~pyro_aevb.errors.RunLocked` naming the holder; readers never lock;
* temporary files left by a killed writer are removed by the next writer
  (:func:`remove_stale_temp_files`).

``load_checkpoint`` uses ``torch.load(weights_only=True)``: checkpoints hold
only tensors, numbers, strings, lists and dicts, never pickled code.
"""

import errno
import fcntl
import io
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterable

import torch

from .errors import AevbInputError, RunLocked, StorageError

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
DATA = "data.pt"  # the rows a run was trained on, where they came from Python (not a file or built-in dataset)
LOCK = ".lock"
FORMAT_VERSION = 1


def _storage_error(path: Path, e: OSError) -> StorageError:
    if e.errno == errno.ENOSPC:
        return StorageError(f"disk full while writing {path}: free some space and continue with --resume "
                            "(the files from the last finished epoch are intact)")
    return StorageError(f"cannot write {path}: {e.strerror or e} (the files from the last finished epoch are intact)")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, rename it to ``path``, fsync the folder."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise _storage_error(path, e) from e
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temp_files(run_dir) -> list:
    """Delete the ``.NAME.*.tmp`` files a killed writer left behind (call while holding the run's lock)."""
    removed = []
    for tmp in Path(run_dir).glob(".*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp.name)
        except FileNotFoundError:
            pass
    return removed


def save_checkpoint(run_dir, state: dict) -> Path:
    """Write ``checkpoint.pt`` atomically, keeping the one it replaces as ``checkpoint.prev.pt``."""
    run_dir = Path(run_dir)
    path, previous = run_dir / CHECKPOINT, run_dir / PREVIOUS
    # serialised in memory first, so that a full disk surfaces as an OSError of the file write (torch.save
    # straight to a file reports it as an opaque RuntimeError)
    buffer = io.BytesIO()
    torch.save(dict(state, format=FORMAT_VERSION), buffer)
    if path.exists():
        tmp = run_dir / f".{PREVIOUS}.{os.getpid()}.tmp"
        try:
            if tmp.exists():
                tmp.unlink()
            try:
                os.link(path, tmp)
            except OSError:  # a filesystem without hard links: copy
                shutil.copyfile(path, tmp)
            os.replace(tmp, previous)
        except OSError as e:
            if tmp.exists():
                tmp.unlink()
            raise _storage_error(previous, e) from e
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))
    return path


def _read_checkpoint(path: Path, map_location) -> dict:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unreadable file is the same user-facing problem
        raise AevbInputError(f"{path} is not a readable pyro-aevb checkpoint (truncated or corrupt: "
                             f"{type(e).__name__})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise AevbInputError(f"{path} is not a pyro-aevb checkpoint of format {FORMAT_VERSION}")
    return state


def load_checkpoint(run_dir, map_location="cpu", fallback: bool = True) -> dict:
    """The newest readable checkpoint of ``run_dir``: ``checkpoint.pt``, or (with ``fallback``, and a warning)
    ``checkpoint.prev.pt`` when the newest is missing or unreadable."""
    run_dir = Path(run_dir)
    path, previous = run_dir / CHECKPOINT, run_dir / PREVIOUS
    if not run_dir.exists():
        raise AevbInputError(f"run directory not found: {run_dir}")
    if not run_dir.is_dir():
        raise AevbInputError(f"{run_dir} is a file, not a run directory")
    if not path.exists() and not (fallback and previous.exists()):
        raise AevbInputError(f"{run_dir} holds no checkpoint: no epoch of a run has finished there")
    try:
        return _read_checkpoint(path, map_location)
    except AevbInputError as newest:
        if not (fallback and previous.exists()):
            raise AevbInputError(f"{newest}; there is no previous checkpoint to fall back on: move {run_dir} aside "
                                 "and train again, or train afresh there (overwrite=True; CLI: train "
                                 "--overwrite)") from None
        state = _read_checkpoint(previous, map_location)
        warnings.warn(f"{newest}; using the previous checkpoint {previous} (epoch {state.get('epoch')})",
                      RuntimeWarning, stacklevel=2)
        return state


def check_resumable(run_dir) -> None:
    """Refuse to resume a directory without a checkpoint, telling the user to start the run instead."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and not (run_dir / CHECKPOINT).exists() and not (run_dir / PREVIOUS).exists():
        raise AevbInputError(f"{run_dir} holds no checkpoint (it is not a run directory, or no epoch of its run has "
                             "finished yet): nothing to resume; start the run without resume (CLI: without --resume)")


def load_checkpoint_to_resume(run_dir, map_location="cpu") -> dict:
    """:func:`load_checkpoint` for ``--resume``: a directory without one is told to start the run instead."""
    check_resumable(run_dir)
    return load_checkpoint(run_dir, map_location)


def _finite(value):
    """JSON has no NaN/inf: non-finite floats become ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(obj, **kwargs) -> str:
    """``json.dumps`` that always gives valid JSON (non-finite numbers as ``null``)."""
    return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def write_metrics(run_dir, rows: Iterable[dict]) -> None:
    """Rewrite ``metrics.jsonl`` atomically: one JSON object per finished epoch."""
    text = "".join(dumps(r) + "\n" for r in rows).encode()
    atomic_write(Path(run_dir) / METRICS, lambda f: f.write(text))


def write_data(run_dir, state: dict) -> None:
    """Write ``data.pt`` (a :meth:`pyro_aevb.data.Dataset.state`) atomically."""
    buffer = io.BytesIO()
    torch.save(dict(state, format=FORMAT_VERSION), buffer)
    atomic_write(Path(run_dir) / DATA, lambda f: f.write(buffer.getbuffer()))


def read_data(run_dir) -> dict:
    """The dataset state in ``run_dir/data.pt``."""
    path = Path(run_dir) / DATA
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unreadable file is the same user-facing problem
        raise AevbInputError(f"{path}, the data the run was trained on, is unreadable ({type(e).__name__}): "
                             "train the run again") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise AevbInputError(f"{path} is not a pyro-aevb data file of format {FORMAT_VERSION}")
    return state


def write_config(run_dir, config: dict) -> None:
    text = (dumps(config, indent=2) + "\n").encode()
    atomic_write(Path(run_dir) / CONFIG, lambda f: f.write(text))


def read_metrics(run_dir) -> list:
    """The rows of ``metrics.jsonl``; a torn last line (a writer killed mid-line) is skipped with a warning."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise AevbInputError(f"cannot read {path}: {e}") from None
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
            rows.append(row)
        except ValueError:
            if i == len(lines) - 1:
                warnings.warn(f"{path}: ignoring a torn last line (a writer was killed mid-write)", RuntimeWarning,
                              stacklevel=2)
            else:
                raise AevbInputError(f"{path} line {i + 1} is not a JSON object: the file is corrupt; "
                                     "--resume rewrites it from the checkpoint") from None
    return rows


def _try_flock(f) -> bool:
    """Take an exclusive ``flock`` on the open file ``f`` without blocking; False when another holds it."""
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _refuse(f, run_dir) -> None:
    """Close ``f`` and raise :class:`RunLocked` naming the holder's PID (written just after it took the lock)."""
    holder = ""
    for _ in range(20):
        f.seek(0)
        holder = f.read().strip()
        if holder:
            break
        time.sleep(0.05)
    f.close()
    raise RunLocked(f"{run_dir} is being written by another process (PID {holder or 'unknown'}): wait for it "
                    "to finish, or choose another --out")


class RunLock:
    """One writer per run directory: an exclusive ``fcntl.flock`` on ``RUN_DIR/.lock``, which holds the PID.

    Acquired by the trainer for as long as it writes; a second writer raises :class:`RunLocked` at once, or after
    waiting up to ``wait`` seconds for the holder to let go (:meth:`acquire`: for a lock held only briefly, such as a
    sweep's manifest, which several ``--run`` processes started together all check).  Released on :meth:`release` or
    when the process ends (the OS drops the lock with the file descriptor).
    """

    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK
        self._file = None
        self._previous = ""  # what the file held before this process wrote its PID (:meth:`restore`)

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self, wait: float = 0.0) -> "RunLock":
        if self._file is not None:
            return self
        try:
            f = open(self.path, "a+")
        except OSError as e:
            raise _storage_error(self.path, e) from e
        deadline = time.monotonic() + wait
        while not _try_flock(f):
            if time.monotonic() >= deadline:
                _refuse(f, self.path.parent)
            time.sleep(0.05)
        f.seek(0)
        self._previous = f.read()
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def restore(self) -> None:
        """Put back, while still holding the lock, what the file held before :meth:`acquire` (a refused command
        leaves the run's files as they were)."""
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.write(self._previous)
            self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
