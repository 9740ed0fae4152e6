"""The fused objective is Pyro's ELBO, number for number, and trains like a hand-written PyTorch VAE."""

import sys
from pathlib import Path

import pyro
import pytest
import torch

from pyro import poutine

from pyro_aevb import AevbInputError, Dataset, Trainer, evaluate_bound
from pyro_aevb.guides import GUIDE_NAMES, AmortizedNormalGuide, get_guide
from pyro_aevb.infer.elbo import make_elbo
from pyro_aevb.infer.fused import FusedELBO, cross_check, is_fused_compatible
from pyro_aevb.models import LIKELIHOODS, VAEModel
from pyro_aevb.nn import init_normal_
from pyro_aevb.plates import data_plate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from train_speed import HandWrittenVAE, copy_weights, reference_epoch  # noqa: E402


@pytest.mark.parametrize("estimator", ["trace", "analytic"])
@pytest.mark.parametrize("num_particles", [1, 3])
def test_fused_equals_pyro_elbo(estimator, num_particles):
    """Same seed => same eps draws => the same loss and the same gradients (float32 rounding only)."""
    model, guide = VAEModel(30, 4, (20,)), AmortizedNormalGuide(30, 4, (20,))
    init_normal_(model, 0.3)
    init_normal_(guide, 0.3)
    x, idx = torch.rand(10, 30), torch.arange(10, 20)
    params = list(guide.parameters()) + list(model.parameters())
    pyro.set_rng_seed(5)
    a = make_elbo(estimator, num_particles)(model, guide)(x, idx, 50)
    ga = torch.autograd.grad(a, params)
    pyro.set_rng_seed(5)
    b = FusedELBO(model, guide, estimator, num_particles)(x, idx, 50)
    gb = torch.autograd.grad(b, params)
    assert b.item() == pytest.approx(a.item(), rel=1e-6)
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, rtol=1e-5, atol=1e-4)


def test_subclass_that_rewrites_the_program_is_not_fused():
    class Other(VAEModel):
        def forward(self, x, idx=None, num_data=None):
            return super().forward(x, idx, num_data)

    guide = AmortizedNormalGuide(4, 2, (3,))
    assert is_fused_compatible(VAEModel(4, 2, (3,)), guide)
    assert not is_fused_compatible(Other(4, 2, (3,)), guide)
    assert Trainer(Other(4, 2, (3,)), guide, Dataset("t", torch.rand(8, 4), torch.rand(2, 4)),
                   progress=False).backend == "pyro"


def test_trainer_and_hand_written_loop_reach_the_same_bound(mnist_small):
    """Same initial weights, optimizer, batch order: after 3 epochs on 5,000 images (150 steps) the
    test bounds differ only through the eps draws (same objective, same data order), so they must agree
    to within the noise of a 150-step run (test_distributed measures a seed-to-seed sd of ~0.35 nats on
    a similar small run); 2 nats leaves room for that, while a mis-scaled N/M factor would change the
    effective weight decay by 50x and the bound by far more."""
    torch.manual_seed(0)
    model, guide = VAEModel(784, 3, (100,)), AmortizedNormalGuide(784, 3, (100,))
    ref = HandWrittenVAE(784, 100, 3)
    copy_weights(model, guide, ref)
    trainer = Trainer(model, guide, mnist_small, elbo="analytic", progress=False, seed=0)
    ours = trainer.fit(epochs=3)[-1]["test_elbo"]
    opt = torch.optim.Adagrad([{"params": ref.dec.parameters(), "weight_decay": 1.0},
                               {"params": ref.enc.parameters(), "weight_decay": 0.0}], lr=0.02)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        reference_epoch(ref, opt, mnist_small.train, gen, 5000, 100, analytic=True)
    copy_back = VAEModel(784, 3, (100,)), AmortizedNormalGuide(784, 3, (100,))
    with torch.no_grad():
        for dst, src in zip(list(copy_back[1].encoder.parameters()) + list(copy_back[0].decoder.parameters()),
                            list(ref.enc.parameters()) + list(ref.dec.parameters())):
            dst.copy_(src)
    theirs = evaluate_bound(*copy_back, mnist_small.test, "analytic")
    assert abs(ours - theirs) < 2.0, (ours, theirs)


FUSED_GUIDES = [name for name in GUIDE_NAMES if is_fused_compatible(VAEModel(4, 2, (3,)), get_guide(name, 4, 2, (3,)))]


def test_every_location_scale_guide_is_fused_compatible_and_the_correlated_ones_are_not():
    assert set(FUSED_GUIDES) == {"normal", "laplace", "studentt", "logistic", "gumbel", "lognormal"}


@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
@pytest.mark.parametrize("guide_name", FUSED_GUIDES)
def test_fused_equals_pyro_for_every_fused_compatible_guide_and_likelihood(guide_name, likelihood):
    """The trainer picks the fused path for these pairs, so each must equal Pyro's ELBO on the same draws:
    estimator A always, estimator B where the KL is analytic (data inside every likelihood's support)."""
    estimators = ["trace"] + (["analytic"] if GUIDE_NAMES[guide_name][1] else [])
    model, guide = VAEModel(30, 4, (20,), likelihood=likelihood), get_guide(guide_name, 30, 4, (20,))
    init_normal_(model, 0.3)
    init_normal_(guide, 0.3)
    x, idx = torch.rand(10, 30) * 0.98 + 0.01, torch.arange(10, 20)
    params = list(guide.parameters()) + list(model.parameters())
    for estimator in estimators:
        pyro.set_rng_seed(5)
        a = make_elbo(estimator, 2)(model, guide)(x, idx, 50)
        ga = torch.autograd.grad(a, params)
        pyro.set_rng_seed(5)
        b = FusedELBO(model, guide, estimator, 2)(x, idx, 50)
        gb = torch.autograd.grad(b, params)
        assert b.item() == pytest.approx(a.item(), rel=1e-5), estimator
        for u, v in zip(ga, gb):
            assert torch.allclose(u, v, rtol=1e-4, atol=1e-3), estimator
        cross_check(model, guide, x, estimator, 2)  # the start-of-training check agrees


def test_a_class_that_claims_fused_but_differs_from_pyro_is_caught_when_training_starts():
    """fused_compatible = True on a program that adds a term: the one-time cross-check sees the difference;
    backend='auto' falls back to Pyro with a warning, backend='fused' refuses."""

    class Tempered(VAEModel):
        fused_compatible = True

        def forward(self, x, idx=None, num_data=None):
            with data_plate(x, idx, num_data):
                z = pyro.sample("z", self.prior(x.shape[:1], x.device))
                with poutine.scale(scale=0.5):
                    pyro.sample("x", self.likelihood_dist(z), obs=x)
            return z

    data = Dataset("t", torch.rand(40, 6).round(), torch.rand(10, 6).round())
    model, guide = Tempered(6, 2, (4,)), AmortizedNormalGuide(6, 2, (4,))
    with pytest.warns(RuntimeWarning, match="fused objective gives"):
        trainer = Trainer(model, guide, data, backend="auto", progress=False)
    assert trainer.backend == "pyro"
    with pytest.raises(AevbInputError, match="fused objective gives"):
        Trainer(model, guide, data, backend="fused", progress=False)
    assert Trainer(VAEModel(6, 2, (4,)), guide, data, progress=False).backend == "fused"
