"""Which dataset a name means: ``mnist``, ``frey``, a file of the user's, or -- with ``seq_len`` -- sequences of
frames (:mod:`pyro_aevb.sequences`), with the chosen binarization.  The one entry point the command line, run
directories (``load_run(...).load_data()``) and the applications use; it sits above :mod:`pyro_aevb.data` and
:mod:`pyro_aevb.sequences`, which do not import it.
"""

from typing import Optional

from .data import (BINARIZE_MODES, UINT8_MODES, Dataset, apply_binarization, load_array_file, load_frey, load_mnist,
                   with_origin)
from .errors import AevbInputError
from .sequences import load_sequences


def load_dataset(name: str, binarize: str = "none", path: Optional[str] = None,
                 seq_len: Optional[int] = None, uint8: Optional[str] = None) -> Dataset:
    """``"mnist"``, ``"frey"`` or a path to an array file, with the chosen binarization; with ``seq_len`` a
    dataset of sequences ``[N, seq_len, D]`` split in time (:func:`pyro_aevb.sequences.load_sequences`).

    ``uint8`` says what uint8 values of an array file are: ``"pixels"`` (divided by 255) or ``"counts"``
    (kept); when not given they are read as pixels with a RuntimeWarning naming this option.  Frey Face's
    uint8 are pixels (read so, silently)."""
    if binarize not in BINARIZE_MODES:
        raise AevbInputError(f"unknown binarization {binarize!r}; choose from {list(BINARIZE_MODES)}")
    if uint8 is not None and uint8 not in UINT8_MODES:
        raise AevbInputError(f"unknown uint8 reading {uint8!r}; choose from {list(UINT8_MODES)}")
    if seq_len is not None:
        ds = load_sequences(name, seq_len, path, uint8)
        ds = with_origin(ds, name, path, seq_len, ds.info.get("uint8"))
    elif name == "mnist":
        ds = load_mnist(path)
    elif name == "frey":
        ds = load_frey(path)
    else:
        ds = load_array_file(name, uint8=uint8)
    return apply_binarization(ds, binarize)
