"""Sampling and reconstruction of any model that follows the contract, through :class:`pyro.infer.Predictive`.

* prior samples (the paper's Fig. 5): latents z ~ p(z) from ``Predictive(model, ...)`` -- global latents
  theta from a draw of q(theta) when the model has them (full VB);
* reconstructions: z ~ q_phi(z|x) from ``Predictive(model, guide=guide, ...)``;

each decoded to the *mean* of the observed site's distribution p_theta(x|z) (the image one draws in a sample
grid): the model is traced with the latents conditioned (``poutine.condition``) and the observed site's
distribution read off the trace.  Nothing here knows a site name.  A conditional model p(x | z, y) takes its
conditioning inputs for each row (``inputs={"y": ...}``, :mod:`pyro_aevb.inputs`): samples of p(x | y).
"""

from typing import Callable, Dict, Optional

import torch
from pyro import poutine
from pyro.infer import Predictive

from ..contract import ModelStructure, check_model_guide, inspect_model
from ..errors import AevbInputError
from ..inputs import Inputs, condition
from ..params import local_param_store
from ..plates import is_global_latent, is_observed
from ..rng import seeded


def _one_draw(predictive: Predictive, x: torch.Tensor, dims: Dict[str, int]) -> Dict[str, torch.Tensor]:
    """One Predictive draw of each site, without Predictive's leading sample and broadcast dimensions."""
    samples = predictive(x)
    return {name: v[0].reshape(v.shape[v.dim() - dims[name]:]) for name, v in samples.items()}


def decode_means(model: Callable, latents: Dict[str, torch.Tensor], x_like: torch.Tensor,
                 idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None) -> torch.Tensor:
    """Mean of p_theta(x|z) for the given latents, one row per row of ``x_like`` (which only sets the shapes;
    ``idx`` / ``num_data``: its rows in a larger set, as in the contract, e.g. for their conditioning inputs).

    The model must observe exactly one site; if its distribution has no closed-form mean, a draw is returned.
    """
    with torch.no_grad():
        trace = poutine.trace(poutine.condition(model, data=latents)).get_trace(x_like, idx, num_data)
    observed = [site for name, site in trace.nodes.items() if is_observed(site) and name not in latents]
    if len(observed) != 1:
        raise AevbInputError(f"decoding draws one image per row and needs a model that observes exactly one site; "
                             f"this one observes {[s['name'] for s in observed]}")
    fn = observed[0]["fn"]
    try:
        mean = fn.mean
    except NotImplementedError:
        mean = fn.sample()
    return mean.reshape(x_like.shape)


def _value_dims(model: Callable, x_like: torch.Tensor, names) -> Dict[str, int]:
    with torch.no_grad():
        trace = poutine.trace(model).get_trace(x_like)
    return {name: trace.nodes[name]["value"].dim() for name in names}


def _require_rows(x, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise AevbInputError(f"{name} must be a tensor of data rows (e.g. data.test[:100]: one image is drawn per "
                             f"row, the rows set only the shapes), got {type(x).__name__}")


@torch.no_grad()
def sample_globals(guide: Callable, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """One draw of every global latent (theta ~ q(theta)) from ``guide``, as a dict for ``poutine.condition``."""
    # the first row, as a minibatch of the rows of x (a guide with conditioning inputs gets that row's)
    guide_trace = poutine.trace(guide).get_trace(x[:1], torch.zeros(1, dtype=torch.long, device=x.device), x.shape[0])
    return {name: site["value"] for name, site in guide_trace.nodes.items() if is_global_latent(site)}


@torch.no_grad()
def prior_means(model: Callable, x_like: torch.Tensor, guide: Optional[Callable] = None,
                seed: Optional[int] = 0, structure: Optional[ModelStructure] = None,
                inputs: Optional[Inputs] = None) -> torch.Tensor:
    """Decoded prior samples, one per row of ``x_like``: z ~ p(z), image = E[x | z] (Fig. 5).

    :param x_like: rows with the data's shape (e.g. test images): they set shapes only, the latents come from
        the prior.
    :param guide: supplies theta ~ q(theta) for a model with global latents (full VB); not used otherwise.
    :param inputs: the conditioning inputs of each row (a conditional model: a draw of p(x | z, y) per row).
    """
    _require_rows(x_like, "x_like")
    with local_param_store(), seeded(seed, x_like.device):
        structure = structure or inspect_model(model, x_like, inputs=inputs)
        model, guide = condition(model, inputs), condition(guide, inputs)
        theta = {}
        if structure.global_latents:
            if guide is None:
                raise AevbInputError("the model has global latents: pass its guide to draw them from q(theta)")
            theta = sample_globals(guide, x_like)
        program = poutine.condition(model, data=theta) if theta else model
        names = list(structure.local_latents)
        draw = _one_draw(Predictive(program, num_samples=1, return_sites=names), x_like,
                         _value_dims(program, x_like, names))
        return decode_means(model, {**theta, **draw}, x_like)  # theta and z given: the one observed site is x


@torch.no_grad()
def reconstruct(model: Callable, guide: Callable, x: torch.Tensor, seed: Optional[int] = 0,
                inputs: Optional[Inputs] = None) -> torch.Tensor:
    """Reconstructions of the rows of ``x`` (with the conditioning ``inputs`` of its rows): z ~ q_phi(z|x) (and
    theta ~ q(theta)), image = E[x | z]."""
    _require_rows(x, "x")
    with local_param_store(), seeded(seed, x.device):
        structure = check_model_guide(model, guide, x, None, inputs=inputs)
        model, guide = condition(model, inputs), condition(guide, inputs)
        names = list(structure.latents)
        draw = _one_draw(Predictive(model, guide=guide, num_samples=1, return_sites=names), x,
                         _value_dims(model, x, names))
        return decode_means(model, draw, x)


def discrete_latent(model: Callable, x_like: torch.Tensor, structure: Optional[ModelStructure] = None,
                    inputs: Optional[Inputs] = None) -> Optional[str]:
    """The first local latent of the model whose prior has a finite support (``has_enumerate_support``), e.g.
    the class y of M2; ``None`` if there is none."""
    with local_param_store(), seeded(0, x_like.device), torch.no_grad():
        structure = structure or inspect_model(model, x_like, inputs=inputs)
        trace = poutine.trace(condition(model, inputs)).get_trace(x_like)
    for name in structure.local_latents:
        if getattr(trace.nodes[name]["fn"], "has_enumerate_support", False):
            return name
    return None


@torch.no_grad()
def num_values(model: Callable, x_like: torch.Tensor, site: str, inputs: Optional[Inputs] = None) -> int:
    """The number of values of the discrete latent ``site`` (the size of its prior's support)."""
    with local_param_store(), seeded(0, x_like.device):
        fn = poutine.trace(condition(model, inputs)).get_trace(x_like).nodes[site]["fn"]
    return int(fn.enumerate_support(expand=False).shape[0])


@torch.no_grad()
def conditional_means(model: Callable, x_like: torch.Tensor, site: str, seed: Optional[int] = 0,
                      structure: Optional[ModelStructure] = None, inputs: Optional[Inputs] = None) -> torch.Tensor:
    """Decoded samples with the discrete latent ``site`` set to each of its values: ``[V, C, D]`` for V values
    and C = ``len(x_like)`` columns.  The other local latents are drawn once per column from the prior and
    kept for every row, so a column shows one "style" z under every class y: the analogies of Kingma et al.
    (2014, Fig. 1), from the prior.  (A model whose other latents depend on ``site`` has them drawn at a value
    of ``site`` from its prior.)  Models with global latents are refused.
    """
    _require_rows(x_like, "x_like")
    with local_param_store(), seeded(seed, x_like.device):
        structure = structure or inspect_model(model, x_like, inputs=inputs)
        model = condition(model, inputs)
        if structure.global_latents:
            raise AevbInputError("class-conditional samples need a model without global latents")
        if site not in structure.local_latents:
            raise AevbInputError(f"{site!r} is not a local latent of the model ({list(structure.local_latents)})")
        others = [name for name in structure.local_latents if name != site]
        draw = _one_draw(Predictive(model, num_samples=1, return_sites=others), x_like,
                         _value_dims(model, x_like, others)) if others else {}
        fn = poutine.trace(model).get_trace(x_like).nodes[site]["fn"]
        values = fn.enumerate_support(expand=True)  # [V, C, *event]
        return torch.stack([decode_means(model, dict(draw, **{site: value}), x_like) for value in values])
