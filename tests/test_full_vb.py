"""Full variational Bayes over the decoder weights (appendix F): scaling, KL once, training, evaluation."""

import itertools
import json
import math

import numpy as np
import pyro
import pytest
import torch
from PIL import Image
from pyro import poutine

from pyro_aevb import RunConfig, Trainer, build_model_guide, evaluate_bound, load_run, make_elbo
from pyro_aevb.cli import main
from pyro_aevb.evaluation import (
    full_vb_bound, global_kl, log_likelihood, posterior_predictive_log_likelihood, predictive_means,
)
from pyro_aevb.evaluation.full_vb import _LocalTermsOnly
from pyro_aevb.guides import AmortizedNormalGuide, FullVBGuide, get_guide
from pyro_aevb.models import BayesianVAEModel, VAEModel
from pyro_aevb.nn import init_normal_


def _tiny(data_dim=6, latent_dim=2, hidden=5, likelihood="bernoulli"):
    model = BayesianVAEModel(data_dim, latent_dim, (hidden,), likelihood)
    guide = FullVBGuide(model, AmortizedNormalGuide(data_dim, latent_dim, (hidden,)))
    return model, guide


def _make_deterministic(guide):
    """Shrink every scale of q(theta) and q(z|x) to ~1e-9 so that one draw is (numerically) its mean:
    the objective becomes a deterministic function and identities hold to float precision."""
    with torch.no_grad():
        for p in guide.weights.log_scales.values():
            p.fill_(math.log(1e-9))
        last = guide.local.encoder[-1]
        last.bias[guide.latent_dim:] = 2 * math.log(1e-9)  # log sigma^2 of q(z|x)
        last.weight[guide.latent_dim:] = 0.0
        init_normal_(guide.local.encoder[0], 0.3)


def test_theta_sites_are_global_and_local_sites_are_scaled():
    """The weights are sample sites outside the data plate (scale 1); z and x are inside it (scale N/M)."""
    model, guide = _tiny()
    x = torch.rand(4, 6)
    tr = poutine.trace(guide).get_trace(x, torch.arange(4), 10)
    mt = poutine.trace(poutine.replay(model, trace=tr)).get_trace(x, torch.arange(4), 10)
    theta = [n for n in mt.nodes if n.startswith("decoder.")]
    assert theta == ["decoder.layers.0.weight", "decoder.layers.0.bias", "decoder.layers.2.weight",
                     "decoder.layers.2.bias"]
    for n in theta:
        assert mt.nodes[n]["scale"] == 1.0 and not mt.nodes[n]["cond_indep_stack"]
        assert torch.equal(mt.nodes[n]["value"], tr.nodes[n]["value"])  # theta ~ q(theta), replayed
    for n in ("z", "x"):
        assert mt.nodes[n]["scale"] == pytest.approx(10 / 4)
    assert list(model.parameters()) == []  # every weight is a random variable


@pytest.mark.parametrize("estimator", ["trace", "analytic"])
def test_minibatch_objective_is_unbiased_and_theta_kl_counted_once(estimator):
    """Eq. 21 / 24: over all C(N, M) minibatches the average minibatch objective equals the full-data
    objective (each datapoint is in a fraction M/N of them and is scaled by N/M), and the theta term
    enters once per objective, not N/M times: objective minus its local terms is the same for the
    full data and for a minibatch -- for estimator B exactly -KL(q(theta)||p(theta)).
    All scales are shrunk to ~1e-9 and the RNG is reseeded before every evaluation (theta is drawn
    first, so its noise zeta is the same each time; estimator A's log q(theta) depends on zeta), so
    for estimator B the identities are exact up to float32 rounding (relative 1e-5)."""
    torch.manual_seed(0)
    n, m = 6, 2
    model, guide = _tiny()
    _make_deterministic(guide)
    x = torch.rand(n, 6)
    elbo = make_elbo(estimator, 1)
    local_model, local_guide = _LocalTermsOnly()(model), _LocalTermsOnly()(guide)

    def objective(idx, local=False):
        pyro.set_rng_seed(1)
        args = (x, None, None) if idx is None else (x[idx], idx, n)
        return -(elbo.loss(local_model, local_guide, *args) if local else elbo.loss(model, guide, *args))

    full = objective(None)
    subsets = [torch.tensor(s) for s in itertools.combinations(range(n), m)]
    average = sum(objective(s) for s in subsets) / len(subsets)
    if estimator == "analytic":
        assert average == pytest.approx(full, rel=1e-5)
    else:
        # estimator A keeps log q(z|x) at the draw: each z_j adds -eps^2/2 (sd 1/sqrt(2)), drawn afresh for
        # every minibatch.  sd of `full`: sqrt(N J / 2) = 2.4; of `average` (15 minibatches, M J = 4 terms
        # scaled by N/M = 3): 3 sqrt(2) / sqrt(15) = 1.1.  4 sd of the difference: 11 -- while an N/M-times
        # counted theta-KL would be off by 2 KL > 200.
        assert abs(average - full) < 11
    theta_term = full - objective(None, local=True)
    s = subsets[0]
    assert objective(s) - objective(s, local=True) == pytest.approx(theta_term, rel=1e-5)
    kl = global_kl(model, guide, x)
    assert kl > 100  # sigma = 1e-9 makes it large, so counting it N/M = 3 times could not hide in rounding
    if estimator == "analytic":
        assert theta_term == pytest.approx(-kl, rel=1e-5)
    else:  # log p(theta) - log q(theta) at one draw: -KL plus zero-mean noise of sd sqrt(#weights / 2) = 5
        assert abs(theta_term + kl) < 30


def test_analytic_theta_kl_is_the_gaussian_formula():
    """KL(N(mu, sigma^2) || N(0, 1)) summed over weights = 1/2 sum (sigma^2 + mu^2 - 1 - log sigma^2)."""
    model, guide = _tiny()
    expected = 0.0
    for name in guide.weights.site_names:
        d = guide.weights.distribution(name).base_dist
        expected += 0.5 * (d.scale ** 2 + d.loc ** 2 - 1 - torch.log(d.scale ** 2)).sum().item()
    assert global_kl(model, guide, torch.rand(2, 6)) == pytest.approx(expected, rel=1e-5)


def test_evaluate_bound_counts_theta_kl_once_whatever_the_chunk_size():
    """evaluate_bound runs chunks as subsamples weighted M_c/N: the (deterministic) full-VB bound per
    datapoint, local - KL/N_train, does not depend on the evaluation batch size, and equals full_vb_bound's
    decomposition."""
    torch.manual_seed(0)
    model, guide = _tiny()
    _make_deterministic(guide)
    x = torch.rand(10, 6)
    whole = evaluate_bound(model, guide, x, "analytic", batch_size=10, num_data=40)
    assert evaluate_bound(model, guide, x, "analytic", batch_size=3, num_data=40) == pytest.approx(whole, rel=1e-5)
    fv = full_vb_bound(model, guide, x, 40, estimator="analytic", batch_size=4)
    assert fv.bound == pytest.approx(whole, rel=1e-5) and fv.num_data == 40


def test_two_models_never_share_parameters():
    """Variational parameters live in the modules, not in Pyro's global param store by name: training
    one of two identically-named model/guide pairs leaves the other unchanged."""
    pairs = [_tiny() for _ in range(2)] + [(VAEModel(6, 2, (5,)), AmortizedNormalGuide(6, 2, (5,))) for _ in range(2)]
    for (m1, g1), (m2, g2) in (pairs[:2], pairs[2:]):
        before = [p.detach().clone() for p in list(m2.parameters()) + list(g2.parameters())]
        opt = torch.optim.Adam(list(m1.parameters()) + list(g1.parameters()), lr=0.1)
        loss_fn = make_elbo("analytic")(m1, g1)
        for _ in range(3):
            opt.zero_grad()
            loss_fn(torch.rand(4, 6)).backward()
            opt.step()
        after = list(m2.parameters()) + list(g2.parameters())
        assert all(torch.equal(a, b) for a, b in zip(before, after))
        assert not any(p1 is p2 for p1 in g1.parameters() for p2 in g2.parameters())


def test_full_vb_trains_on_mnist_and_predictive_is_a_tighter_estimate(mnist_small):
    """Two epochs of full VB on 5,000 MNIST images (Adam, lr 1e-3) raise the training objective per
    datapoint (local - KL/N) by more than 100 nats over its untrained value (decoder outputs ~1/2:
    local ~ -543, and KL/N ~ 4.1 nats per weight at sigma = 0.01 times ~80k weights / 5,000 ~ 66);
    the posterior-predictive log-likelihood (IS over z for each theta, logmeanexp over theta) is >=
    the expected local bound up to Monte Carlo error (Jensen, twice): 2 nats is > 10 standard errors
    of the 200-image mean here."""
    pyro.set_rng_seed(0)
    model = BayesianVAEModel(784, 10, (100,))
    guide = FullVBGuide(model, get_guide("normal", 784, 10, (100,)))
    x = mnist_small.test[:200]
    before = full_vb_bound(model, guide, x, num_data=5000)
    Trainer(model, guide, mnist_small, optimizer="adam", lr=1e-3, progress=False).fit(epochs=2)
    fv = full_vb_bound(model, guide, x, num_data=5000)
    assert fv.bound > before.bound + 100, (before, fv)
    assert fv.bound == pytest.approx(fv.local - fv.kl / 5000)
    ll = posterior_predictive_log_likelihood(model, guide, x, num_theta=3, num_samples=100)
    assert ll.mean > fv.local - 2.0 and ll.per_datapoint.shape == (200,)
    grid = predictive_means(model, guide, x[:4], num_theta=3)
    assert grid.shape == (3, 4, 784)
    assert (grid[0] - grid[1]).abs().max() > 1e-3  # different theta draws give different images for one z


def test_predictive_with_point_mass_q_theta_equals_the_map_model_likelihood():
    """With q(theta) a point mass at mu, the posterior predictive is p(x | mu): it equals the IS
    log-likelihood of a VAEModel whose decoder holds mu, within the two estimators' Monte Carlo
    error (K = 2000; per-datapoint differences below 0.2 nats for this small model)."""
    torch.manual_seed(0)
    model, guide = _tiny(data_dim=6, latent_dim=2, hidden=5)
    with torch.no_grad():
        for p in guide.weights.locs.values():
            p.normal_(0, 0.5)
        for p in guide.weights.log_scales.values():
            p.fill_(math.log(1e-9))
    vae = VAEModel(6, 2, (5,))
    mu = guide.weights.mean_theta()
    with torch.no_grad():
        for i in (0, 2):
            vae.decoder[i].weight.copy_(mu[f"decoder.layers.{i}.weight"])
            vae.decoder[i].bias.copy_(mu[f"decoder.layers.{i}.bias"])
    x = torch.rand(20, 6)
    pp = posterior_predictive_log_likelihood(model, guide, x, num_theta=2, num_samples=2000)
    ref = log_likelihood(vae, guide.local, x, num_samples=2000)
    assert (pp.per_datapoint - ref.per_datapoint).abs().max() < 0.2


def test_full_vb_from_the_cli_on_frey(tmp_path, frey, capsys):
    """--bayesian-decoder trains with both estimators, the run reloads, evaluate reports the full-VB
    bound, its KL and the posterior-predictive log-likelihood, and sample draws a theta-spread grid."""
    frey_path = frey.info["source"]
    for est in ("trace", "analytic"):
        out = tmp_path / est
        assert main(["train", "--dataset", "frey", "--data-path", frey_path, "--likelihood", "gaussian",
                     "--latent-dim", "2", "--hidden-dim", "20", "--bayesian-decoder", "--elbo", est,
                     "--optimizer", "adam", "--lr", "0.003", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    run = load_run(tmp_path / "analytic")
    assert run.config.bayesian_decoder and isinstance(run.model, BayesianVAEModel)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "analytic"), "--iw-samples", "20", "--theta-samples", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # the importance-sampled posterior predictive improves on the local bound it is built from (K = 20
    # proposals per theta draw; allow 5 nats for the two theta draws' Monte Carlo spread)
    assert result["test_log_likelihood"] > result["test_local_bound"] - 5
    # one number for the bound: the local term minus the theta-KL over the N training frames (not over the 196
    # test frames), from the same draws, and no second "full-VB bound" beside it
    n_train = run.load_data().train.shape[0]
    assert result["test_elbo_analytic"] == pytest.approx(result["test_local_bound"] - result["kl_theta"] / n_train)
    assert not any("full_vb" in k for k in result)
    # the per-epoch train and test bounds are computed alike (theta-KL over the N training points for both):
    # Frey's held-out frames are near-duplicates of training frames, so the two agree within tens of nats --
    # spreading the KL over the 196 test points instead, as before, put an artificial gap of KL/196 - KL/1769
    # between them (hundreds of nats for this decoder at initialisation)
    row = run.metrics[-1]
    assert abs(row["train_elbo"] - row["test_elbo"]) < 50 and row["kl_theta"] / 196 - row["kl_theta"] / 1769 > 50
    assert main(["sample", str(tmp_path / "analytic"), "--num-samples", "16", "--out", str(tmp_path / "s.png")]) == 0
    image = torch.from_numpy(np.array(Image.open(tmp_path / "s.png").convert("L"), dtype=np.float32))
    assert image.shape == (4 * 29 + 1, 4 * 21 + 1)  # a 4x4 grid of 28x20 frames with 1-pixel borders
    assert image.std() > 5  # not a blank grid


def test_config_builds_full_vb():
    """RunConfig(bayesian_decoder=True) gives BayesianVAEModel + FullVBGuide, with any named local guide."""
    model, guide = build_model_guide(RunConfig(bayesian_decoder=True, guide="laplace", latent_dim=2, hidden_dim=4), 6)
    assert isinstance(model, BayesianVAEModel) and isinstance(guide, FullVBGuide)
    assert type(guide.local).__name__ == "AmortizedLocScaleGuide" and guide.latent_dim == 2
