"""The two terms of the bound (eq. 7), per datapoint: reconstruction and KL.

    L(theta, phi; x) = E_{q_phi(z|x)}[ log p_theta(x | z) ]  -  KL( q_phi(z|x) || p(z) )
                       \\___________ reconstruction _______/      \\________ kl ________/

averaged over the rows of ``x``.  The reconstruction term is estimated with one draw z ~ q_phi(z|x) per row;
the KL is summed over the local latent sites, in closed form where torch has it (as estimator B) and by the
one-draw Monte Carlo estimate log q(z|x) - log p(z) elsewhere (as estimator A).  Any site names and plates
(:class:`~pyro_aevb.contract.ModelStructure`); global latents (full VB) are fixed at one draw of q(theta), so
the terms are those of the per-datapoint bound given theta -- the KL of theta is
:func:`~pyro_aevb.evaluation.full_vb.global_kl`.
"""

from typing import Callable, NamedTuple

import torch
from pyro import poutine
from torch.distributions import kl_divergence

from ..contract import check_model_guide
from ..params import local_param_store
from ..plates import masked_log_prob, sum_to_datapoints
from .full_vb import fix_globals
from .sampling import sample_globals


class BoundTerms(NamedTuple):
    """Per-datapoint averages (nats): ``bound = reconstruction - kl``."""

    reconstruction: float
    kl: float

    @property
    def bound(self) -> float:
        return self.reconstruction - self.kl


@torch.no_grad()
def bound_terms(model: Callable, guide: Callable, x: torch.Tensor, batch_size: int = 1000) -> BoundTerms:
    """E_q[log p(x|z)] and KL(q(z|x) || p(z)) averaged over the rows of ``x``."""
    with local_param_store():
        structure = check_model_guide(model, guide, x, None)
        if structure.global_latents:
            model, guide = fix_globals(model, guide, sample_globals(guide, x))
            structure = check_model_guide(model, guide, x, None)
        data_dim = structure.data_dim
        reconstruction, kl = 0.0, 0.0
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            guide_trace = poutine.trace(guide).get_trace(xb)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(xb)
            for name in structure.observed:
                site = model_trace.nodes[name]
                lp = masked_log_prob(site["fn"].log_prob(site["value"]), site["mask"])
                reconstruction += sum_to_datapoints(lp, data_dim).sum().item()
            for name in structure.local_latents:
                q_site, p_site = guide_trace.nodes[name], model_trace.nodes[name]
                try:
                    term = kl_divergence(q_site["fn"], p_site["fn"])
                except NotImplementedError:
                    value = q_site["value"]
                    term = q_site["fn"].log_prob(value) - p_site["fn"].log_prob(value)
                kl += sum_to_datapoints(masked_log_prob(term, p_site["mask"]), data_dim).sum().item()
    n = x.shape[0]
    return BoundTerms(reconstruction / n, kl / n)
