"""The wake-sleep and Monte Carlo EM baselines (Figs. 2 and 3, appendix E), trained by the same Trainer."""

import pyro
import pytest
import torch

from pyro_aevb import AevbInputError, Dataset, Trainer, evaluate_bound
from pyro_aevb.infer import MonteCarloEM, WakeSleep
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import VAEModel


def _vae(data_dim=784, latent_dim=3, hidden=50):
    return VAEModel(data_dim, latent_dim, (hidden,)), AmortizedNormalGuide(data_dim, latent_dim, (hidden,))


@pytest.fixture(scope="module")
def mnist_1k(mnist):
    return Dataset("mnist", mnist.train[:1000].clone(), mnist.test[:500].clone(), (28, 28))


@pytest.mark.parametrize("phase", ["wake_loss", "sleep_loss"])
def test_wake_sleep_minibatch_terms_are_scaled_by_n_over_m(mnist_1k, phase):
    """Eq. (8): with a subsample of M of N points, each phase's loss is N/M times the minibatch sum
    (same random draws, so the equality is exact up to float rounding)."""
    model, guide = _vae()
    ws = WakeSleep(model, guide, mnist_1k.train)
    idx = torch.arange(100, 150)
    x = mnist_1k.train[idx]
    pyro.set_rng_seed(3)
    scaled = getattr(ws, phase)(x, idx, 1000).item()
    pyro.set_rng_seed(3)
    unscaled = getattr(ws, phase)(x, None, None).item()
    assert scaled == pytest.approx(1000 / 50 * unscaled, rel=1e-5)


def test_wake_phase_updates_only_theta_and_sleep_phase_only_phi(mnist_1k):
    """The wake loss uses z ~ q held fixed (no gradient to phi); the sleep loss uses dreams from p held
    fixed (no gradient to theta)."""
    model, guide = _vae()
    ws = WakeSleep(model, guide, mnist_1k.train)
    idx = torch.arange(20)
    x = mnist_1k.train[idx]
    for loss_name, trained, frozen in (("wake_loss", model, guide), ("sleep_loss", guide, model)):
        model.zero_grad(set_to_none=True)
        guide.zero_grad(set_to_none=True)
        getattr(ws, loss_name)(x, idx, 1000).backward()
        assert all(p.grad is None for p in frozen.parameters()), loss_name
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained.parameters()), loss_name


def test_wake_sleep_raises_the_lower_bound(mnist_1k):
    """A few epochs of wake-sleep on 1000 images raise the test lower bound far above its initial value
    (-543 nats at initialisation; the bound gains > 100 nats in the first epochs of any working learner)."""
    pyro.set_rng_seed(0)
    model, guide = _vae()
    before = evaluate_bound(model, guide, mnist_1k.test)
    ws = WakeSleep(model, guide, mnist_1k.train)
    trainer = Trainer(model, guide, mnist_1k, elbo=ws, progress=False)
    trainer.fit(train_samples=5000)
    after = evaluate_bound(model, guide, mnist_1k.test)
    assert trainer.train_samples == 5000
    # wake-sleep's own loss is not a bound: reported as train_objective; train/test_elbo are q's bound
    assert "train_objective" in trainer.metrics[-1] and "train_running_elbo" not in trainer.metrics[-1]
    assert trainer.metrics[-1]["test_elbo"] == pytest.approx(after, abs=2.0)
    assert after > before + 100


def test_mcem_adapts_hmc_to_target_acceptance_and_fits_the_data(mnist_1k):
    """Appendix E: the per-datapoint step sizes approach 90% acceptance and the M steps raise
    log p(x, z) per datapoint (the complete-data log-likelihood at the current samples) by far more than
    100 nats: at initialisation every pixel costs log 2 (-543 nats per image), and a decoder that has
    only learnt the mean image is already at about -200."""
    pyro.set_rng_seed(0)
    model, _ = _vae()
    em = MonteCarloEM(model, mnist_1k.train)
    idx = torch.arange(100)
    start = -em(mnist_1k.train[idx], idx, 1000).item() / 1000  # N/M-scaled sum / N = mean per datapoint
    Trainer(model, None, mnist_1k, elbo=em, progress=False).fit(train_samples=3000)  # each point visited 3 times
    end = -em(mnist_1k.train[idx], idx, 1000).item() / 1000
    assert end > start + 100, (start, end)
    # the Robbins-Monro step-size updates drive acceptance towards 0.9; after 3 visits per point
    # the last minibatch's mean acceptance is within [0.6, 1.0] (0.9 +- a few visits' worth of noise)
    assert 0.6 < float(em.accept_rate) <= 1.0
    # step sizes are per datapoint and all finite
    assert em.log_step_size.shape == (1000,) and torch.isfinite(em.log_step_size).all()


def test_mcem_m_step_is_the_scaled_complete_data_log_likelihood(mnist_1k):
    """The M-step loss = -(N/M) sum_i [log p(z_i) + log p_theta(x_i | z_i)] at the chains' current z."""
    model, _ = _vae()
    em = MonteCarloEM(model, mnist_1k.train)
    idx = torch.arange(30, 70)
    x, z = mnist_1k.train[idx], em.z[idx]
    expected = -(1000 / 40) * (model.prior(z.shape[:1]).log_prob(z) + model.likelihood_dist(z).log_prob(x)).sum()
    assert em(x, idx, 1000).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("method", ["wake_sleep", "mcem"])
def test_baseline_resumed_run_equals_unbroken_run(mnist_1k, tmp_path, method):
    """Through the Trainer the baselines get checkpoints: 1 epoch + resume to 2 equals 2 epochs bit for bit
    (MCEM's persistent chains and step sizes are in the checkpoint), with dynamic binarization."""
    data = Dataset("mnist", mnist_1k.train[:300], mnist_1k.test[:100], (28, 28), binarize="dynamic")

    def make(run_dir, resume=False):
        pyro.set_rng_seed(0)
        model, guide = _vae(hidden=20)
        objective = WakeSleep(model, guide, data.train) if method == "wake_sleep" else MonteCarloEM(model, data.train)
        return Trainer(model, guide if method == "wake_sleep" else None, data, elbo=objective, progress=False,
                       run_dir=run_dir, resume=resume)

    unbroken = make(tmp_path / "a").fit(epochs=2)
    make(tmp_path / "b").fit(epochs=1)
    resumed = make(tmp_path / "b", resume=True)
    rows = resumed.fit(epochs=2)
    strip = lambda rs: [{k: v for k, v in r.items() if "seconds" not in k} for r in rs]  # noqa: E731
    assert strip(rows) == strip(unbroken)


def test_baseline_bad_input(mnist_1k):
    model, guide = _vae()
    with pytest.raises(AevbInputError, match="weight_updates"):
        MonteCarloEM(model, mnist_1k.train, weight_updates=0)
    with pytest.raises(AevbInputError, match="target_accept"):
        MonteCarloEM(model, mnist_1k.train, target_accept=1.5)
    with pytest.raises(AevbInputError, match="exactly one"):
        Trainer(model, guide, mnist_1k, elbo=WakeSleep(model, guide, mnist_1k.train), progress=False).fit()
