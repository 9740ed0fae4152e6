"""Amortized guides q_phi(z|x) from the three reparameterizable families of section 2.4.

Section 2.4 lists three ways to write z ~ q_phi(z|x) as a differentiable
transformation z = g_phi(eps, x) of noise eps ~ p(eps):

1. **location-scale** families, z = mu + sigma * eps with eps from the
   standard member: Normal (eq. 10), Laplace, Student-t, Logistic;
2. **inverse CDF**: z = F^{-1}(u; phi) with u ~ U(0, 1) -- here the Gumbel,
   z = mu - sigma * log(-log u) (torch builds it exactly this way, as a
   TransformedDistribution of a Uniform);
3. **composition**: z = h(y), y reparameterizable -- here the log-normal,
   z = exp(mu + sigma * eps).  Its support is the positive orthant, a subset of
   the N(0, I) prior's, so the bound is valid but the family is restricted.

Each guide is the MLP encoder of appendix C.2, ``h = tanh(W3 x + b3)``,
``mu = W4 h + b4``, ``log sigma^2 = W5 h + b5``, followed by the family.  The
Student-t has a fixed number of degrees of freedom ``df`` (its rsample uses
Gamma draws with implicit reparameterization gradients).

Estimator B (eq. 7) needs KL(q(z|x) || N(0, I)) in closed form.  torch has it
for Normal, Laplace and Gumbel against a Normal; not for Student-t, Logistic or
log-normal -- :func:`pyro_aevb.guides.check_analytic_kl` turns that into a
clear error instead of Pyro's silent Monte Carlo fallback.
"""

from typing import Callable, Dict, NamedTuple, Sequence

import pyro.distributions as dist
import torch

from pyro_aevb.errors import AevbInputError
from pyro_aevb.specs import records_arguments

from .amortized import AmortizedNormalGuide


class Family(NamedTuple):
    """A reparameterizable family: ``make(loc, scale, df)`` -> distribution with batch shape ``[..., J]``."""

    route: str  # "location-scale", "inverse-cdf" or "composition" (section 2.4)
    make: Callable[[torch.Tensor, torch.Tensor, float], dist.Distribution]


FAMILIES: Dict[str, Family] = {
    "normal": Family("location-scale", lambda loc, scale, df: dist.Normal(loc, scale)),
    "laplace": Family("location-scale", lambda loc, scale, df: dist.Laplace(loc, scale)),
    "studentt": Family("location-scale", lambda loc, scale, df: dist.StudentT(df, loc, scale)),
    "logistic": Family("location-scale", lambda loc, scale, df: dist.Logistic(loc, scale)),
    "gumbel": Family("inverse-cdf", lambda loc, scale, df: dist.Gumbel(loc, scale)),
    "lognormal": Family("composition", lambda loc, scale, df: dist.LogNormal(loc, scale)),
}


@records_arguments
class AmortizedLocScaleGuide(AmortizedNormalGuide):
    """q_phi(z|x) = prod_j family(z_j; mu_j(x), sigma_j(x)), an MLP encoder plus a family of :data:`FAMILIES`.

    :param data_dim: D.  :param latent_dim: J.
    :param hidden_dims: encoder hidden widths.  :param activation: hidden activation.
    :param family: a name in :data:`FAMILIES`.
    :param df: degrees of freedom of the Student-t (ignored by the other families).
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims: Sequence[int] = (500,),
                 activation: str = "tanh", family: str = "normal", df: float = 5.0, init: str = "paper"):
        if family not in FAMILIES:
            raise AevbInputError(f"unknown guide family {family!r}; choose from {sorted(FAMILIES)}")
        if not df > 0:
            raise AevbInputError(f"Student-t degrees of freedom must be > 0, got {df}")
        super().__init__(data_dim, latent_dim, hidden_dims, activation, init)
        self.family = family
        self.df = float(df)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        """q_phi(z|x) of the family, from ``(mu, sigma)`` of the encoder (of log z for the log-normal)."""
        loc, scale = self.encode(x)
        return FAMILIES[self.family].make(loc, scale, self.df).to_event(1)
