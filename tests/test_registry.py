"""The model registry: a user's package registers a model under a short name (an entry point in the group
``pyro_aevb.models``), and ``pyro-aevb train --model NAME`` trains it, ``load_run`` rebuilds it, its declared
rules are enforced -- exactly as for the built-in models, which are registered the same way.  The package is
written here into a temporary folder with its ``.dist-info`` (what ``pip install`` would write), so nothing is
installed."""

import json
import re
import textwrap

import numpy as np
import pytest

from pyro_aevb import AevbInputError, RunConfig, load_run
from pyro_aevb.cli import main
from pyro_aevb.registry import ModelEntry, lookup, model_names, register_model

PACKAGE = textwrap.dedent('''
    """A Laplace-prior VAE, registered as `laplace_vae` (what a user's package would ship)."""
    import pyro, torch
    import pyro.distributions as dist
    from pyro.nn import PyroModule
    from torch import nn
    from pyro_aevb.plates import data_plate
    from pyro_aevb.registry import ModelEntry

    class LaplaceVAE(PyroModule):
        """p(z) = Laplace(0, 1) per dimension, p(x|z) Bernoulli of an MLP."""
        def __init__(self, data_dim, latent_dim, hidden_dim):
            super().__init__()
            self.latent_dim = latent_dim
            self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, data_dim))
        def forward(self, x, idx=None, num_data=None):
            with data_plate(x, idx, num_data):
                z = pyro.sample("z", dist.Laplace(x.new_zeros(self.latent_dim), 1.).to_event(1))
                pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    class LaplaceGuide(PyroModule):
        def __init__(self, data_dim, latent_dim, hidden_dim):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(data_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 2 * latent_dim))
        def forward(self, x, idx=None, num_data=None):
            with data_plate(x, idx, num_data):
                loc, log_scale = self.encoder(x).chunk(2, -1)
                pyro.sample("z", dist.Laplace(loc, log_scale.exp()).to_event(1))

    def build(config, data_dim, init):
        sizes = dict(data_dim=data_dim, latent_dim=config.latent_dim, hidden_dim=config.hidden_dim)
        return LaplaceVAE(**sizes), LaplaceGuide(**sizes)

    ENTRY = ModelEntry("laplace_vae", build, "a VAE with a Laplace prior", own_guide="its Laplace q(z|x)",
                       init="torch", settings=frozenset({"latent_dim", "hidden_dim"}),
                       sized_by="--latent-dim and --hidden-dim")
''')


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    """A package `laplace_models` with its .dist-info declaring the entry point, on sys.path."""
    (tmp_path / "laplace_models.py").write_text(PACKAGE)
    info = tmp_path / "laplace_models-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: laplace-models\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pyro_aevb.models]\nlaplace_vae = laplace_models:ENTRY\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = tmp_path / "bits.npy"
    np.save(data, (np.random.default_rng(0).random((300, 12)) > 0.5).astype(np.float32))
    return data


def test_a_users_package_registers_a_model_that_trains_by_its_short_name(plugin, tmp_path, capsys):
    assert "laplace_vae" in model_names() and lookup("laplace_vae").summary == "a VAE with a Laplace prior"
    out = tmp_path / "run"
    assert main(["train", "--model", "laplace_vae", "--dataset", str(plugin), "--latent-dim", "3", "--hidden-dim",
                 "16", "--elbo", "trace", "--optimizer", "adam", "--lr", "1e-2", "--epochs", "2", "--no-progress",
                 "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "laplace_vae" and config["init"] == "torch"  # its own default initialisation
    run = load_run(out)  # rebuilt by the registration from the recorded settings
    assert run.model.decoder[0].weight.shape == (16, 3) and type(run.guide).__name__ == "LaplaceGuide"
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_elbo_trace"] < 0


def test_a_registered_models_declared_rules_are_enforced(plugin, tmp_path, capsys):
    common = ["train", "--model", "laplace_vae", "--dataset", str(plugin), "--epochs", "1", "--no-progress",
              "--out", str(tmp_path / "run")]
    for extra, message in [(["--num-hidden-layers", "2"], "is sized by --latent-dim and --hidden-dim, not by "
                                                            "--num-hidden-layers"),
                           (["--guide", "laplace"], "brings its own guide \\(its Laplace q\\(z\\|x\\)\\)"),
                           (["--model-kwargs", '{"a": 1}'], "--model-kwargs applies to a model class of yours"),
                           (["--seq-len", "5"], "the laplace_vae model treats datapoints as i.i.d. rows")]:
        capsys.readouterr()
        assert main(common + extra) == 2, extra
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and re.search(message, err), err


def test_the_built_in_models_are_registrations_like_any_other():
    assert model_names()[:5] == ("mlp", "conv", "two_layer", "dmm", "m2")
    assert lookup("m2").own_guide and lookup("dmm").sequences is True and lookup("mlp").wrap_guide is not None
    assert lookup("pkg.module:Class") is None
    with pytest.raises(AevbInputError, match="registered already"):
        register_model(ModelEntry("mlp", lambda config, data_dim, init: None, "another mlp"))
    with pytest.raises(AevbInputError, match="unknown model 'nope'"):
        RunConfig(model="nope").validate()
    with pytest.raises(AevbInputError, match="must take \\(config, data_dim, init\\)"):  # refused when registered,
        register_model(ModelEntry("two_args", lambda config, data_dim: None, "a wrong build"))  # not when it runs
