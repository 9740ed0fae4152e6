"""Importance-sampled test log p(x) (K proposals) of gallery runs on the first ROWS test rows, with the table's numbers.

    python scripts/gallery_loglik.py runs/gallery/vae --rows 1000 --iw-samples 5000 --command "..." --out x.json

The rows are a stated subset of the run's own test set (``load_run(...).load_data()``), so the estimate uses the
library's ``log_likelihood`` from Python: a run directory always evaluates the data it remembers.  The label ``y``
is passed for every model; a model whose ``forward`` does not name it is not given it (the contract, item 6).
The test bound is ``pyro-aevb evaluate RUN --json`` on the whole test set (computed here by ``evaluate_run``).
"""

import argparse
import json
import statistics
import time

import torch

from pyro_aevb import evaluate_bound, evaluate_run, load_run, log_likelihood


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--iw-samples", type=int, default=5000)
    parser.add_argument("--command", default="")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    run = load_run(args.run_dir)
    data = run.load_data()
    metrics = run.metrics
    result = {"run": args.run_dir, "command": args.command, "train_samples": run.train_samples,
              "epochs": len(metrics), "seconds_per_epoch": sum(m["epoch_seconds"] for m in metrics) / len(metrics),
              "seconds_per_epoch_median": statistics.median(m["epoch_seconds"] for m in metrics)}
    start = time.perf_counter()
    result.update({k: v for k, v in evaluate_run(run, splits=("test",)).items() if k.startswith("test_")})
    result["evaluate_seconds"] = time.perf_counter() - start
    torch.manual_seed(0)
    x = data.test[:args.rows]
    inputs = {k: v[:args.rows] for k, v in data.test_inputs.items()}
    start = time.perf_counter()
    ll = log_likelihood(run.model, run.guide, x, num_samples=args.iw_samples, inputs=inputs)
    result.update({"log_px": ll.mean, "log_px_stderr": ll.stderr, "log_px_rows": args.rows,
                   "log_px_num_samples": args.iw_samples, "log_px_seconds": time.perf_counter() - start})
    result["test_elbo_trace_same_rows"] = evaluate_bound(run.model, run.guide, x, "trace", inputs=inputs)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
