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

from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pyro_aevb.errors import AevbInputError
from pyro_aevb.nn import init_normal_, mlp
from pyro_aevb.plates import data_plate


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


class AmortizedLocScaleGuide(PyroModule):
    """q_phi(z|x) = prod_j family(z_j; mu_j(x), sigma_j(x)), an MLP encoder plus a family of :data:`FAMILIES`.

    :param data_dim: D.  :param latent_dim: J.
    :param hidden_dims: encoder hidden widths.  :param activation: hidden activation.
    :param family: a name in :data:`FAMILIES`.
    :param df: degrees of freedom of the Student-t (ignored by the other families).
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims: Sequence[int] = (500,),
                 activation: str = "tanh", family: str = "normal", df: float = 5.0):
        super().__init__()
        if family not in FAMILIES:
            raise AevbInputError(f"unknown guide family {family!r}; choose from {sorted(FAMILIES)}")
        if int(latent_dim) < 1:
            raise AevbInputError(f"latent_dim must be >= 1, got {latent_dim}")
        if not df > 0:
            raise AevbInputError(f"Student-t degrees of freedom must be > 0, got {df}")
        self.family = family
        self.df = float(df)
        self.data_dim = int(data_dim)
        self.latent_dim = int(latent_dim)
        self.encoder = init_normal_(mlp(self.data_dim, hidden_dims, 2 * self.latent_dim, activation))

    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)``: location and scale of the family (of log z for the log-normal)."""
        loc, log_var = self.encoder(x).chunk(2, dim=-1)
        return loc, torch.exp(0.5 * log_var)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        loc, scale = self.encode(x)
        return FAMILIES[self.family].make(loc, scale, self.df).to_event(1)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        with data_plate(x, idx, num_data):
            return pyro.sample("z", self.posterior(x))
