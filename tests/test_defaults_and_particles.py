"""What a model written by a user gets without asking: the estimator chosen by one rule everywhere, training with
one particle on the traced graph even when the model does not broadcast over a particle dimension, a clear error
where several draws at once are needed, checked dataset shapes, and ``fit``'s rows as a copy.

Every model here is written in the test (``user_models.py`` and the classes below), against the public contract.
"""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb import AevbInputError, Dataset, Trainer, check_model_guide, evaluate_bound, log_likelihood
from pyro_aevb.cli import main
from pyro_aevb.plates import data_plate
from pyro_aevb.rng import seeded

D = 12


class ChainModel(PyroModule):
    """p(top) p(low | top) p(x | low): the model samples the top latent first."""

    def __init__(self):
        super().__init__()
        self.up = nn.Linear(2, 4)
        self.decoder = nn.Linear(2, D)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            top = pyro.sample("top", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            loc, log_scale = self.up(top).chunk(2, -1)
            low = pyro.sample("low", dist.Normal(loc, log_scale.exp()).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(low)).to_event(1), obs=x)


class ChainGuide(PyroModule):
    """q(low | x) q(top | low): the guide samples the low latent first (not the model's order)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(D, 4)
        self.up = nn.Linear(2, 4)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            loc, log_scale = self.encoder(x).chunk(2, -1)
            low = pyro.sample("low", dist.Normal(loc, log_scale.exp()).to_event(1))
            loc, log_scale = self.up(low).chunk(2, -1)
            pyro.sample("top", dist.Normal(loc, log_scale.exp()).to_event(1))


class LabelModel(PyroModule):
    """A conditional model that joins z with the one-hot label as the common examples do, torch.cat([z, y], -1):
    right for one draw per row, wrong for several draws at once (z gains a leading dimension, y does not)."""

    def __init__(self):
        super().__init__()
        self.decoder = nn.Linear(2 + 3, D)

    def forward(self, x, idx=None, num_data=None, y=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            logits = self.decoder(torch.cat([z, nn.functional.one_hot(y, 3).to(x.dtype)], -1))
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)


class LabelGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(D, 4)

    def forward(self, x, idx=None, num_data=None, y=None):
        with data_plate(x, idx, num_data):
            loc, log_scale = self.encoder(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


def _data(n=60, inputs=False):
    g = torch.Generator().manual_seed(0)
    train, test = torch.bernoulli(torch.full((n, D), 0.3), generator=g), torch.bernoulli(torch.full((20, D), 0.3),
                                                                                            generator=g)
    if not inputs:
        return Dataset("toy", train, test)
    return Dataset("toy", train, test, train_inputs={"y": torch.arange(n) % 3}, test_inputs={"y": torch.arange(20) % 3})


def test_the_default_estimator_is_one_rule_for_the_trainer_evaluate_bound_and_the_cli(tmp_path):
    """A guide that samples in another order than the model gets estimator A wherever none is named (B would take
    the KL of ``top`` at the guide's ``low``); a mean-field pair gets B.  The trainer records it, evaluate_bound
    gives the named estimator's number on the same draws, and the CLI writes the same name."""
    data = _data()
    structure = check_model_guide(ChainModel(), ChainGuide(), data.train)
    assert structure.default_estimator == "trace" and not structure.mean_field
    torch.manual_seed(0)
    trainer = Trainer(ChainModel(), ChainGuide(), data, batch_size=20, progress=False)
    trainer.fit(epochs=1)
    assert trainer.config["elbo"] == "trace" and trainer.eval_estimator == "trace"
    with seeded(1, data.test.device):
        default = evaluate_bound(trainer.model, trainer.guide, data.test)
    with seeded(1, data.test.device):
        named = evaluate_bound(trainer.model, trainer.guide, data.test, "trace")
    assert default == named
    with pytest.raises(AevbInputError, match="order"):
        Trainer(ChainModel(), ChainGuide(), data, elbo="analytic", progress=False)
    assert check_model_guide(LabelModel(), LabelGuide(), data.train,
                             inputs={"y": torch.arange(60) % 3}).default_estimator == "analytic"
    path = tmp_path / "data.pt"
    torch.save({"train": data.train, "test": data.test}, path)
    models = __file__
    assert main(["train", "--dataset", str(path), "--model", f"{models}:ChainModel", "--guide",
                 f"{models}:ChainGuide", "--epochs", "1", "--batch-size", "20", "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["elbo"] == "trace"


def test_one_particle_trains_on_the_graph_without_a_particle_dimension_and_several_draws_say_why_they_fail():
    """L = 1 draws z without a particle plate, as Pyro's ELBOs do, so a model that joins z and y with a plain
    torch.cat trains on the traced graph (no fallback); log_likelihood's K draws at once need broadcasting, and the
    error says so in one AevbInputError (its cause: the model's own error); so does the Trainer asked for
    num_particles = 2, when it is built, not at its first step."""
    data = _data(inputs=True)
    trainer = Trainer(LabelModel(), LabelGuide(), data, batch_size=20, progress=False)
    trainer.fit(epochs=1)
    assert trainer.backend == "graph"
    with pytest.raises(AevbInputError, match="one draw per row but fail on 5 draws at once") as info:
        log_likelihood(trainer.model, trainer.guide, data.test, num_samples=5, inputs={"y": data.test_inputs["y"]})
    assert "broadcast" in str(info.value) and isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(AevbInputError, match="one draw per row but fail on 2 draws at once"):  # before any step
        Trainer(LabelModel(), LabelGuide(), data, batch_size=20, num_particles=2, progress=False)


@pytest.mark.parametrize("train, test, says", [
    (torch.rand(10, 5), torch.rand(4, 6), "the train rows are [5] but the test rows are [6]"),
    (torch.rand(10), torch.rand(4, 1), "the train rows have shape [10]"),
    (torch.rand(10, 3, 5), torch.rand(4, 5), "the train rows are [3, 5] but the test rows are [5]"),
])
def test_a_dataset_with_rows_of_other_sizes_is_refused_when_it_is_made(train, test, says):
    with pytest.raises(AevbInputError) as info:
        Dataset("mine", train, test)
    assert says in str(info.value)


def test_fit_returns_a_copy_of_the_rows_and_counts_its_budget_from_the_start_of_the_run():
    """``fit(epochs=1)`` then ``fit(epochs=2)`` trains one more epoch; the first call's rows stay as they were; a
    third ``fit(epochs=2)`` trains nothing and warns."""
    data = _data()
    trainer = Trainer(ChainModel(), ChainGuide(), data, batch_size=20, progress=False)
    first = trainer.fit(epochs=1)
    second = trainer.fit(epochs=2)
    assert len(first) == 1 and len(second) == 2 and second[0] == first[0]
    with pytest.warns(RuntimeWarning, match="nothing was trained"):  # a budget already reached says so
        assert trainer.fit(epochs=2) == second and trainer.train_samples == 2 * 60
