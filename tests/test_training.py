"""Algorithm 1 on real data, checkpoints, resume and load_run."""

import copy
import json
import math

import pyro
import pytest
import torch
from pyro import poutine

from pyro_aevb import RunConfig, Trainer, evaluate_bound, load_run, train
from pyro_aevb.checkpoint import CHECKPOINT, load_checkpoint, read_metrics, save_checkpoint
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import VAEModel
from pyro_aevb.trainer import load_optimizer_state


def test_mnist_training_raises_test_bound(mnist_small):
    """An untrained Bernoulli decoder (init std 0.01) outputs ~0.5 everywhere: bound ~ -784 log 2 = -543.
    The best z-independent decoder (the per-pixel mean of the 5,000 training images, KL = 0) scores
    -200.4 on these test images; three epochs must beat it, i.e. z carries information."""
    pyro.set_rng_seed(0)
    model, guide = VAEModel(784, 10, (200,)), AmortizedNormalGuide(784, 10, (200,))
    before = evaluate_bound(model, guide, mnist_small.test)
    assert before == pytest.approx(-784 * math.log(2), abs=1.0)
    metrics = Trainer(model, guide, mnist_small, progress=False).fit(epochs=3)
    assert [r["train_samples"] for r in metrics] == [5000, 10000, 15000]
    assert metrics[-1]["test_elbo"] > -200.4
    assert metrics[-1]["test_elbo"] > metrics[0]["test_elbo"]


def test_frey_gaussian_training_raises_test_bound(frey):
    """Gaussian decoder (appendix C.2) on Frey Face: at init sigma = 1, mean 0.5, so the bound is about
    560 * log N(0; 0, 1) = -515 - (x-0.5)^2 terms.  A positive bound needs a learned sigma well below
    1/sqrt(2 pi), i.e. the decoder found the face; 10 epochs reach it."""
    pyro.set_rng_seed(0)
    model, guide = VAEModel(560, 5, (200,), "gaussian"), AmortizedNormalGuide(560, 5, (200,))
    before = evaluate_bound(model, guide, frey.test)
    assert before < -500
    metrics = Trainer(model, guide, frey, lr=0.01, progress=False).fit(epochs=10)
    assert metrics[-1]["test_elbo"] > 300


def _config(**kw):
    base = dict(dataset="unused", latent_dim=4, hidden_dim=32, batch_size=50, seed=3)
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture()
def small_array(tmp_path, mnist_small):
    path = tmp_path / "digits.npy"
    import numpy as np

    np.save(path, mnist_small.train[:600].reshape(-1, 28, 28).numpy())
    return str(path)


def test_resumed_run_equals_unbroken_run(tmp_path, small_array):
    """Checkpoints hold model, guide, optimizer and RNG state: 1 epoch + resume to 3 epochs gives
    bit-identical metrics to an unbroken 3-epoch run with the same seed."""
    for elbo in ("trace", "analytic"):
        unbroken = train(_config(dataset=small_array, epochs=3, elbo=elbo), tmp_path / f"a{elbo}", progress=False)
        train(_config(dataset=small_array, epochs=1, elbo=elbo), tmp_path / f"b{elbo}", progress=False)
        resumed = train(_config(dataset=small_array, epochs=3, elbo=elbo), tmp_path / f"b{elbo}", resume=True,
                        progress=False)

        def strip(rows):
            return [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]

        assert strip(resumed.metrics) == strip(unbroken.metrics)
        assert strip(read_metrics(tmp_path / f"b{elbo}")) == strip(unbroken.metrics)
        a = load_checkpoint(tmp_path / f"a{elbo}")["model"]
        b = load_checkpoint(tmp_path / f"b{elbo}")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_rewrites_metrics_to_match_checkpoint(tmp_path, small_array):
    """A run killed after its metrics line but before its checkpoint must not duplicate that epoch."""
    run = tmp_path / "r"
    train(_config(dataset=small_array, epochs=1), run, progress=False)
    with open(run / "metrics.jsonl", "a") as f:  # a line the checkpoint never saw
        f.write(json.dumps({"epoch": 2, "train_samples": 999}) + "\n")
    train(_config(dataset=small_array, epochs=2), run, resume=True, progress=False)
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]
    assert read_metrics(run)[1]["train_samples"] == 1080  # 2 epochs of the 540 training images


def test_checkpoint_write_is_atomic(tmp_path):
    """If writing fails half-way the previous checkpoint survives intact and no temp file is left (the state
    is serialised before anything on disk changes, so the failed write does not even rotate the fallback)."""
    save_checkpoint(tmp_path, {"epoch": 1})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path, {"epoch": 2, "bad": Boom()})
    assert load_checkpoint(tmp_path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]


def test_existing_run_needs_resume(tmp_path, small_array):
    from pyro_aevb import AevbInputError

    train(_config(dataset=small_array, epochs=1), tmp_path / "r", progress=False)
    with pytest.raises(AevbInputError, match="--resume"):
        train(_config(dataset=small_array, epochs=1), tmp_path / "r", progress=False)
    with pytest.raises(AevbInputError, match="latent_dim"):
        train(_config(dataset=small_array, epochs=2, latent_dim=5), tmp_path / "r", resume=True, progress=False)


def test_a_checkpoint_resumes_with_this_devices_optimizer_kernel():
    """A checkpoint written by fused Adagrad (the CPU kernel) loads into an optimizer that uses the
    for-loop kernel (as on a GPU, where torch has no fused Adagrad): the kernel stays the loader's and
    the next update is the same.  Plain ``load_state_dict`` would switch the loader to ``fused=True``,
    which torch refuses for CUDA tensors (found resuming a CPU run on a GPU).  Tolerance: both kernels
    compute the same float32 formula, differing only in rounding order (~1e-7 relative)."""
    torch.manual_seed(0)
    w = torch.randn(5, 3)
    grads = [torch.randn(5, 3) for _ in range(4)]
    a, b = w.clone().requires_grad_(), w.clone().requires_grad_()
    fused = torch.optim.Adagrad([a], lr=0.1, weight_decay=1.0, fused=True)
    loop = torch.optim.Adagrad([b], lr=0.1, weight_decay=1.0, foreach=False)
    for g in grads[:3]:
        a.grad = g.clone()
        fused.step()
    with torch.no_grad():
        b.copy_(a)
    load_optimizer_state(loop, copy.deepcopy(fused.state_dict()))  # a checkpoint holds copies
    assert not loop.param_groups[0]["fused"] and loop.param_groups[0]["foreach"] is False
    a.grad, b.grad = grads[3].clone(), grads[3].clone()
    fused.step()
    loop.step()
    torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)


def test_load_run_gives_traceable_pyro_programs(tmp_path, small_array):
    """load_run rebuilds model and guide whose traces have the sites of the paper's model."""
    train(_config(dataset=small_array, epochs=1), tmp_path / "r", progress=False)
    run = load_run(tmp_path / "r")
    x = run.load_data().test[:7]
    guide_tr = poutine.trace(run.guide).get_trace(x)
    model_tr = poutine.trace(poutine.replay(run.model, trace=guide_tr)).get_trace(x)
    assert guide_tr.nodes["z"]["value"].shape == (7, 4)
    assert model_tr.nodes["x"]["is_observed"]
    assert model_tr.nodes["z"]["fn"].event_shape == (4,)
    assert run.train_samples == 540


def test_callbacks_see_every_epoch_row_after_it_is_saved(mnist_small, tmp_path):
    """The per-epoch hook: called once per epoch with the row, after the checkpoint holds that epoch."""
    seen = []

    def callback(trainer, row):
        seen.append((row["epoch"], load_run(tmp_path).train_samples))

    model, guide = VAEModel(784, 2, (20,)), AmortizedNormalGuide(784, 2, (20,))
    Trainer(model, guide, mnist_small, run_dir=tmp_path, progress=False, callbacks=[callback]).fit(epochs=2)
    assert seen == [(1, 5000), (2, 10000)]


def test_a_trainer_refuses_a_directory_that_holds_a_run_unless_told(mnist_small, tmp_path):
    """Running the same script twice must not append a second run to the first: refused, unless resume=True
    (continues) or overwrite=True (starts afresh, with a fresh metrics.jsonl)."""
    from pyro_aevb import AevbInputError

    def make(**kw):
        return Trainer(VAEModel(784, 2, (10,)), AmortizedNormalGuide(784, 2, (10,)), mnist_small, run_dir=tmp_path,
                       progress=False, **kw)

    make().fit(epochs=2)
    with pytest.raises(AevbInputError, match="already holds a run"):
        make()
    assert [r["epoch"] for r in make(resume=True).fit(epochs=3)] == [1, 2, 3]
    make(overwrite=True).fit(epochs=1)
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1]
