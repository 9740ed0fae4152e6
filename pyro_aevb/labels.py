"""Labels for semi-supervised models: which training labels are kept, and how a model or guide gets them.

Semi-supervised learning (Kingma, Rezende, Mohamed & Welling, 2014) splits the N training points into a labelled
set p~_l(x, y) and an unlabelled set p~_u(x).  Here the split is one integer vector ``labels`` of length N with
the class of each labelled point and ``-1`` for an unlabelled one (:data:`UNKNOWN`).

* :func:`balanced_labels` keeps ``num_labels`` labels of a fully labelled training set, ``num_labels / K`` of
  each of the K classes, chosen by a permutation with a fixed seed (:data:`LABEL_SEED`), so every run with the
  same ``--labels`` sees the same labelled points; the rest become -1.
* **The protocol.**  A model or guide that uses labels defines ``set_labels(x, labels)``; it is called once
  when training starts (:func:`give_labels`; ``pyro-aevb train --labels N``) with the training rows ``x``
  ``[N, D]`` and ``labels`` ``[N]``.  Labels are data, not parameters: a module keeps them out of its
  ``state_dict`` (e.g. non-persistent buffers), so a loaded run knows no training labels.
* **Which calls are labelled.**  The contract calls ``guide(x, idx, num_data)``; :func:`batch_labels` returns
  ``labels[idx]`` only when ``idx`` is given and ``num_data`` is the N the labels were set for -- a minibatch of
  the training set -- and ``-1`` for every row otherwise (the test set, a training subset evaluated on its own,
  a call with ``x`` alone): evaluation never sees a label, so its bound is the unlabelled bound of every row.
"""

from typing import Iterable, Optional

import torch

from .errors import AevbInputError

UNKNOWN = -1
#: the seed of the permutation that chooses the labelled points (fixed: every run keeps the same labels)
LABEL_SEED = 0


def num_classes(labels: torch.Tensor) -> int:
    """K = the largest label + 1."""
    return int(labels.max()) + 1


def balanced_labels(labels: Optional[torch.Tensor], num_labels: int, seed: int = LABEL_SEED,
                    what: str = "the training set") -> torch.Tensor:
    """``labels`` with all but ``num_labels`` of them set to -1: ``num_labels / K`` kept in each of the K classes,
    the first ones of each class in a permutation seeded with ``seed``.

    :raises AevbInputError: no labels, ``num_labels`` not a positive multiple of K, more than N, or more than a
        class has.
    """
    if labels is None:
        raise AevbInputError(f"--labels needs a labelled dataset, but {what} has no labels (MNIST has them; Frey "
                             "Face and array files do not)")
    n = labels.shape[0]
    num_labels = int(num_labels)
    if num_labels < 1:
        raise AevbInputError(f"the number of labels must be >= 1, got {num_labels}")
    if num_labels > n:
        raise AevbInputError(f"cannot keep {num_labels} labels: {what} has {n} points")
    k = num_classes(labels)
    if num_labels % k:
        raise AevbInputError(f"--labels {num_labels} cannot be balanced across the {k} classes: use a multiple "
                             f"of {k}")
    per_class = num_labels // k
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(labels.device)
    kept = torch.full_like(labels, UNKNOWN)
    for c in range(k):
        members = order[labels[order] == c]
        if members.shape[0] < per_class:
            raise AevbInputError(f"cannot keep {per_class} labels of class {c}: {what} has {members.shape[0]}")
        kept[members[:per_class]] = c
    return kept


def give_labels(modules: Iterable[Optional[torch.nn.Module]], x: torch.Tensor, labels: torch.Tensor) -> None:
    """Call ``set_labels(x, labels)`` on each module that defines it (the model and the guide).

    :raises AevbInputError: neither defines it (labels would be silently ignored), or the shapes disagree.
    """
    if labels.dim() != 1 or labels.shape[0] != x.shape[0]:
        raise AevbInputError(f"labels must have one entry per training row ({x.shape[0]}), got shape "
                             f"{list(labels.shape)}")
    takers = [m for m in modules if m is not None and callable(getattr(m, "set_labels", None))]
    if not takers:
        raise AevbInputError("labels were given, but neither the model nor the guide takes them (a model or guide "
                             "that uses labels defines set_labels(x, labels), e.g. --model m2)")
    for module in takers:
        module.set_labels(x, labels)


def is_labelled_call(labels: Optional[torch.Tensor], idx: Optional[torch.Tensor] = None,
                     num_data: Optional[int] = None) -> bool:
    """Whether a call ``(x, idx, num_data)`` is a minibatch of the training set ``labels`` belong to: ``idx``
    given and ``num_data == len(labels)``."""
    return labels is not None and idx is not None and num_data is not None and int(num_data) == labels.shape[0]


def batch_labels(labels: Optional[torch.Tensor], x: torch.Tensor, idx: Optional[torch.Tensor] = None,
                 num_data: Optional[int] = None) -> torch.Tensor:
    """The labels of the rows of ``x`` in a call ``(x, idx, num_data)``: ``labels[idx]`` for a minibatch of the
    training set (:func:`is_labelled_call`), else -1 for every row."""
    if is_labelled_call(labels, idx, num_data):
        return labels[idx.to(labels.device)]
    return torch.full(x.shape[:1], UNKNOWN, dtype=torch.long, device=x.device)
