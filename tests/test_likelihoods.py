"""Swappable likelihoods p_theta(x|z): densities, validation of the support, training."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule

from pyro_aevb import AevbInputError, Trainer, evaluate_bound
from pyro_aevb.cli import main
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import LIKELIHOODS, Likelihood, VAEModel, get_likelihood
from pyro_aevb.nn import mlp
from pyro_aevb.plates import data_plate


def _integral_over_unit_interval(lik, out):
    """Trapezoid integral over x in [0, 1] of p(x | out) for one data dimension (20,001 points:
    the error is O(h^2 max|p''|) < 1e-6 for the smooth densities used here)."""
    x = torch.linspace(0, 1, 20001, dtype=torch.float64)
    p = lik(out.double().expand(x.shape[0], -1)).log_prob(x[:, None]).exp()[:, 0]
    return torch.trapezoid(p, x).item()


@pytest.mark.parametrize("logit", [-4.0, -1.0, 0.0, 1e-4, 2.5])
def test_continuous_bernoulli_is_normalised_and_bernoulli_on_grey_values_is_not(logit):
    """The continuous Bernoulli integrates to 1 over [0, 1] for every lambda (including the
    numerically delicate lambda = 1/2); the Bernoulli 'density' of grey values integrates to
    (2 lambda - 1) / logit(lambda) < 1 (= 1/2 at lambda = 1/2): the inflated likelihood of C.1."""
    out = torch.tensor([[logit]])
    assert _integral_over_unit_interval(LIKELIHOODS["continuous_bernoulli"], out) == pytest.approx(1.0, abs=1e-4)
    lam = torch.sigmoid(out.double()).item()
    expected = 0.5 if abs(lam - 0.5) < 1e-3 else (2 * lam - 1) / math.log(lam / (1 - lam))
    assert _integral_over_unit_interval(LIKELIHOODS["bernoulli"], out) == pytest.approx(expected, abs=1e-3)
    assert expected < 0.95


def test_likelihood_formulas():
    """Each likelihood is the stated density of the decoder output (module docstring)."""
    torch.manual_seed(0)
    x = torch.rand(4, 3) * 0.98 + 0.01
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    two = torch.cat([a, b], -1)
    mu = torch.sigmoid(a)
    checks = {
        "bernoulli": (a, x * torch.log(mu) + (1 - x) * torch.log(1 - mu)),
        "gaussian": (two, -0.5 * math.log(2 * math.pi) - 0.5 * b - (x - mu) ** 2 / (2 * b.exp())),
        "laplace": (two, -(x - mu).abs() / b.exp() - math.log(2) - b),
    }
    for name, (out, expected) in checks.items():
        assert torch.allclose(LIKELIHOODS[name](out).log_prob(x), expected, atol=1e-5), name
    lam = torch.sigmoid(a)
    log_c = torch.log(2 * torch.atanh(1 - 2 * lam) / (1 - 2 * lam))
    assert torch.allclose(LIKELIHOODS["continuous_bernoulli"](a).log_prob(x), log_c + checks["bernoulli"][1], atol=1e-4)
    al, be = torch.nn.functional.softplus(a) + 1e-3, torch.nn.functional.softplus(b) + 1e-3
    beta = (al - 1) * x.log() + (be - 1) * (1 - x).log() - (torch.lgamma(al) + torch.lgamma(be) - torch.lgamma(al + be))
    assert torch.allclose(LIKELIHOODS["beta"](two).log_prob(x), beta, atol=1e-4)


@pytest.mark.parametrize("name,bad", [("bernoulli", 1.5), ("bernoulli", -0.1), ("continuous_bernoulli", 1.01),
                                      ("beta", 0.0), ("beta", 1.0), ("gaussian", float("nan")),
                                      ("laplace", float("inf"))])
def test_data_outside_the_support_is_an_error(name, bad):
    """Out-of-support data never gives a number: check_data (run on every dataset before training)
    raises AevbInputError naming the likelihood or the NaN/inf; and the model's log_prob raises too
    (distribution validation is on) -- except for +-inf under a real-valued likelihood, which torch's
    ``real`` constraint admits (log p = -inf, not a finite wrong number), so only check_data sees it."""
    lik = LIKELIHOODS[name]
    x = torch.full((2, 3), 0.5)
    x[1, 2] = bad
    with pytest.raises(AevbInputError, match=rf"{name} likelihood|NaN or inf"):
        lik.check_data(x)
    if math.isinf(bad):
        return
    model, guide = VAEModel(3, 2, (4,), name), AmortizedNormalGuide(3, 2, (4,))
    with pytest.raises(ValueError, match="support|constraint"):
        pyro.infer.Trace_ELBO().loss(model, guide, x)


def test_beta_on_mnist_is_refused_on_the_cli(tmp_path, mnist_small, capsys):
    """MNIST has exact zeros, outside the Beta's open support (0, 1): one line, exit status 2."""
    data = tmp_path / "digits.npy"
    np.save(data, mnist_small.train[:200].numpy())
    code = main(["train", "--dataset", str(data), "--likelihood", "beta", "--latent-dim", "2", "--hidden-dim", "8",
                 "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "outside the support of the beta likelihood" in err


@pytest.mark.parametrize("name", ["bernoulli", "continuous_bernoulli", "gaussian", "laplace", "beta"])
def test_every_likelihood_trains_and_raises_the_bound(name, mnist_small, frey):
    """Training raises the test bound by more than 100 nats per image over the untrained decoder
    (outputs ~0: mean 1/2, unit scales), and the last epoch beats the first.  100 nats is a loose
    floor: matching only the background (~80% of MNIST pixels are 0) already gains more.
    [0, 1] likelihoods: MNIST, 2 epochs.  Learned-scale likelihoods (gaussian, laplace) follow
    appendix C.2 and run on Frey Face (on MNIST's exact zeros their scale collapses), as does the
    Beta, which needs data in the open interval (0, 1) (Frey: 0.03..0.93): 10 epochs, lr 0.01
    (as test_training.py), since Frey has only 1,769 images."""
    pyro.set_rng_seed(0)
    on_frey = name in ("gaussian", "laplace", "beta")
    data, d, epochs, lr = (frey, 560, 10, 0.01) if on_frey else (mnist_small, 784, 2, 0.02)
    model, guide = VAEModel(d, 10, (100,), name), AmortizedNormalGuide(d, 10, (100,))
    before = evaluate_bound(model, guide, data.test)
    metrics = Trainer(model, guide, data, lr=lr, progress=False).fit(epochs=epochs)
    assert metrics[-1]["test_elbo"] > before + 100, (name, before, metrics[-1]["test_elbo"])
    assert metrics[-1]["test_elbo"] > metrics[0]["test_elbo"]


def test_a_function_is_a_likelihood(mnist_small):
    """get_likelihood wraps any ``out -> Distribution``; its support is read from the distribution,
    so data validation still applies, and the model trains (bound up by > 100 nats, as above)."""
    def fixed_noise_gaussian(out):
        return dist.Normal(torch.sigmoid(out), 0.2)

    lik = get_likelihood(fixed_noise_gaussian)
    assert isinstance(lik, Likelihood) and lik.params_per_dim == 1 and lik.name == "fixed_noise_gaussian"
    with pytest.raises(AevbInputError, match="NaN"):
        lik.check_data(torch.tensor([[float("nan")]]))
    pyro.set_rng_seed(0)
    model, guide = VAEModel(784, 10, (100,), fixed_noise_gaussian), AmortizedNormalGuide(784, 10, (100,))
    before = evaluate_bound(model, guide, mnist_small.test)
    Trainer(model, guide, mnist_small, progress=False).fit(epochs=2)
    assert evaluate_bound(model, guide, mnist_small.test) > before + 100


class DeclarativeVAE(PyroModule):
    """A model written the way a notebook would: prior, decoder, likelihood -- a few lines."""

    def __init__(self, latent_dim=10):
        super().__init__()
        self.latent_dim = latent_dim
        self.decoder = mlp(latent_dim, (100,), 784)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], self.latent_dim), 1.0).to_event(1))
            pyro.sample("x", dist.ContinuousBernoulli(logits=self.decoder(z)).to_event(1), obs=x)


def test_declarative_model_trains_with_the_same_trainer(mnist_small):
    """A user's own PyroModule model trains with the package's Trainer and guide, and matches
    VAEModel(likelihood="continuous_bernoulli") -- the same density -- at init up to weight draws:
    both start near 784 * log CB(x | 1/2) = 784 * log 2 (C(1/2) = 2, the rest is 0.5^x 0.5^(1-x))."""
    pyro.set_rng_seed(0)
    model, guide = DeclarativeVAE(), AmortizedNormalGuide(784, 10, (100,))
    before = evaluate_bound(model, guide, mnist_small.test)
    # log CB(x | 1/2) = log 2 + log 0.5 = 0 per pixel: the untrained bound is ~0 nats, not -543
    assert abs(before) < 5
    Trainer(model, guide, mnist_small, progress=False).fit(epochs=2)
    assert evaluate_bound(model, guide, mnist_small.test) > before + 100
