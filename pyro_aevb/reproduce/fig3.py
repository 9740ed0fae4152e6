"""Figure 3: AEVB against wake-sleep and Monte Carlo EM on the marginal likelihood.

MNIST, Nz = 3, 100 tanh hidden units, trained on the first Ntrain = 1000 or
50000 training images.  At each checkpoint, log p_theta(x) is estimated with
the appendix D estimator (:func:`pyro_aevb.infer.hmc.hmc_log_likelihood`:
HMC posterior samples with 4 leapfrog steps, a Gaussian density fit to 50 of
them, 50 fresh samples in the harmonic-mean identity) on the first training
and test points (the paper: the first 1000 of each).  The same estimator is
used for all three methods, so MCEM (which has no recognition model) is
compared on equal terms.
"""

from pathlib import Path
from typing import Optional, Sequence

from pyro_aevb.data import Dataset
from pyro_aevb.errors import AevbInputError
from pyro_aevb.infer.hmc import hmc_log_likelihood
from pyro_aevb.infer.mcem import MonteCarloEM
from pyro_aevb.infer.wake_sleep import WakeSleep
from pyro_aevb.trainer import Trainer

from . import paper
from .common import (Timer, check_choice, checkpoints, comparison_table, load, make_vae, pyplot, seed_everything,
                     write_csv, write_results)

BUDGET_SETTINGS = {
    # training samples per run; ML estimated on eval_points train and test points at `points` checkpoints
    "quick": {"train_samples": 20_000, "points": 1, "eval_points": 100, "num_warmup": 50},
    "medium": {"train_samples": 100_000, "points": 2, "eval_points": 300, "num_warmup": 100},
    "paper": {"train_samples": 100_000_000, "points": 10, "eval_points": 1000, "num_warmup": 200},
}
BATCH_SIZE = 100
METHODS = ("aevb", "wake_sleep", "mcem")


def _make_learner(method, data, model, guide):
    """One trainer for all three methods: the objective is what differs."""
    if method == "aevb":
        return Trainer(model, guide, data, progress=False, batch_size=BATCH_SIZE)
    if method == "wake_sleep":
        return Trainer(model, guide, data, elbo=WakeSleep(model, guide, data.train), progress=False,
                       batch_size=BATCH_SIZE)
    return Trainer(model, None, data, elbo=MonteCarloEM(model, data.train), progress=False, batch_size=BATCH_SIZE)


def run(out_dir, dataset: str = "mnist", budget: str = "quick", seed: int = 0,
        num_train: Optional[Sequence[int]] = None, methods: Sequence[str] = METHODS,
        train_samples: Optional[int] = None, eval_points: Optional[int] = None, data_path: Optional[str] = None,
        log=print) -> dict:
    """Train AEVB, wake-sleep and MCEM for each Ntrain; write fig3.png, curves.csv, results.json, results.md."""
    if dataset != "mnist":
        raise AevbInputError(f"fig3 is the paper's MNIST experiment; dataset {dataset!r} is not supported")
    check_choice("budget", budget, BUDGET_SETTINGS)
    for m in methods:
        check_choice("method", m, METHODS)
    num_train = tuple(num_train or paper.FIG3_NUM_TRAIN)
    s = dict(BUDGET_SETTINGS[budget])
    if train_samples is not None:  # override the budget's training samples per run
        s["train_samples"] = int(train_samples)
    if eval_points is not None:  # override how many train/test points the marginal likelihood averages
        s["eval_points"] = int(eval_points)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full = load(dataset, data_path)
    x_test = full.test[:s["eval_points"]]
    points = checkpoints(s["train_samples"], BATCH_SIZE, s["points"], first=s["train_samples"] // 100)
    timer, rows = Timer(), []
    for n in num_train:
        data = Dataset(full.name, full.train[:n], x_test, full.image_shape)
        x_train = data.train[:s["eval_points"]]
        for method in methods:
            log(f"fig3 Ntrain={n} {method}: {s['train_samples']} training samples")
            seed_everything(seed)
            model, guide = make_vae(full.data_dim, paper.FIG3_LATENT_DIM, paper.FIG3_HIDDEN_UNITS, "bernoulli")
            learner = _make_learner(method, data, model, guide)
            for p in points:
                learner.fit(train_samples=p)
                est = {split: hmc_log_likelihood(model, x, num_warmup=s["num_warmup"])
                       for split, x in (("train", x_train), ("test", x_test))}
                rows.append({"method": method, "key": n, "train_samples": learner.train_samples,
                             "wall_seconds": round(learner.wall_seconds, 2),
                             "train": est["train"].mean, "train_stderr": est["train"].stderr,
                             "test": est["test"].mean, "test_stderr": est["test"].stderr})
                log(f"  {method:10s} {learner.train_samples:>10d} samples  log p(x): train {est['train'].mean:8.2f}"
                    f"  test {est['test'].mean:8.2f}  ({learner.wall_seconds:.0f}s training)")
    write_csv(out / "curves.csv", rows)
    plot(rows, num_train, methods, out / "fig3.png")
    ours = {}
    for r in rows:
        ours.setdefault(r["method"], {})[str(r["key"])] = {"train": r["train"], "test": r["test"]}
    table = comparison_table(ours, paper.FIG3, methods, num_train, "Ntrain", paper.READING_ERROR["mnist"])
    settings = {"latent_dim": paper.FIG3_LATENT_DIM, "hidden_units": paper.FIG3_HIDDEN_UNITS, "seed": seed,
                "eval_points": s["eval_points"], "hmc": {"leapfrog_steps": 4, "num_samples": 50,
                                                         "num_warmup": s["num_warmup"]}}
    return write_results(out, "fig3", dataset, budget, s["train_samples"], ours, table, timer.seconds, settings,
                         extra_md="log p(x) by the appendix D estimator on the first "
                                  f"{s['eval_points']} train and test points (the paper: 1000).")


def plot(rows, num_train, methods, path) -> Path:
    """One panel per Ntrain: estimated log p(x) vs training samples (log x), train solid / test dashed."""
    plt = pyplot()
    colors = {"aevb": "r", "wake_sleep": "g", "mcem": "b"}
    names = {"aevb": "AEVB", "wake_sleep": "Wake-Sleep", "mcem": "MCEM"}
    fig, axes = plt.subplots(1, len(num_train), figsize=(4.2 * len(num_train), 3.4), squeeze=False)
    for ax, n in zip(axes[0], num_train):
        for m in methods:
            pts = [r for r in rows if r["method"] == m and r["key"] == n]
            xs = [r["train_samples"] for r in pts]
            ax.plot(xs, [r["train"] for r in pts], colors[m] + "-o", ms=3, label=f"{names[m]} (train)")
            ax.plot(xs, [r["test"] for r in pts], colors[m] + "--o", ms=3, label=f"{names[m]} (test)")
            ref = paper.FIG3.get(m, {}).get(n)
            if ref:
                ax.axhline(ref["test"], color=colors[m], ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"Ntrain = {n}")
        ax.set_xlabel("# training samples evaluated")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("marginal log-likelihood")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.text(0.01, 0.01, "dotted: paper's final test values", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
