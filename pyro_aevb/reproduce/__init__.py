"""One command per figure of the paper: ``pyro-aevb reproduce fig2|fig3|fig4|fig5``; and Burda et al.'s (2016)
Table 1, the importance-weighted bound the paper's future directions led to: ``pyro-aevb reproduce iwae``.

Each ``figN.run(out_dir, dataset, budget, seed, ...)`` trains what the figure
needs, writes the PNG, ``curves.csv``, ``results.json`` and ``results.md`` (our
numbers next to the published ones in :mod:`pyro_aevb.reproduce.paper`) into
``out_dir`` and returns the results dict.
"""

from pyro_aevb.errors import AevbInputError

from . import fig2, fig3, fig4, fig5, iwae, paper
from .common import BUDGETS

FIGURES = {"fig2": fig2.run, "fig3": fig3.run, "fig4": fig4.run, "fig5": fig5.run, "iwae": iwae.run}
DEFAULT_DATASET = {"fig2": "mnist", "fig3": "mnist", "fig4": "mnist", "fig5": "mnist", "iwae": "mnist"}


def sweep_specs(figure: str, dataset=None, budget: str = "quick", seed: int = 0, **kwargs):
    """The runs of the resumable sweep of ``figure`` (fig2, fig3, iwae) with these settings
    (:class:`.sweep.RunSpec`)."""
    if figure == "fig2":
        return fig2.specs(dataset or DEFAULT_DATASET[figure], budget, seed, kwargs.get("latent_dims"),
                          kwargs.get("train_samples"), kwargs.get("data_path"), kwargs.get("device", "cpu"),
                          kwargs.get("methods") or fig2.METHODS, kwargs.get("compile", False))
    if figure == "fig3":
        return fig3.specs(budget, seed, None, kwargs.get("methods") or fig3.METHODS, kwargs.get("train_samples"),
                          kwargs.get("eval_points"), kwargs.get("data_path"), kwargs.get("device", "cpu"),
                          kwargs.get("compile", False))
    if figure == "iwae":
        return iwae.specs(budget, seed, kwargs.get("layers", (1,)), kwargs.get("ks", iwae.KS),
                          kwargs.get("methods") or iwae.METHODS, kwargs.get("train_samples"), kwargs.get("data_path"),
                          kwargs.get("device", "cpu"), kwargs.get("compile", False), kwargs.get("eval_points"),
                          dataset or DEFAULT_DATASET[figure])
    raise AevbInputError(f"{figure} is not a sweep of training runs (fig2, fig3, iwae are)")


def reproduce(figure: str, out_dir, dataset=None, budget: str = "quick", seed: int = 0, **kwargs) -> dict:
    """Run figure ``figure`` (``"fig2"`` ... ``"fig5"``, ``"iwae"``) with ``budget`` (quick, medium, paper)."""
    if figure not in FIGURES:
        raise AevbInputError(f"unknown figure {figure!r}; choose from {sorted(FIGURES)}")
    return FIGURES[figure](out_dir, dataset=dataset or DEFAULT_DATASET[figure], budget=budget, seed=seed, **kwargs)


__all__ = ["BUDGETS", "FIGURES", "paper", "reproduce", "sweep_specs"]
