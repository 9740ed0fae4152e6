"""Importance weights of a model/guide pair, vectorised over K draws: what the IWAE bound, the importance-sampled
log p(x) and the traced graph share.

For K proposals z_k ~ q_phi(z|x) of one datapoint (all its local latent sites)::

    log w_k = log p_theta(x, z_k) - log q_phi(z_k | x)

The K draws are a vectorised plate to the left of the model's plates; every site's log-density is summed to one
number per datapoint over whatever other plates the model has (:func:`pyro_aevb.plates.sum_to_datapoints`).
"""

from typing import Callable, Tuple

import torch
from pyro.poutine.util import prune_subsample_sites

from ..contract import ModelStructure, require_local_only
from ..plates import data_frame, particle_traces, site_log_density, sum_to_datapoints


def vectorized_log_weights(model: Callable, guide: Callable, args: tuple, num_samples: int,
                           structure: ModelStructure) -> Tuple[torch.Tensor, float]:
    """``log w`` of shape ``[K, M]`` for the minibatch in ``args = (x, idx, num_data)`` (differentiable through
    reparameterized draws), and the minibatch scale N/M of the ``data`` plate."""
    require_local_only(structure, "importance weighting")
    particle_dim, data_dim = structure.particle_dim, structure.data_dim
    guide_trace, model_trace = particle_traces(model, guide, args, num_samples, particle_dim)
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
