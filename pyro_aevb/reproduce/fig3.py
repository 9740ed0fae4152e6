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

from pyro_aevb.errors import AevbInputError

from . import paper
from .common import check_choice, checkpoints, comparison_table, pyplot, run_totals, write_csv, write_results
from .sweep import BATCH_SIZE, METHODS, RunSpec, check_manifest, collect, run_sweep

BUDGET_SETTINGS = {
    # training samples per run; log p(x) estimated on eval_points train and test points at `points` stops
    "quick": {"train_samples": 20_000, "points": 1, "eval_points": 100, "num_warmup": 50},
    "medium": {"train_samples": 100_000, "points": 2, "eval_points": 300, "num_warmup": 100},
    "paper": {"train_samples": 100_000_000, "points": 10, "eval_points": 1000, "num_warmup": 200},
}
CHECKPOINTS_PER_RUN = 50  # eval_every = budget / (50 * Ntrain) epochs: a kill loses at most 2% of a run


def specs(budget: str = "quick", seed: int = 0, num_train: Optional[Sequence[int]] = None,
          methods: Sequence[str] = METHODS, train_samples: Optional[int] = None, eval_points: Optional[int] = None,
          data_path: Optional[str] = None, device: str = "cpu", compile: bool = False):
    """The runs of Fig. 3: every method for every Ntrain, Nz = 3, 100 hidden units."""
    check_choice("budget", budget, BUDGET_SETTINGS)
    for m in methods:
        check_choice("method", m, METHODS)
    s = dict(BUDGET_SETTINGS[budget])
    if train_samples is not None:  # override the budget's training samples per run
        s["train_samples"] = int(train_samples)
    if eval_points is not None:  # override how many train/test points the marginal likelihood averages
        s["eval_points"] = int(eval_points)
    total = s["train_samples"]
    points = tuple(checkpoints(total, BATCH_SIZE, s["points"], first=total // 100))
    estimate = {"eval_points": s["eval_points"], "num_warmup": s["num_warmup"]}
    return [RunSpec("fig3", "mnist", method, n, paper.FIG3_LATENT_DIM, paper.FIG3_HIDDEN_UNITS, "bernoulli", points,
                    seed=seed, num_train=n, eval_test=s["eval_points"], estimate=estimate,
                    eval_every=max(1, total // (CHECKPOINTS_PER_RUN * n)), data_path=data_path, device=device, compile=compile)
            for n in tuple(num_train or paper.FIG3_NUM_TRAIN) for method in methods]


def run(out_dir, dataset: str = "mnist", budget: str = "quick", seed: int = 0,
        num_train: Optional[Sequence[int]] = None, methods: Optional[Sequence[str]] = None,
        train_samples: Optional[int] = None, eval_points: Optional[int] = None, data_path: Optional[str] = None,
        log=print, jobs: int = 1, device: str = "cpu", redraw: bool = False, threads: Optional[int] = None, compile: bool = False,
        only: Optional[str] = None) -> dict:
    """Train AEVB, wake-sleep and MCEM for each Ntrain (a resumable sweep, :mod:`.sweep`); write fig3.png,
    curves.csv, results.json, results.md from whatever has finished (``redraw``: only that)."""
    if dataset != "mnist":
        raise AevbInputError(f"fig3 is the paper's MNIST experiment; dataset {dataset!r} is not supported")
    runs = specs(budget, seed, num_train, methods or METHODS, train_samples, eval_points, data_path, device, compile)
    out = Path(out_dir)

    def draw():
        return draw_figure(out, runs, budget)

    if redraw:
        check_manifest(out, runs, write=False)  # draw only what this folder's sweep is
    elif only is not None:  # one run of the sweep, e.g. one task of a scheduler's array: no drawing
        return {"runs": run_sweep(runs, out, jobs, log, threads=threads, only=only)}
    else:
        run_sweep(runs, out, jobs, log, on_done=draw, threads=threads)
    return draw()


def draw_figure(out: Path, runs, budget: str) -> dict:
    """fig3.png, curves.csv, results.json and results.md from the run directories under ``out``."""
    rows = collect(out, runs)
    if not rows:
        raise AevbInputError(f"no run under {out} has estimated log p(x) yet: nothing to draw")
    num_train = sorted({r["key"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    write_csv(out / "curves.csv", rows)
    plot(rows, num_train, methods, out / "fig3.png")
    ours = {}
    for r in sorted(rows, key=lambda r: r["train_samples"]):
        ours.setdefault(r["method"], {})[str(r["key"])] = {
            k: r[k] for k in ("train", "test", "train_stderr", "test_stderr", "train_samples", "wall_seconds")}
    table = comparison_table(ours, paper.FIG3, methods, num_train, "Ntrain", paper.READING_ERROR["mnist"])
    spec = runs[0]
    settings = {"latent_dim": spec.latent_dim, "hidden_units": spec.hidden_units, "seed": spec.seed,
                "eval_points": spec.estimate["eval_points"],
                "hmc": {"leapfrog_steps": 4, "num_samples": 50, "num_warmup": spec.estimate["num_warmup"]}}
    wall, reached = run_totals(ours)
    return write_results(out, "fig3", "mnist", budget, spec.train_samples, ours, table, wall, settings,
                         reached=reached, extra_md="log p(x) by the appendix D estimator on the first "
                                  f"{spec.estimate['eval_points']} train and test points (the paper: 1000). "
                                  "Wall time: training summed over the runs (estimates not included).")


def plot(rows, num_train, methods, path) -> Path:
    """One panel per Ntrain: estimated log p(x) vs training samples on the paper's log axis (to its 1e8),
    train solid / test dashed, the paper's final values marked at 1e8 (star: train, circle: test)."""
    plt = pyplot()
    colors = {"aevb": "r", "wake_sleep": "g", "mcem": "b"}
    names = {"aevb": "AEVB", "wake_sleep": "Wake-Sleep", "mcem": "MCEM"}
    end = paper.TRAINING_SAMPLES
    fig, axes = plt.subplots(1, len(num_train), figsize=(4.2 * len(num_train), 3.6), squeeze=False)
    for ax, n in zip(axes[0], num_train):
        for m in methods:
            pts = sorted((r for r in rows if r["method"] == m and r["key"] == n), key=lambda r: r["train_samples"])
            if not pts:
                continue
            xs = [r["train_samples"] for r in pts]
            ax.plot(xs, [r["train"] for r in pts], colors[m] + "-o", ms=3, label=f"{names[m]} (train)")
            ax.plot(xs, [r["test"] for r in pts], colors[m] + "--s", ms=3, mfc="none", label=f"{names[m]} (test)")
            ref = paper.FIG3.get(m, {}).get(n)
            if ref:
                ax.plot([end], [ref["train"]], "*", color=colors[m], ms=7)
                ax.plot([end], [ref["test"]], "o", color=colors[m], mfc="none", ms=7)
        ax.set_xscale("log")
        ax.set_xlim(min(r["train_samples"] for r in rows) / 1.5, end * 2)
        ax.set_title(f"Ntrain = {n}")
        ax.set_xlabel("# training samples evaluated")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("marginal log-likelihood")
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.text(0.01, 0.01, "markers at 1e8: the paper's final values (its Fig. 3; star train, circle test)", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
