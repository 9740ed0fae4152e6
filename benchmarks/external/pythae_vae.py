"""The paper's MNIST VAE in pythae 0.1.2, timed per 50,000-sample epoch (run with benchmarks/.venv-pythae/bin/python).

pythae's ``VAE`` (its reparameterized sample, its loss: BCE on the decoder's sigmoid means + analytic KL, i.e.
estimator B, averaged over the minibatch) with a custom encoder/decoder (pythae's ``BaseEncoder`` /
``BaseDecoder``: 784-500-20, tanh), trained by a plain loop over minibatches of M = 100 cut from a permutation
of the training tensor: ``loss = N * model({"data": x}).loss`` (the minibatch mean scaled to the dataset, as the
paper's objective), ``torch.optim.Adagrad`` lr 0.02 with weight decay 1 on the decoder (torch's default kernel,
as pythae's trainer would build it).  pythae's own trainer adds data loaders, logging and checkpoints per epoch;
this loop is the model's cost alone.

    benchmarks/.venv-pythae/bin/python benchmarks/external/pythae_vae.py --samples 10000 --rounds 3
    ... --serve        # for step_speed.py: prints {"ready": ...}, then times one round per line read on stdin

One untimed warm-up round; then each timed round is ``--samples`` training samples; the JSON reports seconds
per round and the median scaled to 50,000 samples.  ``--data``: as in numpyro_vae.py.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np
import pythae
import torch
from pythae.models import VAE, VAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder

HIDDEN, LATENT, BATCH = 500, 20, 100


class Encoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(784, HIDDEN), torch.nn.Tanh(),
                                       torch.nn.Linear(HIDDEN, 2 * LATENT))

    def forward(self, x):
        mu, log_var = self.net(x).chunk(2, dim=-1)
        return ModelOutput(embedding=mu, log_covariance=log_var)


class Decoder(BaseDecoder):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(LATENT, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 784))

    def forward(self, z):
        return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--serve", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.data:
        train = torch.from_numpy(np.load(args.data)).float()
    else:
        train = (torch.rand(50000, 784) < 0.13).float()
    n = train.shape[0]
    model = VAE(VAEConfig(input_dim=(784,), latent_dim=LATENT, reconstruction_loss="bce"),
                encoder=Encoder(), decoder=Decoder())
    opt = torch.optim.Adagrad([{"params": model.decoder.parameters(), "weight_decay": 1.0},
                               {"params": model.encoder.parameters(), "weight_decay": 0.0}], lr=0.02)

    def timed_round():
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        total = torch.zeros(())
        for start in range(0, args.samples, BATCH):
            loss = n * model({"data": train[perm[start:start + BATCH]]}).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        return time.perf_counter() - t0, total.item() / (args.samples // BATCH) / n

    timed_round()  # warm-up, not timed
    info = {"framework": "pythae", "pythae": getattr(pythae, "__version__", "0.1.2"), "torch": torch.__version__,
            "samples": args.samples, "threads": args.threads}
    if args.serve:
        print(json.dumps({"ready": True, **info}), flush=True)
        for _ in sys.stdin:
            seconds, loss = timed_round()
            print(json.dumps({"seconds": seconds, "loss_per_datapoint": loss}), flush=True)
        return
    seconds = [timed_round()[0] for _ in range(args.rounds)]
    print(json.dumps({**info, "seconds_per_round": seconds,
                      "seconds_per_50k": statistics.median(seconds) * 50000 / args.samples}))


if __name__ == "__main__":
    main()
