"""Figure 2: AEVB against wake-sleep on the variational lower bound.

For every latent dimensionality Nz, train AEVB (Algorithm 1, estimator B, L = 1,
M = 100, Adagrad, weight decay) and wake-sleep with the same networks (MNIST:
500 tanh hidden units, Bernoulli decoder; Frey Face: 200, Gaussian decoder)
and plot the average lower bound per datapoint,
L(theta, phi; x) = -KL(q_phi(z|x) || p(z)) + E_q[log p_theta(x|z)]  (eq. 7),
on the training and test sets against the number of training samples
evaluated (log axis), one panel per Nz.  For wake-sleep the bound is evaluated
with its own recognition model.
"""

import csv
import json
from pathlib import Path
from typing import Optional, Sequence

from pyro_aevb.errors import AevbInputError

from . import paper
from .common import (Timer, aevb_curve, check_choice, checkpoints, comparison_table, final_numbers,
                     make_vae, prepare_run, pyplot, seed_everything, wake_sleep_curve, write_csv, write_results)

BUDGET_SETTINGS = {
    # training samples per run; bounds averaged over the first eval_train / eval_test points (None: all)
    "quick": {"train_samples": {"mnist": 30_000, "frey": 30_000}, "eval_train": 1000, "eval_test": 1000,
              "points": 4},
    "medium": {"train_samples": {"mnist": 500_000, "frey": 500_000}, "eval_train": 10_000, "eval_test": None,
               "points": 8},
    "paper": {"train_samples": {"mnist": 100_000_000, "frey": 100_000_000}, "eval_train": None, "eval_test": None,
              "points": 16},
}
BATCH_SIZE = 100


def run(out_dir, dataset: str = "mnist", budget: str = "quick", seed: int = 0,
        latent_dims: Optional[Sequence[int]] = None, train_samples: Optional[int] = None,
        data_path: Optional[str] = None, log=print) -> dict:
    """Train AEVB and wake-sleep for each Nz; write fig2.png, curves.csv, results.json, results.md."""
    check_choice("dataset", dataset, paper.FIG2)
    check_choice("budget", budget, BUDGET_SETTINGS)
    latent_dims = tuple(latent_dims or paper.FIG2_LATENT_DIMS[dataset])
    s, total, out, data, x_train, x_test = prepare_run(BUDGET_SETTINGS[budget], dataset, train_samples,
                                                        out_dir, data_path)
    points = checkpoints(total, BATCH_SIZE, s["points"])
    hidden, likelihood = paper.HIDDEN_UNITS[dataset], paper.LIKELIHOOD[dataset]
    timer, rows = Timer(), []
    for nz in latent_dims:
        log(f"fig2 {dataset} Nz={nz}: {total} training samples per method")
        seed_everything(seed)
        model, guide = make_vae(data.data_dim, nz, hidden, likelihood)
        rows += aevb_curve(model, guide, data, points, x_train, x_test, nz, log=log, batch_size=BATCH_SIZE)
        seed_everything(seed)
        model, guide = make_vae(data.data_dim, nz, hidden, likelihood)
        rows += wake_sleep_curve(model, guide, data, points, x_train, x_test, nz, log=log, batch_size=BATCH_SIZE)
    write_csv(out / "curves.csv", rows)
    plot(rows, latent_dims, dataset, out / "fig2.png")
    ours = final_numbers(rows)
    table = comparison_table(ours, paper.FIG2[dataset], ("aevb", "wake_sleep"), latent_dims, "Nz",
                             paper.READING_ERROR[dataset])
    settings = {"hidden_units": hidden, "likelihood": likelihood, "batch_size": BATCH_SIZE, "seed": seed,
                "eval_train_points": int(x_train.shape[0]), "eval_test_points": int(x_test.shape[0])}
    return write_results(out, "fig2", dataset, budget, total, ours, table, timer.seconds, settings,
                         extra_md=f"The paper trained for ~{paper.TRAINING_SAMPLES:.0e} samples; wake-sleep's "
                                  "paper value is one level per Nz, compared with our wake-sleep test bound.")


def plot(rows, latent_dims, dataset, path) -> Path:
    """One panel per Nz: bound vs training samples (log x), AEVB and wake-sleep train/test, paper levels dotted."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(latent_dims), figsize=(3.2 * len(latent_dims), 3.2), squeeze=False)
    styles = {("aevb", "train"): ("r-", "AEVB (train)"), ("aevb", "test"): ("r--", "AEVB (test)"),
              ("wake_sleep", "train"): ("g-", "WS (train)"), ("wake_sleep", "test"): ("g--", "WS (test)")}
    for ax, nz in zip(axes[0], latent_dims):
        for (method, split), (style, label) in styles.items():
            pts = [r for r in rows if r["method"] == method and r["key"] == nz]
            ax.plot([r["train_samples"] for r in pts], [r[split] for r in pts], style, label=label)
        ref = paper.FIG2[dataset]
        if nz in ref["aevb"]:
            ax.axhline(ref["aevb"][nz]["test"], color="r", ls=":", lw=0.8, label="paper AEVB (test)")
            ax.axhline(ref["wake_sleep"][nz]["test"], color="g", ls=":", lw=0.8, label="paper WS")
        # y-range: the later half of training and the paper's levels (early transients would flatten it)
        samples = sorted({r["train_samples"] for r in rows if r["key"] == nz})
        late = [r[k] for r in rows if r["key"] == nz and r["train_samples"] >= samples[len(samples) // 2]
                for k in ("train", "test")]
        levels = late + ([ref["aevb"][nz]["train"], ref["wake_sleep"][nz]["test"]] if nz in ref["aevb"] else [])
        span = max(levels) - min(levels)
        ax.set_ylim(min(late) - 0.15 * span - 1, max(levels) + 0.1 * span + 1)
        ax.set_xscale("log")
        ax.set_title(f"{'MNIST' if dataset == 'mnist' else 'Frey Face'}, $N_z = {nz}$")
        ax.set_xlabel("# training samples evaluated")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(r"$\mathcal{L}$ per datapoint")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def merge(out_dir, part_dirs: Sequence, log=print) -> dict:
    """Combine runs over disjoint Nz subsets (e.g. run in parallel with ``latent_dims``) into one figure.

    Reads each part's ``curves.csv`` and ``results.json`` (same dataset, budget and training samples) and
    writes the combined fig2.png, curves.csv, results.json and results.md; wall time is the sum of the parts'.
    """
    parts = [json.loads((Path(d) / "results.json").read_text()) for d in part_dirs]
    keys = {(p["dataset"], p["budget"]["name"], p["budget"]["train_samples"]) for p in parts}
    if len(keys) != 1:
        raise AevbInputError(f"cannot merge runs with different dataset/budget/training samples: {sorted(keys)}")
    dataset, budget, total = keys.pop()
    rows = []
    for d in part_dirs:
        with open(Path(d) / "curves.csv") as f:
            for r in csv.DictReader(f):
                rows.append({"method": r["method"], "key": int(r["key"]), "train_samples": int(r["train_samples"]),
                             "wall_seconds": float(r["wall_seconds"]), "train": float(r["train"]),
                             "test": float(r["test"])})
    latent_dims = sorted({r["key"] for r in rows})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "curves.csv", rows)
    plot(rows, latent_dims, dataset, out / "fig2.png")
    ours = final_numbers(rows)
    table = comparison_table(ours, paper.FIG2[dataset], ("aevb", "wake_sleep"), latent_dims, "Nz",
                             paper.READING_ERROR[dataset])
    settings = dict(parts[0]["settings"], merged_from=[str(d) for d in part_dirs])
    wall = sum(p["wall_seconds"] for p in parts)
    return write_results(out, "fig2", dataset, budget, total, ours, table, wall, settings,
                         extra_md=f"Merged from {len(parts)} runs over disjoint Nz subsets (wall time summed).")
