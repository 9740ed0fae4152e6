"""The semi-supervised M2 model (Kingma, Rezende, Mohamed & Welling, 2014) and what it needed from the library:
enumerated discrete latents (contract rule 6, TraceEnum_ELBO), the label protocol and balanced --labels, the
classifier protocol (test_error) and class-conditional samples -- each checked on M2 and, where the library
changed, on a user's model written here.  Fixed seeds; each test states its tolerance and why.
"""

import json
import math
import re

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from PIL import Image
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb import (AevbInputError, Dataset, Trainer, balanced_labels, check_model_guide, condition,
                       evaluate_bound, load_run, log_likelihood, make_elbo)
from pyro_aevb.cli import main
from pyro_aevb.evaluation import classification_error, conditional_means, train_supervised
from pyro_aevb.guides import M2Guide
from pyro_aevb.models import M2Model
from pyro_aevb.plates import data_plate


def pooled(x):
    """14x14 images (2x2 average pooling): four times cheaper networks, the same digits."""
    return nn.functional.avg_pool2d(x.reshape(-1, 1, 28, 28), 2).reshape(len(x), -1)


@pytest.fixture(scope="module")
def mnist14(mnist):
    """MNIST at 14x14 (grey values): 20,000 training and 2,000 test images with their labels."""
    return Dataset("mnist14", pooled(mnist.train[:20000]), pooled(mnist.test[:2000]), (14, 14),
                   train_labels=mnist.train_labels[:20000], test_labels=mnist.test_labels[:2000])


@pytest.fixture(scope="module")
def binary14(mnist14):
    """The same images binarised once (a user's Bernoulli model needs binary data)."""
    g = torch.Generator().manual_seed(0)
    return Dataset("mnist14", torch.bernoulli(mnist14.train[:2000], generator=g),
                   torch.bernoulli(mnist14.test[:500], generator=g), (14, 14))


# ----------------------------------------------------------------------------- labels


def test_labels_are_balanced_deterministic_and_true(mnist):
    """--labels N keeps N/10 of each digit, the same ones every time, with their true labels; the rest are -1."""
    kept = balanced_labels(mnist.train_labels, 100)
    assert int((kept >= 0).sum()) == 100
    assert torch.equal(torch.bincount(kept[kept >= 0], minlength=10), torch.full((10,), 10))
    assert torch.equal(kept[kept >= 0], mnist.train_labels[kept >= 0])
    assert torch.equal(kept, balanced_labels(mnist.train_labels, 100))
    more = balanced_labels(mnist.train_labels, 3000)
    assert torch.equal(torch.bincount(more[more >= 0], minlength=10), torch.full((10,), 300))


@pytest.mark.parametrize("num_labels, message", [(7, "multiple of 10"), (60000, "has 50000 points")])
def test_bad_label_counts_are_refused(mnist, num_labels, message):
    with pytest.raises(AevbInputError, match=message):
        balanced_labels(mnist.train_labels, num_labels)


def test_no_evaluation_sees_a_training_label_even_with_as_many_test_rows_as_training_rows(mnist14):
    """M2 with N_test = N_train = 400 (where the old protocol took a test set of the training set's size for a
    training minibatch): the trainer's metrics report the unlabelled bound -U(x) of every row -- equal to
    evaluate_bound with no labels on the same seed -- and not the labelled bound, which differs by nats; the
    classification term of eq. (9) is reported on its own and is not in the bound."""
    data = Dataset("mnist14", mnist14.train[:400], mnist14.test[:400], (14, 14),
                   train_labels=mnist14.train_labels[:400], test_labels=mnist14.test_labels[:400],
                   train_inputs={"y": mnist14.train_labels[:400]}, test_inputs={"y": mnist14.test_labels[:400]})
    labels = balanced_labels(data.train_labels, 100)
    pyro.set_rng_seed(0)
    model, guide = M2Model(196, 10, 4, (32,)), M2Guide(196, 10, 4, (32,))
    trainer = Trainer(model, guide, data, elbo="trace", optimizer="adam", lr=1e-3, labels=labels, progress=False)
    row = trainer.fit(epochs=1)[-1]
    with torch.no_grad():
        for split, x in (("train", data.train), ("test", data.test)):
            with pyro_aevb_seeded(trainer):
                unlabelled = evaluate_bound(model, guide, x, "trace")
            assert row[f"{split}_elbo"] == pytest.approx(unlabelled, abs=1e-9), (split, row, unlabelled)
            labelled = evaluate_bound(model, condition(guide, {"y": data.inputs(split)["y"]}), x, "trace")
            assert abs(labelled - unlabelled) > 1.0, (labelled, unlabelled)  # log 10 = 2.3 nats for a weak q(y|x)
    assert row["train_classification"] > 0 and "train_objective" not in row


def pyro_aevb_seeded(trainer):
    """The seed the trainer's evaluation of the epoch just finished used."""
    from pyro_aevb.rng import seeded

    return seeded(trainer.seed + 1_000_003 * trainer.epoch, trainer.data.train.device)


# ----------------------------------------------------------------------------- the contract


def test_m2_passes_the_contract_and_refuses_estimators_that_cannot_enumerate(mnist14):
    """y is enumerated in the guide (rule 6): estimator A (TraceEnum_ELBO) and importance sampling accept it,
    estimator B and the IWAE bound refuse it with the fix in the message."""
    model, guide = M2Model(196, 10, 4, (32,)), M2Guide(196, 10, 4, (32,))
    x = mnist14.train
    structure = check_model_guide(model, guide, x, "trace")
    assert structure.local_latents == ("y", "z") and structure.enumerated == ("y",)
    assert check_model_guide(model, guide, x, "importance").enumerated == ("y",)
    for estimator in ("analytic", "iwae"):
        with pytest.raises(AevbInputError, match="cannot sum out.*'y'.*--elbo trace"):
            check_model_guide(model, guide, x, estimator)
    with pytest.raises(AevbInputError, match="cannot sum out"):
        Trainer(model, guide, mnist14, elbo="analytic", progress=False)


def _mc_bounds(model, guide, x, label, draws=4000):
    """Eq. (6) -L(x, y_n) and eq. (7) -U(x) of one row by plain Monte Carlo over z ~ q(z|x,y), y summed."""
    k = model.num_classes
    with torch.no_grad():
        ys = torch.arange(k).unsqueeze(-1).expand(k, draws)
        qz = guide.posterior_z(x.expand(draws, -1), ys)
        z = qz.sample()
        neg_l = (model.likelihood_dist(ys, z).log_prob(x) + math.log(1 / k)
                 + dist.Normal(0., 1.).log_prob(z).sum(-1) - qz.log_prob(z)).mean(-1)  # [K]: -L(x, y)
        q_y = guide.class_logits(x).softmax(-1).squeeze(0)
        return neg_l[label], (q_y * neg_l).sum() - (q_y * q_y.log()).sum()


def test_one_enumerated_program_gives_eq6_for_labelled_and_eq7_for_unlabelled_points(mnist14):
    """With the label known the guide's q(y|x) is a point mass, so TraceEnum_ELBO gives -L(x, y) (eq. 6); unknown,
    it sums y out: -U(x) (eq. 7).  Compared with plain Monte Carlo by hand (4,000 draws of z per class; the two
    estimates differed by at most 0.06 nats over seeds and repeats, against a 0.3 nats tolerance), and the two
    bounds differ by far more than that (-U - (-L) is about log 10 = 2.3 nats for an untrained classifier)."""
    pyro.set_rng_seed(1)
    model, guide = M2Model(196, 10, 4, (32,)), M2Guide(196, 10, 4, (32,))
    labels = balanced_labels(mnist14.train_labels, 100)
    i = int(torch.nonzero(labels >= 0)[0])
    x, idx = mnist14.train[i:i + 1], torch.tensor([i])
    elbo = make_elbo("trace", num_particles=4000, max_plate_nesting=1, enumerate=True)
    n = mnist14.train.shape[0]
    with torch.no_grad():  # the label input of row i is labels[idx]: condition binds it by row
        labelled = -elbo.loss(model, condition(guide, {"y": labels}), x, idx, n) / n  # the plate scales by N
        unlabelled = -elbo.loss(model, guide, x)
    want_labelled, want_unlabelled = _mc_bounds(model, guide, x, int(labels[i]))
    assert abs(labelled - float(want_labelled)) < 0.3, (labelled, want_labelled)
    assert abs(unlabelled - float(want_unlabelled)) < 0.3, (unlabelled, want_unlabelled)
    assert unlabelled - labelled > 1.5


# ----------------------------------------------------------------------------- a user's model


class MixturePriorModel(PyroModule):
    """A user's VAE with a mixture prior, the component c summed out *in the model*:
    p(c) = Cat(1/K), p(z | c) = N(mu_c, I), p(x | z) Bernoulli; the guide q(z|x) never sees c."""

    def __init__(self, data_dim: int, k: int = 3):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim, "k": k}
        self.means = nn.Parameter(torch.randn(k, 2))
        self.decoder = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, data_dim))

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            c = pyro.sample("c", dist.Categorical(logits=x.new_zeros(self.means.shape[0])),
                            infer={"enumerate": "parallel"})
            z = pyro.sample("z", dist.Normal(self.means[c], 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)


class NormalGuide(PyroModule):
    def __init__(self, data_dim: int):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim}
        self.encoder = nn.Sequential(nn.Linear(data_dim, 32), nn.Tanh(), nn.Linear(32, 4))

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            loc, log_scale = self.encoder(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


class FlipModel(PyroModule):
    """A user's model with a binary latent enumerated *in the guide*: is the digit drawn as ink-on-paper or
    inverted?  p(f) = Bernoulli(1/2), p(z) = N(0, I), p(x | f, z) = Bernoulli(|f - sigmoid(decoder(z))|)."""

    def __init__(self, data_dim: int):
        super().__init__()
        self.decoder = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, data_dim))

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            f = pyro.sample("flip", dist.Bernoulli(x.new_tensor(0.5)))
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            p = torch.sigmoid(self.decoder(z))
            pyro.sample("x", dist.Bernoulli(probs=(f.unsqueeze(-1) - p).abs().clamp(1e-6, 1 - 1e-6)).to_event(1),
                        obs=x)


class FlipGuide(PyroModule):
    def __init__(self, data_dim: int):
        super().__init__()
        self.flip = nn.Linear(data_dim, 1)
        self.encoder = nn.Sequential(nn.Linear(data_dim + 1, 32), nn.Tanh(), nn.Linear(32, 4))

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            f = pyro.sample("flip", dist.Bernoulli(logits=self.flip(x).squeeze(-1)), infer={"enumerate": "parallel"})
            f = f.unsqueeze(-1)  # [M, 1], or [2, 1, 1] when enumerated: broadcast the batch dims, then join
            batch = torch.broadcast_shapes(f.shape[:-1], x.shape[:-1])
            inputs = torch.cat([x.expand(batch + x.shape[-1:]), f.expand(batch + (1,))], -1)
            loc, log_scale = self.encoder(inputs).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


def test_a_users_model_summing_a_mixture_component_out_in_the_model_matches_the_hand_computation(binary14):
    """Estimator A with c enumerated in the model is E_q[log sum_c p(c) p(z|c) + log p(x|z) - log q(z|x)]:
    recomputed by hand on the guide's own draws (same seed), to float precision."""
    model, guide = MixturePriorModel(196), NormalGuide(196)
    x = binary14.test[:8]
    structure = check_model_guide(model, guide, x, "trace")
    assert structure.enumerated == ("c",) and structure.local_latents == ("c", "z")
    elbo = make_elbo("trace", 1, structure.max_plate_nesting, enumerate=True)
    with torch.no_grad():
        torch.manual_seed(3)
        loss = elbo.loss(model, guide, x)
        torch.manual_seed(3)
        z = poutine.trace(guide).get_trace(x).nodes["z"]["value"]
        loc, log_scale = guide.encoder(x).chunk(2, -1)
        log_q = dist.Normal(loc, log_scale.exp()).log_prob(z).sum(-1)
        log_prior = torch.logsumexp(dist.Normal(model.means, 1.0).log_prob(z.unsqueeze(-2)).sum(-1), -1) - math.log(3)
        log_lik = dist.Bernoulli(logits=model.decoder(z)).log_prob(x).sum(-1)
        expected = -(log_prior + log_lik - log_q).sum()
    assert abs(loss - float(expected)) < 1e-3 * abs(float(expected)), (loss, expected)


def test_importance_sampling_refuses_a_latent_summed_out_in_the_model(binary14):
    with pytest.raises(AevbInputError, match="'c' is summed out in the model"):
        log_likelihood(MixturePriorModel(196), NormalGuide(196), binary14.test[:4], num_samples=3)


@pytest.mark.parametrize("pair", ["mixture", "flip"])
def test_a_users_tiny_model_with_an_enumerated_discrete_latent_trains(binary14, pair):
    """Both places of enumeration train through the same Trainer: the test bound rises by more than 5 nats in
    4 epochs of 2,000 images (it rises by ~20 here; the evaluation noise of the bound on 500 images is < 1)."""
    pyro.set_rng_seed(0)
    model, guide = (MixturePriorModel(196), NormalGuide(196)) if pair == "mixture" else (FlipModel(196),
                                                                                        FlipGuide(196))
    trainer = Trainer(model, guide, binary14, elbo="trace", optimizer="adam", lr=3e-3, progress=False)
    metrics = trainer.fit(epochs=4)
    assert trainer.structure.enumerated == (("c",) if pair == "mixture" else ("flip",))
    assert metrics[-1]["test_elbo"] > metrics[0]["test_elbo"] + 5, [m["test_elbo"] for m in metrics]


def test_a_discrete_guide_site_that_is_not_enumerated_is_refused_with_the_fix(binary14):
    class NotEnumerated(FlipGuide):
        def forward(self, x, idx=None, num_data=None):
            with poutine.infer_config(config_fn=lambda site: {"enumerate": None} if site["name"] == "flip" else {}):
                return super().forward(x, idx, num_data)

    with pytest.raises(AevbInputError, match="'flip'.*cannot be reparameterized.*enumerate"):
        check_model_guide(FlipModel(196), NotEnumerated(196), binary14.test, "trace")


# ----------------------------------------------------------------------------- M2 against its baseline


def test_m2_with_100_labels_beats_the_same_classifier_trained_on_the_100_labels_alone(mnist):
    """Kingma et al.'s claim at the smallest scale a test affords: M2 trained for one epoch (500 steps of M = 100,
    the unlabelled 49,900 images included) against q(y|x)'s network trained on the 100 labelled images alone to
    convergence (1,000 steps: its training cross-entropy is ~0 by step 300 and its test error flat from step 100
    on), both from seed 0, on all 10,000 test images.  Measured with seeds 0, 1, 2: M2 18.9 / 19.9 / 19.2 %,
    baseline 22.3 / 22.3 / 22.7 %, a gain of 2.3 to 3.5 points; one error's standard error on 10,000 images is
    ~0.4 points, so the required gain of 1 point is about 3 standard errors of the difference below the smallest
    gain seen.  The budget: a decoder of 128 hidden units (the 10 enumerated decoder passes are the cost) and Adam
    at 3e-3 make the semi-supervised gain appear within one epoch; with Adam at 1e-3 it needs ~2 epochs."""
    data = Dataset("mnist", mnist.train, mnist.test[:1000], (28, 28), train_labels=mnist.train_labels)
    labels = balanced_labels(mnist.train_labels, 100)
    pyro.set_rng_seed(0)
    baseline = train_supervised(M2Guide(784, 10, 20, (500,)).classifier, mnist.train, labels, steps=1000, seed=0)
    baseline_error = classification_error(baseline, mnist.test, mnist.test_labels)
    pyro.set_rng_seed(0)
    model, guide = M2Model(784, 10, 20, (128,)), M2Guide(784, 10, 20, (500,))
    Trainer(model, guide, data, elbo="trace", optimizer="adam", lr=3e-3, labels=labels, progress=False).fit(epochs=1)
    m2_error = classification_error(guide, mnist.test, mnist.test_labels)
    assert m2_error < baseline_error - 0.01, (m2_error, baseline_error)


# ----------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory):
    """A small M2 run from the command line: 3,000 samples, then resumed to 6,000 (two metrics rows)."""
    out = tmp_path_factory.mktemp("m2") / "run"
    args = ["train", "--model", "m2", "--labels", "100", "--latent-dim", "8", "--hidden-dim", "64",
            "--optimizer", "adam", "--lr", "3e-3", "--seed", "0", "--no-progress", "--out", str(out)]
    assert main(args + ["--train-samples", "3000"]) == 0
    assert main(args + ["--train-samples", "6000", "--resume"]) == 0
    return out


def test_m2_trains_from_the_cli_and_raises_its_bound(m2_run):
    """`train --model m2 --labels 100` picks estimator A with y enumerated (estimator B cannot enumerate) and the
    test bound rises from 3,000 to 6,000 training samples by more than 5 nats (it rises by ~13 here, -224.6 to
    -211.8; the bound's own Monte Carlo noise on 10,000 test images is far below 1 nat).  The second leg is a
    --resume: the labels are chosen again, the same ones, and the settings must match."""
    run = load_run(m2_run)
    assert run.config.elbo == "trace" and run.config.labels == 100 and run.config.num_classes == 10
    rows = [json.loads(line) for line in (m2_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_samples"] for r in rows] == [3000, 6000]
    assert rows[1]["test_elbo"] > rows[0]["test_elbo"] + 5, rows


def test_evaluate_json_reports_the_test_error_of_the_guides_classifier(m2_run, capsys, mnist):
    capsys.readouterr()
    assert main(["evaluate", str(m2_run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "test_elbo_trace" in result and not any("analytic" in k for k in result)
    guide = load_run(m2_run).guide
    assert result["test_error"] == classification_error(guide, mnist.test, mnist.test_labels)
    assert 0 <= result["test_error"] < 0.9  # below chance after 6,000 samples with 100 labels


def test_sample_draws_one_row_per_class_with_a_fixed_style_per_column(m2_run, tmp_path, mnist):
    """`sample` of a model with a discrete latent: 10 rows (y = 0..9) of num_samples / 10 columns; in a column
    z is fixed and the rows differ (y is used), in a row y is fixed and the columns differ (z is used)."""
    path = tmp_path / "analogies.png"
    assert main(["sample", str(m2_run), "--num-samples", "30", "--out", str(path)]) == 0
    assert Image.open(path).size == (3 * 29 + 1, 10 * 29 + 1)  # 28-pixel images, 1-pixel padding
    run = load_run(m2_run)
    means = conditional_means(run.model, mnist.test[:3], "y", seed=0)
    assert means.shape == (10, 3, 784)
    assert float((means[1:] - means[:1]).abs().mean()) > 1e-3
    assert float((means[:, 1:] - means[:, :1]).abs().mean()) > 1e-3


@pytest.mark.parametrize("extra, message", [
    (["--labels", "7"], "multiple of 10"),
    (["--labels", "60000"], "has 50000 points"),
    (["--model", "mlp", "--labels", "100"], "neither the model nor the guide takes labels"),
    (["--labels", "100", "--elbo", "analytic"], "estimator B .* cannot sum out"),
    (["--labels", "100", "--guide", "laplace"], "brings its own guide"),
])
def test_bad_m2_inputs_are_one_line_errors_with_status_2(extra, message, tmp_path, capsys):
    args = ["train", "--model", "m2", "--hidden-dim", "8", "--latent-dim", "2", "--train-samples", "100",
            "--no-progress", "--out", str(tmp_path / "run")]
    capsys.readouterr()
    assert main(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pyro-aevb: error:") and "\n" not in err, err
    assert re.search(message, err), err


def test_labels_on_a_dataset_without_labels_are_refused(tmp_path, capsys):
    data_file = tmp_path / "images.npy"
    np.save(data_file, (np.random.default_rng(0).random((50, 16)) > 0.5).astype(np.float32))
    capsys.readouterr()
    assert main(["train", "--model", "m2", "--dataset", str(data_file), "--labels", "10", "--hidden-dim", "8",
                 "--latent-dim", "2", "--no-progress", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pyro-aevb: error:") and "\n" not in err and "has no labels" in err, err


def test_the_applications_refuse_a_discrete_latent_with_one_line(m2_run, tmp_path, capsys):
    """encode/reconstruct/... build a continuous code Z from the latents; M2's y is refused, not decoded as NaN."""
    capsys.readouterr()
    assert main(["encode", str(m2_run), "--num-images", "10", "--out", str(tmp_path / "z.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "'y' is a discrete latent" in err and "\n" not in err, err
