"""One meaning for the bound per datapoint of a model with global latents (full VB, appendix F), and for the
bound an IWAE run reports.

The bound of the N_train points q(theta) was fitted to is (eq. 21 / 24)

    L(X) = sum_i E_q[log p(x_i | z_i, theta) + log p(z_i) - log q(z_i | x_i)] - KL(q(theta) || p(theta))

and per datapoint of any set x: mean local term over x - KL / N_train.  Every reader of a run -- evaluate_bound,
full_vb_bound, the trainer's metrics, evaluate_run and ``pyro-aevb evaluate`` -- reports this one number.

The model here is written in the test and small enough to have the bound in closed form, per dimension d:

    theta_d ~ N(0, 1) (global),  z_id ~ N(0, 1),  x_id | z_id, theta_d ~ N(theta_d + z_id, 1)
    q(theta_d) = N(m, s^2),      q(z_id | x_i) = N(a x_id, t^2)
"""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb import AevbInputError, Dataset, RunConfig, Trainer, evaluate_bound, evaluate_run, log_likelihood
from pyro_aevb.applications import reconstruct_images
from pyro_aevb.evaluation import fix_globals, full_vb_bound, global_kl, posterior_predictive_log_likelihood
from pyro_aevb.evaluation.terms import bound_terms
from pyro_aevb.plates import data_plate
from pyro_aevb.rng import seeded
from pyro_aevb.runs import Run

D = 20  # dimensions of x, z and theta
N_TRAIN = 1000


class GlobalShiftModel(PyroModule):
    """p(theta) prod_i p(z_i) p(x_i | z_i, theta): a shift theta shared by all rows (outside the data plate)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x, idx=None, num_data=None):
        theta = pyro.sample("theta", dist.Normal(0.0, 1.0).expand([self.dim]).to_event(1))
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([self.dim]).to_event(1))
            pyro.sample("x", dist.Normal(theta + z, 1.0).to_event(1), obs=x)


class GlobalShiftGuide(PyroModule):
    """q(theta) = N(m, s^2 I), q(z_i | x_i) = N(a x_i, t^2 I)."""

    def __init__(self, dim: int, m: float = 0.0, s: float = 1e-6, a: float = 0.5, t: float = math.sqrt(0.5)):
        super().__init__()
        self.theta_loc = nn.Parameter(torch.full((dim,), m))
        self.theta_log_scale = nn.Parameter(torch.full((dim,), math.log(s)))
        self.a = nn.Parameter(torch.tensor(a))
        self.log_t = nn.Parameter(torch.tensor(math.log(t)))

    def forward(self, x, idx=None, num_data=None):
        pyro.sample("theta", dist.Normal(self.theta_loc, self.theta_log_scale.exp()).to_event(1))
        with data_plate(x, idx, num_data):
            pyro.sample("z", dist.Normal(self.a * x, self.log_t.exp().expand_as(x)).to_event(1))


def _rows(n: int, seed: int) -> torch.Tensor:
    """n rows x ~ N(0, I_D), the data distribution the closed forms below average over (v = 1)."""
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed))


def test_the_bound_per_datapoint_does_not_depend_on_how_many_rows_are_evaluated():
    """On 20, 100 and 500 rows of the same distribution the bound per datapoint is the population value
    mean local term - KL/N_train up to row and Monte Carlo noise, not local - KL/len(x) (the old meaning).

    Closed forms (per dimension, x ~ N(0, 1), m = 0, a = 1/2, t^2 = 1/2 -- q(z|x) is the exact posterior at
    theta = 0 -- s = 1e-6): estimator B's local term of a row is
        l = -log(2 pi)/2 - r^2/2 - KL(N(a x, t^2) || N(0, 1)),   r = x - theta - z ~ N((1 - a) x, s^2 + t^2),
    with mean  -log(2 pi)/2 - ((1-a)^2 + s^2 + t^2)/2 - (t^2 + a^2 - 1 - log t^2)/2 = log N(x; 0, 2) averaged
    = -1.5155 per dimension, and variance (over x and the one draw of z, w = (1-a) x + noise)
        (2 sd_w^4 + 2 a^4 + 4 a^2 (1-a)^2) / 4 = 0.375,  sd_w^2 = (1-a)^2 + t^2 = 0.75.
    So the mean of n rows has sd sqrt(D 0.375 / n): 0.61 (n = 20), 0.27 (100), 0.12 (500); the tolerance is 4 sd.
    theta is drawn once per call and shared by the rows, but with s = 1e-6 it moves l by ~1e-6: negligible.
    KL(q(theta)||p(theta)) = D (s^2 + m^2 - 1 - log s^2) / 2 = 266.3 nats, so the old KL/len(x) put the 20-row
    number 13.3 nats and the 100-row number 2.4 nats below -- outside the band, while KL/N_train = 0.27."""
    model, guide = GlobalShiftModel(D), GlobalShiftGuide(D)
    s2, a, t2 = 1e-12, 0.5, 0.5
    local_mean = D * (-0.5 * math.log(2 * math.pi) - 0.5 * ((1 - a) ** 2 + s2 + t2)
                      - 0.5 * (t2 + a ** 2 - 1 - math.log(t2)))
    kl = D * 0.5 * (s2 - 1 - math.log(s2))
    assert global_kl(model, guide, _rows(2, 0)) == pytest.approx(kl, rel=1e-5)
    expected = local_mean - kl / N_TRAIN
    variance = (2 * ((1 - a) ** 2 + t2) ** 2 + 2 * a ** 4 + 4 * a ** 2 * (1 - a) ** 2) / 4
    for n, seed in ((20, 1), (100, 2), (500, 3)):
        x = _rows(n, seed)
        tolerance = 4 * math.sqrt(D * variance / n)
        with seeded(10 + n, x.device):
            bound = evaluate_bound(model, guide, x, "analytic", num_data=N_TRAIN)
        assert abs(bound - expected) < tolerance, (n, bound, expected, tolerance)
        old = local_mean - kl / n
        if kl * (1 / n - 1 / N_TRAIN) > 2 * tolerance:  # n = 20 and 100: the old meaning is outside the band
            assert abs(bound - old) > tolerance, (n, bound, old)


def test_reconstructions_bound_is_its_terms_minus_the_kl_of_theta_per_training_row():
    """reconstruct's numbers add up for a model with global latents too, from the same draw of theta:
    test_elbo = reconstruction_term - kl_term - kl_theta / N_train exactly, and the same numbers again for the same
    seed; and the bound is the one bound per
    datapoint (the closed form of the test above: the same one-draw terms, so the same sd, 4 sd tolerance)."""
    model, guide = GlobalShiftModel(D), GlobalShiftGuide(D)
    s2, a, t2 = 1e-12, 0.5, 0.5
    kl = D * 0.5 * (s2 - 1 - math.log(s2))
    expected = D * (-0.5 * math.log(2 * math.pi) - 0.5 * ((1 - a) ** 2 + s2 + t2)
                    - 0.5 * (t2 + a ** 2 - 1 - math.log(t2))) - kl / N_TRAIN
    variance = (2 * ((1 - a) ** 2 + t2) ** 2 + 2 * a ** 4 + 4 * a ** 2 * (1 - a) ** 2) / 4
    x = _rows(500, 3)
    with pytest.raises(AevbInputError, match="pass num_data"):
        reconstruct_images(model, guide, x)
    m = reconstruct_images(model, guide, x, num_data=N_TRAIN).metrics()
    assert m == reconstruct_images(model, guide, x, num_data=N_TRAIN, seed=0).metrics()  # seed: every number
    assert m["test_elbo"] == m["reconstruction_term"] - m["kl_term"] - m["kl_theta"] / N_TRAIN
    assert m["kl_theta"] == pytest.approx(kl, rel=1e-5) and m["num_data"] == N_TRAIN
    assert abs(m["test_elbo"] - expected) < 4 * math.sqrt(D * variance / 500), (m["test_elbo"], expected)
    assert "kl_theta" not in reconstruct_images(LocalModel(), LocalGuide(0.5, 0.5), x).metrics()


def test_the_per_datapoint_estimators_name_fix_globals_and_it_gives_log_p_x_given_theta_exactly():
    """log_likelihood refuses global latents and names fix_globals; with theta fixed at 0 that recipe gives
    log p(x | theta = 0) = log N(x; 0, 2 I) exactly, since q(z|x) = N(x/2, I/2) is then the exact posterior (every
    importance weight equals p(x | theta)).  Conditioning theta without hiding it makes it an observation outside
    every plate, and a per-datapoint plate of another name is named: both messages say what to do."""
    model, guide = GlobalShiftModel(D), GlobalShiftGuide(D)
    x = _rows(50, 6)
    with pytest.raises(AevbInputError, match=r"fix_globals\(model, guide"):
        log_likelihood(model, guide, x, num_samples=4)
    theta = {"theta": torch.zeros(D)}
    ll = log_likelihood(*fix_globals(model, guide, theta), x, num_samples=4)
    exact = dist.Normal(0.0, math.sqrt(2.0)).log_prob(x).sum(-1).mean().item()
    assert ll.mean == pytest.approx(exact, abs=1e-4)  # float32 sums of 20 dimensions
    with pytest.raises(AevbInputError, match="'theta' of the model is outside every plate.*fix_globals"):
        evaluate_bound(poutine.condition(model, data=theta), poutine.condition(guide, data=theta), x)

    class RowsPlate(LocalModel):
        def forward(self, x, idx=None, num_data=None):
            with pyro.plate("rows", num_data or x.shape[0], subsample=idx):
                z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[-1]]).to_event(1))
                pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    with pytest.raises(AevbInputError, match="in plate.s. 'rows' but not in the plate named 'data'"):
        evaluate_bound(RowsPlate(), LocalGuide(0.5, 0.5), x)


class CovariateShiftModel(GlobalShiftModel):
    """x_i | z_i, theta ~ N(theta + z_i + y_i, I) with a conditioning input y_i (a scalar per row)."""

    def forward(self, x, idx=None, num_data=None, y=None):
        theta = pyro.sample("theta", dist.Normal(0.0, 1.0).expand([self.dim]).to_event(1))
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([self.dim]).to_event(1))
            pyro.sample("x", dist.Normal(theta + z + y[:, None], 1.0).to_event(1), obs=x)


class CovariateShiftGuide(GlobalShiftGuide):
    """q(theta) = N(m, s^2 I), q(z_i | x_i, y_i) = N(a (x_i - y_i), t^2 I)."""

    def forward(self, x, idx=None, num_data=None, y=None):
        pyro.sample("theta", dist.Normal(self.theta_loc, self.theta_log_scale.exp()).to_event(1))
        with data_plate(x, idx, num_data):
            u = x - y[:, None]
            pyro.sample("z", dist.Normal(self.a * u, self.log_t.exp().expand_as(u)).to_event(1))


def test_full_vb_estimates_of_a_model_with_a_conditioning_input_are_of_log_p_x_given_y():
    """posterior_predictive_log_likelihood and bound_terms take the rows' inputs: with u = x - y ~ N(0, I) the
    model is the shift model of the tests above in u, so log p(x | y) = log N(x - y; 0, 2 I) -- exactly what
    importance sampling gives (q(z|x,y) is the exact posterior at theta ~ 0, s = 1e-6) -- and the terms' bound
    is that model's bound (its closed form and 4 sd, as in the first test)."""
    model, guide = CovariateShiftModel(D), CovariateShiftGuide(D)
    u, y = _rows(500, 7), torch.linspace(-3, 3, 500)
    x, inputs = u + y[:, None], {"y": y}
    exact = dist.Normal(0.0, math.sqrt(2.0)).log_prob(u).sum(-1).mean().item()
    ll = posterior_predictive_log_likelihood(model, guide, x, num_theta=2, num_samples=4, inputs=inputs)
    assert ll.mean == pytest.approx(exact, abs=1e-3)  # theta moves each term by ~1e-6; float32 sums
    s2, a, t2 = 1e-12, 0.5, 0.5
    local_mean = D * (-0.5 * math.log(2 * math.pi) - 0.5 * ((1 - a) ** 2 + s2 + t2)
                      - 0.5 * (t2 + a ** 2 - 1 - math.log(t2)))
    variance = (2 * ((1 - a) ** 2 + t2) ** 2 + 2 * a ** 4 + 4 * a ** 2 * (1 - a) ** 2) / 4
    terms = bound_terms(model, guide, x, inputs=inputs)
    assert abs(terms.bound - local_mean) < 4 * math.sqrt(D * variance / 500), (terms.bound, local_mean)


def test_a_global_latent_model_without_num_data_is_refused_in_one_line():
    """The KL of theta has no per-datapoint meaning without N_train: one AevbInputError saying what to pass;
    a model without global latents does not need it."""
    model, guide = GlobalShiftModel(D), GlobalShiftGuide(D)
    with pytest.raises(AevbInputError, match="pass num_data = the training set size") as err:
        evaluate_bound(model, guide, _rows(10, 0))
    assert "\n" not in str(err.value) and "'theta'" in str(err.value)
    with pytest.raises(AevbInputError, match="num_data"):
        full_vb_bound(model, guide, _rows(10, 0))
    with pytest.raises(AevbInputError, match="integer >= 1"):
        evaluate_bound(model, guide, _rows(10, 0), num_data=0)


def test_every_reader_reports_the_same_number_on_the_same_rows_and_seed(tmp_path):
    """evaluate_bound, full_vb_bound, the trainer's per-epoch evaluation and evaluate_run (what ``pyro-aevb
    evaluate`` prints) compute the same estimate from the same random draws, so they agree to the last bit; and
    evaluate_run reports one bound per estimator (no second, different number for the same quantity)."""
    model, guide = GlobalShiftModel(D), GlobalShiftGuide(D)
    train, test = _rows(N_TRAIN, 4), _rows(100, 5)
    trainer = Trainer(model, guide, Dataset("shift", train, test), elbo="analytic", progress=False, seed=7)
    with seeded(7, test.device):  # the trainer evaluates under seed + 1000003 * epoch, epoch 0 here
        ours = evaluate_bound(model, guide, test, "analytic", num_data=N_TRAIN)
    with seeded(7, test.device):
        fv = full_vb_bound(model, guide, test, N_TRAIN, "analytic")
    row = trainer.evaluate(test)
    assert row["bound"] == ours == fv.bound and fv.bound == fv.local - fv.kl / N_TRAIN
    assert row["kl_theta"] == fv.kl

    path = tmp_path / "shift.npz"
    np.savez(path, train=train.numpy(), test=test.numpy())
    run = Run(model, guide, RunConfig(dataset=str(path), binarize="none"), [], 0, tmp_path)
    with seeded(8, test.device):
        result = evaluate_run(run, splits=("test",))
    with seeded(8, test.device):  # evaluate_run evaluates estimator A, then B
        trace = evaluate_bound(model, guide, test, "trace", num_data=N_TRAIN)
        analytic = evaluate_bound(model, guide, test, "analytic", num_data=N_TRAIN)
    assert result["test_elbo_trace"] == trace and result["test_elbo_analytic"] == analytic
    assert result["kl_theta"] == pytest.approx(fv.kl) and "test_full_vb_bound" not in result
    assert result["test_elbo_analytic"] == pytest.approx(result["test_local_bound"] - fv.kl / N_TRAIN)


class LocalModel(PyroModule):
    """prod_i p(z_i) p(x_i | z_i) with z_i ~ N(0, I), x_i | z_i ~ N(z_i, I): no global latent."""

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[-1]]).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


class LocalGuide(PyroModule):
    """q(z_i | x_i) = N(a x_i, t^2 I)."""

    def __init__(self, a: float, t: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.log_t = nn.Parameter(torch.tensor(math.log(t)))

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            pyro.sample("z", dist.Normal(self.a * x, self.log_t.exp().expand_as(x)).to_event(1))


def test_an_iwae_runs_metrics_bound_is_the_one_evaluate_reports_as_its_iwae_bound(tmp_path):
    """A run trained with the IWAE bound (K = num_particles) reports that bound in its metrics; evaluate_run (what
    ``pyro-aevb evaluate`` prints) reports it too, as ``test_elbo_iwae`` with ``iwae_samples`` = K, from the same
    draws as evaluate_bound -- beside A and B, which estimate the (lower) ELBO of eq. (3), not the metrics' number.
    The guide q(z|x) = N(x / 2, 0.1 I) is narrower than the posterior N(x / 2, I / 2): the ELBO is KL = 20 * 0.405 =
    8.1 nats below log p(x), and the log-weights' variance is about 20 * 0.32 = 6.4, so IWAE-5 is about
    (1 - 1/5) * 6.4 / 2 = 2.6 nats above the ELBO (delta method) -- more than the 1 nat asserted."""
    model, guide = LocalModel(), LocalGuide(a=0.5, t=math.sqrt(0.1))
    train, test = _rows(N_TRAIN, 4), _rows(100, 5)
    trainer = Trainer(model, guide, Dataset("local", train, test), elbo="iwae", num_particles=5,
                      progress=False, seed=7)
    with seeded(7, test.device):  # the trainer evaluates under seed + 1000003 * epoch, epoch 0 here
        iwae = evaluate_bound(model, guide, test, "iwae", num_particles=5)
    assert trainer.evaluate(test)["bound"] == iwae

    path = tmp_path / "local.npz"
    np.savez(path, train=train.numpy(), test=test.numpy())
    run = Run(model, guide, RunConfig(dataset=str(path), binarize="none", elbo="iwae", num_particles=5), [], 0,
              tmp_path)
    with seeded(8, test.device):
        result = evaluate_run(run, splits=("test",))
    with seeded(8, test.device):  # evaluate_run evaluates estimator A, then B, then the run's IWAE bound
        trace = evaluate_bound(model, guide, test, "trace")
        analytic = evaluate_bound(model, guide, test, "analytic")
        iwae = evaluate_bound(model, guide, test, "iwae", num_particles=5)
    assert (result["test_elbo_trace"], result["test_elbo_analytic"]) == (trace, analytic)
    assert result["test_elbo_iwae"] == iwae
    assert result["iwae_samples"] == 5 and iwae > analytic + 1.0  # a different number: it needs its own name


def test_the_chunk_size_does_not_change_the_bound():
    """evaluate_bound evaluates in chunks of batch_size rows; the bound does not depend on it.  With every scale
    of q shrunk to 1e-9 one draw is (numerically) its mean and estimator B is deterministic, so the numbers agree
    to float32 rounding (relative 1e-5) -- the KL of theta enters once, over N_train, not once per chunk."""
    model, guide = GlobalShiftModel(D), GlobalShiftGuide(D, m=0.3, s=1e-9, t=1e-9)
    x = _rows(50, 6)
    whole = evaluate_bound(model, guide, x, "analytic", batch_size=50, num_data=N_TRAIN)
    for batch_size in (1, 7, 20):
        assert evaluate_bound(model, guide, x, "analytic", batch_size=batch_size, num_data=N_TRAIN) == pytest.approx(
            whole, rel=1e-5)
    fv = full_vb_bound(model, guide, x, N_TRAIN, "analytic", batch_size=3)
    assert fv.bound == pytest.approx(whole, rel=1e-5) and fv.num_data == N_TRAIN
