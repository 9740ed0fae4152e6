"""Pyro's own VAE recipe (``examples/vae/vae.py``) against pyro-aevb's trainer, in one process.

The recipe: an MLP VAE, 784 -> 400 softplus -> z = 50 (loc, and scale = exp of a
second head), decoder 50 -> 400 softplus -> 784 sigmoid means of a Bernoulli
scored at the grey values (``validate_args=False``), N(0, I) prior, trained by
``pyro.infer.SVI`` + ``Trace_ELBO`` with ``pyro.optim.Adam({"lr": 1e-3})`` on
minibatches of 256, no weight decay.  The reference loop below is written from
Pyro's public API (``pyro.module``, ``pyro.plate``, ``SVI``), not copied.

Three configurations run one after another, each from ``torch.manual_seed(seed)``:

* ``pyro``        -- the recipe through ``SVI.step``;
* ``ours-torch``  -- ``Trainer`` (estimator A = Trace_ELBO, Adam 1e-3, M = 256, no weight decay) on a
                     ``VAEModel``/``AmortizedNormalGuide`` of the same architecture, PyTorch's default init;
* ``ours-paper``  -- the same with ``init="paper"`` (every parameter from N(0, 0.01^2), section 5).

All three see the same data (``load_mnist()``: the paper's 50,000 training / 10,000 test
images, grey values in [0, 1]).  After every epoch the test bound per datapoint (nats,
higher is better) is ``evaluate_bound(model, guide, data.test, "trace")`` under a fixed
seed (the training random stream is not touched).  The recipe's model/guide accept the
library's calling convention ``(x, idx=None, num_data=None)``: called with ``x`` alone --
as ``SVI`` does in training -- they are exactly the recipe (``pyro.plate("data", len(x))``);
the optional arguments only let ``evaluate_bound`` chunk the test set.  A second, plain
evaluation of the recipe (``Trace_ELBO().loss(model, guide, x) / len(x)`` over chunks of
the test set) is reported as a cross-check.

Timings: seconds of the training loop per epoch (evaluation excluded): ``SVI.step`` over
minibatches cut from one ``torch.randperm`` of the in-memory training tensor for the
recipe (no ``DataLoader``: that would only slow the recipe down), ``metrics[i]["epoch_seconds"]``
for the trainer.  Ratio = mean(ours) / mean(recipe): < 1 means we are faster.  Before the
timed runs both loops take three untimed steps on throw-away networks (:func:`warm_up`), so
the process's one-time set-up is charged to neither.

    python benchmarks/pyro_recipe.py --epochs 3 --json      # markdown table, then one JSON line
"""

import argparse
import datetime
import json
import os
import platform
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from pyro_aevb import Trainer, evaluate_bound, load_mnist
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import VAEModel

DATA_DIM, LATENT, HIDDEN, BATCH, LR = 784, 50, 400, 256, 1e-3
CONFIGS = ("pyro", "ours-torch", "ours-paper")


# --------------------------------------------------------------------------- the recipe
class RecipeEncoder(nn.Module):
    def __init__(self, z_dim=LATENT, hidden_dim=HIDDEN):
        super().__init__()
        self.fc1 = nn.Linear(DATA_DIM, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, z_dim)
        self.fc22 = nn.Linear(hidden_dim, z_dim)
        self.act = nn.Softplus()

    def forward(self, x):
        hidden = self.act(self.fc1(x.reshape(-1, DATA_DIM)))
        return self.fc21(hidden), torch.exp(self.fc22(hidden))


class RecipeDecoder(nn.Module):
    def __init__(self, z_dim=LATENT, hidden_dim=HIDDEN):
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, DATA_DIM)
        self.act = nn.Softplus()

    def forward(self, z):
        return torch.sigmoid(self.fc21(self.act(self.fc1(z))))


def _plate(x, idx, num_data):
    if idx is None:  # training, as in the recipe: one plate over the rows of the minibatch
        return pyro.plate("data", x.shape[0])
    return pyro.plate("data", num_data, subsample=idx)


class RecipeModel(nn.Module):
    """p(z) p(x|z) of the recipe; ``pyro.module`` registers the decoder with Pyro."""

    def __init__(self):
        super().__init__()
        self.decoder = RecipeDecoder()

    def forward(self, x, idx=None, num_data=None):
        pyro.module("decoder", self.decoder)
        with _plate(x, idx, num_data):
            z_loc = x.new_zeros((x.shape[0], LATENT))
            z_scale = x.new_ones((x.shape[0], LATENT))
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            loc_img = self.decoder(z)
            # grey values scored by a Bernoulli, as the recipe does (hence validate_args=False)
            pyro.sample("obs", dist.Bernoulli(loc_img, validate_args=False).to_event(1),
                        obs=x.reshape(-1, DATA_DIM))


class RecipeGuide(nn.Module):
    """q(z|x) of the recipe; ``pyro.module`` registers the encoder with Pyro."""

    def __init__(self):
        super().__init__()
        self.encoder = RecipeEncoder()

    def forward(self, x, idx=None, num_data=None):
        pyro.module("encoder", self.encoder)
        with _plate(x, idx, num_data):
            z_loc, z_scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))


# --------------------------------------------------------------------------- evaluation
def test_bound(model, guide, x, seed):
    """``evaluate_bound(..., "trace")`` with a fixed seed, leaving the caller's random stream as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return evaluate_bound(model, guide, x, "trace")


@torch.no_grad()
def plain_trace_elbo(model, guide, x, seed, chunk=2000):
    """The recipe's own way: ``-Trace_ELBO().loss(model, guide, x) / len(x)``, averaged over chunks."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        elbo = Trace_ELBO()
        total = 0.0
        for start in range(0, x.shape[0], chunk):
            xb = x[start:start + chunk]
            total += -elbo.loss(model, guide, xb)
        return total / x.shape[0]


# --------------------------------------------------------------------------- the three runs
def run_pyro(data, epochs, seed, eval_seed):
    pyro.clear_param_store()
    torch.manual_seed(seed)
    model, guide = RecipeModel(), RecipeGuide()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": LR}), loss=Trace_ELBO())
    x_train = data.train
    n = x_train.shape[0]
    perm_gen = torch.Generator().manual_seed(seed)
    seconds, bounds, train = [], [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        epoch_loss = 0.0
        for idx in torch.randperm(n, generator=perm_gen).split(BATCH):
            epoch_loss += svi.step(x_train[idx])
        seconds.append(time.perf_counter() - t0)
        train.append(-epoch_loss / n)
        bounds.append(test_bound(model, guide, data.test, eval_seed))
        print(f"  pyro epoch {len(seconds)}: train {train[-1]:.2f}, test {bounds[-1]:.2f} "
              f"({seconds[-1]:.1f}s)", flush=True)
    check = plain_trace_elbo(model, guide, data.test, eval_seed)
    print(f"  pyro plain Trace_ELBO test bound: {check:.2f}", flush=True)
    return {"test_bound": bounds, "train_bound": train, "epoch_seconds": seconds, "plain_trace_elbo": check,
            "backend": "SVI"}


def run_ours(data, epochs, seed, eval_seed, init):
    torch.manual_seed(seed)
    model = VAEModel(DATA_DIM, LATENT, (HIDDEN,), likelihood="bernoulli", activation="softplus", init=init)
    guide = AmortizedNormalGuide(DATA_DIM, LATENT, (HIDDEN,), activation="softplus", init=init)
    trainer = Trainer(model, guide, data, elbo="trace", optimizer="adam", lr=LR, prior_precision=0.0,
                      batch_size=BATCH, progress=False, seed=seed)
    bounds = []
    for e in range(1, epochs + 1):
        trainer.fit(epochs=e)  # one more epoch (fit trains up to e passes in total)
        row = trainer.metrics[-1]
        bounds.append(test_bound(model, guide, data.test, eval_seed))
        print(f"  ours-{init} epoch {e}: train {row['train_elbo']:.2f}, test {bounds[-1]:.2f} "
              f"(trainer's own test bound {row['test_elbo']:.2f}, {row['epoch_seconds']:.1f}s)", flush=True)
    return {"test_bound": bounds, "train_bound": [r["train_elbo"] for r in trainer.metrics],
            "epoch_seconds": [r["epoch_seconds"] for r in trainer.metrics], "backend": trainer.backend}


def warm_up(data, seed):
    """A few untimed steps of both loops on throw-away networks: the first ``SVI.step`` of a process
    pays ~1.7 s of one-time set-up (imports, first kernels) that would otherwise land in the first
    timed epoch of whichever configuration runs first.  The measured runs re-seed afterwards."""
    pyro.clear_param_store()
    torch.manual_seed(seed)
    svi = SVI(RecipeModel(), RecipeGuide(), pyro.optim.Adam({"lr": LR}), loss=Trace_ELBO())
    for start in range(0, 3 * BATCH, BATCH):
        svi.step(data.train[start:start + BATCH])
    pyro.clear_param_store()
    model = VAEModel(DATA_DIM, LATENT, (HIDDEN,), likelihood="bernoulli", activation="softplus", init="torch")
    guide = AmortizedNormalGuide(DATA_DIM, LATENT, (HIDDEN,), activation="softplus", init="torch")
    Trainer(model, guide, data, elbo="trace", optimizer="adam", lr=LR, prior_precision=0.0, batch_size=BATCH,
            progress=False, seed=seed).fit(train_samples=3 * BATCH)


# --------------------------------------------------------------------------- report
def mean(xs):
    return sum(xs) / len(xs)


def table(results, epochs):
    head = ["config"] + [f"test bound ep {e}" for e in range(1, epochs + 1)] + ["s / epoch (mean)", "ours / Pyro"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ref = mean(results["pyro"]["epoch_seconds"]) if "pyro" in results else None
    for name, r in results.items():
        s = mean(r["epoch_seconds"])
        ratio = "1" if name == "pyro" else f"{s / ref:.3f}" if ref else "n/a"
        label = {"pyro": "Pyro recipe (SVI + Trace_ELBO)", "ours-torch": "ours, init=torch",
                 "ours-paper": "ours, init=paper"}[name]
        lines.append("| " + " | ".join([label] + [f"{b:.2f}" for b in r["test_bound"]] + [f"{s:.2f}", ratio]) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and minibatch order")
    p.add_argument("--eval-seed", type=int, default=1234, help="seed of every test-bound evaluation")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    p.add_argument("--json", action="store_true", help="print one JSON line with all numbers at the end")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    data = load_mnist()
    warm_up(data, args.seed)
    results = {}
    for name in args.configs:
        print(f"{name}:", flush=True)
        if name == "pyro":
            results[name] = run_pyro(data, args.epochs, args.seed, args.eval_seed)
        else:
            results[name] = run_ours(data, args.epochs, args.seed, args.eval_seed, name.split("-")[1])
    wall = time.perf_counter() - t_start
    print()
    print(table(results, args.epochs))
    print(f"\n{args.epochs} epochs, M = {BATCH}, {args.threads} thread(s), torch {torch.__version__}, "
          f"pyro {pyro.__version__}; wall {wall:.0f}s; load average {load_start[0]:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end")
    if args.json:
        out = {"epochs": args.epochs, "batch_size": BATCH, "threads": args.threads, "seed": args.seed,
               "eval_seed": args.eval_seed, "date_utc": started.strftime("%Y-%m-%d %H:%M"),
               "torch_version": torch.__version__, "pyro_version": pyro.__version__,
               "python_version": platform.python_version(),
               "wall_seconds": round(wall, 1), "loadavg_start": round(load_start[0], 2),
               "loadavg_end": round(os.getloadavg()[0], 2)}
        ref = mean(results["pyro"]["epoch_seconds"]) if "pyro" in results else None
        for name, r in results.items():
            s = mean(r["epoch_seconds"])
            out[name] = {"test_bound": [round(b, 2) for b in r["test_bound"]],
                         "train_bound": [round(b, 2) for b in r["train_bound"]],
                         "epoch_seconds": [round(t, 2) for t in r["epoch_seconds"]],
                         "mean_epoch_seconds": round(s, 3), "backend": r["backend"]}
            if "plain_trace_elbo" in r:
                out[name]["plain_trace_elbo"] = round(r["plain_trace_elbo"], 2)
            if ref is not None and name != "pyro":
                out[name]["ratio_vs_pyro"] = round(s / ref, 3)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
