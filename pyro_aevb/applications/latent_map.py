"""Latent map: the test set in latent space coloured by class, the decoded manifold beside it (Fig. 4), and a
linear probe of the codes.

* **J = 2** (the paper's Fig. 4): the posterior means mu^(i) = E_q[z|x^(i)] scattered in the plane, and the
  learned manifold: "linearly spaced coordinates on the unit square transformed through the inverse CDF of the
  Gaussian", z_ab = (F_1^-1(u_a), F_2^-1(u_b)) with u = (k + 1/2) / n, k = 0..n-1, decoded to E[x | z_ab].
  F_j is the prior's marginal CDF (N(0, 1) for the paper's prior); for a prior without an inverse CDF the
  empirical quantiles of the mu^(i) stand in.
* **J > 2**: principal components of the mu^(i) (PCA: the top two eigenvectors v_1, v_2 of their covariance,
  variances s_1^2, s_2^2) give the scatter; the manifold panel decodes the plane through their mean,
  z_ab = mean + Phi^-1(u_a) s_1 v_1 + Phi^-1(u_b) s_2 v_2.
* **Linear probe** (:mod:`.probe`): a logistic regression on the mu of labelled training images, scored on the
  test images, against the same probe on the raw pixels and against chance.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from pyro import poutine
from torch.distributions import Normal

from ..errors import AevbInputError
from ..params import local_param_store
from ..plots import pyplot, save_figure
from ..rng import seeded
from .encode import Encoding, decode, encode
from .latents import LatentLayout, fix_global_latents
from .pictures import strip
from .posterior import pixel_distribution
from .probe import chance_accuracy, linear_probe_accuracy


def grid_quantiles(n: int) -> torch.Tensor:
    """u_k = (k + 1/2) / n: n linearly spaced points inside the unit interval."""
    return (torch.arange(n, dtype=torch.float32) + 0.5) / n


def _prior_icdf(model: Callable, x_like: torch.Tensor, layout: LatentLayout, u: torch.Tensor) -> Optional[torch.Tensor]:
    """``[n, J]``: column j holds F_j^-1(u) for the prior's marginal F_j of latent column j; ``None`` when the
    prior does not factorise into elementwise marginals with an inverse CDF."""
    trace = poutine.trace(model).get_trace(x_like[:1], torch.zeros(1, dtype=torch.long, device=x_like.device),
                                           x_like.shape[0])
    quantiles = {}
    for name in layout.names:
        value = trace.nodes[name]["value"]
        try:
            marginal, _ = pixel_distribution(trace.nodes[name]["fn"])
            quantiles[name] = marginal.icdf(u.reshape((-1,) + (1,) * value.dim()).expand(u.shape[0], *value.shape))
        except (AevbInputError, NotImplementedError, RuntimeError, ValueError):
            return None
    return torch.cat([layout.to_matrix({name: q[k] for name, q in quantiles.items()}) for k in range(u.shape[0])])


@dataclass
class LatentMap:
    """Codes of the mapped images, their 2-D coordinates, the decoded manifold and the probe accuracies."""

    codes: Encoding
    coordinates: torch.Tensor
    method: str
    manifold: torch.Tensor
    grid: int
    linear_probe_accuracy: Optional[float] = None
    pixel_probe_accuracy: Optional[float] = None
    chance_accuracy: Optional[float] = None
    explained_variance: Optional[float] = None

    def metrics(self) -> dict:
        out = {"latent_dim": self.codes.layout.dim, "projection": self.method,
               "num_images": int(self.codes.means.shape[0]), "active_units": self.codes.active_units}
        if self.explained_variance is not None:
            out["explained_variance"] = self.explained_variance
        if self.linear_probe_accuracy is not None:
            out.update(linear_probe_accuracy=self.linear_probe_accuracy, pixel_probe_accuracy=self.pixel_probe_accuracy,
                       chance_accuracy=self.chance_accuracy)
        return out

    def save_picture(self, path, image_shape) -> Path:
        plt = pyplot()
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.8))
        xy = self.coordinates.cpu().numpy()
        labels = self.codes.labels
        if labels is not None:
            points = ax.scatter(xy[:, 0], xy[:, 1], c=labels.cpu().numpy(), cmap="tab10", s=3, alpha=0.7)
            fig.colorbar(points, ax=ax, ticks=np.unique(labels.cpu().numpy()), label="label")
        else:
            ax.scatter(xy[:, 0], xy[:, 1], s=3, alpha=0.5)
        names = self.codes.layout.column_names()
        axis_names = names if self.method == "latent" else ("principal component 1", "principal component 2")
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
        probe = (f"; linear probe {self.linear_probe_accuracy:.3f} (pixels {self.pixel_probe_accuracy:.3f})"
                 if self.linear_probe_accuracy is not None else "")
        ax.set_title(f"posterior means of {xy.shape[0]} images{probe}", fontsize=9)
        tiles = self.manifold.reshape(self.grid, self.grid, -1)
        # rows from the top: the largest second coordinate first, as a plot's y axis runs
        mosaic = np.concatenate([strip(tiles[:, b], image_shape, pad=0) for b in reversed(range(self.grid))], axis=0)
        bx.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        bx.set_xticks([])
        bx.set_yticks([])
        bx.set_title("decoded manifold (Fig. 4)" if self.method == "latent" else
                     "decoded plane of the first two principal components", fontsize=9)
        fig.tight_layout()
        return save_figure(fig, path)


@torch.no_grad()
def latent_map(model: Callable, guide: Callable, x: torch.Tensor, labels: Optional[torch.Tensor] = None,
               probe_x: Optional[torch.Tensor] = None, probe_labels: Optional[torch.Tensor] = None, grid: int = 20,
               seed: Optional[int] = 0) -> LatentMap:
    """Map the images ``x`` (with ``labels`` for colour and for scoring the probe) into latent space; the probe
    is fitted on ``(probe_x, probe_labels)`` (labelled training images) when both are given."""
    if int(grid) < 2:
        raise AevbInputError(f"the manifold grid needs at least 2 points a side, got {grid}")
    if (probe_x is None) != (probe_labels is None) or (probe_x is not None and labels is None):
        raise AevbInputError("a linear probe needs labelled training images (probe_x, probe_labels) and test labels")
    codes = encode(model, guide, x, labels, seed=seed)
    z, n = codes.means, int(grid)
    u = grid_quantiles(n).to(z.device)
    explained = None
    if codes.layout.dim == 2:
        method, coordinates = "latent", z
        with local_param_store(), seeded(seed, x.device):
            fixed_model, _, _ = fix_global_latents(model, guide, x[:2])
            axis = _prior_icdf(fixed_model, x, codes.layout, u)
        if axis is None:  # no inverse CDF: the data's own quantiles
            axis = torch.quantile(z, u, dim=0)
        grid_z = torch.stack([axis[:, 0].repeat_interleave(n), axis[:, 1].repeat(n)], dim=-1)
    else:
        method = "pca"
        centre = z.mean(0)
        _, s, v = torch.linalg.svd(z - centre, full_matrices=False)
        components, spread = v[:2], s[:2] / max(1, z.shape[0] - 1) ** 0.5
        if components.shape[0] < 2 or not (s ** 2).sum() > 0:
            raise AevbInputError("a PCA map needs at least two images with different posterior means")
        coordinates = (z - centre) @ components.T
        explained = float((s[:2] ** 2).sum() / (s ** 2).sum())
        g = Normal(0.0, 1.0).icdf(u)
        a, b = g.repeat_interleave(n), g.repeat(n)
        grid_z = centre + (a * spread[0]).unsqueeze(-1) * components[0] + (b * spread[1]).unsqueeze(-1) * components[1]
    x_like = x[torch.arange(n * n, device=x.device) % x.shape[0]]
    manifold = decode(model, guide, grid_z, x_like, seed=seed)
    result = LatentMap(codes, coordinates, method, manifold, n, explained_variance=explained)
    if probe_x is not None:
        probe_codes = encode(model, guide, probe_x, probe_labels, seed=seed)
        result.linear_probe_accuracy = linear_probe_accuracy(probe_codes.means, probe_labels, z, labels)
        result.pixel_probe_accuracy = linear_probe_accuracy(probe_x, probe_labels, x, labels)
        result.chance_accuracy = chance_accuracy(labels)
    return result
