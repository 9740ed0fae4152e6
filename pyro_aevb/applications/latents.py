"""The local latents of a model as one matrix: any site names, any number of sites, any value shapes.

A model that follows the contract (:mod:`pyro_aevb.contract`) has local latent sites z^(1), ..., z^(S) inside
the ``data`` plate, each with a value whose datapoint axis is ``structure.latent_axes[s]`` (not necessarily the
first: a model with a plate nested inside ``data`` has it further left).  The applications work with

    Z = [ vec z^(1) | ... | vec z^(S) ]          one row per datapoint, J = sum_s |z^(s)| columns,

and go back to per-site values (e.g. to decode with ``poutine.condition``) with the inverse map.
:class:`LatentLayout` is this pair of maps, read off one guide trace; nothing assumes a site called "z".
Global latents (full VB's theta) are not part of Z: the applications fix them at one draw of q(theta) first
(:func:`fix_global_latents`).  Z is a continuous code: a model with an enumerated discrete latent (contract
rule 6, e.g. M2's class y) is refused by :func:`fix_global_latents` with one line.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import pyro
import torch
from pyro import poutine

from ..contract import ModelStructure, check_model_guide
from ..errors import AevbInputError
from ..evaluation.full_vb import fix_globals
from ..evaluation.sampling import sample_globals


@dataclass(frozen=True)
class LatentLayout:
    """Where each local latent site sits in the rows of Z.

    :ivar names: the local latent sites, in program order.
    :ivar axes: for each site, the axis of its value that indexes datapoints (negative).
    :ivar shapes: for each site, the shape of its value without that axis.
    """

    names: Tuple[str, ...]
    axes: Tuple[int, ...]
    shapes: Tuple[Tuple[int, ...], ...]

    @property
    def sizes(self) -> Tuple[int, ...]:
        return tuple(int(torch.Size(s).numel()) for s in self.shapes)

    @property
    def dim(self) -> int:
        """J, the number of columns of Z."""
        return sum(self.sizes)

    def column_names(self) -> Tuple[str, ...]:
        """``site[i]`` for every column of Z."""
        return tuple(f"{name}[{i}]" for name, size in zip(self.names, self.sizes) for i in range(size))

    def to_matrix(self, values: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-site values (as a trace holds them, datapoints on their axis) -> Z of shape ``[M, J]``."""
        rows = [values[name].movedim(axis, 0) for name, axis in zip(self.names, self.axes)]
        return torch.cat([r.reshape(r.shape[0], -1) for r in rows], dim=-1)

    def to_sites(self, z: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Z of shape ``[M, J]`` -> per-site values in the shapes the model samples them."""
        out = {}
        for name, axis, shape, part in zip(self.names, self.axes, self.shapes, z.split(self.sizes, dim=-1)):
            out[name] = part.reshape(z.shape[0], *shape).movedim(0, axis)
        return out


def latent_layout(model: Callable, guide: Callable, x: torch.Tensor, structure: ModelStructure) -> LatentLayout:
    """The layout of the local latents, from one trace of ``guide`` on the first row of ``x``."""
    with torch.no_grad():
        trace = poutine.trace(guide).get_trace(x[:1], torch.zeros(1, dtype=torch.long, device=x.device), x.shape[0])
    shapes = []
    for name, axis in zip(structure.local_latents, structure.latent_axes):
        value = trace.nodes[name]["value"]
        shape = list(value.shape)
        del shape[value.dim() + axis]
        shapes.append(tuple(shape))
    return LatentLayout(tuple(structure.local_latents), tuple(structure.latent_axes), tuple(shapes))


def fix_global_latents(model: Callable, guide: Callable, x: torch.Tensor):
    """``(model, guide, structure)`` with any global latent theta fixed at one draw of q(theta) (full VB,
    appendix F), so that only the per-datapoint latents remain; unchanged for a model without globals.

    The contract is checked on ``x`` with distribution validation off: the applications hand the model images
    that are not data (holes filled with the mean image, noisy pixels) to read shapes and decode, and a
    Bernoulli likelihood would refuse their grey values although no density of them is ever used."""
    with pyro.validation_enabled(False):
        structure = check_model_guide(model, guide, x, None)
        if structure.global_latents:
            model, guide = fix_globals(model, guide, sample_globals(guide, x))
            structure = check_model_guide(model, guide, x, None)
    if structure.enumerated:
        raise AevbInputError(f"the applications (encode, reconstruct, inpaint, denoise, latent-map, interpolate) work "
                             f"with a continuous code Z, but {', '.join(map(repr, structure.enumerated))} is a "
                             "discrete latent (enumerated); evaluate, sample and the bound work with such a model")
    return model, guide, structure
