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
from typing import Callable, NamedTuple, Optional

import pyro
import torch
from tqdm import tqdm

from ..contract import ModelStructure, check_data_support, check_model_guide
from ..errors import AevbInputError
from ..inputs import Inputs, condition
from ..params import local_param_store
from .graph import GraphELBO, NotTraceable
from .weights import vectorized_log_weights


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
    size)`` combined by a running log-sum-exp, so any K fits in memory; every model's weights come from the
    traced graph of :meth:`~pyro_aevb.infer.graph.GraphELBO.log_weights` (checked equal to Pyro's traces on the
    same draws for each chunk shape), or from Pyro's traces where a program cannot be traced.  ``progress`` shows a bar with an ETA.
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
        # the weights' traced graph, checked on each chunk shape's first chunk; else Pyro's traces
        modules = isinstance(model, torch.nn.Module) and isinstance(guide, torch.nn.Module)
        graph = GraphELBO(model, guide, "trace", 1, structure, inputs) if modules else None
        model, guide = condition(model, inputs), condition(guide, inputs)

    def weights(xb, idx, k):
        nonlocal graph
        if graph is not None:
            try:
                return graph.log_weights(xb, idx, x.shape[0], k)
            except NotTraceable:
                graph = None
        return vectorized_log_weights(model, guide, (xb, idx, x.shape[0]), k, structure)[0]
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
                lw = weights(xb, idx, k)
                running = torch.logaddexp(running, torch.logsumexp(lw, dim=0))
                bar.update(1)
            per_point.append(running - math.log(num_samples))
    bar.close()
    return LogLikelihood.of(torch.cat(per_point))
