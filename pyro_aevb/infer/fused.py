"""A fused (Pyro-free) evaluation of the SGVB objectives for the standard VAE, used in the hot loop.

Pyro's ELBOs run the model and guide through its effect-handler stack on every
step (about 5 ms per step on 2 CPU cores -- as much as the networks themselves
at M = 100).  For the paper's VAE the structure of the program is fixed, so the
same estimators can be written directly against the model and guide objects:

    eps ~ N(0, I),  z = mu_phi(x) + sigma_phi(x) * eps                  (eq. 10, L particles)
    A:  L^M = (N/M) sum_i (1/L) sum_l [log p(x_i|z_il) + log p(z_il) - log q(z_il|x_i)]   (eq. 6, 8)
    B:  L^M = (N/M) sum_i [ -KL(q(z|x_i) || p(z)) + (1/L) sum_l log p(x_i|z_il) ]         (eq. 7, 8)

In a KL warm-up (:mod:`pyro_aevb.infer.warmup`) the KL terms -- ``log p(z) - log q(z|x)`` in A, the
closed-form KL in B -- are weighted by beta (:meth:`FusedELBO.set_kl_weight`).

:class:`FusedELBO` computes exactly the number Pyro's ``Trace_ELBO`` /
``TraceMeanField_ELBO`` compute, from the same distributions
(``guide.posterior``, ``model.prior``, ``model.likelihood_dist``) and the same
random draws (``rsample``), with the same gradients -- a test checks equality to
float precision.  It is pure torch, so ``torch.compile`` can fuse it.  The
trainer uses it only for models and guides that declare the standard structure
(``fused_compatible = True``) *and* pass :func:`cross_check` -- the fused loss
equal to Pyro's ELBO on the same random draws -- when training starts;
anything else goes through Pyro.
"""

from typing import Optional

import pyro
import torch
from torch.distributions import kl_divergence

from ..errors import AevbInputError
from ..params import local_param_store
from ..rng import on_same_draws
from .declared import is_fused_compatible
from .elbo import make_elbo


class FusedELBO(torch.nn.Module):
    """``-L^M`` (dataset-scale loss) for a fused-compatible model/guide pair.

    :param estimator: ``"trace"`` (A) or ``"analytic"`` (B).
    :param num_particles: L.
    """

    def __init__(self, model: torch.nn.Module, guide: torch.nn.Module, estimator: str = "analytic",
                 num_particles: int = 1):
        super().__init__()
        if not is_fused_compatible(model, guide):
            raise AevbInputError("the fused objective needs a model and guide with fused_compatible = True")
        if estimator not in ("trace", "analytic"):
            raise AevbInputError(f"the fused objective implements estimators 'trace' and 'analytic', not {estimator!r}")
        self.model, self.guide = model, guide
        self.analytic = estimator == "analytic"
        self.num_particles = int(num_particles)
        self.kl_weight: Optional[torch.Tensor] = None  # beta of a KL warm-up; None: the bound itself

    def set_kl_weight(self, beta: float) -> None:
        """Weight the KL terms by ``beta`` from now on (a tensor, so ``torch.compile`` does not specialise on it)."""
        if self.kl_weight is None:
            self.kl_weight = torch.ones((), device=next(self.guide.parameters()).device)
        self.kl_weight.fill_(beta)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        # Argument/support validation is off here: the data were checked once against the
        # likelihood's support when the trainer was built, and the networks' outputs are
        # valid by construction (sigmoid/exp).  This saves ~10% per step.
        with pyro.validation_enabled(False):
            return self._loss(x, idx, num_data)

    def _loss(self, x, idx, num_data):
        m = x.shape[0]
        scale = 1.0 if idx is None else num_data / m
        q = self.guide.posterior(x)                                   # batch [M], event [J]
        z = q.rsample((self.num_particles,))                          # [L, M, J]
        log_lik = self.model.likelihood_dist(z).log_prob(x)           # [L, M]
        if self.analytic:
            prior = self.model.prior((m,), x.device)
            kl = kl_divergence(q, prior).sum()
            elbo = log_lik.sum() / self.num_particles - (kl if self.kl_weight is None else self.kl_weight * kl)
        else:
            prior = self.model.prior((self.num_particles, m), x.device)
            if self.kl_weight is None:
                elbo = (log_lik + prior.log_prob(z) - q.log_prob(z)).sum() / self.num_particles
            else:
                elbo = (log_lik + self.kl_weight * (prior.log_prob(z) - q.log_prob(z))).sum() / self.num_particles
        return -scale * elbo


def cross_check(model, guide, x: torch.Tensor, estimator: str, num_particles: int = 1, num_data: Optional[int] = None,
                seed: int = 0, rtol: float = 1e-4) -> None:
    """Raise :class:`AevbInputError` unless :class:`FusedELBO` equals Pyro's ELBO on ``x`` with the same draws.

    Both are evaluated from the same RNG state (forked, so the caller's stream is untouched) on a minibatch of
    ``x`` scaled as part of ``num_data`` points; ``rtol`` allows float32 summation-order differences only
    (about 1e-6 relative), far below any structural difference (a missing term is at least ~1 nat per point).
    """
    rows = x[:8]
    idx = torch.arange(rows.shape[0], device=x.device)
    n = int(num_data or x.shape[0])
    with torch.no_grad(), local_param_store():
        fused, reference = on_same_draws(
            x.device, lambda: FusedELBO(model, guide, estimator, num_particles)(rows, idx, n).item(),
            lambda: make_elbo(estimator, num_particles).loss(model, guide, rows, idx, n), seed=seed)
    if not abs(fused - reference) <= rtol * (1.0 + abs(reference)):
        raise AevbInputError(
            f"the fused objective gives {fused:.6g} where Pyro's {estimator} ELBO gives {reference:.6g} on the same "
            f"draws: {type(model).__name__}/{type(guide).__name__} declare fused_compatible but their program "
            "differs from posterior()/prior()/likelihood_dist(); train with backend='pyro'")
