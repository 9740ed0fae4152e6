"""Evaluation: the variational lower bound and the importance-sampled marginal likelihood.

``evaluate_bound`` averages an SGVB estimator (A or B, :mod:`pyro_aevb.objectives`)
of the per-datapoint bound L(theta, phi; x^(i)) (eq. 3) over a dataset, with no
minibatch scaling (the ``data`` plate covers each evaluation chunk exactly).

``log_likelihood`` estimates log p_theta(x) by importance sampling with the
guide as proposal (the estimator of Burda et al., 2015)::

    log p(x) ~= logsumexp_k [log p(x, z_k) - log q(z_k|x)] - log K,   z_k ~ q(z|x)

Its expectation is the IWAE bound, a lower bound of log p(x) that increases
with K towards log p(x) and is never below the ELBO (K = 1).  Samples are drawn
in a vectorised ``particles`` plate (dim -2) in chunks whose size keeps
``chunk * batch * max(D, J)`` under ``max_elements``; chunks are combined by
a running logsumexp, so any K fits in memory.
"""

import math
from typing import Callable, Dict, NamedTuple, Optional

import pyro
import torch
from pyro import poutine

from .errors import AevbInputError
from .objectives import make_elbo


@torch.no_grad()
def evaluate_bound(model: Callable, guide: Callable, x: torch.Tensor, estimator: str = "analytic",
                   num_particles: int = 1, batch_size: int = 2000) -> float:
    """Average per-datapoint lower bound of ``x`` (nats), estimator ``"trace"`` (A) or ``"analytic"`` (B).

    Each chunk of M_c rows runs as a subsample of the N rows of ``x`` (the ``data`` plate scales its
    local terms by N/M_c) and is weighted by M_c/N, so terms outside the plate -- the
    KL(q(theta) || p(theta)) of full VB -- count once for ``x``, whatever ``batch_size`` is:
    the result is ``(sum_i L_i - KL) / N``; without global latents, the mean of the L_i.
    """
    elbo = make_elbo(estimator, num_particles)
    n = x.shape[0]
    total = 0.0
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(start + batch_size, n), device=x.device)
        total += -elbo.loss(model, guide, x[idx], idx, n) * (idx.shape[0] / n)
    return total / n


def log_weights(model: Callable, guide: Callable, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """``log p(x, z_k) - log q(z_k|x)`` for ``num_samples`` z_k per row of ``x``: shape ``[K, N]``."""

    def vectorized(fn):
        def wrapped(*args):
            with pyro.plate("particles", num_samples, dim=-2):
                return fn(*args)

        return wrapped

    guide_trace = poutine.trace(vectorized(guide)).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vectorized(model), trace=guide_trace)).get_trace(x)
    shape = (num_samples, x.shape[0])
    total = torch.zeros(shape, device=x.device)
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        trace.compute_log_prob()
        for site in trace.nodes.values():
            if site["type"] == "sample":
                total = total + sign * site["log_prob"].expand(shape)
    return total


class LogLikelihood(NamedTuple):
    """Importance-sampled log p(x): dataset mean, its standard error over datapoints, and per-datapoint values."""

    mean: float
    stderr: float
    per_datapoint: torch.Tensor


@torch.no_grad()
def log_likelihood(model: Callable, guide: Callable, x: torch.Tensor, num_samples: int = 5000,
                   batch_size: int = 1000, max_elements: int = 2 ** 24) -> LogLikelihood:
    """Importance-sampled estimate of log p_theta(x) per datapoint with ``num_samples`` = K proposals."""
    width = max(x.shape[1], getattr(guide, "latent_dim", 1))
    per_point = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        chunk = max(1, min(num_samples, max_elements // (xb.shape[0] * width)))
        running = torch.full((xb.shape[0],), -math.inf, device=x.device)
        for k0 in range(0, num_samples, chunk):
            lw = log_weights(model, guide, xb, min(chunk, num_samples - k0))
            running = torch.logaddexp(running, torch.logsumexp(lw, dim=0))
        per_point.append(running - math.log(num_samples))
    values = torch.cat(per_point)
    stderr = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return LogLikelihood(values.mean().item(), stderr, values.cpu())


# ----------------------------------------------------------------------------- full VB (appendix F)
#
# With global latents theta (the decoder weights of BayesianVAEModel) the bound of a dataset X of N points is
#
#     L(phi; X) = sum_i E_q(theta)[ L(theta, phi; x_i) ] - KL(q(theta) || p(theta))        (eq. 21 / eq. 24)
#
# so per datapoint it is  E_i[ local bound ] - KL / N.  The functions below report the two parts separately and
# estimate the posterior predictive  p(x | X) ~= E_q(theta)[ p(x | theta) ]  by importance sampling.


class _LocalTermsOnly(poutine.messenger.Messenger):
    """Give every sample site outside the ``data`` plate scale 0: the ELBO keeps only the local terms.

    The global sites are still sampled (from the guide) and replayed into the model, so the
    result is an unbiased estimate of ``sum_i E_q(theta)[ L(theta, phi; x_i) ]``.
    """

    def _process_message(self, msg):
        if msg["type"] == "sample" and not any(f.name == "data" for f in msg["cond_indep_stack"]):
            msg["scale"] = 0.0 * msg["scale"]


def _is_global(site) -> bool:
    from pyro.poutine.subsample_messenger import _Subsample

    return (site["type"] == "sample" and not site["is_observed"] and not isinstance(site["fn"], _Subsample)
            and not any(f.name == "data" for f in site["cond_indep_stack"]))


@torch.no_grad()
def global_kl(model: Callable, guide: Callable, x: torch.Tensor) -> float:
    """KL(q(theta) || p(theta)) summed over the global sites (outside the ``data`` plate), analytic."""
    from torch.distributions import kl_divergence

    guide_trace = poutine.trace(guide).get_trace(x[:1])
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x[:1])
    total = 0.0
    for name, site in model_trace.nodes.items():
        if _is_global(site):
            total += kl_divergence(guide_trace.nodes[name]["fn"], site["fn"]).sum().item()
    return total


class FullVBBound(NamedTuple):
    """Per-datapoint full-VB bound ``local - kl / num_data`` and its two parts (nats)."""

    bound: float
    local: float
    kl: float
    num_data: int


@torch.no_grad()
def full_vb_bound(model: Callable, guide: Callable, x: torch.Tensor, num_data: Optional[int] = None,
                  estimator: str = "analytic", num_particles: int = 1, batch_size: int = 2000) -> FullVBBound:
    """The full-VB bound (eq. 21 / 24) per datapoint of ``x``, with the theta-KL spread over ``num_data``.

    ``local`` is the mean over ``x`` of ``E_q(theta) E_q(z|x)[log p(x|z, theta) + log p(z) - log q(z|x)]``
    (one theta draw per chunk and particle); ``kl`` is KL(q(theta) || p(theta)) in closed form;
    ``num_data`` defaults to ``len(x)`` (use the training-set size N to read the training objective).
    """
    elbo = make_elbo(estimator, num_particles)
    local_model, local_guide = _LocalTermsOnly()(model), _LocalTermsOnly()(guide)
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        total += -elbo.loss(local_model, local_guide, x[start:start + batch_size])
    local = total / x.shape[0]
    kl = global_kl(model, guide, x)
    n = int(num_data or x.shape[0])
    return FullVBBound(local - kl / n, local, kl, n)


@torch.no_grad()
def sample_globals(guide: Callable, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """One draw of every global latent (theta ~ q(theta)) from ``guide``, as a dict for ``poutine.condition``."""
    guide_trace = poutine.trace(guide).get_trace(x[:1])
    return {name: site["value"] for name, site in guide_trace.nodes.items() if _is_global(site)}


def fix_globals(model: Callable, guide: Callable, theta: Dict[str, torch.Tensor]):
    """``(model, guide)`` with the global sites fixed to ``theta`` and hidden from traces: p(x, z | theta), q(z|x)."""
    hide = list(theta)
    return (poutine.block(poutine.condition(model, data=theta), hide=hide),
            poutine.block(poutine.condition(guide, data=theta), hide=hide))


@torch.no_grad()
def posterior_predictive_log_likelihood(model: Callable, guide: Callable, x: torch.Tensor, num_theta: int = 10,
                                        num_samples: int = 1000, batch_size: int = 1000) -> LogLikelihood:
    """Importance-sampled log of the posterior predictive ``p(x) = E_q(theta)[p(x | theta)]`` per datapoint.

    For S draws theta_s ~ q(theta): ``log p(x | theta_s)`` by the importance-sampled estimator of
    :func:`log_likelihood` with K = ``num_samples`` proposals from q(z|x); then
    ``log p(x) ~= logsumexp_s log p(x | theta_s) - log S``.  Both averages are inside the log, so
    by Jensen the estimate is a stochastic lower bound of log E_q(theta)[p(x|theta)] that tightens
    as S and K grow (it is at least the mean over s of the per-theta estimates).
    """
    if int(num_theta) < 1:
        raise AevbInputError(f"num_theta must be >= 1, got {num_theta}")
    per_theta = []
    for _ in range(int(num_theta)):
        m, g = fix_globals(model, guide, sample_globals(guide, x))
        per_theta.append(log_likelihood(m, g, x, num_samples=num_samples, batch_size=batch_size).per_datapoint)
    values = torch.logsumexp(torch.stack(per_theta), dim=0) - math.log(len(per_theta))
    stderr = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return LogLikelihood(values.mean().item(), stderr, values)


@torch.no_grad()
def predictive_means(model, guide, num_theta: int = 8, num_z: int = 8, data_dim: Optional[int] = None,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Decoder means for ``num_z`` fixed z ~ p(z) under ``num_theta`` draws theta ~ q(theta): ``[num_theta, num_z, D]``.

    Rows that share z differ only through theta: their spread is the weight uncertainty of full VB.
    """
    data_dim = int(data_dim or model.data_dim)
    device = next(guide.parameters()).device
    z = torch.randn(num_z, model.latent_dim, generator=generator).to(device)
    dummy = torch.full((1, data_dim), 0.5, device=device)
    return torch.stack([model.decode(z, sample_globals(guide, dummy)).mean for _ in range(int(num_theta))])
