"""Argument types shared by the command lines (each rejects a bad value with one line, exit status 2)."""

import argparse
from pathlib import Path

from .errors import AevbInputError

#: formats both torchvision (image grids) and matplotlib (figures) write
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _integer(text) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def at_least_two(text) -> int:
    value = _integer(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2, got {value}")
    return value


def nonnegative_int(text) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def seed(text) -> int:
    """A random seed: an integer in [0, 2^32) (what torch, numpy and Pyro all accept)."""
    value = _integer(text)
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2^32), got {value}")
    return value


def picture_path(path) -> Path:
    """An output picture path with a format every writer here supports."""
    p = Path(path)
    if p.suffix.lower() not in PICTURE_SUFFIXES:
        raise AevbInputError(f"cannot write a picture to {p}: use a file ending in {', '.join(PICTURE_SUFFIXES)}")
    return p
