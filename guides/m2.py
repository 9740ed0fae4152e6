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

The classification term, eq. (9): J^alpha = J + alpha E_p~l(x,y)[-log q_phi(y|x)], so that q(y|x) also learns
from the labels directly (in J it appears only in the unlabelled bound).  It is estimated at every training
step from ``labelled_batch_size`` labelled points drawn uniformly with replacement -- an unbiased estimate of
the same expectation as the labelled points of the minibatch would give, but present in every step instead of
the fraction N_l/N of them -- and added as ``pyro.factor("classification", alpha * CE)`` outside the data
plate.  Pyro's ELBO subtracts a guide's factors (they belong to log q), so the loss becomes -J^alpha's ELBO
part plus alpha CE: the sign is right.

alpha = ``alpha_over_n`` * N, by default 100 N, not the paper's 0.1 N: in budgets of a few epochs 0.1 N leaves
the classifier nearly untaught by the labels (66 % test error with 100 labels after 6 epochs, against 15.9 %
with 100 N; docs/beyond/m2.md), the paper's value goes with its much longer training.  Labels come through the
protocol of :mod:`pyro_aevb.labels` (:meth:`M2Guide.set_labels`) and act only on minibatches of the
training set; evaluation calls see none, so their bound is -U(x) for every row.

:meth:`M2Guide.classify` is the classifier protocol of :mod:`pyro_aevb.evaluation.classify`: argmax_y q(y|x).
"""

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pyro_aevb.errors import AevbInputError
from pyro_aevb.labels import UNKNOWN, batch_labels, is_labelled_call
from pyro_aevb.nn import JoinedInputMLP, initialize_, mlp
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate


#: alpha / N of eq. (9); the paper's 0.1 goes with much longer training, see the module docstring
ALPHA_OVER_N = 100.0


class M2Guide(PyroModule):
    """q_phi(y | x) q_phi(z | y, x) of M2, with the classification term of eq. (9).

    :param data_dim: D.
    :param num_classes: K.
    :param latent_dim: dimensions of z.
    :param hidden_dims: hidden layers of each MLP (the classifier and the z-encoder).
    :param activation: hidden activation.
    :param init: ``"torch"`` or ``"paper"``.
    :param alpha_over_n: alpha / N, the weight of eq. (9) per training point (the paper: 0.1; see the module).
    :param labelled_batch_size: labelled points drawn per step for the classification term.
    """

    def __init__(self, data_dim: int, num_classes: int = 10, latent_dim: int = 50,
                 hidden_dims: Sequence[int] = (500,), activation: str = "softplus", init: str = "torch",
                 alpha_over_n: float = ALPHA_OVER_N, labelled_batch_size: int = 100):
        super().__init__(name=unique_name(self))
        if not float(alpha_over_n) >= 0:
            raise AevbInputError(f"alpha_over_n must be >= 0, got {alpha_over_n}")
        if int(labelled_batch_size) < 1:
            raise AevbInputError(f"labelled_batch_size must be >= 1, got {labelled_batch_size}")
        self.data_dim, self.num_classes, self.latent_dim = int(data_dim), int(num_classes), int(latent_dim)
        self.alpha_over_n, self.labelled_batch_size = float(alpha_over_n), int(labelled_batch_size)
        self.classifier = initialize_(mlp(self.data_dim, hidden_dims, self.num_classes, activation), init)
        self.encoder = initialize_(JoinedInputMLP(self.data_dim, self.num_classes, hidden_dims, 2 * self.latent_dim,
                                                  activation), init)
        self.init_kwargs = dict(data_dim=self.data_dim, num_classes=self.num_classes, latent_dim=self.latent_dim,
                                hidden_dims=list(hidden_dims), activation=activation, init=init,
                                alpha_over_n=self.alpha_over_n, labelled_batch_size=self.labelled_batch_size)
        # labels are data, not parameters: non-persistent, so a loaded run knows none (pyro_aevb.labels)
        self.register_buffer("labels", None, persistent=False)
        self.register_buffer("x_labelled", None, persistent=False)
        self.register_buffer("y_labelled", None, persistent=False)

    # ------------------------------------------------------------------ the label protocol
    def set_labels(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        """Keep the training labels (``-1`` unknown) and the labelled rows for the classification term."""
        if labels.max() >= self.num_classes:
            raise AevbInputError(f"a label is {int(labels.max())}, but the guide has {self.num_classes} classes")
        known = labels != UNKNOWN
        self.labels = labels.to(torch.long)
        self.x_labelled, self.y_labelled = x[known], labels[known].to(torch.long)

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

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        if is_labelled_call(self.labels, idx, num_data) and self.y_labelled.shape[0]:
            self._classification_term()  # outside the data plate, before it (Pyro's plate-order rule)
        known = batch_labels(self.labels, x, idx, num_data)
        with data_plate(x, idx, num_data):
            logits = self.class_logits(x)
            is_known = (known != UNKNOWN).unsqueeze(-1)
            if bool(is_known.any()):  # q(y|x) = point mass at a known label: eq. (7) becomes eq. (6)
                point_mass = torch.full_like(logits, float("-inf")).scatter(-1, known.clamp(min=0).unsqueeze(-1), 0.0)
                logits = torch.where(is_known, point_mass, logits)
            y = pyro.sample("y", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
            pyro.sample("z", self.posterior_z(x, y))

    def _classification_term(self) -> None:
        """alpha E_p~l[-log q(y|x)] on labelled points drawn with replacement (eq. 9), as a guide factor."""
        n_l = self.y_labelled.shape[0]
        pick = torch.randint(n_l, (self.labelled_batch_size,), device=self.y_labelled.device)
        cross_entropy = torch.nn.functional.cross_entropy(self.class_logits(self.x_labelled[pick]),
                                                          self.y_labelled[pick])
        alpha = self.alpha_over_n * self.labels.shape[0]
        pyro.factor("classification", alpha * cross_entropy, has_rsample=True)
