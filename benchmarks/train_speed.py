"""Training speed: pyro-aevb's trainer against a hand-written PyTorch VAE loop, in one process.

Both loops train the same architecture (tanh MLP encoder/decoder), from the same
initial weights (copied), with the same optimizer (Adagrad, lr 0.02, weight
decay 1 on the decoder), the same batch size (M = 100) and the same minibatch
order.  The runs alternate (ours, reference, ours, ...) so drifts in machine
load hit both; the printed ratio is median(ours) / median(reference) seconds
per epoch (< 1 means we are faster).

    python benchmarks/train_speed.py                   # 500/20 and 100/3, estimators A and B
    python benchmarks/train_speed.py --compile --json  # torch.compile'd objective, JSON last line

An "epoch" here is --samples training samples (default 10,000 = 100 steps) of
MNIST; evaluation is excluded from the timings.
"""

import argparse
import json
import statistics
import time

import torch
from torch import nn

from pyro_aevb import Dataset, Trainer, load_mnist
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import VAEModel

CONFIGS = {"500/20": (500, 20), "100/3": (100, 3)}


class HandWrittenVAE(nn.Module):
    """The reference: a plain PyTorch VAE with the paper's networks and the analytic (B) or
    Monte Carlo (A) KL, written the way most people write it."""

    def __init__(self, data_dim, hidden, latent):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(data_dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, data_dim))

    def loss(self, x, num_data, analytic):
        mu, log_var = self.enc(x).chunk(2, dim=-1)
        std = torch.exp(0.5 * log_var)
        eps = torch.randn_like(mu)
        z = mu + std * eps
        rec = -nn.functional.binary_cross_entropy_with_logits(self.dec(z), x, reduction="sum")
        if analytic:
            kl = -0.5 * torch.sum(1 + log_var - mu ** 2 - std ** 2)
        else:  # log q(z|x) - log p(z) at the sample
            kl = torch.sum(-0.5 * eps ** 2 - 0.5 * log_var + 0.5 * z ** 2)
        return -(num_data / x.shape[0]) * (rec - kl)


def copy_weights(model, guide, ref):
    with torch.no_grad():
        for src, dst in zip(list(guide.encoder.parameters()) + list(model.decoder.parameters()),
                            list(ref.enc.parameters()) + list(ref.dec.parameters())):
            dst.copy_(src)


def reference_epoch(ref, opt, x_train, perm_generator, samples, batch_size, analytic):
    n = x_train.shape[0]
    perm = torch.randperm(n, generator=perm_generator)
    total = torch.zeros(())
    for start in range(0, samples, batch_size):
        idx = perm[start:start + batch_size]
        loss = ref.loss(x_train[idx], n, analytic)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach()
    return total.item()


def bench(config, estimator, data, rounds, samples, compile_, backend):
    hidden, latent = CONFIGS[config]
    torch.manual_seed(0)
    model, guide = VAEModel(784, latent, (hidden,)), AmortizedNormalGuide(784, latent, (hidden,))
    ref = HandWrittenVAE(784, hidden, latent)
    copy_weights(model, guide, ref)
    sub = Dataset("mnist", data.train, data.test[:100])
    trainer = Trainer(model, guide, sub, elbo=estimator, progress=False, compile=compile_, backend=backend, seed=0)
    ref_opt = torch.optim.Adagrad([{"params": ref.dec.parameters(), "weight_decay": 1.0},
                                   {"params": ref.enc.parameters(), "weight_decay": 0.0}], lr=0.02)
    ref_gen = torch.Generator().manual_seed(0)
    ours, theirs = [], []
    trainer.fit(train_samples=samples)  # warm-up (and compilation), not timed
    reference_epoch(ref, ref_opt, data.train, ref_gen, samples, 100, estimator == "analytic")
    for r in range(rounds):
        t0 = time.perf_counter()
        trainer.fit(train_samples=trainer.train_samples + samples)
        ours.append(trainer.metrics[-1]["epoch_seconds"])
        t0 = time.perf_counter()
        reference_epoch(ref, ref_opt, data.train, ref_gen, samples, 100, estimator == "analytic")
        theirs.append(time.perf_counter() - t0)
    return statistics.median(ours), statistics.median(theirs), trainer.backend


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--samples", type=int, default=10000, help="training samples per timed epoch")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--backend", default="auto", choices=["auto", "graph", "pyro"])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_mnist()
    result = {}
    print(f"{'config':8s} {'estimator':9s} {'backend':7s} {'ours s/epoch':>12s} {'hand s/epoch':>12s} {'ratio':>6s}")
    for config in args.configs:
        result[config] = {}
        for estimator in ("trace", "analytic"):
            ours, theirs, backend = bench(config, estimator, data, args.rounds, args.samples, args.compile,
                                          args.backend)
            scale = data.train.shape[0] / args.samples  # report per 50,000-sample epoch
            result[config][estimator] = round(ours / theirs, 3)
            print(f"{config:8s} {estimator:9s} {backend:7s} {ours * scale:12.2f} {theirs * scale:12.2f} "
                  f"{ours / theirs:6.3f}", flush=True)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
