"""Classification error of a guide that is also a classifier, and the supervised baseline it is compared with.

**The classifier protocol.**  A guide (or any object) with a method ``classify(x)`` that returns the predicted
class of each row of ``x`` (an integer tensor ``[M]``) is a classifier; e.g. the M2 guide predicts
argmax_y q_phi(y|x) (Kingma, Rezende, Mohamed & Welling, 2014, section 3.1.2).  ``pyro-aevb evaluate`` reports
``test_error`` = (1/N_test) sum_i [classify(x_i) != y_i] for such a run on a labelled test set.

**The baseline** (:func:`train_supervised`): the same network trained on the labelled points alone, by
minibatch cross-entropy -- what the unlabelled data and the generative model add is the difference.
"""

from typing import Callable

import torch

from ..errors import AevbInputError
from ..rng import seeded


def has_classifier(obj) -> bool:
    """Whether ``obj`` follows the classifier protocol (a callable ``classify``)."""
    return callable(getattr(obj, "classify", None))


@torch.no_grad()
def classification_error(classifier, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> float:
    """The fraction of rows of ``x`` whose ``classifier.classify`` differs from ``labels``."""
    if not has_classifier(classifier):
        raise AevbInputError(f"{type(classifier).__name__} has no classify(x) method: it is not a classifier")
    if labels.shape[:1] != x.shape[:1]:
        raise AevbInputError(f"{x.shape[0]} rows but {labels.shape[0]} labels")
    wrong = 0
    for start in range(0, x.shape[0], batch_size):
        predicted = classifier.classify(x[start:start + batch_size])
        wrong += int((predicted.to(labels.device) != labels[start:start + batch_size]).sum())
    return wrong / max(1, x.shape[0])


class _Net:
    """A network whose logits' argmax is the prediction: the protocol for :func:`classification_error`."""

    def __init__(self, network: Callable):
        self.network = network

    def classify(self, x):
        return self.network(x).argmax(-1)


def train_supervised(network: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, steps: int = 2000,
                     batch_size: int = 100, lr: float = 1e-3, seed: int = 0):
    """Train ``network`` (rows -> class logits) in place on the rows of ``x`` whose label is not -1: Adam on
    the mean cross-entropy of ``batch_size`` points drawn with replacement, ``steps`` times.  Returns an object
    with ``classify(x)`` (the classifier protocol).
    """
    known = labels >= 0
    xl, yl = x[known], labels[known]
    if yl.shape[0] == 0:
        raise AevbInputError("no labelled points to train a classifier on")
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    with seeded(seed, x.device):
        for _ in range(int(steps)):
            pick = torch.randint(yl.shape[0], (int(batch_size),), device=x.device)
            loss = torch.nn.functional.cross_entropy(network(xl[pick]), yl[pick])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return _Net(network.eval())
