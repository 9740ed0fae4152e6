"""Training = Algorithm 1 of the paper (minibatch AEVB).

    theta, phi <- initialise
    repeat
        X^M <- random minibatch of M datapoints
        eps <- random samples from p(eps)
        g   <- grad_{theta,phi} L^M(theta, phi; X^M, eps)      (eq. 8)
        theta, phi <- update with g (Adagrad)
    until convergence

The loss is Pyro's ELBO used as a ``torch.nn.Module`` (``elbo(model, guide)``,
the interface of Pyro's ``examples/svi_torch.py``) with a plain torch
optimizer.  It is ``-L^M``, i.e. in units of the whole dataset (the ``data``
plate scales the minibatch sum by N/M).  For the paper's VAE the same number
is computed without Pyro's per-step tracing by :class:`pyro_aevb.fused.FusedELBO`
(``backend="auto"`` picks it when model and guide allow; ``compile=True`` adds
``torch.compile``).  The hot loop makes no host synchronisation except every
``log_every`` steps for the progress bar.

Data parallel (``torch.distributed`` initialised, e.g. by ``torchrun``): every
rank draws the same permutation, takes a disjoint 1/K share of each global
minibatch of M and scales it by N/(M/K); DistributedDataParallel averages the K
gradients, which is an unbiased estimate of the same full-data gradient as one
process with the global batch M.  Rank 0 alone writes checkpoints and metrics.

MAP over theta (section 5, "weight decay corresponding to a prior
p(theta) = N(0, I)"): the objective is ``-sum_i L_i(theta, phi) - log p(theta)``
and ``-grad log p(theta) = theta``, so an L2 weight decay of exactly
``prior_precision = 1`` on the decoder's parameters -- applied to the gradient of
the dataset-scale loss -- is the N(0, I) prior; no 1/N factor is needed because
the loss is already summed over the N datapoints.  The recognition parameters
phi are variational, not model parameters, and get no decay.

Epochs are permutations of the training set; per epoch the trainer appends
one line to ``metrics.jsonl`` and writes ``checkpoint.pt`` atomically (model,
guide, optimizer, RNG state, metrics so far), so a killed run resumed with
``Trainer.load_state_dict`` continues the same random stream and reproduces an
unbroken run's metrics exactly.
"""

import time
from pathlib import Path
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm

from .checkpoint import append_metrics, load_checkpoint, save_checkpoint, write_metrics
from .data import Dataset
from .errors import AevbInputError
from .evaluation import evaluate_bound
from .fused import FusedELBO, is_fused_compatible
from .objectives import make_elbo

BACKENDS = ("auto", "pyro", "fused")


def make_optimizer(model: torch.nn.Module, guide: torch.nn.Module, name: str = "adagrad", lr: float = 0.02,
                   prior_precision: float = 1.0) -> torch.optim.Optimizer:
    """Adagrad (the paper) or Adam; weight decay ``prior_precision`` on theta (the model) only.

    Call it after moving the networks to their device (the fused kernels are chosen per device)."""
    groups = [
        {"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": prior_precision},
        {"params": [p for p in guide.parameters() if p.requires_grad], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    # torch's fused kernels (one kernel for all parameters, CPU and CUDA) where every tensor allows it
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr, fused=fused or None)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, fused=fused or None)
    raise AevbInputError(f"unknown optimizer {name!r}; choose adagrad or adam")


def _rng_state(perm_generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "perm": perm_generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, perm_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"].cpu())
    perm_generator.set_state(state["perm"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class Trainer:
    """Minibatch AEVB (Algorithm 1) for any Pyro ``model(x, idx, num_data)`` / ``guide(x, idx, num_data)``.

    :param model: generative model, a ``torch.nn.Module`` (e.g. :class:`pyro_aevb.models.VAEModel`).
    :param guide: recognition model, a ``torch.nn.Module``.
    :param data: a :class:`pyro_aevb.data.Dataset` (already on the training device).
    :param elbo: ``"trace"`` (estimator A) or ``"analytic"`` (estimator B).
    :param num_particles: L, samples of z per datapoint.
    :param batch_size: M.
    :param run_dir: where ``metrics.jsonl`` and ``checkpoint.pt`` go (``None``: keep in memory only).
    :param config: a dict stored in checkpoints (``load_run`` rebuilds the networks from it).
    :param backend: ``"pyro"`` (Pyro's ELBO), ``"fused"`` (:class:`~pyro_aevb.fused.FusedELBO`) or
        ``"auto"`` (fused where the model and guide allow it).
    :param compile: wrap the loss in ``torch.compile`` (first step compiles, ~20 s on CPU).
    :param seed: seeds the minibatch permutations (a generator of their own, so they are the same on
        every rank and unaffected by the noise draws).
    """

    def __init__(self, model: torch.nn.Module, guide: torch.nn.Module, data: Dataset, *, elbo: str = "analytic",
                 num_particles: int = 1, optimizer: str = "adagrad", lr: float = 0.02, prior_precision: float = 1.0,
                 batch_size: int = 100, run_dir: Optional[str] = None, config: Optional[dict] = None,
                 progress: bool = True, log_every: int = 50, backend: str = "auto", compile: bool = False,
                 seed: int = 0):
        self.model, self.guide, self.data = model, guide, data
        self.elbo_name, self.num_particles = elbo, num_particles
        likelihood = getattr(model, "likelihood", None)
        if hasattr(likelihood, "check_data"):  # once, here, instead of validating every step
            likelihood.check_data(data.train, f"{data.name} training data")
            likelihood.check_data(data.test, f"{data.name} test data")
        if backend not in BACKENDS:
            raise AevbInputError(f"unknown backend {backend!r}; choose from {list(BACKENDS)}")
        fused = backend == "fused" or (backend == "auto" and is_fused_compatible(model, guide)
                                       and elbo in ("trace", "analytic"))
        self.backend = "fused" if fused else "pyro"
        loss = FusedELBO(model, guide, elbo, num_particles) if fused else make_elbo(elbo, num_particles)(model, guide)
        self.rank, self.world_size = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            self.rank, self.world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
            if batch_size % self.world_size:
                raise AevbInputError(f"batch size {batch_size} is not divisible by the {self.world_size} ranks")
            loss = torch.nn.parallel.DistributedDataParallel(loss)
        self.loss_fn: Callable = torch.compile(loss) if compile else loss
        self.optimizer = make_optimizer(model, guide, optimizer, lr, prior_precision)
        self.perm_generator = torch.Generator().manual_seed(seed)
        self.seed = seed
        self.batch_size = int(batch_size)
        self.run_dir = Path(run_dir) if run_dir is not None and self.rank == 0 else None
        self.resume_dir = Path(run_dir) if run_dir is not None else None
        self.config = dict(config or {})
        self.progress, self.log_every = progress and self.rank == 0, log_every
        self.epoch = 0
        self.train_samples = 0
        self.wall_seconds = 0.0
        self.metrics: list = []
        self._decorrelate_ranks()

    def _decorrelate_ranks(self) -> None:
        """Under torch.distributed every rank starts from the same seed (same initial weights); give
        each rank its own noise stream so the K shares of a minibatch get independent eps draws."""
        if self.world_size > 1:
            torch.manual_seed(self.seed + 7919 * self.rank + 104729 * self.epoch)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "config": self.config,
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": _rng_state(self.perm_generator),
            "epoch": self.epoch,
            "train_samples": self.train_samples,
            "wall_seconds": self.wall_seconds,
            "metrics": list(self.metrics),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], self.perm_generator)
        self.epoch = int(state["epoch"])
        self.train_samples = int(state["train_samples"])
        self.wall_seconds = float(state["wall_seconds"])
        self.metrics = list(state["metrics"])
        self._decorrelate_ranks()

    def resume(self) -> None:
        """Continue from ``run_dir/checkpoint.pt``; ``metrics.jsonl`` is rewritten to match it."""
        if self.resume_dir is None:
            raise AevbInputError("resume needs a run directory")
        self.load_state_dict(load_checkpoint(self.resume_dir))
        if self.run_dir is not None:
            write_metrics(self.run_dir, self.metrics)

    # ------------------------------------------------------------------ training
    def step(self, x: torch.Tensor, idx: torch.Tensor, num_data: int) -> torch.Tensor:
        """One update of Algorithm 1; returns the (detached) loss -L^M."""
        loss = self.loss_fn(x, idx, num_data)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def fit(self, epochs: Optional[int] = None, train_samples: Optional[int] = None) -> list:
        """Train until ``train_samples`` datapoints (or ``epochs`` full passes) have been seen in total.

        Returns the list of per-epoch metric rows (also appended to ``metrics.jsonl``).
        """
        x_train = self.data.train
        n = x_train.shape[0]
        if (epochs is None) == (train_samples is None):
            raise AevbInputError("give exactly one of epochs or train_samples")
        budget = int(train_samples) if train_samples is not None else int(epochs) * n
        dynamic = self.data.binarize == "dynamic"
        m = self.batch_size
        share = m // self.world_size  # this rank's part of each global minibatch
        total_steps = -(-(budget - self.train_samples) // m) if budget > self.train_samples else 0
        bar = tqdm(total=total_steps, disable=not self.progress, unit="step", leave=False)
        while self.train_samples < budget:
            start_time = time.perf_counter()
            perm = torch.randperm(n, generator=self.perm_generator).to(x_train.device)
            loss_sum = torch.zeros((), device=x_train.device)
            steps = 0
            for start in range(0, n, m):
                if self.train_samples >= budget:
                    break
                batch = perm[start:start + m]
                if self.world_size > 1 and batch.shape[0] < m:
                    break  # data parallel: a partial last batch could leave a rank empty; skip it
                idx = batch[self.rank * share:(self.rank + 1) * share] if self.world_size > 1 else batch
                x = x_train[idx]
                if dynamic:
                    x = torch.bernoulli(x)
                loss_sum += self.step(x, idx, n)
                steps += 1
                self.train_samples += batch.shape[0]
                bar.update(1)
                if steps % self.log_every == 0:  # the only host sync in the loop
                    bar.set_postfix(epoch=self.epoch + 1, bound=f"{-(loss_sum / steps).item() / n:.2f}")
            self.epoch += 1
            if self.world_size > 1:  # the epoch's bound over all ranks
                torch.distributed.all_reduce(loss_sum)
                loss_sum /= self.world_size
            train_seconds = time.perf_counter() - start_time
            test_elbo = evaluate_bound(self.model, self.guide, self.data.test, self.elbo_name, self.num_particles)
            self.wall_seconds += time.perf_counter() - start_time
            row = {
                "epoch": self.epoch,
                "train_samples": self.train_samples,
                "train_elbo": -(loss_sum / steps).item() / n,
                "test_elbo": test_elbo,
                "epoch_seconds": train_seconds,
                "wall_seconds": self.wall_seconds,
            }
            self.metrics.append(row)
            if self.run_dir is not None:
                save_checkpoint(self.run_dir, self.state_dict())
                append_metrics(self.run_dir, row)
            if self.progress:
                bar.write(f"epoch {row['epoch']}: train bound {row['train_elbo']:.2f}, "
                          f"test bound {test_elbo:.2f} ({self.train_samples} samples, {train_seconds:.1f}s)")
        bar.close()
        return self.metrics
