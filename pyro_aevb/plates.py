"""The plate over datapoints, and what a trace site is relative to it.

Eq. (8) of the paper estimates the full-dataset bound from a minibatch
X^M of M of the N datapoints:

    L(theta, phi; X) ~= L^M(theta, phi; X^M) = (N / M) * sum_{i in X^M} L(theta, phi; x^(i)).

``pyro.plate("data", N, subsample=idx)`` applies exactly this N/M scale to
every site inside it, so neither models nor objectives multiply by N/M by hand.
:func:`data_plate` builds that plate from the ``(x, idx, num_data)`` arguments
of the model/guide contract (:mod:`pyro_aevb.contract`).

A site inside the ``data`` plate is *local* (one value per datapoint: z, x);
a latent outside it is *global* (once per dataset: the decoder weights theta
of full VB, appendix F).
"""

from typing import Callable, Optional, Tuple

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from .errors import AevbInputError

#: the name every model and guide gives its plate over datapoints
DATA_PLATE = "data"
#: the vectorised plate of K draws per datapoint that importance weights and Monte Carlo terms use
PARTICLES = "particles"


def data_plate(x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None, dim: int = -1):
    """Plate over the rows of ``x``.

    :param x: the minibatch (or whole dataset), shape ``[M, ...]``.
    :param idx: indices of the rows of ``x`` in the full dataset (the subsample),
        or ``None`` when ``x`` is the whole dataset.
    :param num_data: N, the size of the full dataset; required with ``idx``.
    :param dim: the plate's batch dimension (``-1`` unless the model nests other plates inside it).
    """
    if idx is None:
        if num_data is not None and num_data != x.shape[0]:
            raise AevbInputError(
                f"num_data={num_data} but x has {x.shape[0]} rows and no idx was given; "
                "pass the minibatch indices as idx to scale by N/M"
            )
        return pyro.plate(DATA_PLATE, x.shape[0], dim=dim)
    if num_data is None:
        raise AevbInputError("idx (minibatch indices) needs num_data (the full dataset size N)")
    if idx.shape[0] != x.shape[0]:
        raise AevbInputError(f"idx has {idx.shape[0]} entries but x has {x.shape[0]} rows")
    return pyro.plate(DATA_PLATE, num_data, subsample=idx, dim=dim)


def data_frame(site: dict):
    """The ``data`` plate's frame of a trace site (or message), or ``None`` outside it."""
    for frame in site["cond_indep_stack"]:
        if frame.name == DATA_PLATE:
            return frame
    return None


def in_data_plate(site: dict) -> bool:
    """Whether a trace site (or message) lies inside the ``data`` plate: a local, per-datapoint term."""
    return data_frame(site) is not None


def is_latent(site: dict) -> bool:
    """A sampled, unobserved site (not a plate's own subsample site)."""
    return site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)


def is_observed(site: dict) -> bool:
    return site["type"] == "sample" and site["is_observed"] and not site_is_subsample(site)


def is_global_latent(site: dict) -> bool:
    """A latent outside the ``data`` plate, e.g. the decoder weights theta of full VB (appendix F)."""
    return is_latent(site) and not in_data_plate(site)


def is_local_latent(site: dict) -> bool:
    return is_latent(site) and in_data_plate(site)


def sum_to_datapoints(log_prob: torch.Tensor, data_dim: int, particle_dim: Optional[int] = None) -> torch.Tensor:
    """Sum a site's log-probability over every batch dimension except the data plate's (and the
    particles', when given): shape ``[M]`` or ``[K, M]``.

    ``log_prob`` is right-aligned with the plate dimensions (Pyro's convention: a plate at ``dim=-d``
    is batch dimension ``-d``); dimensions it lacks are broadcast (size 1).
    """
    keep = [data_dim] if particle_dim is None else [particle_dim, data_dim]
    ndim = max(-min(keep), log_prob.dim())
    lp = log_prob.reshape((1,) * (ndim - log_prob.dim()) + tuple(log_prob.shape))
    kept = sorted(ndim + d for d in keep)
    others = [d for d in range(ndim) if d not in kept]
    if others:
        lp = lp.sum(others, keepdim=True)
    return lp.reshape([lp.shape[d] for d in kept])


def masked_log_prob(log_prob: torch.Tensor, mask) -> torch.Tensor:
    """A site's log-density with its ``mask`` applied (``poutine.mask`` / ``obs_mask``): masked entries count 0."""
    if mask is None:
        return log_prob
    if isinstance(mask, bool):
        return log_prob if mask else torch.zeros_like(log_prob)
    return torch.where(mask, log_prob, torch.zeros((), dtype=log_prob.dtype, device=log_prob.device))


def site_log_density(site: dict) -> torch.Tensor:
    """log p of a traced sample site's value as every estimator of log p(x) counts it (importance sampling,
    the appendix-D HMC estimator): **masked** -- entries masked by ``poutine.mask`` / ``obs_mask`` / a site's
    mask count 0, so log p(x) is the density of the observed part only -- and **unscaled**: a site's scale
    (the N/M of a subsampled ``data`` plate, a ``poutine.scale`` weight) weighs terms of a training objective;
    it is not part of the density, so each datapoint counts once.  Needs ``trace.compute_log_prob()`` first."""
    return masked_log_prob(site["unscaled_log_prob"], site["mask"])


def in_particles(program: Callable, num_particles: int, dim: int, name: str = PARTICLES,
                 plate_for_one: bool = True) -> Callable:
    """``program`` with ``num_particles`` vectorised draws of every site: a plate ``name`` at batch dimension ``dim``
    (:attr:`~pyro_aevb.contract.ModelStructure.particle_dim`, left of the model's plates).  ``plate_for_one=False``:
    one draw runs without the plate, as Pyro's ELBOs do (a model then need not broadcast over a particle
    dimension to be trained with L = 1)."""
    if num_particles == 1 and not plate_for_one:
        return program

    def wrapped(*args, **kwargs):
        with pyro.plate(name, num_particles, dim=dim):
            return program(*args, **kwargs)

    return wrapped


def particle_traces(model: Callable, guide: Callable, args: tuple, num_particles: int, dim: int,
                    name: str = PARTICLES, plate_for_one: bool = True) -> Tuple[poutine.Trace, poutine.Trace]:
    """``(guide_trace, model_trace)``: the guide run with ``num_particles`` vectorised draws z_k ~ q(z|x)
    (:func:`in_particles`), the model replayed on them -- the pair of traces every estimator over K draws reads.

    A model or guide that fails on the K draws but runs on one draw per row (checked then, on the same rows) does
    not broadcast over the particles' dimension: that is said in one :class:`AevbInputError`, with how to fix it
    (the original error is its cause)."""
    try:
        guide_trace = poutine.trace(in_particles(guide, num_particles, dim, name, plate_for_one)).get_trace(*args)
        model_trace = poutine.trace(poutine.replay(in_particles(model, num_particles, dim, name, plate_for_one),
                                                   trace=guide_trace)).get_trace(*args)
    except AevbInputError:
        raise
    except Exception as e:  # noqa: BLE001 -- re-raised unless one draw per row runs
        if num_particles == 1 and not plate_for_one:
            raise
        try:
            one = poutine.trace(guide).get_trace(*args)
            poutine.trace(poutine.replay(model, trace=one)).get_trace(*args)
        except Exception:  # noqa: BLE001 -- it fails without the particles too: the original error stands
            raise e from None
        raise AevbInputError(
            f"the model and guide run on one draw per row but fail on {num_particles} draws at once "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): the draws are a plate at dim {dim}, "
            "left of the model's plates, so every tensor that meets a latent must broadcast over leading dimensions "
            "(e.g. pyro_aevb.nn.cat_broadcast(z, y) or torch.cat([z, y.expand(*z.shape[:-1], -1)], -1), not "
            "torch.cat([z, y], -1))") from e
    return guide_trace, model_trace
