"""The deep Markov model against the i.i.d. VAE on the same Frey Face frames at an equal budget (docs/beyond/dmm.md).

    python scripts/beyond_dmm.py [--frames 30000,100000,300000] [--seq-len 10] [--out runs/beyond_dmm]

Both models get the paper's Frey decoder (one tanh layer of 200 units, Gaussian, Nz = 10), the same optimiser,
the same number of training frames and the same frames per step (M = 100 frames: 100 images for the VAE,
100 / T windows of T frames for the DMM).  The DMM trains on the overlapping windows of the first 90% of the
video and is scored on the disjoint windows of the last 10%; the VAE trains on the same training frames
(each once per epoch) and is scored on exactly the frames those test windows cover
(:func:`pyro_aevb.sequences.frames_in_time`, written to an .npz for the command line).  Every step is a
``pyro-aevb`` command, printed before it runs; the table rows are printed as Markdown at the end.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyro

from pyro_aevb.data import frey_frames
from pyro_aevb.evaluation.terms import bound_terms
from pyro_aevb.runs import load_run
from pyro_aevb.sequences import frames_in_time


def run(argv):
    print("$ pyro-aevb " + " ".join(map(str, argv)), flush=True)
    out = subprocess.run([sys.executable, "-m", "pyro_aevb", *map(str, argv)], check=True, capture_output=True,
                         text=True).stdout
    return out


def plot_curves(out: Path, t: int, path) -> None:
    """Test bound per frame after every epoch of both runs against the training frames seen."""
    from pyro_aevb.checkpoint import read_metrics
    from pyro_aevb.plots import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(5.5, 4))
    for name, per, style in (("dmm", t, "b-"), ("vae", 1, "r-")):
        rows = read_metrics(out / name)
        label = f"DMM, T = {t}" if name == "dmm" else "i.i.d. VAE"
        ax.plot([r["train_samples"] * per for r in rows], [r["test_elbo"] / per for r in rows], style, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training frames")
    ax.set_ylabel("test bound per frame (nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    print(save_figure(fig, path))


def train_pair(out: Path, t: int, frames: int, iid: Path, args) -> list:
    """Train and evaluate the DMM and the VAE on ``frames`` training frames each; one table row per model."""
    common = ["--likelihood", "gaussian", "--latent-dim", args.latent_dim, "--hidden-dim", args.hidden_dim,
              "--init", "torch", "--optimizer", "adam", "--lr", args.lr, "--elbo", "analytic", "--seed", args.seed,
              "--no-progress", "--overwrite"]
    runs = {
        "dmm": ["--model", "dmm", "--dataset", "frey", "--seq-len", t, "--batch-size", 100 // t,
                "--train-samples", frames // t],
        "vae": ["--dataset", iid, "--batch-size", 100, "--train-samples", frames],
    }
    rows = []
    for name, argv in runs.items():
        run(["train", *argv, *common, "--out", out / name])
        result = json.loads(run(["evaluate", out / name, "--json", "--iw-samples", args.iw_samples,
                                 "--seed", args.seed]))
        per = t if name == "dmm" else 1
        loaded = load_run(out / name)
        pyro.set_rng_seed(args.seed)
        terms = bound_terms(loaded.model, loaded.guide, loaded.load_data().test)
        rows.append({
            "model": f"DMM, T = {t}" if name == "dmm" else "i.i.d. VAE", "budget": frames,
            "test_bound_per_frame": result["test_elbo_analytic"] / per,
            "test_log_likelihood_per_frame": result["test_log_likelihood"] / per,
            "reconstruction_per_frame": terms.reconstruction / per, "kl_per_frame": terms.kl / per,
            "train_bound_per_frame": result["train_elbo_analytic"] / per,
            "best_epoch_test_bound_per_frame": max(r["test_elbo"] for r in loaded.metrics) / per,
            "training_frames": loaded.train_samples * per, "wall_seconds": loaded.metrics[-1]["wall_seconds"],
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", default="30000,100000,300000", help="training frames per model (comma-separated "
                                                                  "budgets: one DMM and one VAE run each)")
    p.add_argument("--seq-len", type=int, default=10)
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--hidden-dim", type=int, default=200)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--iw-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/beyond_dmm")
    p.add_argument("--strip", default=None, help="PNG of DMM samples (default OUT/dmm_strip.png)")
    p.add_argument("--curves", default=None, help="PNG of both test bounds per frame vs training frames "
                                                 "(default OUT/dmm_vs_vae.png)")
    args = p.parse_args()
    out, t = Path(args.out), args.seq_len
    if 100 % t:
        raise SystemExit(f"--seq-len {t} does not divide the 100 frames of a step")
    out.mkdir(parents=True, exist_ok=True)
    frames, _ = frey_frames()
    train_frames, test_frames = frames_in_time(frames.unsqueeze(0), t)
    iid = out / f"frey_frames_T{t}.npz"
    np.savez(iid, train=train_frames.reshape(-1, 28, 20).numpy(), test=test_frames.reshape(-1, 28, 20).numpy())
    budgets = [int(b) for b in args.frames.split(",")]
    rows = []
    for frames_budget in budgets:
        rows += train_pair(out / f"T{t}_{frames_budget}", t, frames_budget, iid, args)
    last = out / f"T{t}_{budgets[-1]}"
    plot_curves(last, t, args.curves or out / "dmm_vs_vae.png")
    print(run(["sample", last / "dmm", "--num-samples", 8, "--seed", args.seed,
               "--out", args.strip or out / "dmm_strip.png"]).strip())
    print(f"\n| training frames | model | test bound / frame | test log p(x) / frame (IS, K = {args.iw_samples}) | "
          "reconstruction / frame | KL / frame | train bound / frame | best epoch's test bound / frame | wall time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['training_frames']:,} | {r['model']} | {r['test_bound_per_frame']:.1f} | "
              f"{r['test_log_likelihood_per_frame']:.1f} | {r['reconstruction_per_frame']:.1f} | "
              f"{r['kl_per_frame']:.1f} | {r['train_bound_per_frame']:.1f} | "
              f"{r['best_epoch_test_bound_per_frame']:.1f} | {r['wall_seconds'] / 60:.1f} min |")


if __name__ == "__main__":
    main()
