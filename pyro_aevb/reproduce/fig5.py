"""Figure 5: random samples from generative models trained with AEVB, Nz = 2, 5, 10, 20.

For each Nz, train AEVB (the Fig. 2 setup) and draw z ~ p(z) = N(0, I); each
image is the decoder's mean E[x | z] (the paper shows the same).
"""

from typing import Optional, Sequence

import torch

from pyro_aevb.evaluation.sampling import prior_means

from . import paper
from .common import (Timer, aevb_curve, check_choice, checkpoints, comparison_table, final_numbers,
                     make_vae, prepare_run, pyplot, seed_everything, write_csv, write_results)
from .fig2 import BATCH_SIZE, BUDGET_SETTINGS
from .fig4 import IMAGE_SHAPE, tile

LATENT_DIMS = (2, 5, 10, 20)


def run(out_dir, dataset: str = "mnist", budget: str = "quick", seed: int = 0,
        latent_dims: Optional[Sequence[int]] = None, grid: int = 10, train_samples: Optional[int] = None,
        data_path: Optional[str] = None, log=print) -> dict:
    """Train AEVB for each Nz and draw ``grid x grid`` samples; write fig5.png, curves.csv, results.*."""
    check_choice("dataset", dataset, paper.FIG2)
    check_choice("budget", budget, BUDGET_SETTINGS)
    latent_dims = tuple(latent_dims or LATENT_DIMS)
    s, total, out, data, x_train, x_test = prepare_run(BUDGET_SETTINGS[budget], dataset, train_samples,
                                                        out_dir, data_path)
    timer, rows, pictures = Timer(), [], []
    for nz in latent_dims:
        log(f"fig5 {dataset} Nz={nz}: {total} training samples")
        seed_everything(seed)
        model, guide = make_vae(data.data_dim, nz, paper.HIDDEN_UNITS[dataset], paper.LIKELIHOOD[dataset])
        rows += aevb_curve(model, guide, data, checkpoints(total, BATCH_SIZE, 4), x_train, x_test, nz, log=log,
                           batch_size=BATCH_SIZE)
        x_like = data.test[torch.arange(grid * grid) % data.test.shape[0]]  # shapes only
        images = prior_means(model, x_like, seed=seed).clamp(0, 1).cpu()
        pictures.append(tile(images.reshape(grid, grid, -1), IMAGE_SHAPE[dataset]))
    write_csv(out / "curves.csv", rows)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(latent_dims), figsize=(3.2 * len(latent_dims), 3.6), squeeze=False)
    for ax, nz, pic, letter in zip(axes[0], latent_dims, pictures, "abcdefgh"):
        ax.imshow(pic.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"({letter}) {nz}-D latent space", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig5.png", dpi=120)
    plt.close(fig)
    ours = final_numbers(rows)
    table = comparison_table(ours, paper.FIG2[dataset], ("aevb",), latent_dims, "Nz", paper.READING_ERROR[dataset])
    settings = {"hidden_units": paper.HIDDEN_UNITS[dataset], "grid": grid, "seed": seed}
    return write_results(out, "fig5", dataset, budget, total, ours, table, timer.seconds, settings,
                         extra_md="Samples are qualitative; the table gives the bounds of the models sampled.")
