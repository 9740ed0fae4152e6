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
from typing import Callable, NamedTuple

import pyro
import torch
from pyro import poutine

from .objectives import make_elbo


@torch.no_grad()
def evaluate_bound(model: Callable, guide: Callable, x: torch.Tensor, estimator: str = "analytic",
                   num_particles: int = 1, batch_size: int = 2000) -> float:
    """Average per-datapoint lower bound of ``x`` (nats), estimator ``"trace"`` (A) or ``"analytic"`` (B)."""
    elbo = make_elbo(estimator, num_particles)
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        total += -elbo.loss(model, guide, x[start:start + batch_size])
    return total / x.shape[0]


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
