"""The variational lower bound of a dataset (eq. 3), averaged per datapoint.

``evaluate_bound`` averages an SGVB estimator (A or B, :mod:`pyro_aevb.infer.elbo`,
or the IWAE bound) of the per-datapoint bound L(theta, phi; x^(i)) over a
dataset.  Each chunk of M_c rows runs as a subsample of the N rows of ``x``
(the ``data`` plate scales its local terms by N/M_c) and is weighted by M_c/N,
so terms outside the plate -- the KL(q(theta) || p(theta)) of full VB -- count
once for ``x``, whatever the chunk size: the result is ``(sum_i L_i - KL) / N``,
without global latents the mean of the L_i.  That identity holds only for
models that follow the contract, so it is checked first
(:func:`~pyro_aevb.contract.check_model_guide`, which also refuses estimator B
for a site without a closed-form KL instead of letting Pyro silently sample).
"""

from typing import Callable, Optional

import torch

from ..contract import check_model_guide
from ..errors import AevbInputError
from ..infer.elbo import make_elbo
from ..inputs import Inputs, condition
from ..params import local_param_store


@torch.no_grad()
def evaluate_bound(model: Callable, guide: Callable, x: torch.Tensor, estimator: str = "analytic",
                   num_particles: int = 1, batch_size: int = 2000, inputs: Optional[Inputs] = None) -> float:
    """Average per-datapoint lower bound of ``x`` (nats), estimator ``"trace"`` (A), ``"analytic"`` (B) or
    ``"iwae"`` (K = ``num_particles``); ``inputs`` are the conditioning inputs of the rows of ``x``
    (:mod:`pyro_aevb.inputs`; the bound is then of log p(x | inputs))."""
    if int(batch_size) < 1:
        raise AevbInputError(f"batch_size must be >= 1, got {batch_size}")
    with local_param_store():
        structure = check_model_guide(model, guide, x, estimator, inputs=inputs)
        model, guide = condition(model, inputs), condition(guide, inputs)
        elbo = make_elbo(estimator, num_particles, structure.max_plate_nesting, bool(structure.enumerated))
        n = x.shape[0]
        total = 0.0
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n), device=x.device)
            total += -elbo.loss(model, guide, x[idx], idx, n) * (idx.shape[0] / n)
    return total / n
