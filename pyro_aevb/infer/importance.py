"""Importance weights of a model/guide pair, and the importance-sampled log p(x).

For K proposals z_k ~ q_phi(z|x) of one datapoint (all its local latent sites)::

    log w_k = log p_theta(x, z_k) - log q_phi(z_k | x)
    log p(x) ~= logsumexp_k log w_k - log K                    (Burda et al., 2015)

whose expectation is the IWAE bound: a lower bound of log p(x) that rises with
K towards it and is never below the ELBO (K = 1).  The K draws are a
vectorised plate to the left of the model's plates; every site's log-density
is summed to one number per datapoint over whatever other plates the model
has (:func:`pyro_aevb.plates.sum_to_datapoints`), so any site names, any
number of latents and extra plates work.  Global latents are refused: one
theta per weight would need the whole dataset's likelihood in each weight
(full VB has :func:`~pyro_aevb.evaluation.full_vb.posterior_predictive_log_likelihood`).
"""

import math
from typing import Callable, NamedTuple, Optional, Tuple

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import prune_subsample_sites
from tqdm import tqdm

from ..contract import ModelStructure, check_data_support, check_model_guide, require_local_only
from ..errors import AevbInputError
from ..inputs import Inputs, condition
from ..params import local_param_store
from ..plates import data_frame, site_log_density, sum_to_datapoints


class LogLikelihood(NamedTuple):
    """Estimated log p(x): dataset mean, its standard error over datapoints, and per-datapoint values."""

    mean: float
    stderr: float
    per_datapoint: torch.Tensor

    @classmethod
    def of(cls, values: torch.Tensor) -> "LogLikelihood":
        """Summarise per-datapoint estimates: their mean and its standard error over datapoints."""
        stderr = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else float("nan")
        return cls(values.mean().item(), stderr, values.detach().cpu())


def vectorized_log_weights(model: Callable, guide: Callable, args: tuple, num_samples: int,
                           structure: ModelStructure) -> Tuple[torch.Tensor, float]:
    """``log w`` of shape ``[K, M]`` for the minibatch in ``args = (x, idx, num_data)`` (differentiable through
    reparameterized draws), and the minibatch scale N/M of the ``data`` plate."""
    require_local_only(structure, "importance weighting")
    particle_dim, data_dim = structure.particle_dim, structure.data_dim

    def particles(fn):
        def wrapped(*a):
            with pyro.plate("particles", num_samples, dim=particle_dim):
                return fn(*a)

        return wrapped

    guide_trace = poutine.trace(particles(guide)).get_trace(*args)
    model_trace = poutine.trace(poutine.replay(particles(model), trace=guide_trace)).get_trace(*args)
    m = args[0].shape[0]
    log_w = torch.zeros((num_samples, m), device=args[0].device)
    scale = None
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        trace = prune_subsample_sites(trace)
        trace.compute_log_prob()
        for site in trace.nodes.values():
            if site["type"] != "sample":
                continue
            frame = data_frame(site)
            if frame is not None and scale is None:
                scale = (frame.full_size or frame.size) / frame.size
            log_w = log_w + sign * sum_to_datapoints(site_log_density(site), data_dim, particle_dim)
    return log_w, float(scale or 1.0)


def log_weights(model: Callable, guide: Callable, x: torch.Tensor, num_samples: int,
                structure: Optional[ModelStructure] = None, inputs: Optional[Inputs] = None) -> torch.Tensor:
    """``log p(x, z_k) - log q(z_k|x)`` for ``num_samples`` z_k per row of ``x`` (with the conditioning
    ``inputs`` of its rows): shape ``[K, N]``."""
    with local_param_store():
        structure = structure or check_model_guide(model, guide, x, "importance", inputs=inputs)
        return vectorized_log_weights(condition(model, inputs), condition(guide, inputs), (x,), int(num_samples),
                                      structure)[0]


@torch.no_grad()
def log_likelihood(model: Callable, guide: Callable, x: torch.Tensor, num_samples: int = 5000,
                   batch_size: int = 100, max_elements: int = 2 ** 24, progress: bool = False, inputs: Optional[Inputs] = None) -> LogLikelihood:
    """Importance-sampled estimate of log p_theta(x) per datapoint with ``num_samples`` = K proposals.

    Rows go in batches of ``batch_size``; their K draws in chunks of at most ``max_elements / (rows * row
    size)`` combined by a running log-sum-exp, so any K fits in memory; every model's weights come from Pyro's
    traces (:func:`vectorized_log_weights`).  ``progress`` shows a bar with an ETA.
    ``inputs`` are the conditioning inputs of the rows of ``x`` (:mod:`pyro_aevb.inputs`): the estimate is then
    of log p(x | inputs).
    """
    if int(num_samples) < 1:
        raise AevbInputError(f"num_samples must be >= 1, got {num_samples}")
    if int(batch_size) < 1:
        raise AevbInputError(f"batch_size must be >= 1, got {batch_size}")
    with local_param_store():
        structure = check_model_guide(model, guide, x, "importance", inputs=inputs)
        check_data_support(model, x, inputs=inputs)  # every row in the support, once: validation is off in the loop
        model, guide = condition(model, inputs), condition(guide, inputs)
    width = max(int(x[0].numel()), 1)
    chunks = [(start, max(1, min(num_samples, max_elements // (min(batch_size, x.shape[0] - start) * width))))
              for start in range(0, x.shape[0], batch_size)]
    total = sum(-(-num_samples // chunk) for _, chunk in chunks)
    per_point = []
    bar = tqdm(total=total, disable=not progress, unit="chunk", desc=f"log p(x), K={num_samples}", leave=False)
    with local_param_store(), pyro.validation_enabled(False):
        for start, chunk in chunks:
            xb = x[start:start + batch_size]
            running = torch.full((xb.shape[0],), -math.inf, device=x.device)
            for k0 in range(0, num_samples, chunk):
                k = min(chunk, num_samples - k0)
                idx = torch.arange(start, start + xb.shape[0], device=x.device)  # the rows of xb (their inputs)
                lw = vectorized_log_weights(model, guide, (xb, idx, x.shape[0]), k, structure)[0]
                running = torch.logaddexp(running, torch.logsumexp(lw, dim=0))
                bar.update(1)
            per_point.append(running - math.log(num_samples))
    bar.close()
    return LogLikelihood.of(torch.cat(per_point))
