"""Atomic checkpoints: a killed run never leaves a half-written file.

``save_checkpoint`` writes to a temporary file in the run directory, fsyncs it
and renames it over ``checkpoint.pt`` (``os.replace`` is atomic on POSIX and
Windows), so ``checkpoint.pt`` is always either the previous or the new state.
``load_checkpoint`` uses ``torch.load(weights_only=True)``: checkpoints hold
only tensors, numbers, strings, lists and dicts, never pickled code.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import torch

from .errors import AevbInputError

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
FORMAT_VERSION = 1


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(run_dir, state: dict) -> Path:
    path = Path(run_dir) / CHECKPOINT
    atomic_write(path, lambda f: torch.save(dict(state, format=FORMAT_VERSION), f))
    return path


def load_checkpoint(run_dir, map_location="cpu") -> dict:
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise AevbInputError(f"no checkpoint in {run_dir} (expected {path})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise AevbInputError(f"{path} is not a readable pyro-aevb checkpoint: {e}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise AevbInputError(f"{path} is not a pyro-aevb checkpoint of format {FORMAT_VERSION}")
    return state


def write_metrics(run_dir, rows: Iterable[dict]) -> None:
    """Rewrite ``metrics.jsonl`` atomically (used on resume to match the checkpoint)."""
    text = "".join(json.dumps(r) + "\n" for r in rows).encode()
    atomic_write(Path(run_dir) / METRICS, lambda f: f.write(text))


def append_metrics(run_dir, row: dict) -> None:
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def read_metrics(run_dir) -> list:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
