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

from pathlib import Path
from typing import Optional, Sequence

from pyro_aevb.errors import AevbInputError

from . import paper
from .common import (check_choice, checkpoints, comparison_table, final_numbers, load, pyplot, run_totals, write_csv,
                     write_results)
from .sweep import BATCH_SIZE, RunSpec, check_manifest, collect, final_estimates, run_sweep

BUDGET_SETTINGS = {
    # training samples per run; bounds averaged over the first eval_test test points and as many training
    # points (None: the whole test set); the curve stops at `points` counts spaced on the log axis, and
    # evaluates about `rows` times in all; `iw_samples`: at the end, each AEVB run's test log p(x) by importance
    # sampling with K proposals of its q (None: none)
    "quick": {"train_samples": {"mnist": 30_000, "frey": 100_000}, "eval_test": 1000, "points": 4, "iw_samples": None},
    "medium": {"train_samples": {"mnist": 500_000, "frey": 500_000}, "eval_test": None, "points": 8,
               "iw_samples": None},
    "paper": {"train_samples": {"mnist": 100_000_000, "frey": 100_000_000}, "eval_test": None, "points": 16,
              "iw_samples": 5000},
}
METHODS = ("aevb", "wake_sleep")
ROWS = 100  # evaluations per run beyond the log-spaced stops (eval_every = budget / (ROWS * N) epochs)


def specs(dataset: str = "mnist", budget: str = "quick", seed: int = 0, latent_dims: Optional[Sequence[int]] = None,
          train_samples: Optional[int] = None, data_path: Optional[str] = None, device: str = "cpu",
          methods: Sequence[str] = METHODS, compile: bool = False):
    """The runs of Fig. 2: AEVB and wake-sleep (``methods``) for every Nz, the paper's networks (section 5)."""
    check_choice("dataset", dataset, paper.FIG2)
    for m in methods:
        check_choice("method", m, METHODS)
    check_choice("budget", budget, BUDGET_SETTINGS)
    s = BUDGET_SETTINGS[budget]
    total = int(train_samples) if train_samples is not None else s["train_samples"][dataset]
    num_train = load(dataset, data_path).train.shape[0]
    points = tuple(checkpoints(total, BATCH_SIZE, s["points"]))
    estimate = ({"method": "importance", "num_samples": s["iw_samples"], "eval_points": s["eval_test"]}
                if s["iw_samples"] else None)
    return [RunSpec("fig2", dataset, method, nz, nz, paper.HIDDEN_UNITS[dataset], paper.LIKELIHOOD[dataset],
                    points, seed=seed, eval_test=s["eval_test"], eval_every=max(1, total // (ROWS * num_train)),
                    data_path=data_path, device=device, compile=compile,
                    estimate=estimate if method == "aevb" else None)
            for nz in tuple(latent_dims or paper.FIG2_LATENT_DIMS[dataset]) for method in methods]


def run(out_dir, dataset: str = "mnist", budget: str = "quick", seed: int = 0,
        latent_dims: Optional[Sequence[int]] = None, train_samples: Optional[int] = None,
        data_path: Optional[str] = None, log=print, jobs: int = 1, device: str = "cpu", redraw: bool = False, threads: Optional[int] = None, compile: bool = False,
        only: Optional[str] = None,
        methods: Sequence[str] = None) -> dict:
    """Train AEVB and wake-sleep for each Nz (a resumable sweep, :mod:`.sweep`); write fig2.png, curves.csv,
    results.json, results.md from whatever has finished (``redraw``: only that, no training)."""
    runs = specs(dataset, budget, seed, latent_dims, train_samples, data_path, device, methods or METHODS, compile)
    out = Path(out_dir)

    def draw():
        return draw_figure(out, runs, dataset, budget)

    if redraw:
        check_manifest(out, runs, write=False)  # draw only what this folder's sweep is
    elif only is not None:  # one run of the sweep, e.g. one task of a scheduler's array: no drawing
        return {"runs": run_sweep(runs, out, jobs, log, threads=threads, only=only)}
    else:
        run_sweep(runs, out, jobs, log, on_done=draw, threads=threads)
    return draw()


def draw_figure(out: Path, runs, dataset: str, budget: str) -> dict:
    """fig2.png, curves.csv, results.json and results.md from the run directories under ``out``."""
    rows = collect(out, runs)
    if not rows:
        raise AevbInputError(f"no run under {out} has evaluated yet: nothing to draw")
    latent_dims = sorted({r["key"] for r in rows})
    write_csv(out / "curves.csv", rows)
    plot(rows, latent_dims, dataset, out / "fig2.png")
    ours = final_numbers(rows)
    table = comparison_table(ours, paper.FIG2[dataset], ("aevb", "wake_sleep"), latent_dims, "Nz",
                             paper.READING_ERROR[dataset])
    spec = runs[0]
    settings = {"hidden_units": spec.hidden_units, "likelihood": spec.likelihood, "batch_size": BATCH_SIZE,
                "seed": spec.seed, "eval_test_points": spec.eval_test,
                "runs_finished": sum(1 for r in runs if ours.get(r.method, {}).get(str(r.key), {}).get(
                    "train_samples", 0) >= r.train_samples), "runs": len(runs)}
    wall, reached = run_totals(ours)
    estimates = final_estimates(out, runs)
    lines = []
    for r in runs:
        e = estimates.get(r.name)
        if e is None:
            continue
        ours[r.method][str(r.key)].update(log_likelihood=e["test"], log_likelihood_stderr=e["test_stderr"],
                                          iw_samples=e["num_samples"], iw_test_points=e["eval_points"],
                                          iw_at_train_samples=e["train_samples"])
        lines.append(f"| {r.method} | {r.key} | {e['train_samples']:.1e} | {e['test']:.2f} ± {e['test_stderr']:.2f} | "
                     f"{ours[r.method][str(r.key)]['test']:.2f} | {e['num_samples']} | {e['eval_points']} |")
    extra = (f"The paper trained for ~{paper.TRAINING_SAMPLES:.0e} samples; wake-sleep's paper value is one level per "
             "Nz, compared with our wake-sleep test bound. Wall time: training and evaluation summed over the runs.")
    if lines:
        extra += ("\n\nTest log p(x) by importance sampling with K proposals of each run's q (± one standard error "
                  "over the images), beside its test bound:\n\n| method | Nz | samples | log p(x) | bound | K | test "
                  "images |\n|---|---|---|---|---|---|---|\n" + "\n".join(lines))
    return write_results(out, "fig2", dataset, budget, spec.train_samples, ours, table, wall, settings, reached=reached,
                         extra_md=extra)


def plot(rows, latent_dims, dataset, path) -> Path:
    """One panel per Nz: bound vs training samples on the paper's log axis (to its 1e8 samples), AEVB and
    wake-sleep train/test, and the paper's final values marked at 1e8 (where our curves are headed)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(latent_dims), figsize=(3.2 * len(latent_dims), 3.4), squeeze=False)
    styles = {("aevb", "train"): ("r-", "AEVB (train)"), ("aevb", "test"): ("r--", "AEVB (test)"),
              ("wake_sleep", "train"): ("g-", "WS (train)"), ("wake_sleep", "test"): ("g--", "WS (test)")}
    end = paper.TRAINING_SAMPLES
    for ax, nz in zip(axes[0], latent_dims):
        for (method, split), (style, label) in styles.items():
            pts = sorted((r for r in rows if r["method"] == method and r["key"] == nz),
                         key=lambda r: r["train_samples"])
            if not pts:
                continue
            ax.plot([r["train_samples"] for r in pts], [r[split] for r in pts], style, lw=1.2, label=label)
        ref = paper.FIG2[dataset]
        levels = []
        if nz in ref["aevb"]:
            marks = ((ref["aevb"][nz]["train"], "r", "*", "paper AEVB (train)"),
                     (ref["aevb"][nz]["test"], "r", "o", "paper AEVB (test)"),
                     (ref["wake_sleep"][nz]["test"], "g", "o", "paper WS"))
            for value, color, marker, label in marks:
                if value is not None:
                    ax.axhline(value, color=color, ls=":", lw=0.6)
                    ax.plot([end], [value], marker=marker, color=color, ms=7, mfc="none" if marker == "o" else color,
                            ls="none", label=label)
                    levels.append(value)
        # y-range: the last 1.5 decades of our curves and the paper's levels (early transients would flatten it)
        samples = sorted({r["train_samples"] for r in rows if r["key"] == nz})
        late = [r[k] for r in rows if r["key"] == nz and r["train_samples"] >= samples[-1] / 30
                for k in ("train", "test")]
        span = max(late + levels) - min(late + levels)
        ax.set_ylim(min(late + levels) - 0.15 * span - 1, max(late + levels) + 0.1 * span + 1)
        ax.set_xscale("log")
        ax.set_xlim(min(samples[0], 1e5) / 1.5, end * 2)
        ax.set_title(f"{'MNIST' if dataset == 'mnist' else 'Frey Face'}, $N_z = {nz}$")
        ax.set_xlabel("# training samples evaluated")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(r"$\mathcal{L}$ per datapoint")
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.text(0.01, 0.01, "markers at 1e8: the paper's final values (its Fig. 2)", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
