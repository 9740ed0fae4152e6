"""Evaluation speed: importance-sampled log p(x) with K samples on MNIST test images.

FLOPs counted for one pass (multiply-add = 2 FLOPs, matrix products only): the
encoder runs once per image (2 (D H + H 2J)), the decoder once per image and
sample (2 (J H + H D)); the machine's fp32 peak is given by --peak-gflops
(2 cores x 32 FLOP/cycle x 2.45 GHz = 157 GFLOP/s on the development machine).

    python benchmarks/eval_speed.py --num-images 10000 --num-samples 5000
"""

import argparse
import json
import time

import torch

from pyro_aevb import load_mnist, log_likelihood
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import VAEModel


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--num-images", type=int, default=10000)
    p.add_argument("--num-samples", type=int, default=5000)
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--latent", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--max-elements", type=int, default=2 ** 24)
    p.add_argument("--peak-gflops", type=float, default=157.0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    d, h, j = 784, args.hidden, args.latent
    x = load_mnist().test[: args.num_images].to(args.device)
    torch.manual_seed(0)
    model = VAEModel(d, j, (h,)).to(args.device)
    guide = AmortizedNormalGuide(d, j, (h,)).to(args.device)
    t0 = time.perf_counter()
    ll = log_likelihood(model, guide, x, num_samples=args.num_samples, batch_size=args.batch_size,
                        max_elements=args.max_elements)
    seconds = time.perf_counter() - t0
    n, k = x.shape[0], args.num_samples
    flops = n * 2 * (d * h + h * 2 * j) + n * k * 2 * (j * h + h * d)
    out = {"num_images": n, "num_samples": k, "seconds": round(seconds, 2), "log_px": round(ll.mean, 3),
           "gflops_per_s": round(flops / seconds / 1e9, 2),
           "fraction_of_peak": round(flops / seconds / 1e9 / args.peak_gflops, 3),
           "seconds_for_10k_images": round(seconds * 10000 / n, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
