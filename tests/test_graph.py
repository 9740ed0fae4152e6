"""The traced graph (pyro_aevb.infer.graph): one execution path for every model that follows the contract.

Properties checked:
* the graph's loss and gradients equal Pyro's ELBO (Trace_ELBO, TraceMeanField_ELBO, the library's IWAE) on the
  same random draws, for every built-in model and for models written here (several latents, an extra plate, a
  conditioning input, a global latent).  The graph runs the same aten operations as eager Pyro in the same order,
  so the only difference allowed is float32 summation order: rtol 1e-5 on the loss (~27e6 nats: a missing term
  is >= 1 nat = 4e-8 relative... so the loss check is backed by the gradient check, where a missing term moves
  some gradient entry by far more than 1e-4 of the largest);
* the KL warm-up's beta is a graph input: -(O + beta Z) equals Pyro's ELBO with the latent sites scaled by beta;
* what cannot be traced falls back to Pyro's interpreter with one warning saying why, and backend="graph"
  refuses it: Python control flow on tensor values, enumerated sites, numpy randomness a trace would freeze;
* the trainer trains a user's pair and the built-in VAE on the same path, and a resumed run equals an unbroken
  one bit for bit on it.
"""

import random
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb import Dataset, Trainer, check_model_guide, data_plate, make_elbo
from pyro_aevb.config import RunConfig, build_model_guide
from pyro_aevb.infer.graph import GraphELBO, NotTraceable
from pyro_aevb.infer.warmup import LatentScaleMessenger
from pyro_aevb.inputs import condition
from pyro_aevb.params import local_param_store

from user_models import TwoLatentGuide, TwoLatentModel


def _same_draws(model, guide, x, estimator, particles, num_data, inputs=None, beta=None):
    """(graph loss, graph grads, Pyro loss, Pyro grads), both from seed 0."""
    idx = torch.arange(x.shape[0])
    structure = check_model_guide(model, guide, x, estimator, num_data=num_data, inputs=inputs)
    graph = GraphELBO(model, guide, estimator, particles, structure, inputs)
    params = list(graph._param_list)
    if beta is not None:
        graph.set_kl_weight(beta)
    torch.manual_seed(0)
    loss = graph(x, idx, num_data)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    torch.manual_seed(0)
    elbo = make_elbo(estimator, particles, structure.max_plate_nesting)
    scale = LatentScaleMessenger(beta) if beta is not None else None
    with local_param_store():
        if scale is not None:
            with scale:
                ref = elbo.differentiable_loss(condition(model, inputs), condition(guide, inputs), x, idx, num_data)
        else:
            ref = elbo.differentiable_loss(condition(model, inputs), condition(guide, inputs), x, idx, num_data)
    ref_grads = torch.autograd.grad(ref, params, allow_unused=True)
    return loss, grads, ref, ref_grads


def _assert_equal(loss, grads, ref, ref_grads):
    assert torch.allclose(loss, ref, rtol=1e-5, atol=1e-3), (loss.item(), ref.item())
    for g, r in zip(grads, ref_grads):
        r = torch.zeros_like(g) if r is None else r
        assert (g - r).abs().max() <= 1e-4 * (r.abs().max() + 1e-6)


BUILTINS = [  # (registered model, guide, extra settings, data kind, estimators)
    ("mlp", "normal", {}, "flat", ("analytic", "trace", "iwae")),
    ("mlp", "lowrank", {}, "flat", ("trace", "iwae")),
    ("mlp", "normal", {"bayesian_decoder": True}, "flat", ("analytic", "trace")),
    ("conv", "normal", {}, "image", ("analytic", "trace")),
    ("two_layer", "normal", {}, "flat", ("trace", "iwae")),
    ("dmm", "normal", {}, "sequence", ("analytic", "trace")),
]


def _data(kind):
    g = torch.Generator().manual_seed(1)
    if kind == "sequence":
        return torch.rand(6, 3, 4, generator=g), {"seq_len": 3}
    x = torch.bernoulli(torch.rand(6, 784 if kind == "image" else 12, generator=g))
    return x, ({"image_shape": [28, 28]} if kind == "image" else {})


@pytest.mark.parametrize("name, guide, settings, kind, estimators", BUILTINS,
                         ids=[f"{b[0]}-{b[1]}{'-fullvb' if b[2] else ''}" for b in BUILTINS])
def test_every_builtin_model_equals_pyro_on_the_same_draws(name, guide, settings, kind, estimators):
    x, shape = _data(kind)
    likelihood = {"likelihood": "gaussian"} if kind == "sequence" else {}
    config = RunConfig(model=name, guide=guide, latent_dim=3, hidden_dim=16, init="torch", **settings,
                       **shape, **likelihood)
    model, guide_ = build_model_guide(config, x.shape[-1])
    for estimator in estimators:
        _assert_equal(*_same_draws(model, guide_, x, estimator, 2 if estimator == "iwae" else 1, 60))


class CondModel(PyroModule):
    """p(z) p(x | z, y): a conditioning input y (one-hot of 3 classes) and an extra latent scalar per row."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2 + 1 + 3, 12)

    def forward(self, x, idx=None, num_data=None, y=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0., 1.).expand([2]).to_event(1))
            s = pyro.sample("s", dist.Normal(0., 1.).expand([1]).to_event(1))
            onehot = nn.functional.one_hot(y, 3).to(x.dtype).expand(z.shape[:-1] + (3,))
            pyro.sample("x", dist.Bernoulli(logits=self.net(torch.cat([z, s, onehot], -1))).to_event(1), obs=x)


class CondGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(12 + 3, 6)

    def forward(self, x, idx=None, num_data=None, y=None):
        with data_plate(x, idx, num_data):
            h = self.net(torch.cat([x, nn.functional.one_hot(y, 3).to(x.dtype)], -1))
            pyro.sample("z", dist.Normal(h[..., :2], h[..., 2:4].exp()).to_event(1))
            pyro.sample("s", dist.Normal(h[..., 4:5], h[..., 5:6].exp()).to_event(1))


class GlobalModel(PyroModule):
    """A global latent w (outside the data plate) beside the local z."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 12)

    def forward(self, x, idx=None, num_data=None):
        w = pyro.sample("w", dist.Normal(0., 1.).expand([12]).to_event(1))
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0., 1.).expand([2]).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.net(z) + w.unsqueeze(-2)).to_event(1), obs=x)


class GlobalGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(12, 4)
        self.w_loc = nn.Parameter(torch.zeros(12))

    def forward(self, x, idx=None, num_data=None):
        pyro.sample("w", dist.Normal(self.w_loc, 0.1).to_event(1))
        with data_plate(x, idx, num_data):
            h = self.net(x)
            pyro.sample("z", dist.Normal(h[..., :2], h[..., 2:].exp()).to_event(1))


@pytest.mark.parametrize("estimator", ["analytic", "trace", "iwae"])
def test_models_written_here_equal_pyro_on_the_same_draws(estimator):
    x = torch.bernoulli(torch.rand(5, 12, generator=torch.Generator().manual_seed(2)))
    particles = 3 if estimator == "iwae" else 2
    _assert_equal(*_same_draws(TwoLatentModel(12), TwoLatentGuide(12), x, estimator, particles, 40))
    y = torch.tensor([0, 2, 1, 1, 0])  # the inputs of the minibatch's rows (idx 0..4 of N = 7)
    _assert_equal(*_same_draws(CondModel(), CondGuide(), x, estimator, particles, 7, inputs={"y": y}))
    if estimator != "iwae":  # the IWAE bound is refused for global latents (one theta per weight)
        _assert_equal(*_same_draws(GlobalModel(), GlobalGuide(), x, estimator, particles, 40))


@pytest.mark.parametrize("estimator", ["analytic", "trace"])
def test_the_warmup_weight_is_a_graph_input_equal_to_scaled_latent_sites(estimator):
    """-(O + beta Z) with beta = 0.3 equals Pyro's ELBO under LatentScaleMessenger(0.3), same draws."""
    x = torch.bernoulli(torch.rand(5, 12, generator=torch.Generator().manual_seed(3)))
    _assert_equal(*_same_draws(TwoLatentModel(12), TwoLatentGuide(12), x, estimator, 1, 40, beta=0.3))


class Branching(PyroModule):
    """Python control flow on a tensor's value: a trace would freeze the branch taken while tracing."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 12)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0., 1.).expand([2]).to_event(1))
            logits = self.net(z)
            if logits.mean() > 0:  # data-dependent
                logits = -logits
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)


class NumpyNoise(PyroModule):
    """Random numbers drawn outside torch: a trace would freeze the draw."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 12)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0., 1.).expand([2]).to_event(1))
            jitter = torch.as_tensor(np.random.normal(size=12), dtype=x.dtype)
            pyro.sample("x", dist.Bernoulli(logits=self.net(z) + jitter).to_event(1), obs=x)


class SmallPythonNoise(PyroModule):
    """A small random factor from Python's random module: too small for the check on the same draws, seen by the
    watch on Python's and numpy's random state."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 12)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0., 1.).expand([2]).to_event(1))
            factor = 1.0 + 1e-4 * random.random()
            pyro.sample("x", dist.Bernoulli(logits=self.net(z) * factor).to_event(1), obs=x)


class SimpleGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(12, 4)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            h = self.net(x)
            pyro.sample("z", dist.Normal(h[..., :2], h[..., 2:].exp()).to_event(1))


def _tiny_data():
    g = torch.Generator().manual_seed(4)
    return Dataset("tiny", torch.bernoulli(torch.rand(40, 12, generator=g)),
                   torch.bernoulli(torch.rand(10, 12, generator=g)))


@pytest.mark.parametrize("model_cls, reason", [(Branching, "reads tensor values in Python"),
                                               (NumpyNoise, "outside torch"), (SmallPythonNoise, "outside torch")])
def test_what_cannot_be_traced_falls_back_to_pyro_with_one_warning(model_cls, reason):
    data = _tiny_data()
    with pytest.warns(RuntimeWarning, match=reason) as caught:
        trainer = Trainer(model_cls(), SimpleGuide(), data, batch_size=10, progress=False)
    assert trainer.backend == "pyro"
    assert len([w for w in caught if "Pyro's interpreter" in str(w.message)]) == 1
    assert "\n" not in str(caught[0].message)
    metrics = trainer.fit(epochs=1)
    assert np.isfinite(metrics[-1]["test_elbo"])
    with pytest.raises(NotTraceable, match=reason):
        Trainer(model_cls(), SimpleGuide(), data, batch_size=10, progress=False, backend="graph")


def test_a_users_pair_and_the_builtin_vae_train_on_the_traced_graph():
    data = _tiny_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback warning
        user = Trainer(TwoLatentModel(12), TwoLatentGuide(12), data, batch_size=10, progress=False)
        config = RunConfig(latent_dim=2, hidden_dim=8)
        builtin = Trainer(*build_model_guide(config, 12), data, batch_size=10, progress=False)
    assert user.backend == builtin.backend == "graph"
    # the last minibatch of 40 rows in batches of 15 has 10 rows: a graph of its own
    partial = Trainer(TwoLatentModel(12), TwoLatentGuide(12), data, batch_size=15, progress=False)
    rows = partial.fit(epochs=2)
    assert len(partial._graph._graphs) == 2 and np.isfinite(rows[-1]["train_running_elbo"])


def test_a_resumed_run_equals_an_unbroken_one_on_the_graph(tmp_path):
    data = _tiny_data()

    def trainer(run_dir, **kw):
        torch.manual_seed(0)
        return Trainer(TwoLatentModel(12), TwoLatentGuide(12), data, batch_size=15, progress=False, run_dir=run_dir,
                       kl_warmup=4, **kw)

    unbroken = trainer(tmp_path / "a").fit(epochs=4)
    trainer(tmp_path / "b").fit(epochs=2)
    resumed = trainer(tmp_path / "b", resume=True)
    assert resumed.backend == "graph"
    rows = resumed.fit(epochs=4)
    for a, b in zip(unbroken, rows):
        assert {k: v for k, v in a.items() if "seconds" not in k} == {k: v for k, v in b.items() if "seconds" not in k}


def test_enumerated_sites_fall_back_to_pyro(mnist_small):
    """M2 sums out y by enumeration (TraceEnum_ELBO): the graph does not do it, Pyro's interpreter does."""
    from pyro_aevb.models import M2Model
    from pyro_aevb.guides import M2Guide
    x = mnist_small.train[:30].round()
    data = Dataset("m2", x, mnist_small.test[:10].round())
    with pytest.warns(RuntimeWarning, match="enumeration"):
        trainer = Trainer(M2Model(784, latent_dim=4, hidden_dims=(16,)), M2Guide(784, latent_dim=4, hidden_dims=(16,)), data, elbo="trace",
                          batch_size=10, progress=False)
    assert trainer.backend == "pyro"


@pytest.mark.slow
def test_the_inductor_compiled_graph_equals_pyro_on_the_same_draws():
    """compile=True: the same estimator compiled by inductor.  With inductor's random numbers taken from torch's
    generator as eager draws them (fallback_random), its loss and gradients equal Pyro's on the same draws up to
    the float32 reassociation of fused kernels (rtol 1e-5 loss, 1e-4 of the largest gradient entry)."""
    import torch._inductor.config as inductor_config
    with inductor_config.patch(fallback_random=True):
        _compiled_equals_pyro()


def _compiled_equals_pyro():
    x = torch.bernoulli(torch.rand(5, 12, generator=torch.Generator().manual_seed(2)))
    model, guide = TwoLatentModel(12), TwoLatentGuide(12)
    structure = check_model_guide(model, guide, x, "analytic", num_data=40)
    graph = GraphELBO(model, guide, "analytic", 1, structure, compile=True)
    params = list(graph._param_list)
    idx = torch.arange(5)
    torch.manual_seed(0)
    loss = graph(x, idx, 40)
    grads = torch.autograd.grad(loss, params)
    torch.manual_seed(0)
    with local_param_store():
        ref = make_elbo("analytic", 1, structure.max_plate_nesting).differentiable_loss(model, guide, x, idx, 40)
    _assert_equal(loss, grads, ref, torch.autograd.grad(ref, params))


@pytest.mark.slow
def test_a_resumed_compiled_run_equals_an_unbroken_one(tmp_path):
    """Inductor draws its random numbers from seeds taken from torch's generator, which the checkpoint holds."""
    data = _tiny_data()

    def trainer(run_dir, **kw):
        torch.manual_seed(0)
        return Trainer(TwoLatentModel(12), TwoLatentGuide(12), data, batch_size=15, progress=False, run_dir=run_dir,
                       compile=True, **kw)

    unbroken = trainer(tmp_path / "a").fit(epochs=4)
    trainer(tmp_path / "b").fit(epochs=2)
    rows = trainer(tmp_path / "b", resume=True).fit(epochs=4)
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    assert strip(unbroken) == strip(rows)


def test_wake_sleep_trains_on_the_traced_graph_equal_to_its_eager_loss(mnist_small):
    """An objective module (wake-sleep) is traced as it is: its loss and gradients equal its own eager call on the
    same draws, and the trainer trains it on the graph."""
    from pyro_aevb.infer import WakeSleep
    x = mnist_small.train[:20].round()
    model, guide = TwoLatentModel(784), TwoLatentGuide(784)
    objective = WakeSleep(model, guide, x)
    structure = check_model_guide(model, guide, x, None)
    graph = GraphELBO(model, guide, objective, 1, structure)
    params = list(graph._param_list)
    idx = torch.arange(20)
    torch.manual_seed(0)
    loss = graph(x, idx, 100)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    torch.manual_seed(0)
    with local_param_store():
        ref = objective(x, idx, 100)
    _assert_equal(loss, grads, ref, torch.autograd.grad(ref, params, allow_unused=True))
    data = Dataset("mnist", x, mnist_small.test[:10].round())
    trainer = Trainer(model, guide, data, elbo=objective, batch_size=10, progress=False)
    assert trainer.backend == "graph"
    assert np.isfinite(trainer.fit(epochs=1)[-1]["test_elbo"])


class ScaleGuide(PyroModule):
    """A guide whose scale is an unconstrained parameter (the bug): it can leave its support after an update."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(12, 2)
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            pyro.sample("z", dist.Normal(self.net(x), self.scale.expand(x.shape[0], 2)).to_event(1))


def test_a_scale_that_leaves_its_support_after_the_last_update_raises_from_the_users_line():
    """The last update of an epoch makes the guide's scale negative: the evaluation that follows fails, and the
    error is the one raised at the user's line (torch's "Expected parameter scale"), not the contract check's
    message about the data (whose check the pair passed when training started)."""
    data = _tiny_data()
    guide = ScaleGuide()
    trainer = Trainer(SimpleModel(), guide, data, batch_size=10, progress=False)
    step, calls = trainer.optimizer.step, []

    def update(*args, **kwargs):
        out = step(*args, **kwargs)
        calls.append(1)
        if len(calls) == 4:  # the last step of the epoch (40 rows, M = 10)
            with torch.no_grad():
                guide.scale.fill_(-2.0)
        return out

    trainer.optimizer.step = update
    with pytest.raises(ValueError, match="scale") as raised:
        trainer.fit(epochs=1)
    assert any(frame.name == "forward" and str(frame.path) == __file__ for frame in raised.traceback)


class SimpleModel(PyroModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 12)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(0., 1.).expand([2]).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.net(z)).to_event(1), obs=x)


def test_the_particle_hint_comes_only_with_a_shape_error_under_several_particles():
    from pyro_aevb.cli import _particle_hint
    assert _particle_hint(["train", "--elbo", "iwae"], RuntimeError("size mismatch at dim 0"))
    assert _particle_hint(["evaluate", "r", "--iw-samples=20"], RuntimeError("shape [3] is invalid"))
    assert not _particle_hint(["train", "--elbo", "analytic"], RuntimeError("size mismatch at dim 0"))
    assert not _particle_hint(["train", "--elbo", "iwae"], KeyError("y"))
