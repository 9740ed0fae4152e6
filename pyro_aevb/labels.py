"""Semi-supervised labels: which training labels are kept, and the classification term of eq. (9).

Semi-supervised learning (Kingma, Rezende, Mohamed & Welling, 2014) splits the N training points into a labelled
set p~_l(x, y) and an unlabelled set p~_u(x).  Here the split is one integer vector ``labels`` of length N with
the class of each labelled point and ``-1`` for an unlabelled one (:data:`UNKNOWN`).

* :func:`balanced_labels` keeps ``num_labels`` labels of a fully labelled training set, ``num_labels / K`` of
  each of the K classes, chosen by a permutation with a fixed seed (:data:`LABEL_SEED`), so every run with the
  same ``--labels`` sees the same labelled points; the rest become -1.
* **How labels reach the model.**  A model or guide with a latent class takes the labels as a conditioning input
  (:mod:`pyro_aevb.inputs`) that it declares a label input, ``label_inputs = ("y",)``: ``guide(x, idx, num_data,
  y)`` with ``y[i] = -1`` where the class of row i is unknown.  The trainer passes the kept labels of each
  minibatch's rows (all -1 without ``--labels``); evaluation passes none, so every reported bound is the
  unlabelled bound of log p(x) -- no evaluation sees a training label.  Nothing is stored on a module.
* **The classification term** of eq. (9), J^alpha = J + alpha E_p~l(x,y)[-log q_phi(y|x)]
  (:class:`ClassificationTerm`): q_phi(y|x) is the guide's own distribution at the site the label input is
  named after, traced on labelled rows with the label unknown.  It is estimated at every training step from
  ``labelled_batch_size`` labelled rows drawn uniformly with replacement -- an unbiased estimate of the same
  expectation as the labelled rows of the minibatch would give, present in every step instead of a fraction
  N_l/N of them -- and reported on its own (it is part of the objective, not of the bound).
  alpha = ``alpha_over_n`` * N, by default 100 N, not the paper's 0.1 N: in budgets of a few epochs 0.1 N
  leaves the classifier nearly untaught by the labels (66 % test error with 100 labels after 6 epochs, against
  15.9 % with 100 N; docs/beyond/m2.md); the paper's value goes with its much longer training.
"""

from typing import Optional

import torch
from pyro import poutine
from pyro.poutine.runtime import NonlocalExit

from .errors import AevbInputError
from .inputs import condition, rows

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
                             "Face and array files do not: an array file's train_<name> arrays are conditioning "
                             "inputs, not labels; give labels from Python, Trainer(labels=...))")
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


#: alpha / N of eq. (9); the paper's 0.1 goes with much longer training (module docstring)
ALPHA_OVER_N = 100.0


def unknown_labels(num_rows: int, device=None) -> torch.Tensor:
    """``num_rows`` labels, all unknown (-1)."""
    return torch.full((num_rows,), UNKNOWN, dtype=torch.long, device=device)


class ClassificationTerm:
    """alpha E_p~l(x,y)[-log q_phi(y|x)], the classification term of eq. (9), as a differentiable function of the
    guide's parameters.

    :param guide: the guide; q_phi(y|x) is its distribution at the sample site named ``name``, traced (up to that
        site, :func:`pyro.poutine.escape`) on labelled rows with the label input left out.
    :param name: the label input, which is also the name of the guide's site of the class.
    :param x: the training rows ``[N, ...]``.
    :param labels: ``[N]``, the kept class of each row or -1.
    :param inputs: the other conditioning inputs of the training rows (given to the guide with the rows).
    :param alpha: the weight alpha (``alpha_over_n`` * N).
    :param batch_size: labelled rows drawn with replacement per evaluation.
    :raises AevbInputError: no row is labelled, the guide samples no site ``name``, or a label is outside the
        support of q(y|x) there.
    """

    def __init__(self, guide, name: str, x: torch.Tensor, labels: torch.Tensor, inputs: dict, alpha: float,
                 batch_size: int = 100):
        if int(batch_size) < 1:
            raise AevbInputError(f"the labelled batch size must be >= 1, got {batch_size}")
        if not float(alpha) >= 0:
            raise AevbInputError(f"the classification weight alpha must be >= 0, got {alpha}")
        known = labels != UNKNOWN
        if not bool(known.any()):
            raise AevbInputError("the classification term needs labelled rows, and every label is unknown (-1)")
        self.guide, self.name, self.alpha, self.batch_size = guide, name, float(alpha), int(batch_size)
        self.x, self.y = x[known], labels[known].to(torch.long)
        self.inputs = {k: v[known] for k, v in inputs.items() if k != name}
        with torch.no_grad():
            q = self.posterior(torch.arange(min(2, self.y.shape[0]), device=self.y.device))
        ok = q.support.check(self.y) if hasattr(q, "support") else None
        if ok is not None and not bool(ok.all()):
            raise AevbInputError(f"a kept label is outside the support of the guide's q({name}|x) ({q.support}): "
                                 f"labels run from 0 to {int(self.y.max())}")

    def posterior(self, pick: torch.Tensor):
        """q_phi(y | x) of the labelled rows ``pick``: the guide's distribution at site ``name``."""
        guide = condition(self.guide, rows(self.inputs, pick))
        try:
            poutine.escape(guide, escape_fn=lambda msg: msg["name"] == self.name)(self.x[pick])
        except NonlocalExit as stop:
            stop.reset_stack()
            return stop.site["fn"]
        raise AevbInputError(f"the label input {self.name!r} names no sample site of the guide: a guide that takes "
                             f"labels samples the class under the input's name, pyro.sample({self.name!r}, ...)")

    def __call__(self) -> torch.Tensor:
        """alpha times the cross-entropy of ``batch_size`` labelled rows drawn with replacement."""
        pick = torch.randint(self.y.shape[0], (self.batch_size,), device=self.y.device)
        return -self.alpha * self.posterior(pick).log_prob(self.y[pick]).mean()
