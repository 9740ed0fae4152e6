"""The gallery (examples/*.py) from the command line by import path, and the guide's ``model`` argument that lets a
guide share a module with its model (pyro_aevb.specs.build).

Each example trains 500 MNIST samples (5 Adam steps) from the CLI, reloads, evaluates and samples: 10 to 20 s of one
core each, most of it reading MNIST and evaluating its 60,000 rows.
"""

import importlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_aevb import Trainer, load_array_file, load_run, make_optimizer, prior_means
from pyro_aevb.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _cli(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def _train_example(name, run_dir, capsys, *extra):
    """5 steps of Adam (lr 1e-2) on MNIST's grey values (the examples' own networks, narrower), by import path."""
    spec = EXAMPLES / f"{name}.py"
    _cli(["train", "--dataset", "mnist", "--model", f"{spec}:Model", "--guide", f"{spec}:Guide", "--elbo", "trace",
          "--optimizer", "adam", "--lr", "1e-2", "--train-samples", 500, "--latent-dim", 4, "--hidden-dim", 64,
          "--seed", 0, "--no-progress", "--out", run_dir, *extra], capsys)
    return spec


def _evaluate(run_dir, capsys):
    return json.loads(_cli(["evaluate", run_dir, "--json"], capsys).strip().splitlines()[-1])


def _trained_bound_beats_initial(run_dir, capsys):
    """Property: the test bound of ``evaluate`` is finite and above -D log 2 = -543.4 nats, the bound of a decoder
    that says p = 1/2 for every pixel with KL = 0 -- what networks that learned nothing can at best score (the
    untrained ones score below it: their random logits cost cross-entropy).  5 steps of Adam at lr 1e-2 reach about
    -330 nats for these widths, so the margin is large against the run-to-run noise of a few nats."""
    result = _evaluate(run_dir, capsys)
    assert math.isfinite(result["test_elbo_trace"]) and result["train_samples"] == 500
    assert result["test_elbo_trace"] > -784 * math.log(2), result
    return result


def test_cvae_trains_reloads_and_samples_per_class(tmp_path, capsys):
    run_dir = tmp_path / "cvae"
    _train_example("cvae", run_dir, capsys)
    result = _trained_bound_beats_initial(run_dir, capsys)
    # z ~ N(0, I) is closed-form against a Gaussian q: estimator B is reported too, and agrees with A in
    # expectation (10,000 test rows: the Monte Carlo error of A's mean is well under a nat)
    assert abs(result["test_elbo_analytic"] - result["test_elbo_trace"]) < 1.0, result
    # one row per class: 30 samples -> 10 rows (classes 0..9) of 3, a 3 x 10 grid of 28-pixel tiles (padding 1)
    grid = _cli(["sample", run_dir, "--num-samples", 30, "--out", tmp_path / "grid.png"], capsys).strip()
    import matplotlib.image

    height, width = matplotlib.image.imread(grid).shape[:2]
    assert (height, width) == (10 * 29 + 1, 3 * 29 + 1)
    assert Path(_cli(["sample", run_dir, "--condition", "y=3", "--out", tmp_path / "three.png"], capsys).strip()).is_file()
    # the label reaches the decoder: the same z (seed) decoded with y = 3 and y = 7 gives different images
    run = load_run(run_dir)
    x_like = run.load_data().test[:8]
    three = prior_means(run.model, x_like, seed=0, inputs={"y": torch.full((8,), 3)})
    seven = prior_means(run.model, x_like, seed=0, inputs={"y": torch.full((8,), 7)})
    assert (three - seven).abs().max() > 1e-3


def test_vampprior_shares_the_encoder_trains_and_reloads(tmp_path, capsys):
    run_dir = tmp_path / "vamp"
    _train_example("vampprior", run_dir, capsys, "--model-kwargs", '{"num_pseudo_inputs": 20}')
    _trained_bound_beats_initial(run_dir, capsys)
    run = load_run(run_dir)
    assert run.guide.encoder is run.model.encoder  # one module, rebuilt shared by load_run
    config = json.loads((run_dir / "config.json").read_text())
    assert "model" not in config["guide_kwargs"]
    # each parameter is optimised once: the shared encoder and the pseudo-inputs in the model's group (theta)
    optimizer = make_optimizer(run.model, run.guide, "adam", 1e-3)
    groups = [{id(p) for p in g["params"]} for g in optimizer.param_groups]
    assert len(groups) == 1 and groups[0] == {id(p) for p in run.model.parameters()}
    assert {id(p) for p in run.guide.parameters()} <= groups[0]
    assert Path(_cli(["sample", run_dir, "--out", tmp_path / "s.png"], capsys).strip()).is_file()


def test_iaf_flow_belongs_to_the_guide_and_is_trained(tmp_path, capsys):
    run_dir = tmp_path / "iaf"
    _train_example("iaf", run_dir, capsys, "--guide-kwargs", '{"flow_hidden_dim": 16, "context_dim": 8}')
    _trained_bound_beats_initial(run_dir, capsys)
    run = load_run(run_dir)
    assert any(k.startswith("flows.") for k in run.guide.state_dict())  # saved with the guide
    # the flow's parameters are phi: in the guide's optimizer group, apart from the model's
    flow = {id(p) for p in run.guide.flows.parameters()}
    optimizer = make_optimizer(run.model, run.guide, "adam", 1e-3)
    theta, phi = ({id(p) for p in g["params"]} for g in optimizer.param_groups)
    assert flow and flow <= phi and not flow & theta
    # estimator B is refused for a flow (no closed-form KL): evaluate reports estimator A only
    assert "test_elbo_analytic" not in _evaluate(run_dir, capsys)
    assert Path(_cli(["sample", run_dir, "--out", tmp_path / "s.png"], capsys).strip()).is_file()


SHARED_SOURCE = '''
import pyro, pyro.distributions as dist, torch
from pyro.nn import PyroModule
from pyro_aevb.plates import data_plate


class SharedModel(PyroModule):
    """p(z) = N(m(e), 1) with m read off the encoder at one learned pseudo-input e; p(x | z) Bernoulli."""

    def __init__(self, data_dim, latent_dim=2):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim, "latent_dim": latent_dim}
        self.encoder = torch.nn.Linear(data_dim, latent_dim)
        self.decoder = torch.nn.Linear(latent_dim, data_dim)
        self.pseudo_input = torch.nn.Parameter(torch.full((data_dim,), 0.5))

    def forward(self, x, idx=None, num_data=None):
        loc = self.encoder(self.pseudo_input)
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)


class SharedGuide(PyroModule):
    """q(z | x) = N(encoder(x), 1) with the model's encoder."""

    def __init__(self, data_dim, model):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim}
        self.encoder = model.encoder

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            pyro.sample("z", dist.Normal(self.encoder(x), 1.0).to_event(1))
'''


@pytest.fixture
def shared_module(tmp_path):
    path = tmp_path / "shared_models.py"
    path.write_text(SHARED_SOURCE)
    rows = (np.random.default_rng(0).random((60, 6)) < 0.3).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    return path, tmp_path / "rows.npy"


def _shares(model, guide):
    """The guide's encoder is the model's (one module), and an update through the guide is seen by the model."""
    if guide.encoder is not model.encoder:
        return False
    with torch.no_grad():
        guide.encoder.bias.add_(1.0)
    return torch.equal(model.encoder.bias, guide.encoder.bias)


def test_a_guide_that_takes_model_is_given_it_by_the_cli_and_load_run(shared_module, tmp_path, capsys):
    """Property: a guide class whose constructor takes ``model`` is built with the run's model (train), and rebuilt
    with the rebuilt model (load_run) or with the model instance given to load_run; ``model`` is never recorded."""
    path, rows = shared_module
    run_dir = tmp_path / "cli"
    _cli(["train", "--dataset", rows, "--model", f"{path}:SharedModel", "--guide", f"{path}:SharedGuide",
          "--elbo", "trace", "--optimizer", "adam", "--lr", "1e-2", "--epochs", 2, "--no-progress", "--out", run_dir],
         capsys)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["guide_kwargs"] == {} and "model" not in config["model_kwargs"]
    run = load_run(run_dir)
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    assert torch.equal(run.model.encoder.weight, saved["encoder.weight"])  # the trained weights, shared
    assert _shares(run.model, run.guide)
    given = load_run(run_dir, model=run.model.__class__(6))
    assert torch.equal(given.model.encoder.weight, saved["encoder.weight"]) and _shares(given.model, given.guide)
    assert math.isfinite(_evaluate(run_dir, capsys)["test_elbo_trace"])


def test_a_python_run_of_a_shared_guide_reloads_shared(shared_module, tmp_path, monkeypatch):
    """From Python the user builds ``Guide(data_dim, model)`` and the Trainer records only ``init_kwargs``;
    ``load_run`` rebuilds the model first and hands it to the guide."""
    path, rows = shared_module
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "shared_models", raising=False)
    module = importlib.import_module("shared_models")
    model = module.SharedModel(6)
    guide = module.SharedGuide(6, model)
    Trainer(model, guide, load_array_file(str(rows)), elbo="trace", optimizer="adam", lr=1e-2, batch_size=10,
            run_dir=tmp_path / "py", progress=False).fit(epochs=1)
    run = load_run(tmp_path / "py")
    assert torch.equal(run.model.encoder.weight, model.encoder.weight) and _shares(run.model, run.guide)
