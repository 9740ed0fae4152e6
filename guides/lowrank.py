"""Correlated Gaussian guides: q_phi(z|x) need not factorise (section 2.4).

* low-rank plus diagonal: ``q(z|x) = N(mu(x), W(x) W(x)^T + diag(d(x)))`` with
  ``W`` of shape ``[J, rank]``;
* full covariance: ``q(z|x) = N(mu(x), L(x) L(x)^T)`` with ``L`` lower
  triangular, positive diagonal ``exp(.)``.

Both are reparameterized as ``z = mu + W eps_1 + sqrt(d) * eps_2`` resp.
``z = mu + L eps``.  The encoder is the MLP of appendix C.2 with a wider
output head.

Estimator B needs KL(q || p) for the N(0, I) prior, which Pyro represents as
``Independent(Normal)``; torch registers no KL for that pair, so this module
registers it (``torch.distributions.kl.register_kl``)::

    KL(q || N(m, diag s^2)) = H(q, p) - H(q)
    H(q, p) = sum_j [ 1/2 log(2 pi s_j^2) + (Var_q[z_j] + (mu_j - m_j)^2) / (2 s_j^2) ]

(the cross-entropy needs only the marginal variances of q; H(q) is torch's
closed-form Gaussian entropy).  For a diagonal q this is eq. 10 of the paper.
"""

import math
from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch.distributions import Independent, LowRankMultivariateNormal, MultivariateNormal, Normal
from torch.distributions.kl import register_kl

from pyro_aevb.errors import AevbInputError
from pyro_aevb.nn import initialize_, mlp
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate
from pyro_aevb.specs import records_arguments


def _kl_gaussian_diagonal_normal(q, p):
    base = p.base_dist
    if not isinstance(base, Normal) or p.reinterpreted_batch_ndims != 1:
        raise NotImplementedError
    var = base.scale.pow(2)
    cross = 0.5 * torch.log(2 * math.pi * var) + (q.variance + (q.mean - base.loc).pow(2)) / (2 * var)
    return cross.sum(-1) - q.entropy()


@register_kl(LowRankMultivariateNormal, Independent)
def _kl_lowrank_independent(q, p):
    return _kl_gaussian_diagonal_normal(q, p)


@register_kl(MultivariateNormal, Independent)
def _kl_mvn_independent(q, p):
    return _kl_gaussian_diagonal_normal(q, p)


@records_arguments
class AmortizedLowRankGuide(PyroModule):
    """q_phi(z|x) = N(mu(x), W(x) W(x)^T + diag(d(x))), ``W`` of rank ``rank``.

    :param rank: columns of W (``rank >= 1``).
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims: Sequence[int] = (500,),
                 activation: str = "tanh", rank: int = 2, init: str = "paper"):
        super().__init__(name=unique_name(self))
        if int(latent_dim) < 1:
            raise AevbInputError(f"latent_dim must be >= 1, got {latent_dim}")
        if int(rank) < 1:
            raise AevbInputError(f"rank of the low-rank guide must be >= 1, got {rank}")
        self.data_dim, self.latent_dim, self.rank = int(data_dim), int(latent_dim), int(rank)
        self.encoder = initialize_(mlp(self.data_dim, hidden_dims, (2 + self.rank) * self.latent_dim, activation), init)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        out = self.encoder(x)
        j = self.latent_dim
        loc, log_d, w = out[..., :j], out[..., j:2 * j], out[..., 2 * j:]
        return dist.LowRankMultivariateNormal(loc, w.reshape(*w.shape[:-1], j, self.rank), torch.exp(log_d))

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        with data_plate(x, idx, num_data):
            return pyro.sample("z", self.posterior(x))


@records_arguments
class AmortizedFullCovGuide(PyroModule):
    """q_phi(z|x) = N(mu(x), L(x) L(x)^T), L lower triangular with an ``exp`` diagonal (J(J+3)/2 outputs)."""

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims: Sequence[int] = (500,),
                 activation: str = "tanh", init: str = "paper"):
        super().__init__(name=unique_name(self))
        if int(latent_dim) < 1:
            raise AevbInputError(f"latent_dim must be >= 1, got {latent_dim}")
        self.data_dim, self.latent_dim = int(data_dim), int(latent_dim)
        j = self.latent_dim
        self.encoder = initialize_(mlp(self.data_dim, hidden_dims, j + j * (j + 1) // 2, activation), init)
        self.register_buffer("_tril", torch.tril_indices(j, j), persistent=False)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        out = self.encoder(x)
        j = self.latent_dim
        loc, entries = out[..., :j], out[..., j:]
        tril = torch.zeros(*out.shape[:-1], j, j, dtype=out.dtype, device=out.device)
        tril[..., self._tril[0], self._tril[1]] = entries
        diag = torch.diagonal(tril, dim1=-2, dim2=-1)
        tril = tril - torch.diag_embed(diag) + torch.diag_embed(torch.exp(diag))
        return dist.MultivariateNormal(loc, scale_tril=tril)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        with data_plate(x, idx, num_data):
            return pyro.sample("z", self.posterior(x))
