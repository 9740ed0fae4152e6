"""The inference model of M2 (Kingma, Rezende, Mohamed & Welling, 2014, eqs. 4 and 6-9), for
:class:`pyro_aevb.models.M2Model`.

    q_phi(y | x)    = Cat(y | pi_phi(x))                              (eq. 4; the classifier)
    q_phi(z | y, x) = N(z | mu_phi(y, x), diag(sigma^2_phi(y, x)))    (eq. 4, sigma also seeing y)

The bounds.  For a labelled point (x, y), eq. (6):

    log p(x, y) >= E_q(z|x,y)[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)] = -L(x, y)

and for an unlabelled x, eq. (7), y summed out exactly rather than sampled:

    log p(x) >= sum_y q(y|x) (-L(x, y)) + H(q(y|x)) = -U(x)

One program gives both: ``y`` is enumerated (``infer={"enumerate": "parallel"}``, Pyro's ``TraceEnum_ELBO``,
which :func:`pyro_aevb.infer.make_elbo` picks for a guide with an enumerated site), and for a point whose
label y_n is known q(y|x) is the point mass at y_n: then the sum of eq. (7) has the one term y_n and
H(q) = 0, which is eq. (6).  (Pyro's Dice drops the terms of probability 0.)  So a minibatch that mixes
labelled and unlabelled points, scaled by N/M in the ``data`` plate, estimates eq. (8),
J = sum_labelled L(x, y) + sum_unlabelled U(x).

Labels are a conditioning input declared a label input (``label_inputs = ("y",)``, :mod:`pyro_aevb.inputs`):
``guide(x, idx, num_data, y)`` with ``y[i] = -1`` where the class of row i is unknown, and ``y=None`` (every
class unknown) in evaluation, whose bound is therefore -U(x) for every row.  The classification term of eq. (9),
alpha E_p~l[-log q_phi(y|x)], is not part of this program: the trainer adds it from q(y|x) at this guide's site
``y`` (:class:`pyro_aevb.labels.ClassificationTerm`) and reports it on its own.

:meth:`M2Guide.classify` is the classifier protocol of :mod:`pyro_aevb.evaluation.classify`: argmax_y q(y|x).
"""

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pyro_aevb.labels import UNKNOWN
from pyro_aevb.nn import JoinedInputMLP, initialize_, mlp
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate
from pyro_aevb.specs import records_arguments


@records_arguments
class M2Guide(PyroModule):
    """q_phi(y | x) q_phi(z | y, x) of M2; the class ``y`` is a label input (-1 where unknown).

    :param data_dim: D.
    :param num_classes: K.
    :param latent_dim: dimensions of z.
    :param hidden_dims: hidden layers of each MLP (the classifier and the z-encoder).
    :param activation: hidden activation.
    :param init: ``"torch"`` or ``"paper"``.
    """

    #: ``y`` observes the latent class where it is known: given in training only (pyro_aevb.inputs)
    label_inputs = ("y",)

    def __init__(self, data_dim: int, num_classes: int = 10, latent_dim: int = 50,
                 hidden_dims: Sequence[int] = (500,), activation: str = "softplus", init: str = "torch"):
        super().__init__(name=unique_name(self))
        self.data_dim, self.num_classes, self.latent_dim = int(data_dim), int(num_classes), int(latent_dim)
        self.classifier = initialize_(mlp(self.data_dim, hidden_dims, self.num_classes, activation), init)
        self.encoder = initialize_(JoinedInputMLP(self.data_dim, self.num_classes, hidden_dims, 2 * self.latent_dim,
                                                  activation), init)

    # ------------------------------------------------------------------ q(y|x), q(z|y,x)
    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """log pi_phi(x) up to a constant: q(y|x) = softmax."""
        return self.classifier(x)

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted class argmax_y q(y|x) of each row of ``x`` (the classifier protocol)."""
        return self.class_logits(x).argmax(-1)

    def posterior_z(self, x: torch.Tensor, y: torch.Tensor) -> dist.Distribution:
        """q(z | y, x) for class indices ``y`` broadcast against the rows of ``x``."""
        one_hot = torch.nn.functional.one_hot(y, self.num_classes).to(x.dtype)
        loc, log_var = self.encoder(x, one_hot).chunk(2, dim=-1)
        return dist.Normal(loc, torch.exp(0.5 * log_var)).to_event(1)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None,
                y: Optional[torch.Tensor] = None):
        with data_plate(x, idx, num_data):
            logits = self.class_logits(x)
            if y is not None:  # q(y|x) = point mass at a known label: eq. (7) becomes eq. (6)
                is_known = (y != UNKNOWN).unsqueeze(-1)
                point_mass = torch.full_like(logits, float("-inf")).scatter(-1, y.clamp(min=0).unsqueeze(-1), 0.0)
                logits = torch.where(is_known, point_mass, logits)
            label = pyro.sample("y", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
            pyro.sample("z", self.posterior_z(x, label))
