"""Bound per guide q(z|x) and per likelihood p(x|z) at one training budget.

    python notebooks/experiments/guides_likelihoods_table.py --out runs/guides_table

Every run goes through ``pyro_aevb.train`` (the CLI's code path) with ``RunConfig(guide=..., likelihood=...)``
and the paper's optimiser (Adagrad, lr 0.02, weight decay 1); estimator B where the guide's KL is analytic,
else A.  Evaluation on the test set: estimator A bound (all 10,000 MNIST / 196 Frey test images) and the
importance-sampled log p(x) (K = ``--iw``) on the first ``--eval-test`` test images.
Writes ``OUT/results.json``; prints one JSON line per run.
"""

import argparse
import json
import time
from pathlib import Path

import pyro
import torch

from pyro_aevb import RunConfig, evaluate_bound, load_dataset, log_likelihood, train
from pyro_aevb.guides import GUIDE_NAMES


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden-dim", type=int, default=200)
    p.add_argument("--epochs", type=int, default=3, help="MNIST epochs (50,000 images each)")
    p.add_argument("--frey-epochs", type=int, default=100, help="Frey Face epochs (1,769 images each)")
    p.add_argument("--frey-path", default=None, help="frey_rawface.mat (default: pyro_aevb.data.frey_path())")
    p.add_argument("--eval-test", type=int, default=1000)
    p.add_argument("--iw", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default=None, help="comma-separated run names")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    runs = {}
    for g in GUIDE_NAMES:  # guides, Bernoulli decoder, MNIST
        runs[f"mnist/guide={g}"] = dict(dataset="mnist", guide=g, likelihood="bernoulli", epochs=a.epochs,
                                        elbo="analytic" if GUIDE_NAMES[g][1] else "trace")
    runs["mnist/likelihood=continuous_bernoulli"] = dict(dataset="mnist", likelihood="continuous_bernoulli",
                                                         epochs=a.epochs)
    for lik in ("bernoulli", "continuous_bernoulli", "gaussian", "laplace", "beta"):  # likelihoods on Frey Face
        runs[f"frey/likelihood={lik}"] = dict(dataset="frey", data_path=a.frey_path, likelihood=lik,
                                              epochs=a.frey_epochs, lr=0.01)
    if a.only:
        runs = {k: v for k, v in runs.items() if k in a.only.split(",")}
    data = {}
    results = {}
    out = Path(a.out)
    if (out / "results.json").exists():
        results = json.loads((out / "results.json").read_text())
    for name, kw in runs.items():
        if name in results:
            continue
        cfg = RunConfig(latent_dim=a.latent_dim, hidden_dim=a.hidden_dim, seed=0, **kw)
        if cfg.dataset not in data:
            data[cfg.dataset] = load_dataset(cfg.dataset, "none", cfg.data_path)
        ds = data[cfg.dataset]
        t0 = time.time()
        trainer = train(cfg, out / name.replace("/", "_").replace("=", "-"), progress=False)
        train_s = time.time() - t0
        model, guide = trainer.model.eval(), trainer.guide.eval()
        pyro.set_rng_seed(1)
        row = {"dataset": cfg.dataset, "guide": cfg.guide, "likelihood": cfg.likelihood, "elbo": cfg.elbo,
               "train_samples": trainer.train_samples, "train_seconds": round(train_s, 1),
               "test_bound_A": evaluate_bound(model, guide, ds.test, "trace"),
               "train_bound_A": evaluate_bound(model, guide, ds.train[:10000], "trace")}
        if GUIDE_NAMES[cfg.guide][1]:
            row["test_bound_B"] = evaluate_bound(model, guide, ds.test, "analytic")
        ll = log_likelihood(model, guide, ds.test[:a.eval_test], num_samples=a.iw)
        row.update(test_log_likelihood=ll.mean, test_ll_stderr=ll.stderr, iw_samples=a.iw,
                   ll_test_images=min(a.eval_test, ds.test.shape[0]), total_seconds=round(time.time() - t0, 1))
        results[name] = row
        print(json.dumps({name: row}), flush=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
