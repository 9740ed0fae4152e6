"""Posterior inference on the latents of an image seen only in part or through noise (inpainting, denoising).

**Model.**  The clean image is x ~ p_theta(x|z), z ~ p(z) (the trained model); we see y, tied to x pixel by
pixel by an *observation model* o (pixels are independent given z):

    p(y | z) = prod_d p_o(y_d | z)                         (``o.log_prob``, one term per pixel)
    E[x_d | y_d, z]                                        (``o.estimate``: what y_d and z say of the clean pixel)

* inpainting (:mod:`.masks`): p_o(y_d|z) = p_theta(y_d|z) on the observed pixels and 1 on the missing ones,
  which marginalise out exactly -- the observed likelihood, computed with Pyro's ``Distribution.mask``
  (``MaskedDistribution``, what ``poutine.mask`` and ``obs_mask`` apply per batch element, here per pixel);
  E[x_d|y_d,z] = y_d where observed and E[x_d|z] where missing;
* denoising (:mod:`.noise`): the noise model composed with p_theta(x_d|z).

**Inference.**  Self-normalised importance sampling with K draws per image:

    z_k ~ r(z),   log w_k = log p(z_k) + log p(y | z_k) - log r(z_k),   w~_k = softmax_k log w_k
    E[x | y] ~= sum_k w~_k E[x | y, z_k]
    log p(y) ~= logsumexp_k log w_k - log K       (a stochastic lower bound, as in pyro_aevb.infer.importance)
    ESS      = 1 / sum_k w~_k^2                   (effective sample size, 1..K)

**Proposal: the encoder iterated with the imputed pixels** (``proposal="encoder"``, the default),
r_t(z) = q_phi(z | x~_t) with x~_0 = ``o.impute(y)`` (the mean image in the holes; the noisy image) and
x~_{t+1} = the estimate E[x|y] of round t, for ``rounds`` rounds.  Why this one: the weights contain only
p(z) and p(y|z), so the estimate is consistent whatever the proposal, and the proposal only sets its
variance.  q_phi was trained on complete, clean images, so on y itself it is misled by the holes or the noise,
but at a good imputation it lies close to p(z|y), and each round's imputation is better than the last; the
importance weights then correct what is left.  The prior (``proposal="prior"``) is valid too, but with tens of
latent dimensions almost every draw misses the small region p(z|y) occupies and the ESS collapses towards 1;
it is kept for comparison and for 2-D latents.  MCMC would spend many decoder passes per image to do what one
encoder pass does here.

Nothing here knows a site name: the local latents and the one observed site come from the model's
:class:`~pyro_aevb.contract.ModelStructure`; global latents (full VB) are fixed at one draw of q(theta).
"""

import math
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Tuple

import torch
from pyro import poutine

from ..contract import ModelStructure
from ..errors import AevbInputError
from ..params import local_param_store
from ..plates import in_particles, masked_log_prob, particle_traces, sum_to_datapoints
from ..rng import seeded
from .latents import fix_global_latents

PROPOSALS = ("encoder", "prior")


class Observation(Protocol):
    """An observation model: how the image we see, y, relates to the clean image x ~ p_theta(x|z).

    ``pixel`` is the model's per-pixel distribution p_theta(x_d|z) (batch shape ``[K, ..., pixels]``, event
    shape ``()``) and ``y`` has the shape of the observed site's value; both methods return one number per
    pixel (broadcastable to ``pixel.batch_shape``).
    """

    def __getitem__(self, rows: slice) -> "Observation":
        """The observation model of the images ``rows`` (per-image masks are sliced; noise models are shared)."""

    def impute(self, y: torch.Tensor) -> torch.Tensor:
        """x~_0: a complete image for the encoder's first look, from y alone."""

    def log_prob(self, pixel, y: torch.Tensor) -> torch.Tensor:
        """log p_o(y_d | z) per pixel."""

    def estimate(self, pixel, y: torch.Tensor) -> torch.Tensor:
        """E[x_d | y_d, z] per pixel."""


@dataclass
class PosteriorImages:
    """E[x | y] per image (``images``, the shape of ``y``), log p(y) (importance-sampled) and the ESS."""

    images: torch.Tensor
    log_evidence: torch.Tensor
    ess: torch.Tensor


def pixel_distribution(fn) -> Tuple[object, int]:
    """The per-pixel distribution inside an observed site's distribution (its ``Independent`` wrappers
    removed) and how many event dimensions those wrappers declared."""
    unwrapped = 0
    while isinstance(fn, torch.distributions.Independent):
        unwrapped += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    if fn.event_shape != torch.Size():
        raise AevbInputError(f"inpainting and denoising need a likelihood that factorises over pixels given z; the "
                             f"observed site is {type(fn).__name__} with event shape {list(fn.event_shape)}: write it "
                             "as a per-pixel distribution with .to_event(1) or a plate over the pixels")
    return fn, unwrapped


def _latent_log_prob(trace, structure: ModelStructure) -> torch.Tensor:
    """sum over the local latents of log density, per particle and datapoint: ``[K, M]``."""
    total = 0.0
    for name in structure.local_latents:
        site = trace.nodes[name]
        lp = masked_log_prob(site["fn"].log_prob(site["value"]), site["mask"])  # a bool mask too
        total = total + sum_to_datapoints(lp, structure.data_dim, structure.particle_dim)
    return total


def _to_rows(t: torch.Tensor, event_dims: int, structure: ModelStructure, value_shape: torch.Size,
             num_samples: int) -> torch.Tensor:
    """A per-pixel tensor (particles and plates on the left, the value's dims on the right) as ``[K, M, D]``."""
    t = t.expand(torch.broadcast_shapes(t.shape, value_shape))
    axis = structure.particle_dim - event_dims
    if t.dim() < -axis:
        t = t.reshape((1,) * (-axis - t.dim()) + tuple(t.shape))
    t = t.movedim(axis, 0)
    t = t.expand(num_samples, *t.shape[1:])
    return t.reshape(num_samples, value_shape[0], -1)


def _one_round(model: Callable, guide: Callable, structure: ModelStructure, y: torch.Tensor,
               x_tilde: torch.Tensor, observation: Observation, num_samples: int, proposal: str,
               idx: torch.Tensor, num_data: int):
    """One importance-sampling pass for a batch, rows ``idx`` of the ``num_data`` images (so that a conditional
    model gets their inputs; the densities used are unscaled): (E[x|y] shaped like y, log p(y) [M], ESS [M])."""
    pdim = structure.particle_dim
    args = (x_tilde, idx, num_data)
    if proposal == "encoder":
        guide_trace, model_trace = particle_traces(model, guide, args, num_samples, pdim)
        log_w = _latent_log_prob(model_trace, structure) - _latent_log_prob(guide_trace, structure)
    else:  # z_k ~ p(z): log p(z) - log r(z) = 0
        model_trace = poutine.trace(in_particles(model, num_samples, pdim)).get_trace(*args)
        log_w = torch.zeros((num_samples, y.shape[0]), device=y.device)
    site = model_trace.nodes[structure.observed[0]]
    pixel, event_dims = pixel_distribution(site["fn"])
    value_shape = site["value"].shape
    if site["value"].numel() != y.numel() or value_shape[0] != y.shape[0]:
        raise AevbInputError(f"the observed site {structure.observed[0]!r} has shape {list(value_shape)}, which is "
                             f"not the images' {list(y.shape)} rearranged: observe x with one row per image")
    y_site = y.reshape(value_shape)
    log_lik = observation.log_prob(pixel, y_site)
    log_lik = log_lik.expand(torch.broadcast_shapes(log_lik.shape, pixel.batch_shape))
    if event_dims:
        log_lik = log_lik.sum(tuple(range(-event_dims, 0)))
    log_w = log_w + sum_to_datapoints(log_lik, structure.data_dim, pdim)
    weights = torch.softmax(log_w, dim=0)
    estimate = _to_rows(observation.estimate(pixel, y_site), event_dims, structure, value_shape, num_samples)
    images = (weights.unsqueeze(-1) * estimate).sum(0).reshape(y.shape)
    log_evidence = torch.logsumexp(log_w, dim=0) - math.log(num_samples)
    return images, log_evidence, 1.0 / (weights ** 2).sum(0)


@torch.no_grad()
def infer_images(model: Callable, guide: Callable, y: torch.Tensor, observation: Observation,
                 num_samples: int = 100, rounds: int = 3, proposal: str = "encoder",
                 clamp: Optional[Tuple[float, float]] = (0.0, 1.0), batch_size: int = 100,
                 seed: Optional[int] = 0) -> PosteriorImages:
    """E[x | y] for every row of ``y`` by self-normalised importance sampling (see the module docstring).

    :param y: what we see, one row per image (missing pixels filled with anything in the likelihood's support).
    :param observation: the observation model (:class:`~.masks.MissingPixels`, a noise model of :mod:`.noise`).
    :param num_samples: K, draws of z per image and round.
    :param rounds: encoder/imputation rounds (the last one's estimate is returned); 1 = the encoder on the
        first imputation only.
    :param proposal: ``"encoder"`` (q_phi at the imputed image) or ``"prior"`` (p(z); ``rounds`` is then 1).
    :param clamp: the data range the encoder's input is clipped to between rounds (``None``: no clipping).
    """
    if proposal not in PROPOSALS:
        raise AevbInputError(f"unknown proposal {proposal!r}; choose from {list(PROPOSALS)}")
    for name, value in (("num_samples", num_samples), ("rounds", rounds), ("batch_size", batch_size)):
        if int(value) < 1:
            raise AevbInputError(f"{name} must be >= 1, got {value}")
    with local_param_store(), seeded(seed, y.device):
        probe = observation[0:2].impute(y[:2])
        model, guide, structure = fix_global_latents(model, guide, probe.clamp(*clamp) if clamp else probe)
        if len(structure.observed) != 1:
            raise AevbInputError(f"inpainting and denoising need a model that observes exactly one site (the image); "
                                 f"this one observes {list(structure.observed)}")
        parts = []
        for start in range(0, y.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            obs, y_rows = observation[rows], y[rows]
            idx = torch.arange(start, start + y_rows.shape[0], device=y.device)
            x_tilde = obs.impute(y_rows)
            for _ in range(1 if proposal == "prior" else int(rounds)):
                if clamp is not None:
                    x_tilde = x_tilde.clamp(*clamp)
                result = _one_round(model, guide, structure, y_rows, x_tilde, obs, int(num_samples), proposal, idx,
                                    y.shape[0])
                x_tilde = result[0]
            parts.append(result)
    return PosteriorImages(*(torch.cat(p) for p in zip(*parts)))
