"""The plate over datapoints, shared by every model and guide.

Eq. (8) of the paper estimates the full-dataset bound from a minibatch
X^M of M of the N datapoints:

    L(theta, phi; X) ~= L^M(theta, phi; X^M) = (N / M) * sum_{i in X^M} L(theta, phi; x^(i)).

``pyro.plate("data", N, subsample=idx)`` applies exactly this N/M scale to
every site inside it, so neither models nor objectives multiply by N/M by hand.
"""

from typing import Optional

import pyro
import torch

from .errors import AevbInputError


def data_plate(x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
    """Plate over the rows of ``x``.

    :param x: the minibatch (or whole dataset), shape ``[M, D]``.
    :param idx: indices of the rows of ``x`` in the full dataset (the subsample),
        or ``None`` when ``x`` is the whole dataset.
    :param num_data: N, the size of the full dataset; required with ``idx``.
    """
    if idx is None:
        if num_data is not None and num_data != x.shape[0]:
            raise AevbInputError(
                f"num_data={num_data} but x has {x.shape[0]} rows and no idx was given; "
                "pass the minibatch indices as idx to scale by N/M"
            )
        return pyro.plate("data", x.shape[0], dim=-1)
    if num_data is None:
        raise AevbInputError("idx (minibatch indices) needs num_data (the full dataset size N)")
    if idx.shape[0] != x.shape[0]:
        raise AevbInputError(f"idx has {idx.shape[0]} entries but x has {x.shape[0]} rows")
    return pyro.plate("data", num_data, subsample=idx, dim=-1)
