"""Argument types shared by the command lines (each rejects a bad value with one line, exit status 2)."""

import argparse
import math
from pathlib import Path

from .errors import AevbInputError

#: formats both torchvision (image grids) and matplotlib (figures) write
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _integer(text) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""
    def parse(text) -> int:
        value = _integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int, nonnegative_int, at_least_two = int_at_least(1), int_at_least(0), int_at_least(2)


def positive_float(text) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
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
