"""Encode: the recognition model's posterior q_phi(z|x) summarised per image, and decoding it back.

For every row x^(i) and every local latent site the guide gives q_phi(z|x^(i)); we keep its mean and standard
deviation,

    mu^(i) = E_q[z | x^(i)],   sigma^(i) = sd_q[z | x^(i)]        (closed form, e.g. the Gaussian encoder's
                                                                   mu and sigma of appendix C.2)

or, for a guide family without them in closed form, the sample mean and deviation of 64 draws.  The rows of
``means`` are Z = [mu of every site] (:mod:`.latents`), so downstream code never needs a site name.

Decoding the means, x_hat^(i) = E[x | z = mu^(i)] (:func:`~pyro_aevb.evaluation.sampling.decode_means`), is the
reconstruction :func:`~pyro_aevb.applications.reconstruct.reconstruct` draws.

"Active units" (Burda et al., 2015): a latent column u is active when the posterior mean moves with the data,
Cov_x(E_q[z_u | x]) > 0.01; with N(0, I) priors the inactive ones have collapsed to the prior.  ``encode``
writes the per-column variance of the means as a bar chart (the picture) and this count (the number).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from pyro import poutine

from ..errors import AevbInputError
from ..evaluation.sampling import decode_means
from ..params import local_param_store
from ..plots import pyplot, save_figure
from ..rng import seeded
from .latents import LatentLayout, fix_global_latents, latent_layout

#: Cov_x(E_q[z_u|x]) above this marks an active latent column (Burda et al., 2015)
ACTIVE_THRESHOLD = 0.01
#: draws of q per image when its mean or standard deviation has no closed form
MC_DRAWS = 64


@dataclass
class Encoding:
    """Posterior summaries of ``N`` images: ``means``/``scales`` are ``[N, J]`` (columns as in ``layout``)."""

    means: torch.Tensor
    scales: torch.Tensor
    layout: LatentLayout
    labels: Optional[torch.Tensor] = None

    @property
    def active_units(self) -> int:
        return int((self.means.var(0) > ACTIVE_THRESHOLD).sum()) if self.means.shape[0] > 1 else 0

    def metrics(self) -> dict:
        return {"num_images": int(self.means.shape[0]), "latent_dim": self.layout.dim,
                "latent_sites": list(self.layout.names), "active_units": self.active_units,
                "mean_posterior_scale": float(self.scales.mean())}

    def save(self, path) -> Path:
        """An ``.npz`` with ``z_mean``, ``z_scale`` ``[N, J]``, per site ``<site>_mean``/``<site>_scale``,
        ``columns`` (the site of each column) and ``labels`` when the data have them."""
        path = Path(path)
        if path.suffix != ".npz":
            raise AevbInputError(f"--out {path}: encode writes a NumPy .npz archive; give a path ending in .npz")
        arrays = {"z_mean": self.means.cpu().numpy(), "z_scale": self.scales.cpu().numpy(),
                  "columns": np.array(self.layout.column_names())}
        for name, mean, scale in zip(self.layout.names, self.means.split(self.layout.sizes, -1),
                                     self.scales.split(self.layout.sizes, -1)):
            arrays[f"{name}_mean"], arrays[f"{name}_scale"] = mean.cpu().numpy(), scale.cpu().numpy()
        if self.labels is not None:
            arrays["labels"] = self.labels.cpu().numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
        return path

    def save_picture(self, path) -> Path:
        """Bar chart of Cov_x(E_q[z_u|x]) per latent column, log scale, with the active-unit threshold."""
        plt = pyplot()
        variance = self.means.var(0).cpu().numpy() if self.means.shape[0] > 1 else np.zeros(self.layout.dim)
        fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * self.layout.dim + 1.5), 3))
        ax.bar(np.arange(self.layout.dim), np.maximum(variance, 1e-6), color="tab:blue")
        ax.axhline(ACTIVE_THRESHOLD, color="r", ls="--", lw=1, label=f"active: > {ACTIVE_THRESHOLD}")
        ax.set_yscale("log")
        ax.set_xlabel("latent column (" + ", ".join(self.layout.names) + ")")
        ax.set_ylabel("variance of posterior mean")
        ax.set_title(f"{self.active_units} of {self.layout.dim} latent columns active ({self.means.shape[0]} images)",
                     fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path)


def _moments(fn, value_shape) -> tuple:
    """Mean and standard deviation of a guide site's distribution, in the shape of its value."""
    try:
        mean, scale = fn.mean, fn.stddev
    except NotImplementedError:
        draws = fn.sample((MC_DRAWS,))
        mean, scale = draws.mean(0), draws.std(0)
    return mean.expand(value_shape), scale.expand(value_shape)


@torch.no_grad()
def encode(model: Callable, guide: Callable, x: torch.Tensor, labels: Optional[torch.Tensor] = None,
           batch_size: int = 1000, seed: Optional[int] = 0) -> Encoding:
    """Posterior means and standard deviations of every local latent for every row of ``x``.

    :param labels: class labels ``[N]`` to keep beside the codes (checked for length).
    """
    if labels is not None and labels.shape[0] != x.shape[0]:
        raise AevbInputError(f"{labels.shape[0]} labels for {x.shape[0]} images: give one label per image")
    with local_param_store(), seeded(seed, x.device):
        model, guide, structure = fix_global_latents(model, guide, x)
        layout = latent_layout(model, guide, x, structure)
        means, scales = [], []
        for start in range(0, x.shape[0], batch_size):
            idx = torch.arange(start, min(start + batch_size, x.shape[0]), device=x.device)  # rows, for inputs
            trace = poutine.trace(guide).get_trace(x[idx], idx, x.shape[0])
            moments = {name: _moments(trace.nodes[name]["fn"], trace.nodes[name]["value"].shape)
                       for name in layout.names}
            means.append(layout.to_matrix({name: m for name, (m, _) in moments.items()}))
            scales.append(layout.to_matrix({name: s for name, (_, s) in moments.items()}))
    return Encoding(torch.cat(means), torch.cat(scales), layout, labels)


@torch.no_grad()
def decode(model: Callable, guide: Callable, z: torch.Tensor, x_like: torch.Tensor, seed: Optional[int] = 0,
           batch_size: int = 1000) -> torch.Tensor:
    """E[x | z] for rows of Z (``[M, J]``, columns as :func:`encode` returns them); ``x_like`` sets the shapes
    (one row per row of ``z``)."""
    if z.shape[0] != x_like.shape[0]:
        raise AevbInputError(f"decode needs one x_like row per latent row, got {z.shape[0]} and {x_like.shape[0]}")
    with local_param_store(), seeded(seed, x_like.device):
        model, guide, structure = fix_global_latents(model, guide, x_like)
        layout = latent_layout(model, guide, x_like, structure)
        if z.shape[-1] != layout.dim:
            raise AevbInputError(f"latent rows have {z.shape[-1]} columns but the model's local latents "
                                 f"{list(layout.names)} have {layout.dim}")
        chunks = [torch.arange(s, min(s + batch_size, z.shape[0]), device=x_like.device)
                  for s in range(0, z.shape[0], batch_size)]  # the rows of x_like each chunk decodes (their inputs)
        return torch.cat([decode_means(model, layout.to_sites(z[idx]), x_like[idx], idx, x_like.shape[0])
                          for idx in chunks])
