"""The two terms of the bound (eq. 7), per datapoint: reconstruction and KL.

    L(theta, phi; x) = E_{q_phi(z|x)}[ log p_theta(x | z) ]  -  KL( q_phi(z|x) || p(z) )
                       \\___________ reconstruction _______/      \\________ kl ________/

averaged over the rows of ``x``.  The reconstruction term is estimated with one draw z ~ q_phi(z|x) per row;
the KL is summed over the local latent sites, in closed form where torch has it and the guide is mean-field (as
estimator B) and by the one-draw Monte Carlo estimate log q(z|x) - log p(z) elsewhere (as estimator A).

Per local latent site s (:func:`latent_site_terms`; e.g. the layers z1, z2 of a hierarchical VAE):

    KL_s = E_{q(z|x)}[ log q(z_s | its guide parents) - log p(z_s | its model parents) ],   sum_s KL_s = KL
    A_{s,u} = Cov_x( E_q[z_{s,u} | x] ) > 0.01        the "active units" of Burda et al. (2015), section 5.2

E_q[z_s | x] is the average, over S draws of the sites the guide samples before z_s, of the mean of
q(z_s | those draws) (exact for a mean-field guide; for z2 of x -> z1 -> z2 the mean of q(z2 | z1) at S draws
of z1).  Any site names and plates
(:class:`~pyro_aevb.contract.ModelStructure`); global latents (full VB) are fixed at one draw of q(theta), so
the terms are those of the per-datapoint bound given theta -- the KL of theta is
:func:`~pyro_aevb.evaluation.full_vb.global_kl`.
"""

from typing import Callable, Dict, NamedTuple, Optional

import torch
from pyro import poutine
from torch.distributions import kl_divergence

from ..contract import check_model_guide
from ..errors import AevbInputError
from ..inputs import Inputs, condition, rows
from ..params import local_param_store
from ..plates import masked_log_prob, particle_traces, sum_to_datapoints
from .full_vb import fix_globals
from .sampling import sample_globals


#: Cov_x(E_q[z_u|x]) above this marks an active latent unit (Burda et al., 2015)
ACTIVE_THRESHOLD = 0.01


class BoundTerms(NamedTuple):
    """Per-datapoint averages (nats): ``bound = reconstruction - kl``."""

    reconstruction: float
    kl: float

    @property
    def bound(self) -> float:
        return self.reconstruction - self.kl


@torch.no_grad()
def bound_terms(model: Callable, guide: Callable, x: torch.Tensor, batch_size: int = 1000,
                inputs: Optional[Inputs] = None) -> BoundTerms:
    """E_q[log p(x|z)] and KL(q(z|x) || p(z)) averaged over the rows of ``x`` (with the conditioning ``inputs`` of
    its rows, :mod:`pyro_aevb.inputs`: the terms of the bound of log p(x | inputs))."""
    model, guide = condition(model, inputs), condition(guide, inputs)
    with local_param_store():
        structure = check_model_guide(model, guide, x, None)
        if structure.global_latents:
            model, guide = fix_globals(model, guide, sample_globals(guide, x))
            structure = check_model_guide(model, guide, x, None)
        data_dim = structure.data_dim
        reconstruction, kl = 0.0, 0.0
        for start in range(0, x.shape[0], batch_size):
            idx = torch.arange(start, min(start + batch_size, x.shape[0]), device=x.device)  # rows, for inputs
            xb = x[idx]
            guide_trace = poutine.trace(guide).get_trace(xb, idx, x.shape[0])
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(xb, idx, x.shape[0])
            for name in structure.observed:
                site = model_trace.nodes[name]
                lp = masked_log_prob(site["fn"].log_prob(site["value"]), site["mask"])
                reconstruction += sum_to_datapoints(lp, data_dim).sum().item()
            for name in structure.local_latents:
                q_site, p_site = guide_trace.nodes[name], model_trace.nodes[name]
                term = _kl_term(q_site, p_site, structure.mean_field)
                kl += sum_to_datapoints(term, data_dim).sum().item()
    n = x.shape[0]
    return BoundTerms(reconstruction / n, kl / n)


def _kl_term(q_site: dict, p_site: dict, analytic: bool) -> torch.Tensor:
    """KL(q || p) of one site in closed form (where torch has it and ``analytic``), else log q(z) - log p(z) at the
    drawn z; masked as the model's site is."""
    term = None
    if analytic:
        try:
            term = kl_divergence(q_site["fn"], p_site["fn"])
        except NotImplementedError:
            pass
    if term is None:
        value = q_site["value"]
        term = q_site["fn"].log_prob(value) - p_site["fn"].log_prob(value)
    return masked_log_prob(term, p_site["mask"])


class LatentSiteTerms(NamedTuple):
    """Per local latent site: ``kl[s]`` (nats per datapoint) and ``mean_variance[s]``, Cov_x(E_q[z_{s,u}|x]) for
    each unit u of the site (flattened)."""

    kl: Dict[str, float]
    mean_variance: Dict[str, torch.Tensor]

    @property
    def active_units(self) -> Dict[str, int]:
        """Units with Cov_x(E_q[z_u|x]) > 0.01 (Burda et al., 2015), per site."""
        return {name: int((v > ACTIVE_THRESHOLD).sum()) for name, v in self.mean_variance.items()}

    def metrics(self, prefix: str = "") -> dict:
        """``{prefix}kl_<site>``, ``{prefix}active_units_<site>`` and ``{prefix}units_<site>`` per site."""
        out = {}
        for name, kl in self.kl.items():
            out.update({f"{prefix}kl_{name}": kl, f"{prefix}active_units_{name}": self.active_units[name],
                        f"{prefix}units_{name}": int(self.mean_variance[name].numel())})
        return out


@torch.no_grad()
def latent_site_terms(model: Callable, guide: Callable, x: torch.Tensor, num_samples: int = 16,
                      max_elements: int = 2 ** 22, inputs: Optional[Inputs] = None) -> LatentSiteTerms:
    """KL term and active units of every local latent site, over the rows of ``x`` (at least 2), with
    ``num_samples`` = S draws of q(z|x) per row (a vectorised plate left of the model's plates).

    The KL of a site is in closed form where the guide is mean-field and torch has it, else the Monte Carlo
    average of log q - log p over the S draws.  Global latents (full VB) are fixed at one draw of q(theta).
    ``inputs``: the conditioning inputs of the rows of ``x`` (:mod:`pyro_aevb.inputs`)."""
    if int(num_samples) < 1:
        raise AevbInputError(f"num_samples must be >= 1, got {num_samples}")
    if x.shape[0] < 2:
        raise AevbInputError("active units are a covariance over datapoints: give at least 2 rows")
    s = int(num_samples)
    inputs = dict(inputs or {})
    with local_param_store():
        structure = check_model_guide(model, guide, x, None, inputs=inputs)
        theta = sample_globals(condition(guide, inputs), x) if structure.global_latents else None

        def programs(sl):
            """The model and guide for the rows ``sl`` of x: their inputs bound, the global latents fixed."""
            m, g = condition(model, rows(inputs, sl)), condition(guide, rows(inputs, sl))
            return fix_globals(m, g, theta) if theta is not None else (m, g)

        if theta is not None:
            fixed_model, fixed_guide = programs(slice(0, x.shape[0]))
            structure = check_model_guide(fixed_model, fixed_guide, x, None)
        particle_dim, data_dim = structure.particle_dim, structure.data_dim

        names = structure.local_latents
        kl, means = dict.fromkeys(names, 0.0), {name: [] for name in names}
        chunk = max(1, max_elements // (s * max(int(x[0].numel()), 1)))
        for start in range(0, x.shape[0], chunk):
            xb = x[start:start + chunk]
            model_b, guide_b = programs(slice(start, start + chunk))
            guide_trace, model_trace = particle_traces(model_b, guide_b, (xb,), s, particle_dim)
            for name, axis in zip(names, structure.latent_axes):
                q_site = guide_trace.nodes[name]
                term = _kl_term(q_site, model_trace.nodes[name], structure.mean_field)
                kl[name] += sum_to_datapoints(term, data_dim, particle_dim).mean(0).sum().item()
                value = q_site["value"]
                try:
                    mean = q_site["fn"].mean.expand(value.shape)
                except NotImplementedError:
                    mean = value
                mean = mean.mean(particle_dim - q_site["fn"].event_dim)  # over the S draws of the parents
                means[name].append(mean.movedim(axis, 0).reshape(xb.shape[0], -1))
    n = x.shape[0]
    return LatentSiteTerms({name: kl[name] / n for name in names},
                           {name: torch.cat(means[name]).var(0) for name in names})
