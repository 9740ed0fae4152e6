"""Figure 4: learned two-dimensional latent manifolds.

Train AEVB with Nz = 2 (MNIST: 500 hidden units, Bernoulli decoder; Frey Face:
200, Gaussian decoder), then decode a grid of latent points: linearly spaced
coordinates u on the unit square mapped through the inverse Gaussian CDF,
z = Phi^-1(u), so that the grid covers p(z) = N(0, I) by equal probability mass
(as in the paper).  Each image is the decoder's mean E[x | z].
"""

from typing import Optional

import pyro.distributions as dist
import torch

from . import paper
from .common import (Timer, aevb_curve, check_choice, checkpoints, comparison_table, final_numbers,
                     make_vae, prepare_run, pyplot, seed_everything, write_csv, write_results)
from .fig2 import BATCH_SIZE, BUDGET_SETTINGS

IMAGE_SHAPE = {"mnist": (28, 28), "frey": (28, 20)}


@torch.no_grad()
def manifold_grid(model, n: int = 20) -> torch.Tensor:
    """Decoder means on an ``n x n`` grid z = Phi^-1(u), u = (i + 1/2) / n: shape ``[n, n, D]``.

    Rows run from high to low z_2 (top to bottom), columns from low to high z_1.
    """
    u = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    ticks = dist.Normal(0.0, 1.0).icdf(u)
    z1, z2 = torch.meshgrid(ticks, ticks.flip(0), indexing="xy")
    z = torch.stack([z1, z2], -1).reshape(-1, 2)
    device = next(model.parameters()).device
    return model.likelihood(model.decoder(z.to(device))).mean.clamp(0, 1).reshape(n, n, -1).cpu()


def tile(images: torch.Tensor, image_shape) -> torch.Tensor:
    """``[rows, cols, H*W]`` -> one ``[rows*H, cols*W]`` picture."""
    rows, cols = images.shape[:2]
    h, w = image_shape
    return images.reshape(rows, cols, h, w).permute(0, 2, 1, 3).reshape(rows * h, cols * w)


def run(out_dir, dataset: str = "mnist", budget: str = "quick", seed: int = 0, grid: int = 20,
        train_samples: Optional[int] = None, data_path: Optional[str] = None,
        log=print) -> dict:
    """Train AEVB with Nz = 2 and draw its manifold; write fig4.png, curves.csv, results.json, results.md."""
    check_choice("dataset", dataset, paper.FIG2)
    check_choice("budget", budget, BUDGET_SETTINGS)
    s, total, out, data, x_train, x_test = prepare_run(BUDGET_SETTINGS[budget], dataset, train_samples,
                                                        out_dir, data_path)
    timer = Timer()
    log(f"fig4 {dataset} Nz=2: {total} training samples")
    seed_everything(seed)
    model, guide = make_vae(data.data_dim, 2, paper.HIDDEN_UNITS[dataset], paper.LIKELIHOOD[dataset])
    rows = aevb_curve(model, guide, data, checkpoints(total, BATCH_SIZE, 4), x_train, x_test, 2, log=log,
                      batch_size=BATCH_SIZE)
    write_csv(out / "curves.csv", rows)
    picture = tile(manifold_grid(model, grid), IMAGE_SHAPE[dataset])
    plt = pyplot()
    h, w = picture.shape
    fig, ax = plt.subplots(figsize=(6 * w / max(h, w), 6 * h / max(h, w) + 0.4))
    ax.imshow(picture.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"({'a' if dataset == 'frey' else 'b'}) Learned {'Frey Face' if dataset == 'frey' else 'MNIST'}"
                 f" manifold, $N_z = 2$, {rows[-1]['train_samples']:.0e} samples", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig4.png", dpi=120)
    plt.close(fig)
    ours = final_numbers(rows)
    table = comparison_table(ours, paper.FIG2[dataset], ("aevb",), (2,), "Nz", paper.READING_ERROR[dataset])
    settings = {"latent_dim": 2, "hidden_units": paper.HIDDEN_UNITS[dataset], "grid": grid, "seed": seed}
    return write_results(out, "fig4", dataset, budget, total, ours, table, timer.seconds, settings,
                         extra_md="The manifold is qualitative; the table gives the bound of the model drawn.")
