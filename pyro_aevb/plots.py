"""Figures: image grids (samples, reconstructions) and bound curves (Fig. 2 style)."""

import math
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
from torchvision.utils import save_image

from .errors import AevbInputError


def save_image_grid(images: torch.Tensor, image_shape: Optional[Tuple[int, int]], path, nrow: Optional[int] = None):
    """Save rows of ``images`` (``[N, H*W]`` in [0, 1]) as a PNG grid with torchvision."""
    if image_shape is None:
        side = int(math.isqrt(images.shape[1]))
        if side * side != images.shape[1]:
            raise AevbInputError(f"cannot draw {images.shape[1]}-dimensional data as images: no image shape known "
                                 "(a data file of rows [N, H, W] gives one, as Dataset(..., image_shape=(H, W)) does)")
        image_shape = (side, side)
    nrow = nrow or int(math.ceil(math.sqrt(images.shape[0])))
    grid = images.detach().cpu().reshape(-1, 1, *image_shape)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, str(path), nrow=nrow, padding=1, pad_value=1.0)
    return Path(path)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, without font-fallback warnings (log-axis
    tick labels use mathtext fonts that minimal machines lack; DejaVu Sans stands in)."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Write a matplotlib figure (creating its folder) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_bound_curve(metrics: Sequence[dict], path, title: str = ""):
    """Train and test bound per datapoint against training samples (log axis), as in Fig. 2."""
    plt = pyplot()

    if not metrics:
        raise AevbInputError("no metrics to plot: the run has no finished epoch")
    samples = [r["train_samples"] for r in metrics]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(samples, [r["train_elbo"] for r in metrics], "r-", label="AEVB (train)")
    ax.plot(samples, [r["test_elbo"] for r in metrics], "r--", label="AEVB (test)")
    ax.set_xscale("log")
    ax.set_xlabel("# training samples evaluated")
    ax.set_ylabel("lower bound L per datapoint (nats)")  # plain text: mathtext fonts may be missing
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
