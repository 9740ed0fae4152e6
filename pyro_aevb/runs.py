"""Runs: train from a :class:`RunConfig` into a directory, load and evaluate it.

A run directory holds ``config.json`` (for people), ``checkpoint.pt`` (the
state, see :mod:`pyro_aevb.checkpoint`) and ``metrics.jsonl``.  These are the
functions the command line calls; notebooks call them too.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import pyro
import torch

from .checkpoint import CHECKPOINT, load_checkpoint
from .config import RunConfig, build_model_guide
from .data import Dataset, binarize_static, load_dataset
from .errors import AevbInputError
from .evaluation import evaluate_bound, full_vb_bound
from .trainer import Trainer

# Fields that may differ between a run and its --resume: the budget and where it runs.
RESUMABLE_FIELDS = {"epochs", "train_samples", "device", "backend", "compile"}


def prepare_data(config: RunConfig) -> Dataset:
    """Load the dataset of ``config``, check it against the likelihood, move it to the device."""
    from pyro_aevb.models import get_likelihood

    data = load_dataset(config.dataset, config.binarize, config.data_path)
    likelihood = get_likelihood(config.likelihood)
    likelihood.check_data(data.train, f"{config.dataset} training data")
    likelihood.check_data(data.test, f"{config.dataset} test data")
    return data.to(config.resolved_device())


def train(config: RunConfig, run_dir, resume: bool = False, progress: bool = True) -> Trainer:
    """Train the model/guide of ``config`` into ``run_dir`` (Algorithm 1); ``resume`` continues a run."""
    run_dir = Path(run_dir)
    if resume:
        saved = RunConfig.from_dict(load_checkpoint(run_dir)["config"])
        changed = [f for f, v in config.to_dict().items()
                   if f not in RESUMABLE_FIELDS and getattr(saved, f) != v]
        if changed:
            raise AevbInputError(f"--resume with settings that differ from the run in {run_dir}: "
                                 f"{', '.join(f'{f}={getattr(saved, f)!r} (run) vs {getattr(config, f)!r}' for f in changed)}")
    elif (run_dir / CHECKPOINT).exists():
        raise AevbInputError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    config.validate()
    if config.epochs is None and config.train_samples is None:
        raise AevbInputError("give a training budget: epochs or train_samples")
    run_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(config)
    pyro.set_rng_seed(config.seed)
    device = config.resolved_device()
    model, guide = build_model_guide(config, data.data_dim)
    model.to(device)
    guide.to(device)
    trainer = Trainer(model, guide, data, elbo=config.elbo, num_particles=config.num_particles,
                      optimizer=config.optimizer, lr=config.lr, prior_precision=config.prior_precision,
                      batch_size=config.batch_size, run_dir=run_dir, config=config.to_dict(), progress=progress,
                      backend=config.backend, compile=config.compile, seed=config.seed)
    if resume:
        trainer.resume()
    if trainer.run_dir is not None:  # rank 0 only under torch.distributed
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    trainer.fit(epochs=config.epochs, train_samples=config.train_samples)
    return trainer


@dataclass
class Run:
    """A trained run: ``model(x)`` and ``guide(x)`` are ordinary Pyro programs."""

    model: torch.nn.Module
    guide: torch.nn.Module
    config: RunConfig
    metrics: list
    train_samples: int
    run_dir: Path

    def load_data(self) -> Dataset:
        device = next(self.guide.parameters()).device  # the full-VB model has no parameters; guides always do
        cfg = RunConfig.from_dict(dict(self.config.to_dict(), device=str(device)))
        return prepare_data(cfg)


def load_run(run_dir, device: str = "cpu") -> Run:
    """Rebuild the model and guide of a run directory from its checkpoint (on ``device``)."""
    state = load_checkpoint(run_dir, map_location="cpu")
    config = RunConfig.from_dict(state["config"])
    model, guide = build_model_guide(config, _data_dim(state))
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    dev = RunConfig(device=device).validate().resolved_device()
    return Run(model.to(dev).eval(), guide.to(dev).eval(), config, state["metrics"], int(state["train_samples"]),
               Path(run_dir))


def _data_dim(state: dict) -> int:
    """D, read off the encoder's first layer (its input width; ``local.encoder.0.weight`` in full VB)."""
    for key, value in state["guide"].items():
        if key == "encoder.0.weight" or key.endswith(".encoder.0.weight"):
            return value.shape[1]
    raise AevbInputError("checkpoint guide has no encoder.0.weight: cannot tell the data dimension")


def evaluate_run(run: Run, num_particles: int = 1, splits=("train", "test")) -> dict:
    """Average per-datapoint bound with estimators A (trace) and B (analytic) on each split."""
    data = run.load_data()
    out = {"train_samples": run.train_samples, "dataset": run.config.dataset}
    for split in splits:
        x = getattr(data, split)
        if split == "train" and data.binarize == "dynamic":
            x = binarize_static(x)  # evaluate on one fixed binarization
        for est in ("trace", "analytic"):
            out[f"{split}_elbo_{est}"] = evaluate_bound(run.model, run.guide, x, est, num_particles)
        if run.config.bayesian_decoder:  # appendix F: the bound with the theta-KL spread over the N training points
            fv = full_vb_bound(run.model, run.guide, x, data.train.shape[0], "analytic", num_particles)
            out.update({f"{split}_local_bound": fv.local, f"{split}_full_vb_bound": fv.bound, "kl_theta": fv.kl})
    return out
