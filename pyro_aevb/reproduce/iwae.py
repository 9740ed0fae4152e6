"""Burda, Grosse & Salakhutdinov (2016), *Importance Weighted Autoencoders*, Table 1 (MNIST): the VAE against the
IWAE, each trained with k = 1, 5, 50 samples, with one or two stochastic layers.

For k proposals z_1..z_k ~ q_phi(z|x) of a datapoint and w_j = p_theta(x, z_j) / q_phi(z_j|x), the two objectives
are the k-sample estimates

    VAE:   L_k^VAE  = (1/k) sum_j log w_j              (estimator A averaged over k draws; eq. 7 with L = k)
    IWAE:  L_k      = log (1/k) sum_j w_j              (Burda et al., eq. 8; L_1 = L_1^VAE)

and each run is scored by its test log-likelihood, log p(x) ~ log (1/K) sum_j w_j with K = 5000 (the NLL is its
negative), and by its active units: latent units u with Cov_x(E_q[z_u | x]) > 0.01 (their section 5.2).

Protocol (their section 5 and code): dynamically binarized MNIST (targets redrawn x ~ Bernoulli(pixels) every
minibatch); one stochastic layer x -[200, 200 tanh]- z (50), two: x -[200, 200]- z_1 (100) -[100, 100]- z_2 (50),
Gaussian q and p(z_l | z_l+1), Bernoulli p(x | z_1); Adam (beta = 0.9, 0.999, eps = 1e-4), minibatches of 20, no
weight decay, 3^i passes through the training set at learning rate 1e-3 * 10^(-i/7) for i = 0..7 (3,280 passes).
Their gradient is of the minibatch's sum; ours, of the dataset estimate (N/M) x that sum (eq. 8), so Adam's eps,
the one setting that is not invariant to the gradient's scale, is 1e-4 * N/M here: the same updates.
A smaller budget is the paper's run stopped early -- the same schedule, its first passes (quick: 1 pass, stage 0;
medium: 40 passes, stages 0-3) -- so ``--budget paper`` on the same folder continues it.

What differs, by choice: the training set is our MNIST split's 50,000 images (theirs: 59,600 of the 60,000), the
test images are binarized once with a fixed seed (theirs: a fresh draw for the estimate), PyTorch's default
initialisation (theirs: their own heuristic and the decoder's output bias set to the training mean's logit).

The runs are a resumable sweep (:mod:`.sweep`): ``--jobs``, ``--run NAME``, ``--print-commands`` and ``--redraw``
as for Fig. 2.  k = 1 is one run for both columns (the two objectives are the same).
"""

import math
from pathlib import Path
from typing import Optional, Sequence

from pyro_aevb.errors import AevbInputError

from . import paper
from .common import check_choice, load, pyplot, write_results
from .sweep import ESTIMATES, RunSpec, read_estimates, check_manifest, run_dir, run_sweep

NUM_SAMPLES = 5000  # K of the test log-likelihood
BATCH = 20
EPS = 1e-4  # Adam's eps on the gradient of a minibatch's summed objective (theirs)
BUDGET_SETTINGS = {
    # passes through the training set per run, and the test images the K = 5000 estimate averages (None: all)
    "quick": {"passes": 1, "eval_points": 500},
    "medium": {"passes": 40, "eval_points": None},
    "paper": {"passes": paper.IWAE_PASSES, "eval_points": None},
}
METHODS = ("vae", "iwae")
KS = (1, 5, 50)
LAYERS = (1, 2)
NETWORKS = {1: {"latent_dims": [50], "hidden_dims": [[200, 200]], "init": "torch"},
            2: {"latent_dims": [100, 50], "hidden_dims": [[200, 200], [100, 100]], "init": "torch"}}
ROWS = 20  # metrics rows per run beyond the stage ends (eval_every = passes / ROWS epochs)


def schedule(steps_per_pass: int) -> dict:
    """The multistep schedule of Burda et al.: the rate drops by 10^(-1/7) at the end of each stage i = 0..6, stage i
    lasting 3^i passes of ``steps_per_pass`` steps (the same at every budget: a budget stops the same run)."""
    ends = [sum(3 ** j for j in range(i + 1)) for i in range(7)]
    return {"milestones": [e * steps_per_pass for e in ends], "gamma": 10 ** (-1 / 7)}


def specs(budget: str = "quick", seed: int = 0, layers: Sequence[int] = (1,), ks: Sequence[int] = KS,
          methods: Sequence[str] = METHODS, train_samples: Optional[int] = None, data_path: Optional[str] = None,
          device: str = "cpu", compile: bool = False, eval_points: Optional[int] = None, dataset: str = "mnist"):
    """The runs of Table 1 for ``layers`` stochastic layers, ``methods`` and ``ks`` (k = 1: one run, ``l<L>_k1``);
    ``eval_points``: the first test images the estimates average (default: the budget's)."""
    if dataset != "mnist":
        raise AevbInputError("reproduce iwae is Table 1's MNIST (dataset mnist)")
    check_choice("budget", budget, BUDGET_SETTINGS)
    for m in methods:
        check_choice("method", m, METHODS)
    for n in layers:
        check_choice("number of stochastic layers", n, LAYERS)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise AevbInputError(f"k, the samples per datapoint, must be integers >= 1, got {k!r}")
    s = dict(BUDGET_SETTINGS[budget])
    if eval_points is not None:
        if isinstance(eval_points, bool) or not isinstance(eval_points, int) or eval_points < 2:
            raise AevbInputError(f"eval_points must be an integer >= 2 (active units are a covariance over images), "
                                 f"got {eval_points!r}")
        s["eval_points"] = eval_points
    mnist = load("mnist", data_path)
    num_train = mnist.train.shape[0]
    if s["eval_points"] is not None and s["eval_points"] > mnist.test.shape[0]:
        raise AevbInputError(f"eval_points {s['eval_points']} is more than MNIST's {mnist.test.shape[0]} test images")
    total = int(train_samples) if train_samples is not None else s["passes"] * num_train
    if total < BATCH:
        raise AevbInputError(f"training samples per run must be at least one minibatch ({BATCH}), got {total}")
    eps = EPS * num_train / BATCH  # their eps on the minibatch sum = ours on (N / M) times it
    stages = schedule(math.ceil(num_train / BATCH))
    points = tuple(sorted({m * BATCH for m in stages["milestones"] if m * BATCH < total} | {total}))
    passes = total / num_train
    runs = []
    for n in sorted(set(layers)):
        for k in sorted(set(ks)):
            for method in (("vae",) if k == 1 else methods):
                recipe = {"elbo": "iwae" if method == "iwae" else "trace", "num_particles": k, "optimizer": "adam",
                          "lr": 1e-3, "optimizer_kwargs": {"betas": [0.9, 0.999], "eps": eps},
                          "prior_precision": 0.0, "batch_size": BATCH, "lr_schedule": "multistep",
                          "lr_schedule_kwargs": stages}
                runs.append(RunSpec(
                    "iwae", "mnist", method, k, NETWORKS[n]["latent_dims"][-1], NETWORKS[n]["hidden_dims"][0][0],
                    "bernoulli", points, seed=seed, eval_test=s["eval_points"],
                    eval_every=max(1, int(passes // ROWS)), data_path=data_path, device=device, compile=compile,
                    estimate={"method": "importance", "num_samples": NUM_SAMPLES, "eval_points": s["eval_points"]},
                    network=NETWORKS[n], recipe=recipe, binarize="dynamic",
                    label=f"l{n}_k1" if k == 1 else f"l{n}_{method}_k{k}"))
    if not runs:
        raise AevbInputError("no run chosen: give at least one k and one method")
    return runs


def run(out_dir, dataset: str = "mnist", budget: str = "quick", seed: int = 0, layers: Sequence[int] = (1,),
        ks: Sequence[int] = KS, methods: Optional[Sequence[str]] = None, train_samples: Optional[int] = None,
        data_path: Optional[str] = None, log=print, jobs: int = 1, device: str = "cpu", redraw: bool = False,
        threads: Optional[int] = None, compile: bool = False, only: Optional[str] = None,
        eval_points: Optional[int] = None) -> dict:
    """Train the runs of Table 1 (a resumable sweep); write iwae.png, results.json and results.md from whatever has
    finished (``redraw``: only that, no training)."""
    runs = specs(budget, seed, layers, ks, methods or METHODS, train_samples, data_path, device, compile, eval_points,
                 dataset)
    out = Path(out_dir)

    def draw():
        return draw_table(out, runs, budget)

    if redraw:
        check_manifest(out, runs, write=False)
    elif only is not None:
        return {"runs": run_sweep(runs, out, jobs, log, threads=threads, only=only)}
    else:
        run_sweep(runs, out, jobs, log, on_done=draw, threads=threads)
    return draw()


def _finals(out: Path, runs, num_train: int) -> dict:
    """``{"layers_L": {method: {k: {...}}}}``: each finished estimate, k = 1 under both methods."""
    ours: dict = {}
    for spec in runs:
        rows = [r for r in read_estimates(run_dir(out, spec)) if "test" in r]
        if not rows:
            continue
        r = rows[-1]
        n = len(spec.network["latent_dims"])
        units = [r["active_units"][f"z{i + 1}"] if n > 1 else r["active_units"]["z"] for i in range(n)]
        entry = {"nll": -r["test"], "stderr": r["test_stderr"], "active_units": units,
                 "train_samples": r["train_samples"], "passes": round(r["train_samples"] / num_train, 2),
                 "wall_seconds": r["wall_seconds"],
                 "eval_points": r["eval_points"], "num_samples": r["num_samples"]}
        for method in (METHODS if spec.key == 1 else (spec.method,)):
            ours.setdefault(f"layers_{n}", {}).setdefault(method, {})[str(spec.key)] = entry
    return ours


def draw_table(out: Path, runs, budget: str) -> dict:
    """iwae.png, results.json and results.md: our test NLL and active units next to Table 1's."""
    num_train = load("mnist", runs[0].data_path).train.shape[0]
    ours = _finals(out, runs, num_train)
    if not ours:
        raise AevbInputError(f"no run under {out} has finished its K = {NUM_SAMPLES} estimate yet ({ESTIMATES}): "
                             "nothing to draw")
    lines = ["| layers | k | method | passes | ours NLL | Burda NLL | gap (ours − Burda) | ours active units | "
             "Burda active units |", "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(ours):
        n = int(key.split("_")[1])
        for k in sorted({int(k) for m in ours[key].values() for k in m}):
            for method in METHODS:
                o = ours[key].get(method, {}).get(str(k))
                if o is None:
                    continue
                p = paper.IWAE_TABLE1[n][method].get(k)
                gap = f"{o['nll'] - p['nll']:+.2f}" if p else "–"
                lines.append(f"| {n} | {k} | {method.upper()} | {o['passes']:g} | {o['nll']:.2f} ± {o['stderr']:.2f} "
                             f"| {p['nll'] if p else '–'} | {gap} | {'+'.join(map(str, o['active_units']))} | "
                             f"{'+'.join(map(str, p['active_units'])) if p else '–'} |")
    lines += ["", "NLL: −log p(x) on the test images, K = 5000 importance samples of the run's own q (± one standard "
                  "error over the images); active units: Cov_x(E_q[z_u | x]) > 0.01, per stochastic layer."]
    plot(ours, out / "iwae.png")
    spec = runs[0]
    settings = {"batch_size": BATCH, "optimizer": "adam", "lr": 1e-3, "betas": [0.9, 0.999],
                "eps": spec.recipe["optimizer_kwargs"]["eps"], "eps_on_the_minibatch_sum": EPS,
                "schedule": spec.recipe["lr_schedule_kwargs"], "binarize": "dynamic", "train_images": num_train,
                "test_images": spec.estimate["eval_points"] or "all", "num_samples": NUM_SAMPLES, "seed": spec.seed,
                "runs_finished": sum(_entry(ours, s) is not None for s in runs), "runs": len(runs)}
    wall = sum(e["wall_seconds"] for e in (_entry(ours, s) for s in runs) if e is not None)
    reached = max(e["train_samples"] for m in ours.values() for d in m.values() for e in d.values())
    return write_results(out, "iwae", "mnist", budget, spec.train_samples, ours, "\n".join(lines), wall, settings,
                         reached=reached,
                         extra_md=f"Burda et al. trained {paper.IWAE_PASSES} passes (budget `paper`); a smaller budget "
                                  "is their run stopped early (the passes column). Wall time: training summed over "
                                  "the runs (the estimates excluded).")


def _entry(ours: dict, spec: RunSpec) -> Optional[dict]:
    return ours.get(f"layers_{len(spec.network['latent_dims'])}", {}).get(spec.method, {}).get(str(spec.key))


def plot(ours: dict, path) -> Path:
    """Test NLL against k (log axis), VAE and IWAE, one panel per number of stochastic layers; Table 1's values as
    open markers."""
    plt = pyplot()
    keys = sorted(ours)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    colors = {"vae": "tab:blue", "iwae": "tab:red"}
    for ax, key in zip(axes[0], keys):
        n = int(key.split("_")[1])
        for method in METHODS:
            pts = sorted((int(k), e) for k, e in ours[key].get(method, {}).items())
            if pts:
                ax.errorbar([k for k, _ in pts], [e["nll"] for _, e in pts], yerr=[e["stderr"] for _, e in pts],
                            color=colors[method], marker="o", label=f"{method.upper()} (ours)")
            ref = sorted(paper.IWAE_TABLE1[n][method].items())
            ax.plot([k for k, _ in ref], [v["nll"] for _, v in ref], color=colors[method], ls=":", marker="s",
                    mfc="none", label=f"{method.upper()} (Burda et al.)")
        ax.set_xscale("log")
        ax.set_xticks(KS, [str(k) for k in KS])
        ax.set_xlabel("k, samples per datapoint in training")
        ax.set_title(f"MNIST, {n} stochastic layer{'s' if n > 1 else ''}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test NLL, K = 5000 (nats)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
