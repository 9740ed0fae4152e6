"""Decoder likelihoods p_theta(x|z): maps from decoder output to a distribution.

A :class:`Likelihood` turns the decoder's last affine layer ``out``
(``params_per_dim * D`` numbers per datapoint) into a distribution with batch
shape ``[..., D]``; the model declares the D pixels one event with
``.to_event(1)``.

* ``bernoulli`` -- appendix C.1, ``log p(x|z) = sum_i x_i log y_i + (1 - x_i) log(1 - y_i)``
  with ``y = sigmoid(out)``.  The paper applies it to MNIST's grey values in
  [0, 1] directly; the result is the cross-entropy, not a normalised density
  on [0, 1] (the continuous Bernoulli fixes that).  :class:`UnitIntervalBernoulli`
  is Pyro's Bernoulli with its support widened to [0, 1] so that validation
  still rejects values outside it.
* ``gaussian`` -- appendix C.2, ``log p(x|z) = log N(x; mu, diag(sigma^2))`` with
  ``mu = sigmoid(W4 h + b4)`` (data in (0, 1), as for Frey Face) and a learned
  ``log sigma^2 = W5 h + b5``.
"""

from typing import Callable, Dict, Union

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from pyro_aevb.errors import AevbInputError


class UnitIntervalBernoulli(dist.Bernoulli):
    """Bernoulli log-likelihood evaluated at grey values ``x in [0, 1]``.

    ``log_prob(x) = x log p + (1 - x) log(1 - p)``, the cross-entropy used by
    the paper for MNIST.  Equal to the Bernoulli for binary x.
    """

    support = constraints.unit_interval


class Likelihood:
    """A named map ``decoder output -> Distribution`` over the D data dimensions.

    :param name: registry name.
    :param params_per_dim: numbers the decoder emits per data dimension.
    :param fn: ``fn(out)`` with ``out.shape[-1] == params_per_dim * D`` returns a
        distribution with batch shape ``out.shape[:-1] + (D,)``.
    :param support: the constraint the observed data must satisfy.
    """

    def __init__(self, name: str, params_per_dim: int, fn: Callable[[torch.Tensor], dist.Distribution],
                 support: constraints.Constraint):
        self.name = name
        self.params_per_dim = params_per_dim
        self.fn = fn
        self.support = support

    def __call__(self, out: torch.Tensor) -> dist.Distribution:
        return self.fn(out)

    def check_data(self, x: torch.Tensor, what: str = "data") -> None:
        """Raise :class:`AevbInputError` unless every value of ``x`` is in the support."""
        if not torch.isfinite(x).all():
            raise AevbInputError(f"{what} contains NaN or inf values")
        ok = self.support.check(x)
        if not bool(ok.all()):
            bad = x[~ok]
            raise AevbInputError(
                f"{what} has {bad.numel()} values outside the support of the {self.name} likelihood "
                f"({self.support}); e.g. {bad.flatten()[0].item():.4g} "
                f"(min {x.min().item():.4g}, max {x.max().item():.4g})"
            )

    def __repr__(self):
        return f"Likelihood({self.name!r}, params_per_dim={self.params_per_dim})"


def _bernoulli(out: torch.Tensor) -> dist.Distribution:
    return UnitIntervalBernoulli(logits=out)


def _gaussian(out: torch.Tensor) -> dist.Distribution:
    mean_logit, log_var = out.chunk(2, dim=-1)
    return dist.Normal(torch.sigmoid(mean_logit), torch.exp(0.5 * log_var))


LIKELIHOODS: Dict[str, Likelihood] = {
    "bernoulli": Likelihood("bernoulli", 1, _bernoulli, constraints.unit_interval),
    "gaussian": Likelihood("gaussian", 2, _gaussian, constraints.real),
}


def get_likelihood(likelihood: Union[str, Likelihood]) -> Likelihood:
    """Look a likelihood up by name, or pass a :class:`Likelihood` through."""
    if isinstance(likelihood, Likelihood):
        return likelihood
    if likelihood not in LIKELIHOODS:
        raise AevbInputError(f"unknown likelihood {likelihood!r}; choose from {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[likelihood]
