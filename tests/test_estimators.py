"""Marginal-likelihood estimators: the IWAE objective and the appendix D HMC estimator.

The reference is a linear-Gaussian model, where everything is known in closed form:

    z ~ N(0, I_J),  x | z ~ N(W z + b, s^2 I_D)
    p(x) = N(x; b, W W^T + s^2 I)
    p(z | x) = N(Sigma W^T (x - b) / s^2, Sigma),  Sigma = (I + W^T W / s^2)^-1
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import RenyiELBO
from pyro.nn import PyroModule

from pyro_aevb import AevbInputError, log_likelihood, make_elbo
from pyro_aevb.infer import BatchedHMC, ImportanceWeightedELBO, hmc_log_likelihood, log_weights
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import VAEModel
from pyro_aevb.plates import data_plate

D, J = 10, 3


class LinearGaussian(PyroModule):
    """p(z) p(x|z) with a linear decoder; no learnable parameters."""

    def __init__(self, data_dim=D, latent_dim=J, noise=0.5, seed=1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(data_dim, latent_dim, generator=g)
        self.b = 0.5 * torch.randn(data_dim, generator=g)
        self.noise, self.latent_dim = noise, latent_dim

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], self.latent_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.W.T + self.b, self.noise).to_event(1), obs=x)

    def exact_log_marginal(self, x):
        cov = self.W @ self.W.T + self.noise ** 2 * torch.eye(self.W.shape[0])
        return dist.MultivariateNormal(self.b, cov).log_prob(x)

    def posterior(self, x):
        sigma = torch.linalg.inv(torch.eye(self.latent_dim) + self.W.T @ self.W / self.noise ** 2)
        return (x - self.b) @ self.W @ sigma.T / self.noise ** 2, sigma

    def simulate(self, n):
        return poutine.trace(poutine.uncondition(self)).get_trace(torch.zeros(n, self.W.shape[0])).nodes["x"]["value"]


class InflatedPosteriorGuide:
    """q(z|x): the exact posterior mean with the marginal sds inflated 1.5x and correlations dropped --
    a good but imperfect proposal (importance weights are not constant)."""

    def __init__(self, model):
        self.model, self.latent_dim = model, model.latent_dim

    def __call__(self, x, idx=None, num_data=None):
        loc, sigma = self.model.posterior(x)
        with data_plate(x, idx, num_data):
            return pyro.sample("z", dist.Normal(loc, 1.5 * sigma.diagonal().sqrt()).to_event(1))


@pytest.fixture(scope="module")
def linear_gaussian():
    pyro.set_rng_seed(123)
    model = LinearGaussian()
    x = model.simulate(200)
    return model, x, model.exact_log_marginal(x)


def test_importance_sampling_and_hmc_estimators_agree_with_exact_marginal(linear_gaussian):
    """Both marginal-likelihood estimators recover the closed-form log p(x) of a linear-Gaussian model,
    and hence each other."""
    model, x, exact = linear_gaussian
    is_est = log_likelihood(model, InflatedPosteriorGuide(model), x, num_samples=5000)
    hmc_est = hmc_log_likelihood(model, x, num_samples=50, num_steps=4, num_warmup=100)
    # IS: the weights' relative variance with this proposal is O(1), so with K = 5000 the per-point
    # error is O(1/sqrt(K)) ~ 0.02 nats; 0.15 nats per point is > 5 such errors.
    assert (is_est.per_datapoint - exact).abs().max() < 0.15
    # HMC (appendix D, L = 50): the harmonic-mean identity with a Gaussian fitted to 50 correlated samples
    # has a per-point spread of ~0.2 nats (q is only approximately the posterior), so the mean over
    # 200 points has a standard error of ~0.015; 0.1 nats allows that plus the small bias of the fitted q.
    assert abs(hmc_est.mean - exact.mean().item()) < 0.1
    # most points individually: an error > 0.5 nats is > 2.5 per-point sds
    assert ((hmc_est.per_datapoint - exact).abs() < 0.5).float().mean() > 0.9
    # and the two estimators agree with each other on the dataset mean
    assert abs(hmc_est.mean - is_est.mean) < 0.1


def test_batched_hmc_samples_each_chain_from_its_own_posterior(linear_gaussian):
    """Every chain (datapoint) has the exact posterior p(z|x_i) as stationary distribution; chains run
    together but are accepted/rejected independently."""
    model, x, _ = linear_gaussian
    x = x[:50]
    loc, sigma = model.posterior(x)
    hmc = BatchedHMC(model, x, num_steps=4)
    z, eps = hmc.warmup(torch.randn(50, J), num_warmup=100)
    draws, _ = hmc.sample(z, eps, num_samples=300)
    # per chain, the mean of 300 draws (effective size conservatively >= 150; the draws are in fact
    # anticorrelated) has a standard error <= sd / sqrt(150) = 0.08 sd; 0.4 sd is 5 standard errors,
    # beyond the largest of the 150 chain-coordinates (~3 standard errors) with a wide margin
    sd = sigma.diagonal().sqrt()
    assert (((draws.mean(0) - loc) / sd).abs() < 0.4).all()
    # pooled over chains (15000 draws, effective size >= 7500), each covariance entry has a standard
    # error <= sqrt(2 / 7500) ~ 1.6% of the largest variance; 6% is > 3.5 standard errors
    centred = (draws - loc).reshape(-1, J)
    cov = centred.T @ centred / centred.shape[0]
    assert ((cov - sigma).abs() < 0.06 * sigma.diagonal().max()).all()
    # a step size is adapted per chain (not one shared)
    assert eps.shape == (50,)


def test_iwae_objective_applies_minibatch_scale_outside_the_logsumexp(linear_gaussian):
    """(N/M) sum_i IWAE_K(x_i) with a subsampled data plate (eq. 8); Pyro's RenyiELBO puts the scale
    inside the logsumexp and so does not equal it (the reason ImportanceWeightedELBO exists)."""
    model, x, _ = linear_gaussian
    guide = InflatedPosteriorGuide(model)
    idx = torch.arange(10, 30)
    n = x.shape[0]
    elbo = ImportanceWeightedELBO(num_particles=8)
    pyro.set_rng_seed(0)
    scaled = elbo.loss(model, guide, x[idx], idx, n)
    pyro.set_rng_seed(0)
    unscaled = elbo.loss(model, guide, x[idx])  # the same random draws, scale 1
    assert scaled == pytest.approx(n / idx.shape[0] * unscaled, rel=1e-5)
    pyro.set_rng_seed(0)
    renyi = RenyiELBO(alpha=0, num_particles=8, max_plate_nesting=1, vectorize_particles=True)
    assert abs(renyi.loss(model, guide, x[idx], idx, n) - scaled) > 1.0


def test_iwae_bound_matches_importance_sampled_log_likelihood_and_exceeds_elbo(linear_gaussian):
    """E[IWAE_K] is the expectation of the K-sample importance-sampling estimate of log p(x), and lies
    between the ELBO (K = 1) and log p(x)."""
    model, x, exact = linear_gaussian
    guide = InflatedPosteriorGuide(model)
    draws = 30
    iwae = torch.tensor([-make_elbo("iwae", 4).loss(model, guide, x) / x.shape[0] for _ in range(draws)])
    is4 = torch.tensor([log_likelihood(model, guide, x, num_samples=4).mean for _ in range(draws)])
    elbo = torch.tensor([-make_elbo("trace", 1).loss(model, guide, x) / x.shape[0] for _ in range(draws)])
    se = math.sqrt(iwae.var() / draws + is4.var() / draws)
    assert abs(iwae.mean() - is4.mean()) < 4 * se  # same expectation: within 4 standard errors
    assert elbo.mean() < iwae.mean() < exact.mean()


def test_iwae_trains_through_the_elbo_module_interface():
    """``make_elbo("iwae", K)(model, guide)`` is an nn.Module whose loss backpropagates into both networks."""
    model, guide = VAEModel(20, 2, (8,)), AmortizedNormalGuide(20, 2, (8,))
    x = torch.rand(16, 20)
    loss = make_elbo("iwae", 5)(model, guide)(x, torch.arange(16), 100)
    loss.backward()
    for net in (model, guide):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
        assert any(p.grad.abs().sum() > 0 for p in net.parameters())


def test_bad_input_names_the_problem(linear_gaussian):
    model, x, _ = linear_gaussian
    with pytest.raises(AevbInputError, match="num_particles >= 2"):
        make_elbo("iwae", 1)
    with pytest.raises(AevbInputError, match="num_samples"):
        hmc_log_likelihood(model, x, num_samples=1)
    with pytest.raises(AevbInputError, match=r"shape \[N, D\]"):
        hmc_log_likelihood(model, x[0])
    with pytest.raises(AevbInputError, match="leapfrog"):
        BatchedHMC(model, x, num_steps=0)


class _PoissonLatentModel(PyroModule):
    """z ~ N(0, 1), x | z ~ Poisson(exp(z)): a skewed, non-Gaussian posterior with log p(x) computable by
    quadrature; no parameters."""

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
            pyro.sample("x", dist.Poisson(z.exp()).to_event(1), obs=x)


def test_appendix_d_estimator_is_biased_upward_on_a_non_gaussian_posterior():
    """The appendix-D estimator averages q(z)/p(x, z) over posterior draws, which is unbiased for 1/p(x), so by
    Jensen E[log p_hat] >= log p(x): biased *upward*, the opposite of importance sampling, and more so with
    fewer draws (the Jensen gap shrinks like 1/L).  On a skewed posterior, where the fitted Gaussian q is not
    exact: with L = 50 the mean error over 200 datapoints is small (|error| < 0.05 nats, ~15 standard errors
    at the measured spread); with L = 5 it is positive and larger than with L = 50."""
    torch.manual_seed(0)
    x = torch.poisson(torch.randn(200, 1).exp())
    grid = torch.linspace(-10, 10, 20001)
    log_joint = dist.Normal(0.0, 1.0).log_prob(grid)[None] + dist.Poisson(grid.exp()[None]).log_prob(x)
    exact = torch.logsumexp(log_joint, 1) + math.log(grid[1] - grid[0])  # quadrature, error << 1e-4 nats
    errors = {}
    for num_samples in (50, 5):
        est = hmc_log_likelihood(_PoissonLatentModel(), x, num_samples=num_samples, num_warmup=100)
        errors[num_samples] = (est.per_datapoint - exact).mean().item()
    assert abs(errors[50]) < 0.05, errors
    assert errors[5] > 0 and errors[5] > errors[50], errors


def test_traced_importance_sampling_equals_pyro_traces_on_the_same_draws(mnist_small):
    """log_likelihood's weights come from the traced graph: from the same seed, in one chunk, its estimate equals
    logsumexp_k of Pyro's traced weights (log_weights) - log K: the same draws, float32 rounding only (1e-4 nats)."""
    torch.manual_seed(0)
    model, guide = VAEModel(784, 5, (50,)), AmortizedNormalGuide(784, 5, (50,))
    x = mnist_small.test[:30]
    torch.manual_seed(1)
    traced = log_likelihood(model, guide, x, num_samples=300, batch_size=30, max_elements=30 * 784 * 300)
    torch.manual_seed(1)
    reference = torch.logsumexp(log_weights(model, guide, x, 300), 0) - math.log(300)
    assert torch.allclose(traced.per_datapoint, reference, atol=1e-4, rtol=0)
