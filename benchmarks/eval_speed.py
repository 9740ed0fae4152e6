"""Evaluation speed: importance-sampled log p(x) with K samples on MNIST test images.

FLOPs counted for one pass (multiply-add = 2 FLOPs, matrix products only): the
encoder runs once per image (2 (D H + H 2J)), the decoder once per image and
sample (2 (J H + H D)); the machine's fp32 peak is given by --peak-gflops
(2 cores x 32 FLOP/cycle x 2.45 GHz = 157 GFLOP/s on the development machine).
``pyro_aevb.log_likelihood`` has one path for every model (the log weights from Pyro's traces, with a
particle plate), timed once on an untrained model.

    python benchmarks/eval_speed.py --num-images 200 --num-samples 5000 --json

The last line (with --json) is one JSON object with ``seconds``, ``gflops``, ``fraction_of_peak`` and
``projected_minutes_k5000_10k`` (K = 5000 on the 10,000 test images of the 500/20 model at the
measured rate).
"""

import argparse
import json
import time

import torch

from pyro_aevb import load_mnist, log_likelihood
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import VAEModel


def measure(model, guide, x, k, batch_size, max_elements, peak, dims):
    d, h, j = dims
    torch.manual_seed(0)
    t0 = time.perf_counter()
    ll = log_likelihood(model, guide, x, num_samples=k, batch_size=batch_size, max_elements=max_elements)
    seconds = time.perf_counter() - t0
    n = x.shape[0]
    flops = n * 2 * (d * h + h * 2 * j) + n * k * 2 * (j * h + h * d)
    gflops = flops / seconds / 1e9
    full = 10000 * 2 * (d * h + h * 2 * j) + 10000 * 5000 * 2 * (j * h + h * d)
    return {"seconds": round(seconds, 2), "log_px": round(ll.mean, 3), "gflops": round(gflops, 2),
            "fraction_of_peak": round(gflops / peak, 3), "projected_minutes_k5000_10k": round(full / gflops / 1e9 / 60, 1)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--num-images", type=int, default=200)
    p.add_argument("--num-samples", type=int, default=5000)
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--latent", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--max-elements", type=int, default=2 ** 24)
    p.add_argument("--peak-gflops", type=float, default=157.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dims = (784, args.hidden, args.latent)
    x = load_mnist().test[: args.num_images].to(args.device)
    torch.manual_seed(0)
    model = VAEModel(784, args.latent, (args.hidden,)).to(args.device)
    guide = AmortizedNormalGuide(784, args.latent, (args.hidden,)).to(args.device)
    r = measure(model, guide, x, args.num_samples, args.batch_size, args.max_elements, args.peak_gflops, dims)
    out = {"num_images": x.shape[0], "num_samples": args.num_samples, "threads": torch.get_num_threads(), **r}
    print(f"{r['seconds']:7.2f} s  {r['gflops']:6.1f} GFLOP/s  {100 * r['fraction_of_peak']:5.1f}% of peak  "
          f"-> K=5000 on 10k images: {r['projected_minutes_k5000_10k']} min  (log p(x) {r['log_px']})")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
