"""Numerical defects found in review, each checked against a quantity known exactly.

Every model here is written in the test; seeds are fixed; each tolerance says why it is that size.
"""

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.nn import PyroModule, PyroSample
from torch.distributions import constraints

from pyro_aevb import AevbInputError, Dataset, Trainer, load_dataset, load_run, log_likelihood
from pyro_aevb.cli import main
from pyro_aevb.contract import check_data_support, check_model_guide
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.infer import hmc_log_likelihood
from pyro_aevb.models import LIKELIHOODS, Likelihood, VAEModel, get_likelihood
from pyro_aevb.models.likelihoods import continuous_bernoulli_log_normaliser
from pyro_aevb.plates import data_plate
from pyro_aevb.optimizers import make_optimizer


# ----------------------------------------------------------------------------- 1. masked observations


class PartlyObservedLinearGaussian(PyroModule):
    """z ~ N(0, I_J); x = W z + b + N(0, noise^2 I_D), where the last ``D - DA`` dimensions of a row are
    observed only when the row's flag (its extra last column) is 1: they are scored under ``poutine.mask``.

    log p(x_observed) is a Gaussian marginal: N(b_o, W_o W_o^T + noise^2 I) over the observed dimensions o."""

    D, DA, J = 6, 3, 2

    def __init__(self, noise=0.5, seed=3):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(self.D, self.J, generator=g)
        self.b = 0.5 * torch.randn(self.D, generator=g)
        self.noise = noise

    def forward(self, x, idx=None, num_data=None):
        values, flag = x[:, :-1], x[:, -1] > 0.5
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], self.J), 1.0).to_event(1))
            loc = z @ self.W.T + self.b
            pyro.sample("xa", dist.Normal(loc[..., :self.DA], self.noise).to_event(1), obs=values[:, :self.DA])
            with poutine.mask(mask=flag):
                pyro.sample("xb", dist.Normal(loc[..., self.DA:], self.noise).to_event(1), obs=values[:, self.DA:])

    def observed(self, flag):
        """Indices of the observed dimensions of a row with this flag."""
        return slice(None) if flag else slice(0, self.DA)

    def exact_log_marginal(self, x):
        cov = self.W @ self.W.T + self.noise ** 2 * torch.eye(self.D)
        out = []
        for row in x:
            o = self.observed(bool(row[-1] > 0.5))
            out.append(dist.MultivariateNormal(self.b[o], cov[o][:, o]).log_prob(row[:-1][o]))
        return torch.stack(out)

    def posterior(self, row):
        """Mean and covariance of p(z | x_observed) for one row."""
        o = self.observed(bool(row[-1] > 0.5))
        w = self.W[o]
        sigma = torch.linalg.inv(torch.eye(self.J) + w.T @ w / self.noise ** 2)
        return sigma @ w.T @ (row[:-1][o] - self.b[o]) / self.noise ** 2, sigma

    def simulate(self, n, generator):
        z = torch.randn(n, self.J, generator=generator)
        x = z @ self.W.T + self.b + self.noise * torch.randn(n, self.D, generator=generator)
        flag = (torch.arange(n) % 2).float()  # every other row has its last dimensions missing
        return torch.cat([x, flag[:, None]], -1)


class InflatedPosteriorProposal:
    """q(z|x): each row's exact posterior mean, marginal sds inflated 1.5x, correlations dropped -- a good but
    imperfect proposal (the importance weights are not constant)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x, idx=None, num_data=None):
        moments = [self.model.posterior(row) for row in x]
        loc = torch.stack([m for m, _ in moments])
        sd = torch.stack([s.diagonal().sqrt() for _, s in moments])
        with data_plate(x, idx, num_data):
            return pyro.sample("z", dist.Normal(loc, 1.5 * sd).to_event(1))


def test_hmc_and_importance_sampling_score_only_the_observed_part_of_a_masked_observation():
    """log p(x_observed) of a linear-Gaussian model whose observation is masked on half the rows: the appendix-D
    HMC estimator and importance sampling both recover the closed form (the masked dimensions count 0)."""
    pyro.set_rng_seed(0)
    model = PartlyObservedLinearGaussian()
    x = model.simulate(100, torch.Generator().manual_seed(1))
    exact = model.exact_log_marginal(x)
    masked = x[:, -1] < 0.5
    is_est = log_likelihood(model, InflatedPosteriorProposal(model), x, num_samples=2000)
    hmc_est = hmc_log_likelihood(model, x, num_samples=50, num_steps=4, num_warmup=100)
    # IS: with this proposal (J = 2, sds 1.5x) the weights' relative variance is O(1), so with K = 2000 the
    # per-point error is O(1/sqrt(K)) ~ 0.02-0.03 nats; 0.15 nats is > 5 such errors.  Scoring the masked
    # dimensions would move the masked rows by log p(x_b | x_a) ~ -2 nats.
    assert (is_est.per_datapoint - exact).abs().max() < 0.15
    # HMC (appendix D, L = 50): the harmonic-mean identity with a Gaussian fitted to 50 correlated draws has a
    # per-point spread of ~0.2 nats, so a mean over the 50 masked (or the 50 unmasked) rows has a standard
    # error of ~0.03; 0.15 nats allows 5 of them (the fitted q's bias is smaller still).
    for rows in (masked, ~masked):
        assert abs((hmc_est.per_datapoint[rows] - exact[rows]).mean().item()) < 0.15
    # most points individually: an error > 0.5 nats is > 2.5 per-point sds
    assert ((hmc_est.per_datapoint - exact).abs() < 0.5).float().mean() > 0.9


# ----------------------------------------------------------------------------- 2. continuous Bernoulli normaliser

CB_LOGITS = [-30.0, -20.0, -18.0, -5.0, -1e-4, 0.0, 1e-4, 5.0, 18.0, 20.0, 30.0]


@pytest.mark.parametrize("logit", CB_LOGITS)
def test_continuous_bernoulli_integrates_to_one_at_every_logit(logit):
    """The continuous Bernoulli likelihood, evaluated in float32 as in training, is a density on [0, 1] for
    every logit: far out where sigmoid(logit) rounds to 0 or 1, at 0 (C = 2) and next to it; its log-density
    and the gradient w.r.t. the logit are finite there."""
    lik = LIKELIHOODS["continuous_bernoulli"]
    x = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    out = torch.full((x.shape[0], 1), logit, dtype=torch.float32, requires_grad=True)
    log_p = lik(out).log_prob(x[:, None].float())[:, 0]
    # trapezoid rule, h = 5e-6: error <= h^2 / 12 * int |p''| = h^2 / 12 * |p'(1) - p'(0)| <= h^2 / 12 * 30^2 * 30
    # ~ 6e-8 at |logit| = 30 (p ~ 30 e^(30 (x - 1))); the float32 log-density is off by a few ulp of |log p|
    # <= 30, i.e. a relative error of the density < 1e-5.  1e-4 covers both; the old normaliser was off by 0.11
    # at |logit| = 18.
    assert torch.trapezoid(log_p.double().exp(), x).item() == pytest.approx(1.0, abs=1e-4)
    assert torch.isfinite(log_p).all()
    (grad,) = torch.autograd.grad(log_p.sum(), out)
    assert torch.isfinite(grad).all()


def test_continuous_bernoulli_normaliser_is_exact_and_smooth_through_zero():
    """log C(eta) = log(eta / tanh(eta / 2)) (float64 reference) on both sides of the Taylor switch at
    |eta| = 1e-2, and its derivative (eta / 6 near 0) has no jump there."""
    eta = torch.tensor([-30.0, -2.0, -0.0101, -0.0099, 1e-6, 0.0099, 0.0101, 2.0, 30.0], dtype=torch.float64)
    reference = torch.where(eta == 0, torch.tensor(math.log(2.0), dtype=torch.float64),
                            torch.log(eta / torch.tanh(eta / 2)))
    # float64 throughout: the Taylor remainder is < 4e-16 and the exact branch is a few ulp; 1e-12 is loose
    assert torch.allclose(continuous_bernoulli_log_normaliser(eta), reference, atol=1e-12, rtol=0)
    h = torch.tensor([0.0099, 0.0101], dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(continuous_bernoulli_log_normaliser(h).sum(), h)
    # d/deta log C = eta / 6 - 7 eta^3 / 360 + ...: 0.00165 and 0.00168; a jump would show at the 1e-6 level
    assert torch.allclose(slope, h.detach() / 6 - 7 * h.detach() ** 3 / 360, atol=1e-9)


# ----------------------------------------------------------------------------- 3. scale floor of a likelihood


def _student_t(out, min_scale=0.0):
    """A three-parameter likelihood of the test's own: df = 1 + softplus(.), loc, scale = min_scale + exp(.)."""
    df, loc, log_scale = out.chunk(3, dim=-1)
    return dist.StudentT(1.0 + torch.nn.functional.softplus(df), loc, torch.exp(log_scale) + min_scale)


def test_a_scale_floor_keeps_every_other_parameter_of_the_likelihood():
    """With a floor s, a StudentT likelihood keeps its df and loc and has scale = s + learned scale (the
    likelihood builds it; nothing rebuilds a distribution from loc/scale attributes); gaussian and laplace
    give exactly the log-densities of N(mu, sigma + s) and Laplace(mu, b + s) as before."""
    torch.manual_seed(0)
    out = torch.randn(4, 3 * 5)
    floored = Likelihood("student_t", 3, _student_t, constraints.real, learned_scale=True).with_min_scale(0.1)
    d = floored(out)
    df, loc, log_scale = out.chunk(3, dim=-1)
    assert isinstance(d, dist.StudentT)
    # the same float32 operations in the same order: equal to the last bit
    assert torch.equal(d.df, 1.0 + torch.nn.functional.softplus(df)) and torch.equal(d.loc, loc)
    assert torch.equal(d.scale, torch.exp(log_scale) + 0.1)
    two = torch.randn(4, 2 * 5)
    x = torch.rand(4, 5)
    a, b = two.chunk(2, dim=-1)
    # the old rebuild: type(d)(d.loc, d.scale + s) of the unfloored distribution
    for name, family, scale in (("gaussian", dist.Normal, torch.exp(0.5 * b)), ("laplace", dist.Laplace, b.exp())):
        for s in (0.0, 0.1):
            expected = family(torch.sigmoid(a), scale + s).log_prob(x)
            assert torch.equal(LIKELIHOODS[name].with_min_scale(s)(two).log_prob(x), expected), (name, s)
    # a learned-scale likelihood must be able to take the floor: said when it is declared, not on first use
    with pytest.raises(AevbInputError, match=r"fn\(out, min_scale\)"):
        Likelihood("student_t", 3, lambda out: _student_t(out), constraints.real, learned_scale=True)


# ----------------------------------------------------------------------------- 6. a likelihood given as a function


def paired(out):
    """Neighbouring pixels (2k, 2k + 1) share a mean: a likelihood that works on whole rows of even D only."""
    pairs = out.unflatten(-1, (-1, 2))
    return dist.Normal(torch.sigmoid(pairs.mean(-1, keepdim=True).expand_as(pairs).flatten(-2)), 0.2)


def test_a_likelihood_function_is_probed_with_the_data_dimension():
    """The support of a likelihood given as a function is read from it at the data's D (here 6), so one that
    works on whole rows only is accepted and trains; where it does fail (odd D), the failure is one
    AevbInputError naming the likelihood, not a raw torch error."""
    pyro.set_rng_seed(0)
    x = torch.rand(40, 6)
    model, guide = VAEModel(6, 2, (8,), paired), AmortizedNormalGuide(6, 2, (8,))
    check_data_support(model, x)  # the trainer's check: D = 1 made unflatten(-1, (-1, 2)) fail here
    trainer = Trainer(model, guide, Dataset("pairs", x[:30], x[30:], None), batch_size=10, progress=False)
    trainer.fit(epochs=1)
    assert math.isfinite(trainer.metrics[-1]["test_elbo"])
    with pytest.raises(AevbInputError, match=r"likelihood 'paired' failed .* D = 5"):
        get_likelihood(paired).check_data(torch.rand(4, 5))


# ----------------------------------------------------------------------------- 4. a module shared by model and guide

VD, VJ, VK = 6, 2, 3


class SharedEncoder(PyroModule):
    """x -> (loc, scale) of a Gaussian over z."""

    def __init__(self):
        super().__init__()
        self.net = PyroModule[torch.nn.Linear](VD, 2 * VJ)

    def forward(self, x):
        loc, log_scale = self.net(x).chunk(2, -1)
        return loc, log_scale.exp()


class EncoderGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.encoder = SharedEncoder()

    def forward(self, x, idx=None, num_data=None):
        loc, scale = self.encoder(x)
        with data_plate(x, idx, num_data):
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))


class VampPriorModel(PyroModule):
    """p(z) = (1/K) sum_k q(z | u_k), the VampPrior: the guide's encoder at K learned pseudo-inputs u_k."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.pseudo_inputs = torch.nn.Parameter(torch.rand(VK, VD))
        self.decoder = PyroModule[torch.nn.Linear](VJ, VD)

    def forward(self, x, idx=None, num_data=None):
        loc, scale = self.encoder(self.pseudo_inputs)
        prior = dist.MixtureSameFamily(dist.Categorical(logits=torch.zeros(VK)), dist.Normal(loc, scale).to_event(1))
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", prior.expand([x.shape[0]]))
            pyro.sample("x", dist.Normal(self.decoder(z), 1.0).to_event(1), obs=x)


def test_a_module_shared_by_model_and_guide_is_optimised_once_as_a_model_parameter():
    """A VampPrior runs the guide's encoder: each parameter is in exactly one optimizer group, the shared
    encoder in the model's (it shapes p(z), so it gets the prior's weight decay), and the Trainer trains."""
    pyro.set_rng_seed(0)
    guide = EncoderGuide()
    model = VampPriorModel(guide.encoder)
    optimizer = make_optimizer(model, guide, "adagrad", 0.01, prior_precision=0.5)
    held = [id(p) for g in optimizer.param_groups for p in g["params"]]
    every = {id(p) for p in [*model.parameters(), *guide.parameters()]}
    assert len(held) == len(set(held)) == len(every)
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert all(decay[id(p)] == 0.5 for p in model.parameters())  # the shared encoder among them
    x = torch.rand(40, VD)
    before = [p.detach().clone() for p in guide.encoder.parameters()]
    trainer = Trainer(model, guide, Dataset("vamp", x[:30], x[30:], None), elbo="trace", batch_size=10,
                      progress=False)
    trainer.fit(epochs=1)
    assert math.isfinite(trainer.metrics[-1]["train_elbo"])
    assert any(not torch.equal(b, p) for b, p in zip(before, guide.encoder.parameters()))


# ----------------------------------------------------------------------------- 8. a global weight read inside the plate


class BayesianLayer(PyroModule):
    """y = z W^T with W ~ N(0, I) a PyroSample: drawn wherever ``self.weight`` is read."""

    def __init__(self):
        super().__init__()
        self.weight = PyroSample(dist.Normal(0.0, 1.0).expand([VD, VJ]).to_event(2))

    def forward(self, z):
        return torch.matmul(z.unsqueeze(-2), self.weight.transpose(-1, -2)).squeeze(-2)


class WeightInsidePlateModel(PyroModule):
    """The mistake: the layer (and so its weight) is first read inside the data plate."""

    def __init__(self):
        super().__init__()
        self.decoder = BayesianLayer()

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], VJ), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(self.decoder(z), 1.0).to_event(1), obs=x)


class LocalGuide(PyroModule):
    """q(z) only, or q(W) q(z) with q(W) global, as a full-VB guide has it."""

    def __init__(self, with_weight):
        super().__init__()
        self.with_weight = with_weight

    def forward(self, x, idx=None, num_data=None):
        if self.with_weight:
            pyro.sample("decoder.weight", dist.Normal(torch.zeros(VD, VJ), 1.0).to_event(2))
        with data_plate(x, idx, num_data):
            pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], VJ), 1.0).to_event(1))


@pytest.mark.parametrize("with_weight", [False, True])
def test_a_weight_sampled_inside_the_data_plate_is_named_as_the_models_mistake(with_weight):
    """Whether the guide omits the weight or samples it globally, the error names the model's site and says to
    read the weight before entering the plate (it used to tell the user to change the guide)."""
    with pytest.raises(AevbInputError, match=r"the model samples 'decoder\.weight' inside the 'data' plate.*"
                                             r"before entering pyro\.plate\('data'\)") as info:
        check_model_guide(WeightInsidePlateModel(), LocalGuide(with_weight), torch.rand(10, VD), "trace")
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- 7. a model of yours, the default guide

USER_MODEL = '''
import pyro, pyro.distributions as dist, torch
from pyro.nn import PyroModule
from pyro_aevb.plates import data_plate


class Model(PyroModule):
    """z in R^3 (not --latent-dim's 20), a linear-Gaussian decoder."""

    def __init__(self, data_dim):
        super().__init__()
        self.decoder = torch.nn.Linear(3, data_dim)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 3), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(self.decoder(z), 1.0).to_event(1), obs=x)
'''


def test_a_model_of_yours_with_the_default_guide_says_which_guide_was_used(tmp_path, capsys):
    """Without --guide, a model class of the user's gets the built-in MLP guide with --latent-dim 20, which does
    not fit its 3-d z: the one-line error says that guide was used and to give --guide path.py:Guide; with a
    --latent-dim that fits, the same command trains."""
    (tmp_path / "mine.py").write_text(USER_MODEL)
    np.save(tmp_path / "d.npy", np.random.default_rng(0).random((40, 6)).astype(np.float32))
    argv = ["train", "--dataset", str(tmp_path / "d.npy"), "--model", f"{tmp_path / 'mine.py'}:Model",
            "--epochs", "1", "--batch-size", "10", "--no-progress"]
    code = main(argv + ["--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "built-in 'normal'" in err and "--latent-dim 20" in err and "--guide path.py:Guide" in err
    assert main(argv + ["--latent-dim", "3", "--out", str(tmp_path / "b")]) == 0


# ----------------------------------------------------------------------------- 5. what uint8 values are


def test_uint8_arrays_are_read_as_the_caller_says_and_the_default_is_announced(tmp_path):
    """uint8 counts stay counts with uint8='counts', become x / 255 with 'pixels', and without a choice are read
    as pixels with one RuntimeWarning naming the option; other dtypes are untouched either way."""
    counts = np.random.default_rng(0).integers(0, 256, size=(20, 4), dtype=np.uint8)
    np.save(tmp_path / "c.npy", counts)
    expected = torch.as_tensor(counts).float()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit choice is silent
        kept = load_dataset(str(tmp_path / "c.npy"), uint8="counts")
        pixels = load_dataset(str(tmp_path / "c.npy"), uint8="pixels")
    rows = lambda ds: torch.cat([ds.train, ds.test])  # noqa: E731 -- the split is the same permutation in both
    assert kept.info["uint8"] == "counts" and pixels.info["uint8"] == "pixels"
    assert sorted(rows(kept).flatten().tolist()) == sorted(expected.flatten().tolist())
    assert torch.equal(rows(pixels), rows(kept) / 255.0)
    with pytest.warns(RuntimeWarning, match="uint8='counts'") as caught:
        default = load_dataset(str(tmp_path / "c.npy"))
    assert len(caught) == 1 and default.info["uint8"] == "pixels" and torch.equal(rows(default), rows(pixels))
    np.save(tmp_path / "f.npy", counts.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "uint8" not in load_dataset(str(tmp_path / "f.npy")).info
    with pytest.raises(AevbInputError, match="uint8"):
        load_dataset(str(tmp_path / "c.npy"), uint8="bytes")


@pytest.mark.parametrize("flag, scale", [([], 255.0), (["--uint8", "pixels"], 255.0), (["--uint8", "counts"], 1.0)])
def test_the_uint8_reading_is_recorded_so_a_run_reloads_the_same_data(tmp_path, capsys, flag, scale):
    """train --uint8 counts|pixels reads the file so and records it; without the flag, one 'pyro-aevb: warning:'
    line names --uint8 and 'pixels' is recorded; load_run(...).load_data() reads the same values, silently."""
    counts = np.random.default_rng(0).integers(0, 256, size=(30, 4), dtype=np.uint8)
    np.save(tmp_path / "c.npy", counts)
    out = tmp_path / "run"
    argv = ["train", "--dataset", str(tmp_path / "c.npy"), "--likelihood", "gaussian", "--latent-dim", "2",
            "--hidden-dim", "8", "--batch-size", "10", "--epochs", "1", "--no-progress", "--out", str(out)]
    assert main(argv + flag) == 0
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if line.startswith("pyro-aevb: warning:") and "uint8" in line]
    assert len(warned) == (0 if flag else 1) and (flag or "--uint8 counts" in warned[0])
    run = load_run(out)
    assert run.config.uint8 == (flag[1] if flag else "pixels")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = run.load_data()
    values = torch.cat([data.train, data.test]).flatten().sort().values
    assert torch.equal(values, torch.as_tensor(counts).float().flatten().sort().values / scale)
