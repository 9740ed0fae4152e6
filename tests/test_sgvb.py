"""Properties of the SGVB estimators (section 2.3, appendix B)."""

import itertools
import math

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyro_aevb import evaluate_bound, log_likelihood
from pyro_aevb.evaluation import log_weights
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import VAEModel
from pyro_aevb.nn import init_normal_


def _random_vae(data_dim=784, latent_dim=5, hidden=50, likelihood="bernoulli", std=0.1):
    """A VAE with weights large enough (std 0.1) that q(z|x) differs from p(z) clearly."""
    model = VAEModel(data_dim, latent_dim, (hidden,), likelihood)
    guide = AmortizedNormalGuide(data_dim, latent_dim, (hidden,))
    init_normal_(model, std)
    init_normal_(guide, std)
    return model, guide


def test_analytic_kl_matches_monte_carlo():
    """Appendix B: -KL(q||p) = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2) equals the
    Monte Carlo average of log p(z) - log q(z|x) over z ~ q."""
    torch.manual_seed(0)
    loc = torch.randn(4, 3)
    scale = torch.rand(4, 3) + 0.3
    q = dist.Normal(loc, scale).to_event(1)
    p = dist.Normal(0.0, 1.0).expand([4, 3]).to_event(1)
    eq10 = -0.5 * (1 + torch.log(scale ** 2) - loc ** 2 - scale ** 2).sum(-1)
    torch_kl = torch.distributions.kl_divergence(q, p)
    assert torch.allclose(torch_kl, eq10, atol=1e-6)
    z = q.sample((200_000,))
    mc = q.log_prob(z) - p.log_prob(z)
    # the MC mean is within 4 standard errors of the truth with probability > 0.9999 per row
    stderr = mc.std(0) / math.sqrt(z.shape[0])
    assert ((mc.mean(0) - eq10).abs() < 4 * stderr).all()


def test_estimators_a_and_b_estimate_the_same_bound(mnist_small):
    """E[L^A] = E[L^B]: both unbiased for the bound (eq. 6 vs eq. 7); means over many draws
    agree within 4 standard errors of their difference."""
    model, guide = _random_vae()
    x = mnist_small.test[:20]
    draws = 400
    a = torch.tensor([-Trace_ELBO().loss(model, guide, x) for _ in range(draws)])
    b = torch.tensor([-TraceMeanField_ELBO().loss(model, guide, x) for _ in range(draws)])
    se = math.sqrt(a.var() / draws + b.var() / draws)
    assert abs(a.mean() - b.mean()) < 4 * se
    # and the analytic KL really removes variance from the bound itself
    assert b.var() < a.var()


def _encoder_grads(model, guide, x, elbo, draws):
    grads = []
    params = list(guide.parameters())
    for _ in range(draws):
        loss = elbo.differentiable_loss(model, guide, x)
        g = torch.autograd.grad(loss, params)
        grads.append(torch.cat([t.flatten() for t in g]))
    return torch.stack(grads)


def test_estimator_b_has_lower_encoder_gradient_variance(mnist_small):
    """The paper's claim for estimator B: the per-datapoint gradient w.r.t. phi has lower variance
    than estimator A's (total variance = trace of the covariance).  Both means agree (unbiased)."""
    model, guide = _random_vae()
    x = mnist_small.test[:1]
    draws = 300
    ga = _encoder_grads(model, guide, x, Trace_ELBO(), draws)
    gb = _encoder_grads(model, guide, x, TraceMeanField_ELBO(), draws)
    var_a, var_b = ga.var(0).sum(), gb.var(0).sum()
    # a variance estimate from 300 draws has relative error ~ sqrt(2/300) = 8%; demand a clear gap
    assert var_b < 0.8 * var_a, (var_a.item(), var_b.item())
    # unbiased: the mean gradients differ by less than 4 standard errors in norm (chi-square bound):
    diff = ga.mean(0) - gb.mean(0)
    se2 = (ga.var(0) + gb.var(0)) / draws
    live = se2 > 0  # weights fed by pixels that are 0 in x get exactly zero gradient from both
    # each ratio is ~ chi-square(1) (mean 1) when the means agree; a bias of one standard error
    # in every coordinate would double it.  Coordinates are correlated, so allow 1.5.
    assert (diff[live] ** 2 / se2[live]).mean() < 1.5


def test_minibatch_bound_is_unbiased_for_full_data_bound():
    """Eq. 8: averaged over all C(N, M) minibatches, the plate-scaled (N/M) minibatch bound equals
    the full-dataset bound.  z is conditioned to fixed values so the identity is exact."""
    torch.manual_seed(1)
    n, m, latent = 6, 2, 3
    model, guide = _random_vae(data_dim=8, latent_dim=latent, hidden=7)
    x = torch.rand(n, 8)
    z = torch.randn(n, latent)

    def bound(idx):
        xb = x if idx is None else x[idx]
        zb = z if idx is None else z[idx]
        kwargs = {} if idx is None else {"idx": idx, "num_data": n}
        guide_tr = poutine.trace(poutine.condition(guide, data={"z": zb})).get_trace(xb, **kwargs)
        model_tr = poutine.trace(poutine.condition(model, data={"z": zb})).get_trace(xb, **kwargs)
        return (model_tr.log_prob_sum() - guide_tr.log_prob_sum()).item()

    full = bound(None)
    subsets = [torch.tensor(s) for s in itertools.combinations(range(n), m)]
    average = sum(bound(s) for s in subsets) / len(subsets)
    assert average == pytest.approx(full, rel=1e-5)
    # and a single minibatch really is scaled: N/M times its own unscaled sum
    s = subsets[0]
    assert bound(s) == pytest.approx(n / m * sum(bound(torch.tensor([i])) / n for i in s.tolist()), rel=1e-5)


def test_elbo_never_exceeds_importance_sampled_log_likelihood(mnist_small):
    """ELBO = E_q[log w] <= E[log (1/K) sum_k w_k] <= log p(x) (Jensen), per datapoint."""
    model, guide = _random_vae()
    x = mnist_small.test[:30]
    k = 2000
    lw = log_weights(model, guide, x, k)               # [K, N]: independent single-sample ELBOs
    elbo, elbo_se = lw.mean(0), lw.std(0) / math.sqrt(k)
    ll = log_likelihood(model, guide, x, num_samples=k, max_elements=2 ** 20)
    assert (elbo < ll.per_datapoint + 4 * elbo_se).all()
    # with weights this spread the gap (KL(q || p(z|x))) is large on average, not a rounding effect
    assert (ll.per_datapoint - elbo).mean() > 1.0
    # the dataset-level bound agrees with evaluate_bound (same estimator A, fresh draws)
    assert evaluate_bound(model, guide, x, "trace", num_particles=200) == pytest.approx(elbo.mean().item(), abs=0.5)
