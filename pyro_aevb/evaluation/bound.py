"""The variational lower bound of a dataset (eq. 3), per datapoint.

``evaluate_bound`` averages an SGVB estimator (A or B, :mod:`pyro_aevb.infer.elbo`, or the IWAE bound) of the
per-datapoint bound L(theta, phi; x^(i)) over a dataset ``x`` of n rows.  Each chunk of M_c rows runs as a
subsample of the n rows (the ``data`` plate scales its local terms by n/M_c) and is weighted by M_c/n, so the
result is the mean of the L_i whatever the chunk size.

With global latents theta (full VB, appendix F: sample sites outside the ``data`` plate) the bound of the
N_train points the posterior q(theta) was fitted to is (eq. 21; eq. 24 with both KLs analytic)

    L(X) = sum_i E_q[ log p(x_i | z_i, theta) + log p(z_i) - log q(z_i | x_i) ]  -  KL(q(theta) || p(theta))

and its one meaning per datapoint, for any set x of n rows (the training set, a subset, the test set), is

    L_per_datapoint(x) = (1/n) sum_{i in x} local_i  -  KL(q(theta) || p(theta)) / N_train

-- the KL is a cost of the training set, spread over its N_train points, never over len(x) (which made the
number depend on how many rows were evaluated: KL/20 vs KL/500).  The local terms are estimated as above
with the theta sites weighted 0 (theta is still drawn from q(theta) once per chunk and particle and replayed
into the model); the KL is in closed form (:func:`global_kl`).

Both identities hold only for models that follow the contract, so it is checked first
(:func:`~pyro_aevb.contract.check_model_guide`, which also refuses estimator B for a site without a closed-form
KL instead of letting Pyro silently sample).
"""

from typing import Callable, Optional

import torch
from pyro import poutine
from torch.distributions import kl_divergence

from ..contract import check_model_guide
from ..errors import AevbInputError
from ..infer.elbo import make_elbo
from ..inputs import Inputs, condition
from ..params import local_param_store
from ..plates import in_data_plate, is_global_latent


class _LocalTermsOnly(poutine.messenger.Messenger):
    """Give every sample site outside the ``data`` plate scale 0: the ELBO keeps only the local terms.

    The global sites are still sampled (from the guide) and replayed into the model, so the
    result is an unbiased estimate of ``sum_i E_q(theta)[ L(theta, phi; x_i) ]``.
    """

    def _process_message(self, msg):
        if msg["type"] == "sample" and not in_data_plate(msg):
            msg["scale"] = 0.0 * msg["scale"]


@torch.no_grad()
def global_kl(model: Callable, guide: Callable, x: torch.Tensor, inputs: Optional[Inputs] = None) -> float:
    """KL(q(theta) || p(theta)) summed over the global sites (outside the ``data`` plate), analytic."""
    model, guide = condition(model, inputs), condition(guide, inputs)
    first = (x[:1], torch.zeros(1, dtype=torch.long, device=x.device), x.shape[0])  # row 0 of x (and its inputs)
    with local_param_store():
        guide_trace = poutine.trace(guide).get_trace(*first)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*first)
    total = 0.0
    for name, site in model_trace.nodes.items():
        if is_global_latent(site):
            q, p = guide_trace.nodes[name]["fn"], site["fn"]
            try:
                total += kl_divergence(q, p).sum().item()
            except NotImplementedError:
                raise AevbInputError(f"KL(q || p) of global site {name!r} ({type(q).__name__} vs {type(p).__name__}) "
                                     "has no closed form, which the full-VB bound here needs") from None
    return total


def check_num_data(num_data: Optional[int], global_latents) -> Optional[int]:
    """``num_data`` (N_train) as an int; required, with one line saying so, when there are global latents."""
    if num_data is None:
        if global_latents:
            raise AevbInputError(
                f"the model has global latent(s) {', '.join(map(repr, global_latents))} (outside the 'data' plate), "
                "whose KL(q(theta) || p(theta)) the bound per datapoint spreads over the training set: pass "
                "num_data = the training set size N")
        return None
    if isinstance(num_data, bool) or int(num_data) != num_data or int(num_data) < 1:
        raise AevbInputError(f"num_data must be the training set size, an integer >= 1, got {num_data!r}")
    return int(num_data)


@torch.no_grad()
def local_bound(model: Callable, guide: Callable, x: torch.Tensor, estimator: str = "analytic",
                num_particles: int = 1, batch_size: int = 2000, inputs: Optional[Inputs] = None) -> float:
    """Mean over the rows of ``x`` of the local terms of the bound (eq. 3 without any term outside the ``data``
    plate): ``(1/n) sum_i E_q[log p(x_i|z_i, theta) + log p(z_i) - log q(z_i|x_i)]``; without global latents this
    is the bound per datapoint."""
    return _local_bound(model, guide, x, estimator, num_particles, batch_size,
                        check_model_guide(model, guide, x, estimator, inputs=inputs), inputs)


def _local_bound(model, guide, x, estimator, num_particles, batch_size, structure, inputs=None) -> float:
    if int(batch_size) < 1:
        raise AevbInputError(f"batch_size must be >= 1, got {batch_size}")
    model, guide = condition(model, inputs), condition(guide, inputs)  # the chunks' rows are idx: their inputs
    with local_param_store():
        if structure.global_latents:
            model, guide = _LocalTermsOnly()(model), _LocalTermsOnly()(guide)
        elbo = make_elbo(estimator, num_particles, structure.max_plate_nesting, bool(structure.enumerated))
        n = x.shape[0]
        total = 0.0
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n), device=x.device)
            total += -elbo.loss(model, guide, x[idx], idx, n) * (idx.shape[0] / n)
    return total / n


@torch.no_grad()
def evaluate_bound(model: Callable, guide: Callable, x: torch.Tensor, estimator: Optional[str] = None,
                   num_particles: int = 1, batch_size: int = 2000, *, num_data: Optional[int] = None,
                   inputs: Optional[Inputs] = None) -> float:
    """The bound per datapoint of ``x`` (nats), estimator ``"trace"`` (A), ``"analytic"`` (B) or ``"iwae"``
    (K = ``num_particles``), evaluated in chunks of ``batch_size`` rows; ``None``: B where it applies, else A
    (:attr:`~pyro_aevb.contract.ModelStructure.default_estimator`, the trainer's default too).

    With global latents it is ``local_bound(x) - KL(q(theta) || p(theta)) / num_data``, where ``num_data`` is
    N_train, the size of the training set q(theta) was fitted to (required then; without global latents it is
    only checked).  ``inputs`` are the conditioning inputs of the rows of ``x`` (:mod:`pyro_aevb.inputs`): the
    bound is then of log p(x | inputs)."""
    structure = check_model_guide(model, guide, x, estimator, inputs=inputs)
    estimator = estimator or structure.default_estimator
    num_data = check_num_data(num_data, structure.global_latents)
    local = _local_bound(model, guide, x, estimator, num_particles, batch_size, structure, inputs)
    if not structure.global_latents:
        return local
    return local - global_kl(model, guide, x, inputs) / num_data
