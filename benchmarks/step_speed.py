"""Seconds per 50,000-sample epoch of the paper's MNIST VAE, every way of training it, in one process (issue 20).

The model: 784-500-20, tanh, Bernoulli likelihood on statically binarized MNIST, estimator B (analytic KL),
Adagrad lr 0.02 with weight decay 1 on the decoder, M = 100.  The contenders:

    gemm_floor        only the step's matrix products: for each of the four Linear layers at M = 100 the forward
                      x @ W^T and the backward dX = dY @ W, dW = dY^T @ X (no dX for the first layer), torch.mm
                      on preallocated tensors -- the practical floor of a step
    lean_eager        a lean eager PyTorch loop (train_speed.HandWrittenVAE: BCE with logits, analytic KL;
                      fused Adagrad)
    builtin           pyro-aevb's Trainer, VAEModel + AmortizedNormalGuide, the traced graph (not compiled)
    builtin_compiled  the same, compile=True (inductor)
    user              the Trainer on a user-written PyroModule pair in the README quickstart's style
                      (Decoder/Encoder below, data_plate), the traced graph
    user_compiled     the same, compile=True
    pyro_svi          plain Pyro: SVI + TraceMeanField_ELBO + pyro.optim.Adagrad on the same user pair
    numpyro, pythae   (--external) benchmarks/external/{numpyro,pythae}_vae.py in their own venvs
                      (bash benchmarks/external/setup.sh), driven as subprocesses: one round per request

Every contender is built and warmed up first (one untimed round; compilation included), then the rounds
alternate: each contender times one round of --samples training samples in turn, --rounds times over, so a
drift in machine load hits all of them.  The table gives the median round scaled to 50,000 samples (the
trainer's own ``epoch_seconds``, which excludes evaluation, for the Trainer contenders) and its ratio to
gemm_floor and lean_eager; the targets of issue 20 are ratios of medians:

    user / builtin <= 1.10,   user_compiled / gemm_floor <= 1.4,
    min(builtin, builtin_compiled) / lean_eager <= 1,   min(builtin, builtin_compiled) / numpyro <= 1

    python benchmarks/step_speed.py --rounds 3 --threads 2 --external --json
    python benchmarks/step_speed.py --only gemm_floor lean_eager builtin user --rounds 5

With --json the last line is one JSON object: seconds per 50k-sample epoch, the ratios and the targets.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.nn import PyroModule

from pyro_aevb import Dataset, Trainer, data_plate, load_dataset
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import VAEModel
from train_speed import HandWrittenVAE, reference_epoch

HIDDEN, LATENT, M = 500, 20, 100
HERE = Path(__file__).resolve().parent
INTERNAL = ("gemm_floor", "lean_eager", "builtin", "builtin_compiled", "user", "user_compiled", "pyro_svi")
EXTERNAL = ("numpyro", "pythae")


# ------------------------------------------------------------------ the user's pair, as in the README quickstart
def mlp(n_in, n_out): return torch.nn.Sequential(torch.nn.Linear(n_in, HIDDEN), torch.nn.Tanh(),
                                                  torch.nn.Linear(HIDDEN, n_out))


class Decoder(PyroModule):                       # p(z) p(x | z)
    def __init__(self, name=""): super().__init__(name); self.net = mlp(LATENT, 784)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0., 1.).expand([LATENT]).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.net(z)).to_event(1), obs=x)


class Encoder(PyroModule):                       # q(z | x), reparameterized
    def __init__(self, name=""): super().__init__(name); self.net = mlp(784, 2 * LATENT)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            loc, log_scale = self.net(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


# ------------------------------------------------------------------ contenders: build, warm up, return one round
def gemm_floor(data, samples):
    layers = [(784, HIDDEN), (HIDDEN, 2 * LATENT), (LATENT, HIDDEN), (HIDDEN, 784)]  # (in, out)
    t = [dict(x=torch.randn(M, i), w=torch.randn(o, i), y=torch.empty(M, o), dy=torch.randn(M, o),
              dx=torch.empty(M, i), dw=torch.empty(o, i)) for i, o in layers]

    def round_():
        t0 = time.perf_counter()
        for _ in range(samples // M):
            for k, a in enumerate(t):
                torch.mm(a["x"], a["w"].t(), out=a["y"])
                if k:  # the first layer's dX (the gradient w.r.t. the data) is not needed
                    torch.mm(a["dy"], a["w"], out=a["dx"])
                torch.mm(a["dy"].t(), a["x"], out=a["dw"])
        return time.perf_counter() - t0
    return round_, ""


def lean_eager(data, samples):
    ref = HandWrittenVAE(784, HIDDEN, LATENT)
    opt = torch.optim.Adagrad([{"params": ref.dec.parameters(), "weight_decay": 1.0},
                               {"params": ref.enc.parameters(), "weight_decay": 0.0}], lr=0.02, fused=True)
    gen = torch.Generator().manual_seed(0)

    def round_():
        t0 = time.perf_counter()
        reference_epoch(ref, opt, data.train, gen, samples, M, analytic=True)
        return time.perf_counter() - t0
    return round_, "fused Adagrad"


def trainer_contender(model, guide, compile_):
    def build(data, samples):
        trainer = Trainer(model, guide, data, elbo="analytic", backend="graph", compile=compile_, progress=False,
                          seed=0)

        def round_():
            trainer.fit(train_samples=trainer.train_samples + samples)
            return trainer.metrics[-1]["epoch_seconds"]
        return round_, trainer.backend + (" + inductor" if compile_ else "")
    return build


def pyro_svi(data, samples):
    # named modules: two top-level PyroModules with the same attribute (net) would share Pyro's global parameters
    model, guide = Decoder("decoder"), Encoder("encoder")
    optim = pyro.optim.Adagrad(lambda name: {"lr": 0.02, "weight_decay": 1.0 if name.startswith("decoder") else 0.0})
    svi = SVI(model, guide, optim, TraceMeanField_ELBO())
    gen, n = torch.Generator().manual_seed(0), data.train.shape[0]

    def round_():
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        for start in range(0, samples, M):
            idx = perm[start:start + M]
            svi.step(data.train[idx], idx, n)
        return time.perf_counter() - t0
    return round_, "SVI.step"


class External:
    """benchmarks/external/<name>_vae.py --serve in its venv: one timed round per line written to it."""

    def __init__(self, name, data_file, samples, threads):
        python = HERE / f".venv-{name}" / "bin" / "python"
        if not python.exists():
            raise FileNotFoundError(f"{python.parent.parent} is missing: create it with "
                                    f"`bash benchmarks/external/setup.sh {name}`")
        self.proc = subprocess.Popen([str(python), str(HERE / "external" / f"{name}_vae.py"), "--serve", "--data",
                                      str(data_file), "--samples", str(samples), "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the external process exited with status {self.proc.wait()}")
        return json.loads(line)

    def __call__(self):
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        return self._read()["seconds"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def build_all(names, data, samples, threads, tmp):
    torch.manual_seed(0)
    builtin = lambda: (VAEModel(784, LATENT, (HIDDEN,)), AmortizedNormalGuide(784, LATENT, (HIDDEN,)))  # noqa: E731
    builders = {"gemm_floor": gemm_floor, "lean_eager": lean_eager, "pyro_svi": pyro_svi,
                "builtin": trainer_contender(*builtin(), False), "builtin_compiled": trainer_contender(*builtin(), True),
                "user": trainer_contender(Decoder(), Encoder(), False),
                "user_compiled": trainer_contender(Decoder(), Encoder(), True)}
    rounds, notes, externals = {}, {}, []
    for name in names:
        t0 = time.perf_counter()
        try:
            if name in EXTERNAL:
                data_file = Path(tmp) / "train.npy"
                if not data_file.exists():
                    np.save(data_file, data.train.to(torch.uint8).numpy())
                ext = External(name, data_file, samples, threads)
                externals.append(ext)
                notes[name] = " ".join(f"{k} {v}" for k, v in ext.info.items() if k in (name, "jax"))
                rounds[name] = ext
            else:
                rounds[name], notes[name] = builders[name](data, samples)
                rounds[name]()  # warm-up round (compilation), not timed
        except Exception as e:  # noqa: BLE001 -- reported, the others still run
            print(f"{name}: skipped ({type(e).__name__}: {e})", file=sys.stderr, flush=True)
            continue
        print(f"{name}: ready ({time.perf_counter() - t0:.0f} s to build and warm up)", file=sys.stderr, flush=True)
    return rounds, notes, externals


def ratio(sec, a, b):
    return round(sec[a] / sec[b], 3) if a in sec and b in sec else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--samples", type=int, default=10000, help="training samples per timed round (multiple of 100)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (and the external frameworks')")
    p.add_argument("--external", action="store_true", help="also numpyro and pythae (their venvs: external/setup.sh)")
    p.add_argument("--only", nargs="+", choices=INTERNAL + EXTERNAL, help="run only these contenders")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    mnist = load_dataset("mnist", binarize="static")
    data = Dataset("mnist", mnist.train, mnist.test[:100], (28, 28), binarize="static")  # evaluation: 100 rows
    names = args.only or list(INTERNAL) + (list(EXTERNAL) if args.external else [])
    with tempfile.TemporaryDirectory() as tmp:
        rounds, notes, externals = build_all(names, data, args.samples, args.threads, tmp)
        times = {name: [] for name in rounds}
        try:
            for r in range(args.rounds):
                for name, round_ in rounds.items():
                    times[name].append(round_())
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            for ext in externals:
                ext.close()
    scale = 50000 / args.samples
    sec = {name: statistics.median(t) * scale for name, t in times.items()}
    print(f"{'contender':17s} {'path':28s} {'s/epoch':>8s} {'min':>6s} {'max':>6s} {'/gemm_floor':>11s} "
          f"{'/lean_eager':>11s}")
    for name, t in times.items():
        rel = [f"{sec[name] / sec[ref]:11.2f}" if ref in sec else f"{'-':>11s}" for ref in ("gemm_floor", "lean_eager")]
        print(f"{name:17s} {notes[name]:28s} {sec[name]:8.2f} {min(t) * scale:6.2f} {max(t) * scale:6.2f} "
              + " ".join(rel))
    best = min((n for n in ("builtin", "builtin_compiled") if n in sec), key=sec.get, default=None)
    if best:
        sec["builtin_best"] = sec[best]
    targets = {"user/builtin": (ratio(sec, "user", "builtin"), 1.10),
               "user_compiled/gemm_floor": (ratio(sec, "user_compiled", "gemm_floor"), 1.4),
               "builtin_best/lean_eager": (ratio(sec, "builtin_best", "lean_eager"), 1.0),
               "builtin_best/numpyro": (ratio(sec, "builtin_best", "numpyro"), 1.0)}
    print(f"\nbuiltin_best = {best}; targets (ratio of median seconds):")
    for key, (value, target) in targets.items():
        verdict = "not measured" if value is None else ("met" if value <= target else "NOT met")
        print(f"  {key:26s} {'-' if value is None else f'{value:.3f}':>6s}  <= {target:<4}  {verdict}")
    if args.json:
        print(json.dumps({"samples_per_round": args.samples, "rounds": args.rounds, "threads": args.threads,
                          "seconds_per_50k": {k: round(v, 3) for k, v in sec.items()}, "builtin_best": best,
                          "ratios_to_gemm_floor": {n: ratio(sec, n, "gemm_floor") for n in times},
                          "ratios_to_lean_eager": {n: ratio(sec, n, "lean_eager") for n in times},
                          "targets": {k: {"ratio": v, "target": t, "met": None if v is None else v <= t}
                                      for k, (v, t) in targets.items()}}))


if __name__ == "__main__":
    main()
