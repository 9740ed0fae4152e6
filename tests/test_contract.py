"""The model/guide contract: a user's own model works everywhere, or is refused with the fix in the message.

Models here are written in tests/user_models.py (own site names, two latents, a second plate) or inline, never
only the built-ins.  Each test states the property it checks.
"""

import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb import (AevbInputError, Dataset, RunConfig, Trainer, check_model_guide, evaluate_bound, evaluate_run,
                       hmc_log_likelihood, load_run, log_likelihood, prior_means, reconstruct)
from pyro_aevb.cli import main
from pyro_aevb.evaluation import log_weights
from pyro_aevb.guides import AmortizedNormalGuide, FullVBGuide, get_guide
from pyro_aevb.infer import ImportanceWeightedELBO, MonteCarloEM, WakeSleep
from pyro_aevb.models import BayesianVAEModel, VAEModel
from pyro_aevb.plates import data_plate

sys.path.insert(0, str(Path(__file__).parent))
from user_models import (MinibatchPlateGuide, MinibatchPlateModel, TwoLatentGuide,  # noqa: E402
                         TwoLatentModel)

USER_MODELS = Path(__file__).parent / "user_models.py"


@pytest.fixture(scope="module")
def binary(mnist):
    """2,000 / 500 statically binarised MNIST images, downsampled to 14x14 (196 pixels) to keep runs short."""
    g = torch.Generator().manual_seed(0)

    def prep(x):
        x = torch.nn.functional.avg_pool2d(x.reshape(-1, 1, 28, 28), 2).reshape(len(x), -1)
        return torch.bernoulli(x, generator=g)

    return Dataset("mnist14", prep(mnist.train[:2000]), prep(mnist.test[:500]), (14, 14))


# ----------------------------------------------------------------------------- refusals


def test_a_plate_sized_by_the_minibatch_is_refused_with_the_fix(binary):
    """pyro.plate("data", len(x)) makes the bound depend on the chunk size; the trainer and the evaluators
    refuse it and name data_plate(x, idx, num_data) as the fix."""
    model, guide = MinibatchPlateModel(196), MinibatchPlateGuide(196)
    for call in (lambda: Trainer(model, guide, binary, progress=False),
                 lambda: evaluate_bound(model, guide, binary.test),
                 lambda: log_likelihood(model, guide, binary.test, num_samples=2)):
        with pytest.raises(AevbInputError, match=r"plate 'data' of size 2.*data_plate\(x, idx, num_data\)"):
            call()


def test_a_site_weighted_by_poutine_scale_is_refused_and_subsampled_plates_are_not(binary):
    """A poutine.scale around a site reweights its term, so no reported number would be the bound of eq. (3):
    the trainer and the evaluators refuse it (model or guide, a number or a tensor) -- while the N/M of the
    data plate and of a user's own subsampled plate, the scales Pyro's plates make, are accepted."""

    class Scaled(TwoLatentModel):
        def __init__(self, data_dim, weight):
            super().__init__(data_dim)
            self.weight = weight

        def forward(self, x, idx=None, num_data=None):
            with poutine.scale(scale=self.weight):
                return super().forward(x, idx, num_data)

    class ScaledGuide(TwoLatentGuide):
        def forward(self, x, idx=None, num_data=None):
            with poutine.scale(scale=2.0):
                return super().forward(x, idx, num_data)

    class SubsampledPixels(TwoLatentModel):  # a plate of the user's own, subsampled: Pyro scales by 196 / 98
        def forward(self, x, idx=None, num_data=None):
            with data_plate(x, idx, num_data, dim=-2):
                style = pyro.sample("style", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
                content = pyro.sample("content", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
                logits = self.decoder(torch.cat([style, content], -1).squeeze(-2))
                with pyro.plate("pixels", self.data_dim, dim=-1, subsample=torch.arange(0, self.data_dim, 2)) as i:
                    pyro.sample("image", dist.Bernoulli(logits=logits[..., i]), obs=x[..., i])

    guide = TwoLatentGuide(196)
    per_row = torch.tensor([[2.0], [1.0]])  # a weight per row of the two the check runs on
    for model, role, weight in ((Scaled(196, 0.5), "model", "0.5"),
                                (Scaled(196, per_row), "model", "a tensor (e.g. 2)"),
                                (TwoLatentModel(196), "guide", "2")):
        g = ScaledGuide(196) if role == "guide" else guide
        for call in (lambda: Trainer(model, g, binary, progress=False),
                     lambda: evaluate_bound(model, g, binary.test),
                     lambda: log_likelihood(model, g, binary.test, num_samples=2)):
            with pytest.raises(AevbInputError, match=rf"of the {role} is weighted by {re.escape(weight)} beyond"):
                call()
    check_model_guide(SubsampledPixels(196), guide, binary.test, "trace")


def test_a_guide_that_opens_the_data_plate_twice_is_told_to_open_it_once(binary):
    """Two data_plate blocks in one program are two Pyro sites named 'data': the refusal says to open it once."""

    class TwoPlates(TwoLatentGuide):
        def forward(self, x, idx=None, num_data=None):
            loc, log_scale = self.encoder(x).unsqueeze(-2).chunk(2, dim=-1)
            with data_plate(x, idx, num_data, dim=-2):
                pyro.sample("style", dist.Normal(loc[..., :2], log_scale[..., :2].exp()).to_event(1))
            with data_plate(x, idx, num_data, dim=-2):
                pyro.sample("content", dist.Normal(loc[..., 2:], log_scale[..., 2:].exp()).to_event(1))

    with pytest.raises(AevbInputError, match="the guide opens the 'data' plate twice: open data_plate"):
        check_model_guide(TwoLatentModel(196), TwoPlates(196), binary.test)


def test_a_guide_that_misses_a_latent_is_refused(binary):
    class OneLatentGuide(TwoLatentGuide):
        def forward(self, x, idx=None, num_data=None):
            with data_plate(x, idx, num_data, dim=-2):
                loc, log_scale = self.encoder(x).unsqueeze(-2).chunk(2, dim=-1)
                pyro.sample("style", dist.Normal(loc[..., :2], log_scale[..., :2].exp()).to_event(1))

    with pytest.raises(AevbInputError, match="does not sample the model's latent site.*'content'"):
        Trainer(TwoLatentModel(196), OneLatentGuide(196), binary, progress=False)


def test_a_guide_that_draws_a_latent_with_another_shape_is_named_not_the_model(binary):
    """The model fails at the guide's 4-d draw of 'style' (its decoder takes 2 + 3 inputs) but runs on its own
    2-d prior draw: the message names the guide's site and both shapes, not a matrix product in the model."""
    class WideStyleGuide(TwoLatentGuide):
        def __init__(self):
            super().__init__(196)
            self.encoder = nn.Sequential(nn.Linear(196, 32), nn.Tanh(), nn.Linear(32, 14))

        def forward(self, x, idx=None, num_data=None):
            with data_plate(x, idx, num_data, dim=-2):
                loc, log_scale = self.encoder(x).unsqueeze(-2).chunk(2, dim=-1)
                pyro.sample("style", dist.Normal(loc[..., :4], log_scale[..., :4].exp()).to_event(1))
                pyro.sample("content", dist.Normal(loc[..., 4:], log_scale[..., 4:].exp()).to_event(1))

    with pytest.raises(AevbInputError, match=r"guide draws site 'style' with shape \[2, 1, 4\] where the model's "
                                             r"prior draws \[2, 1, 2\]"):
        Trainer(TwoLatentModel(196), WideStyleGuide(), binary, progress=False)


def test_budgets_and_rates_that_cannot_train_are_refused_and_a_reached_budget_says_so(binary, tmp_path):
    """fit(epochs=0), a negative or fractional budget, and a rate <= 0 are one AevbInputError each (the CLI's
    checks, from Python); fit to a budget the run has already passed trains nothing and warns."""
    trainer = Trainer(TwoLatentModel(196), TwoLatentGuide(196), binary, progress=False, optimizer="adam", lr=1e-3)
    for budget in ({"epochs": 0}, {"epochs": -1}, {"train_samples": 0}, {"epochs": 1.5},
                   {"train_samples": float("inf")}):
        with pytest.raises(AevbInputError, match="must be a whole number >= 1"):
            trainer.fit(**budget)
    for lr in (0.0, -1.0, float("nan")):
        with pytest.raises(AevbInputError, match="learning rate must be a finite number > 0"):
            Trainer(TwoLatentModel(196), TwoLatentGuide(196), binary, progress=False, lr=lr)
    with pytest.raises(AevbInputError, match="prior precision.*>= 0"):
        Trainer(TwoLatentModel(196), TwoLatentGuide(196), binary, progress=False, prior_precision=-1.0)
    rows = trainer.fit(train_samples=200)
    with pytest.warns(RuntimeWarning, match=r"already seen 200 training samples \(epoch 1\).*nothing was trained"):
        assert trainer.fit(train_samples=100) == rows
    with pytest.raises(AevbInputError, match="epochs must be a whole number >= 1, got '2'"):
        trainer.fit(epochs="2")
    for name, value in (("batch_size", 1.5), ("batch_size", True), ("batch_size", 0), ("num_particles", 0),
                        ("eval_every", 0.5)):
        with pytest.raises(AevbInputError, match=f"{name} must be a whole number >= 1"):
            Trainer(TwoLatentModel(196), TwoLatentGuide(196), binary, progress=False, **{name: value})
    with pytest.raises(AevbInputError, match="the model is None"):
        Trainer(None, TwoLatentGuide(196), binary, progress=False)
    with pytest.raises(AevbInputError, match=r"data must be a pyro_aevb.Dataset .*got Tensor: e.g. Dataset\("):
        Trainer(TwoLatentModel(196), TwoLatentGuide(196), binary.train, progress=False)


def test_one_datapoint_given_without_its_row_dimension_is_named_with_the_fix(binary):
    """x of shape [D] is D rows of one value each (a model of scalars may take it): where the model fails on it, the
    message says so and how to give one datapoint (x[None]), rather than only the model's matrix error; a batch
    size above the training rows warns that an epoch is one step."""
    model, guide = TwoLatentModel(196), TwoLatentGuide(196)
    with pytest.raises(AevbInputError, match=r"x is one-dimensional, .* give x\[None\]"):
        evaluate_bound(model, guide, binary.test[0])
    assert math.isfinite(evaluate_bound(model, guide, binary.test[0][None]))
    with pytest.warns(RuntimeWarning, match="batch_size 5000 is more than the 2000 training rows"):
        Trainer(model, guide, binary, progress=False, batch_size=5000)


def test_a_python_resume_with_other_settings_is_refused_and_config_json_agrees_with_the_checkpoint(binary, tmp_path):
    """Trainer(..., resume=True) continues a run with its own settings: another batch size, seed, optimiser or weight
    decay is refused (one AevbInputError naming both values) and the run directory is left as it was; a new lr
    is allowed, and config.json records it only with the checkpoint that used it (a resume that trains nothing
    leaves both as they were); a resume that gives no lr keeps the run's; Ctrl-C in fit says which checkpoint
    is kept; a refused run directory is left as it was (a missing one is not made, no .lock is left)."""
    run = tmp_path / "run"

    def trainer(**changed):
        settings = {"optimizer": "adam", "guide_weight_decay": 0.5, "run_dir": run, **changed}
        return Trainer(TwoLatentModel(196), TwoLatentGuide(196), binary, progress=False, model_kwargs={"data_dim": 196},
                       guide_kwargs={"data_dim": 196}, **settings)

    trainer(lr=1e-3).fit(epochs=1)
    before = {f.name: f.read_bytes() for f in run.iterdir()}
    for changed, recorded in (({"batch_size": 50}, "batch_size=100 (run) vs 50"), ({"seed": 1}, "seed=0 (run) vs 1"),
                              ({"guide_weight_decay": 0.0}, "guide_weight_decay=0.5 (run) vs 0.0"),
                              ({"optimizer": "adagrad"}, "optimizer='adam' (run) vs 'adagrad'")):
        with pytest.raises(AevbInputError, match=re.escape(recorded)) as refused:
            trainer(resume=True, **changed)
        assert {f.name: f.read_bytes() for f in run.iterdir()} == before, changed
        named = str(refused.value).split("(only ")[1].split(" may change")[0].split(", ")  # settings that exist
        assert "lr" in named and set(named) <= {f.name for f in dataclasses.fields(RunConfig)}, named
    with pytest.warns(RuntimeWarning, match="nothing was trained"):
        trainer(resume=True, lr=5e-4).fit(epochs=1)
    assert json.loads((run / "config.json").read_text())["lr"] == 1e-3  # nothing trained at 5e-4
    trainer(resume=True, lr=5e-4).fit(epochs=2)
    assert json.loads((run / "config.json").read_text())["lr"] == 5e-4 == load_run(run).config.lr
    rows = trainer(resume=True).fit(epochs=3)  # lr not given: the run's own, as the CLI's --resume without --lr
    assert [row["lr"] for row in rows] == [1e-3, 5e-4, 5e-4]
    def ctrl_c(trainer, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as stopped:  # Ctrl-C after epoch 4's checkpoint: the note says so
        trainer(resume=True, callbacks=[ctrl_c]).fit(epochs=5)
    if sys.version_info >= (3, 11):
        assert f"the checkpoint of epoch 4 is in {run}" in "".join(stopped.value.__notes__)
    with pytest.raises(AevbInputError, match="does not exist: there is no run to resume"):
        trainer(resume=True, run_dir=tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "empty").mkdir()  # a refusal makes nothing in an existing folder either: no .lock is left
    with pytest.raises(AevbInputError, match="holds no checkpoint"):
        trainer(resume=True, run_dir=tmp_path / "empty")
    (run / ".lock").unlink()  # a run copied without its lock, started afresh by mistake: refused, left as it was
    with pytest.raises(AevbInputError, match="already holds a run"):
        trainer()
    assert not any((tmp_path / "empty").iterdir()) and not (run / ".lock").exists()


class _PoissonModel(PyroModule):
    def __init__(self):
        super().__init__()
        self.w = nn.Linear(1, 196)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            k = pyro.sample("count", dist.Poisson(3.0))
            pyro.sample("x", dist.Bernoulli(logits=self.w(k.unsqueeze(-1))).to_event(1), obs=x)


class _PoissonGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.rate = nn.Linear(196, 1)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            pyro.sample("count", dist.Poisson(nn.functional.softplus(self.rate(x)).squeeze(-1) + 0.1))


def test_a_latent_that_cannot_be_reparameterized_is_refused_under_estimator_a(binary):
    with pytest.raises(AevbInputError, match="'count'.*cannot be reparameterized"):
        Trainer(_PoissonModel(), _PoissonGuide(), binary, elbo="trace", progress=False)


@pytest.mark.parametrize("family", ["studentt", "logistic", "lognormal"])
def test_estimator_b_without_a_closed_form_kl_is_refused_everywhere(binary, family, tmp_path):
    """Pyro's TraceMeanField_ELBO would silently sample these KLs; the trainer (fused or Pyro path) and
    evaluate_bound refuse estimator B instead."""
    model, guide = VAEModel(196, 2, (20,)), get_guide(family, 196, 2, (20,))
    for backend in ("auto", "graph", "pyro"):
        with pytest.raises(AevbInputError, match="closed form"):
            Trainer(model, guide, binary, elbo="analytic", backend=backend, progress=False)
    with pytest.raises(AevbInputError, match="closed form"):
        evaluate_bound(model, guide, binary.test, "analytic")


def test_evaluate_never_labels_a_monte_carlo_number_analytic(binary, tmp_path):
    """A run whose guide has no closed-form KL reports estimator A only."""
    data_file = tmp_path / "d.npy"
    np.save(data_file, binary.train[:300].numpy())
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(data_file), "--guide", "studentt", "--elbo", "trace", "--latent-dim", "2",
                 "--hidden-dim", "20", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    result = evaluate_run(load_run(out))
    assert "test_elbo_trace" in result and not any("analytic" in k for k in result)


def test_a_free_pyro_param_is_refused(binary):
    """A pyro.param that no module owns would never be trained by an optimiser over the modules' parameters."""

    class FreeParamModel(TwoLatentModel):
        def forward(self, x, idx=None, num_data=None):
            pyro.param("temperature", torch.tensor(1.0))
            return super().forward(x, idx, num_data)

    with pytest.raises(AevbInputError, match="'temperature'.*belongs to no torch.nn.Module"):
        Trainer(FreeParamModel(196), TwoLatentGuide(196), binary, progress=False)


def test_global_latents_are_refused_by_the_per_datapoint_estimators(binary):
    """IWAE, importance sampling, HMC, wake-sleep and MCEM are per-datapoint; with theta outside the data
    plate they would add log p(theta) - log q(theta) to every weight, so they refuse it."""
    model = BayesianVAEModel(196, 2, (10,))
    guide = FullVBGuide(model, get_guide("normal", 196, 2, (10,)))
    x = binary.test[:20]
    with pytest.raises(AevbInputError, match="global latent"):
        Trainer(model, guide, binary, elbo="iwae", num_particles=3, progress=False)
    with pytest.raises(AevbInputError, match="global latent"):
        log_likelihood(model, guide, x, num_samples=4)
    with pytest.raises(AevbInputError, match="global latent"):
        hmc_log_likelihood(model, x, num_samples=2, num_warmup=0)
    with pytest.raises(AevbInputError, match="global latent"):
        WakeSleep(model, guide, x)
    with pytest.raises(AevbInputError, match="global latent"):
        MonteCarloEM(model, x)


def test_a_model_that_cannot_be_called_as_the_contract_says_is_one_clear_error(binary):
    class NoIdx(PyroModule):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 196)

        def forward(self, x):
            return x

    with pytest.raises(AevbInputError, match=r"the guide failed on two rows.*must accept the arguments"):
        Trainer(VAEModel(196, 2, (10,)), NoIdx(), binary, progress=False)


# ----------------------------------------------------------------------------- parameters belong to modules


def test_two_models_never_share_parameters_and_svi_trains_the_one_it_is_given(binary):
    """The notebook sequence: evaluate model 1 with the library, then train model 2 with pyro.infer.SVI;
    model 2 changes and model 1 does not.  Then SVI on model 1 changes model 1 and leaves model 2."""
    pyro.clear_param_store()
    m1, g1 = VAEModel(196, 2, (10,)), AmortizedNormalGuide(196, 2, (10,))
    evaluate_bound(m1, g1, binary.test[:50])
    m2, g2 = VAEModel(196, 2, (10,)), AmortizedNormalGuide(196, 2, (10,))
    w1, w2 = m1.decoder[0].weight.detach().clone(), m2.decoder[0].weight.detach().clone()
    svi = SVI(m2, g2, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    for _ in range(3):
        svi.step(binary.train[:50])
    assert torch.equal(m1.decoder[0].weight, w1)
    assert not torch.equal(m2.decoder[0].weight, w2)
    w2 = m2.decoder[0].weight.detach().clone()
    svi1 = SVI(m1, g1, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    for _ in range(3):
        svi1.step(binary.train[:50])
    assert not torch.equal(m1.decoder[0].weight, w1)
    assert torch.equal(m2.decoder[0].weight, w2)
    pyro.clear_param_store()


def test_library_calls_leave_the_global_param_store_empty(binary):
    pyro.clear_param_store()
    model, guide = TwoLatentModel(196), TwoLatentGuide(196)
    Trainer(model, guide, binary, elbo="trace", progress=False).fit(train_samples=200)
    evaluate_bound(model, guide, binary.test[:20], "trace")
    log_likelihood(model, guide, binary.test[:5], num_samples=3)
    assert len(pyro.get_param_store()) == 0


# ----------------------------------------------------------------------------- no fixed structure


def test_importance_weights_of_a_model_with_two_latents_and_a_second_plate_equal_a_hand_computation(binary):
    """log w_k = log p(x, style_k, content_k) - log q(style_k, content_k | x), summed over the pixel plate,
    one number per datapoint and draw; recomputed here from the distributions by hand on the same draws."""
    model, guide = TwoLatentModel(196), TwoLatentGuide(196)
    x = binary.test[:4]
    torch.manual_seed(1)
    lw = log_weights(model, guide, x, num_samples=3)
    assert lw.shape == (3, 4)
    torch.manual_seed(1)
    with torch.no_grad():
        loc, log_scale = guide.encoder(x).chunk(2, dim=-1)
        q_style = dist.Normal(loc[:, :2], log_scale[:, :2].exp()).to_event(1)
        q_content = dist.Normal(loc[:, 2:], log_scale[:, 2:].exp()).to_event(1)
        # the guide draws style then content, each [K, M, 1, d] with the particle dim at -3
        style = q_style.sample((3,))
        content = q_content.sample((3,))
        logits = model.decoder(torch.cat([style, content], -1))
        expected = (dist.Normal(0.0, 1.0).log_prob(style).sum(-1) + dist.Normal(0.0, 1.0).log_prob(content).sum(-1)
                    + dist.Bernoulli(logits=logits).log_prob(x).sum(-1)
                    - q_style.log_prob(style) - q_content.log_prob(content))
    assert torch.allclose(lw, expected, atol=1e-4), (lw, expected)


def test_iwae_bound_lies_between_the_elbo_and_the_likelihood_for_a_user_model(binary):
    """E[L_K] rises with K: ELBO (K=1) <= IWAE (K=5) <= IS log p(x) (K=500), on average over 200 images;
    the differences (nats) are far above their Monte Carlo error at these sizes."""
    torch.manual_seed(0)
    model, guide = TwoLatentModel(196), TwoLatentGuide(196)
    Trainer(model, guide, binary, elbo="trace", progress=False).fit(epochs=1)
    x = binary.test[:200]
    elbo = evaluate_bound(model, guide, x, "trace", num_particles=20)
    iwae = evaluate_bound(model, guide, x, "iwae", num_particles=5)
    ll = log_likelihood(model, guide, x, num_samples=500).mean
    assert elbo < iwae < ll + 0.05, (elbo, iwae, ll)


def test_hmc_estimator_and_mcem_and_wake_sleep_run_on_a_user_model(binary):
    """The appendix-D estimator, wake-sleep and MCEM use the traces (two latent sites, data plate at -2)."""
    torch.manual_seed(0)
    model, guide = TwoLatentModel(196), TwoLatentGuide(196)
    x = binary.test[:10]
    ll = hmc_log_likelihood(model, x, num_samples=5, num_warmup=5)
    assert ll.per_datapoint.shape == (10,) and math.isfinite(ll.mean)
    before = evaluate_bound(model, guide, binary.test, "analytic")
    Trainer(model, guide, binary, elbo=WakeSleep(model, guide, binary.train), progress=False).fit(epochs=2)
    assert evaluate_bound(model, guide, binary.test, "analytic") > before + 10
    em = MonteCarloEM(TwoLatentModel(196), binary.train)
    assert em.z.shape == (2000, 5)
    Trainer(em._programs[0], None, binary, elbo=em, progress=False).fit(train_samples=300)


def test_sampling_and_reconstruction_go_through_predictive_for_a_user_model(binary):
    model, guide = TwoLatentModel(196), TwoLatentGuide(196)
    x = binary.test[:6]
    samples = prior_means(model, x, seed=0)
    again = prior_means(model, x, seed=0)
    recon = reconstruct(model, guide, x, seed=0)
    assert samples.shape == x.shape and recon.shape == x.shape
    assert torch.equal(samples, again)  # seeded
    assert ((samples >= 0) & (samples <= 1)).all()


# ----------------------------------------------------------------------------- user models, trained and reloaded


def test_a_user_model_trains_from_python_and_its_run_reloads(binary, tmp_path):
    """Trainer creates its run directory, records the classes and their arguments; load_run rebuilds them
    (the guide from its init_kwargs, the model from model_kwargs) with the trained weights."""
    torch.manual_seed(0)
    model, guide = TwoLatentModel(196, hidden=16), TwoLatentGuide(196, hidden=16)
    before = evaluate_bound(model, guide, binary.test, "analytic")
    run_dir = tmp_path / "new" / "run"
    trainer = Trainer(model, guide, binary, elbo="analytic", lr=0.05, run_dir=run_dir,
                      model_kwargs={"data_dim": 196, "hidden": 16}, progress=False)
    trainer.fit(epochs=3)
    after = evaluate_bound(model, guide, binary.test, "analytic")
    # 3 epochs on 2,000 binary 14x14 digits: at init every pixel costs ~log 2 (136 nats); a decoder that
    # learnt only the mean image already gains > 30 nats
    assert after > before + 30, (before, after)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "user_models:TwoLatentModel" and config["guide_kwargs"] == {"data_dim": 196, "hidden": 16}
    run = load_run(run_dir)
    for a, b in zip(run.model.parameters(), model.parameters()):
        assert torch.equal(a, b)
    assert evaluate_bound(run.model, run.guide, binary.test, "trace", num_particles=1) == pytest.approx(
        evaluate_bound(model, guide, binary.test, "trace"), abs=1.0)


def test_a_builtin_vae_trained_from_python_reloads_by_load_run_and_the_cli(mnist_small, tmp_path):
    """Previously a raw size-mismatch RuntimeError: now the built-in classes record their own arguments."""
    model = VAEModel(784, 3, (30,), init="torch")
    guide = AmortizedNormalGuide(784, 3, (30,), init="torch")
    run_dir = tmp_path / "py"
    Trainer(model, guide, mnist_small, run_dir=run_dir, progress=False).fit(train_samples=500)
    run = load_run(run_dir)
    assert run.model.latent_dim == 3 and torch.equal(run.model.decoder[0].weight, model.decoder[0].weight)
    assert main(["sample", str(run_dir), "--num-samples", "4"]) == 0
    assert (run_dir / "samples.png").stat().st_size > 0


def test_a_notebook_class_reloads_with_instances(binary, tmp_path):
    """A class defined in __main__ cannot be imported again: load_run says so and accepts instances."""

    class LocalModel(TwoLatentModel):
        pass

    LocalModel.__module__ = "__main__"
    model, guide = LocalModel(196), TwoLatentGuide(196)
    run_dir = tmp_path / "nb"
    with pytest.warns(RuntimeWarning, match="constructor arguments are unknown"):
        trainer = Trainer(model, guide, binary, elbo="trace", run_dir=run_dir, progress=False)
    trainer.fit(train_samples=200)
    with pytest.raises(AevbInputError, match="pass the instance"):
        load_run(run_dir)
    run = load_run(run_dir, model=LocalModel(196), guide=TwoLatentGuide(196))
    assert torch.equal(run.model.decoder[0].weight, model.decoder[0].weight)


def test_a_class_whose_constructor_takes_nothing_records_empty_arguments_without_a_warning(binary, tmp_path):
    """``Decoder()`` in the README's style: nothing to record, so config.json records ``{}`` and there is no
    "arguments unknown" warning; a constructor with a parameter (even with a default) stays unknown."""
    import warnings

    from pyro_aevb.specs import recorded_kwargs

    class NoArguments(TwoLatentModel):
        def __init__(self):
            super().__init__(196)

    class SomeArguments(TwoLatentModel):
        def __init__(self, width=196):
            super().__init__(width)

    assert recorded_kwargs(NoArguments(), None) == {} and recorded_kwargs(SomeArguments(), None) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        Trainer(NoArguments(), TwoLatentGuide(196), binary, elbo="trace", run_dir=tmp_path / "r",
                progress=False).fit(train_samples=100)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model_kwargs"] == {}


def test_a_user_model_trains_from_the_cli_by_import_path_and_evaluate_sample_load_run_work(binary, tmp_path):
    data_file = tmp_path / "digits.npy"
    np.save(data_file, binary.train[:600].reshape(-1, 14, 14).numpy())
    out = tmp_path / "cli_run"
    cmd = [sys.executable, "-m", "pyro_aevb", "train", "--dataset", str(data_file),
           "--model", f"{USER_MODELS}:TwoLatentModel", "--model-kwargs", '{"hidden": 16}',
           "--guide", "user_models:TwoLatentGuide", "--guide-kwargs", '{"hidden": 16}',
           "--elbo", "trace", "--epochs", "2", "--batch-size", "50", "--no-progress", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent, timeout=300)
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model_kwargs"] == {"hidden": 16} and config["data_dim"] == 196
    resumed = subprocess.run([c if c != "2" else "3" for c in cmd] + ["--resume"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["epoch"] == 3
    ev = subprocess.run([sys.executable, "-m", "pyro_aevb", "evaluate", str(out), "--json", "--iw-samples", "10"],
                        capture_output=True, text=True, cwd=Path(__file__).parent, timeout=300)
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["test_elbo_analytic"] <= result["test_log_likelihood"] + 1.0
    sa = subprocess.run([sys.executable, "-m", "pyro_aevb", "sample", str(out), "--num-samples", "9"],
                        capture_output=True, text=True, cwd=Path(__file__).parent, timeout=300)
    assert sa.returncode == 0, sa.stderr
    assert (out / "samples.png").exists()
    run = load_run(out)
    assert type(run.model).__name__ == "TwoLatentModel"
    # a class that does not exist: one line, exit 2
    bad = subprocess.run(cmd[:-1] + [str(tmp_path / "bad")], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)  # from elsewhere, user_models is not importable
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "user_models" in bad.stderr


@pytest.mark.parametrize("init", ["paper", "torch"])
def test_init_paper_is_n_0_001_and_torch_is_pytorchs_default(init):
    torch.manual_seed(0)
    model = VAEModel(784, 20, (500,), init=init)
    std = model.decoder[0].weight.std().item()
    # paper: std 0.01 exactly in distribution (10,000 weights: +-2%); torch: Kaiming-uniform bound 1/sqrt(20),
    # std 1/sqrt(60) = 0.129
    assert std == pytest.approx(0.01 if init == "paper" else 1 / math.sqrt(60), rel=0.05)


def test_check_model_guide_reports_the_structure(binary):
    s = check_model_guide(TwoLatentModel(196), TwoLatentGuide(196), binary.train, "analytic")
    assert s.local_latents == ("style", "content") and s.observed == ("image",)
    assert s.max_plate_nesting == 2 and s.data_dim == -2 and s.particle_dim == -3 and not s.global_latents
    assert ImportanceWeightedELBO(num_particles=2).loss(TwoLatentModel(196), TwoLatentGuide(196), binary.test[:5]) > 0


def test_dynamic_binarization_with_a_user_bernoulli_model_and_applications_check_the_data(mnist, tmp_path):
    """A Bernoulli model of yours on grey images: refused with the fix, accepted with --binarize dynamic (the
    one-time checks see binarised rows); an application given grey data for that model is one line, status 2."""
    data_file = tmp_path / "grey.npy"
    np.save(data_file, mnist.train[:400].numpy())
    base = ["train", "--dataset", str(data_file), "--model", f"{USER_MODELS}:TwoLatentModel", "--guide",
            f"{USER_MODELS}:TwoLatentGuide", "--elbo", "trace", "--train-samples", "200", "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "grey")]) == 2
    assert main(base + ["--binarize", "dynamic", "--out", str(tmp_path / "dyn")]) == 0
    binary_file = tmp_path / "binary.npy"
    np.save(binary_file, torch.bernoulli(mnist.train[:400], generator=torch.Generator().manual_seed(0)).numpy())
    base[2] = str(binary_file)
    assert main(base + ["--out", str(tmp_path / "bin")]) == 0
    for command in (["inpaint", "--mask", "top-half"], ["denoise", "--noise", "gaussian:0.3"]):
        assert main([command[0], str(tmp_path / "bin"), *command[1:], "--num-images", "5", "--num-samples", "4",
                     "--dataset", str(data_file)]) == 2


def test_user_errors_in_constructors_data_and_arguments_are_one_clear_line(binary, tmp_path, capsys):
    """Whatever a model's constructor raises is status 2 (not an internal error), as is a model class that is not
    a torch.nn.Module; NaN data and a data width
    that does not fit the model are named as such; prior_means needs rows of data, not a count."""
    data_file = tmp_path / "d.npy"
    np.save(data_file, binary.train[:100].numpy())
    status = main(["train", "--dataset", str(data_file), "--model", f"{USER_MODELS}:TwoLatentModel",
                   "--model-kwargs", '{"hidden": -3}', "--guide", f"{USER_MODELS}:TwoLatentGuide",
                   "--train-samples", "50", "--no-progress", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and "cannot build the model" in err and "RuntimeError" in err
    (tmp_path / "plain.py").write_text("class Model:\n    def __call__(self, x, idx=None, num_data=None):\n"
                                       "        pass\n")  # a callable, not a torch.nn.Module
    status = main(["train", "--dataset", str(data_file), "--model", f"{tmp_path / 'plain.py'}:Model", "--guide",
                   f"{USER_MODELS}:TwoLatentGuide", "--train-samples", "50", "--no-progress", "--out",
                   str(tmp_path / "r")])
    assert status == 2 and "must be a torch.nn.Module" in capsys.readouterr().err
    nan = binary.train[:50].clone()
    nan[3, 7] = float("nan")
    nan[9, 0] = float("inf")
    with pytest.raises(AevbInputError, match=re.escape("2 NaN or inf values in 2 of its 50 rows (the first: row 3)")):
        Trainer(TwoLatentModel(196), TwoLatentGuide(196), Dataset("n", nan, binary.test[:10]), progress=False)
    with pytest.raises(AevbInputError, match="shape does not fit.*width of the data"):
        prior_means(TwoLatentModel(196), torch.zeros(3, 190))
    with pytest.raises(AevbInputError, match="tensor of data rows"):
        prior_means(TwoLatentModel(196), 4)


def test_an_exception_in_your_own_guide_is_one_line_naming_your_file(tmp_path, capsys):
    """A guide that does not broadcast over a leading particle dimension passes the one-particle start-up check
    but fails under --elbo iwae: one line, status 2, naming the user's file and line (it used to be status 70,
    "a bug in pyro-aevb")."""
    import numpy as np

    from pyro_aevb.cli import main

    (tmp_path / "mine.py").write_text(
        "import torch, pyro, pyro.distributions as dist\n"
        "from pyro_aevb.plates import data_plate\n"
        "class M(torch.nn.Module):\n"
        "    def __init__(self, data_dim=784):\n"
        "        super().__init__(); self.lin = torch.nn.Linear(2, data_dim)\n"
        "    def forward(self, x, idx=None, num_data=None):\n"
        "        with data_plate(x, idx, num_data):\n"
        "            z = pyro.sample('z', dist.Normal(torch.zeros(x.shape[0], 2), 1.).to_event(1))\n"
        "            pyro.sample('x', dist.ContinuousBernoulli(logits=self.lin(z)).to_event(1), obs=x)\n"
        "class G(torch.nn.Module):\n"
        "    def __init__(self, data_dim=784):\n"
        "        super().__init__(); self.lin = torch.nn.Linear(data_dim, 4)\n"
        "    def forward(self, x, idx=None, num_data=None):\n"
        "        h = self.lin(x)\n"
        "        with data_plate(x, idx, num_data):\n"
        "            z = pyro.sample('z', dist.Normal(h[:, :2], h[:, 2:].exp()).to_event(1))\n"
        "            torch.cat([z, x[..., :1]], -1)  # fails when z has a particle dimension\n")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((200, 784), dtype=np.float32))
    code = main(["train", "--dataset", str(tmp_path / "x.npy"), "--model", f"{tmp_path / 'mine.py'}:M",
                 "--guide", f"{tmp_path / 'mine.py'}:G", "--elbo", "iwae", "--num-particles", "3", "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "mine.py:17" in err and "broadcast" in err
