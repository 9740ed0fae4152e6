"""Evaluation of full variational Bayes (appendix F): models with global latents theta.

With global latents theta (the decoder weights of BayesianVAEModel) the bound of a dataset X of N points is

    L(phi; X) = sum_i E_q(theta)[ L(theta, phi; x_i) ] - KL(q(theta) || p(theta))        (eq. 21 / eq. 24)

so per datapoint it is  E_i[ local bound ] - KL / N, N the size of the training set q(theta) was fitted to, for
any rows x_i the mean runs over (the one meaning :func:`~pyro_aevb.evaluation.bound.evaluate_bound` gives it too).
The functions below report the two parts separately and
estimate the posterior predictive  p(x | X) ~= E_q(theta)[ p(x | theta) ]  by importance sampling, with theta
fixed per draw (``poutine.condition`` + ``poutine.block``), so the per-datapoint estimators apply.
"""

import math
from typing import Callable, Dict, NamedTuple, Optional

import torch
from pyro import poutine

from ..errors import AevbInputError
from ..contract import check_model_guide, inspect_model
from ..infer.hmc import prior_draw
from ..infer.importance import LogLikelihood, log_likelihood
from ..inputs import Inputs, condition
from ..params import local_param_store
from ..rng import seeded
from .bound import _LocalTermsOnly, _local_bound, check_num_data, global_kl  # noqa: F401 (_LocalTermsOnly: re-exported)
from .sampling import decode_means, sample_globals

class FullVBBound(NamedTuple):
    """Per-datapoint full-VB bound ``local - kl / num_data`` and its two parts (nats)."""

    bound: float
    local: float
    kl: float
    num_data: int


@torch.no_grad()
def full_vb_bound(model: Callable, guide: Callable, x: torch.Tensor, num_data: Optional[int] = None,
                  estimator: str = "analytic", num_particles: int = 1, batch_size: int = 2000,
                  inputs: Optional[Inputs] = None) -> FullVBBound:
    """The full-VB bound (eq. 21 / 24) per datapoint of ``x``, with the theta-KL spread over ``num_data``.

    ``local`` is the mean over ``x`` of ``E_q(theta) E_q(z|x)[log p(x|z, theta) + log p(z) - log q(z|x)]``
    (one theta draw per chunk and particle); ``kl`` is KL(q(theta) || p(theta)) in closed form;
    ``num_data`` is N, the size of the training set q(theta) was fitted to (required);
    ``bound = local - kl / num_data`` is what :func:`~pyro_aevb.evaluation.bound.evaluate_bound` returns.
    """
    structure = check_model_guide(model, guide, x, estimator, inputs=inputs)
    n = check_num_data(num_data, structure.global_latents) or x.shape[0]  # no global latents: kl = 0
    local = _local_bound(model, guide, x, estimator, num_particles, batch_size, structure, inputs)
    kl = global_kl(model, guide, x, inputs)
    return FullVBBound(local - kl / n, local, kl, n)


def fix_globals(model: Callable, guide: Callable, theta: Dict[str, torch.Tensor]):
    """``(model, guide)`` with the global sites fixed to ``theta`` and hidden from traces: p(x, z | theta), q(z|x)."""
    hide = list(theta)
    return (poutine.block(poutine.condition(model, data=theta), hide=hide),
            poutine.block(poutine.condition(guide, data=theta), hide=hide))


@torch.no_grad()
def posterior_predictive_log_likelihood(model: Callable, guide: Callable, x: torch.Tensor, num_theta: int = 10,
                                        num_samples: int = 1000, batch_size: int = 1000,
                                        inputs: Optional[Inputs] = None) -> LogLikelihood:
    """Importance-sampled log of the posterior predictive ``p(x) = E_q(theta)[p(x | theta)]`` per datapoint.

    For S draws theta_s ~ q(theta): ``log p(x | theta_s)`` by the importance-sampled estimator of
    :func:`log_likelihood` with K = ``num_samples`` proposals from q(z|x); then
    ``log p(x) ~= logsumexp_s log p(x | theta_s) - log S``.  Both averages are inside the log, so
    by Jensen the estimate is a stochastic lower bound of log E_q(theta)[p(x|theta)] that tightens
    as S and K grow (it is at least the mean over s of the per-theta estimates).  ``inputs``: the conditioning
    inputs of the rows of ``x`` (:mod:`pyro_aevb.inputs`): the estimate is then of log p(x | inputs).
    """
    if int(num_theta) < 1:
        raise AevbInputError(f"num_theta must be >= 1, got {num_theta}")
    per_theta = []
    with local_param_store():
        for _ in range(int(num_theta)):
            m, g = fix_globals(model, guide, sample_globals(condition(guide, inputs), x))
            per_theta.append(log_likelihood(m, g, x, num_samples=num_samples, batch_size=batch_size,
                                            inputs=inputs).per_datapoint)
    return LogLikelihood.of(torch.logsumexp(torch.stack(per_theta), dim=0) - math.log(len(per_theta)))


@torch.no_grad()
def predictive_means(model: Callable, guide: Callable, x_like: torch.Tensor, num_theta: int = 8,
                     seed: Optional[int] = 0) -> torch.Tensor:
    """Decoder means for the same z ~ p(z) (one per row of ``x_like``) under ``num_theta`` draws theta ~ q(theta):
    ``[num_theta, len(x_like), ...]``.  Rows that share z differ only through theta: their spread is the weight
    uncertainty of full VB."""
    with local_param_store(), seeded(seed, x_like.device):
        structure = inspect_model(model, x_like)
        theta = sample_globals(guide, x_like)
        program = poutine.condition(model, data=theta)
        z = {name: v for name, v in prior_draw(program, (x_like,)).items() if name in structure.local_latents}
        return torch.stack([decode_means(model, {**sample_globals(guide, x_like), **z}, x_like)
                            for _ in range(int(num_theta))])
