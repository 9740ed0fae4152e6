"""Numbers for docs/beyond/conv_two_layer.md, one JSON line per run directory (run by hand, never in CI).

    python scripts/beyond_measure.py RUN [RUN ...] [--iw-samples 1000] [--num-images 1000]

For each run: the test bound with estimator A (and B where the guide allows it) and the IWAE bound with K = 5
on the whole test set; the importance-sampled log p(x) with K = --iw-samples on
the first --num-images test images beside estimator A on the same images; KL and active units per latent site
on the whole test set (:func:`pyro_aevb.evaluation.latent_site_terms`); the parameter count; the mean seconds
per training epoch (metrics.jsonl, training only, without the per-epoch evaluation) and the total wall time.
Every Monte Carlo number is seeded (--seed).
"""

import argparse
import json
import time

import pyro
import torch

from pyro_aevb import evaluate_bound, evaluate_run, load_run, log_likelihood
from pyro_aevb.evaluation import latent_site_terms


def measure(run_dir: str, iw_samples: int, num_images: int, seed: int) -> dict:
    run = load_run(run_dir)
    test = run.load_data().test
    pyro.set_rng_seed(seed)
    start = time.perf_counter()
    out = {"run": run_dir, **evaluate_run(run, splits=("test",))}
    out["test_iwae5_bound"] = evaluate_bound(run.model, run.guide, test, "iwae", 5)
    subset = test[:num_images]
    out["subset_elbo_trace"] = evaluate_bound(run.model, run.guide, subset, "trace")
    ll = log_likelihood(run.model, run.guide, subset, num_samples=iw_samples)
    out.update(subset_log_likelihood=ll.mean, subset_log_likelihood_stderr=ll.stderr, iw_samples=iw_samples,
               num_images=subset.shape[0])
    out.update(latent_site_terms(run.model, run.guide, test).metrics("test_"))
    out["parameters"] = sum(p.numel() for m in (run.model, run.guide) for p in m.parameters())
    seconds = [row["epoch_seconds"] for row in run.metrics]
    out.update(epochs=len(run.metrics), seconds_per_epoch=sum(seconds) / len(seconds),
               train_wall_seconds=run.metrics[-1]["wall_seconds"], measure_seconds=time.perf_counter() - start)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--iw-samples", type=int, default=1000)
    p.add_argument("--num-images", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    for run_dir in args.runs:
        print(json.dumps(measure(run_dir, args.iw_samples, args.num_images, args.seed)), flush=True)


if __name__ == "__main__":
    main()
