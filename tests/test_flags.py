"""Shape flags given on the command line reach a model or guide class of the user's whose constructor takes them,
and are refused (status 2, one line) when they reach neither -- never silently ignored while config.json records
them.  The classes are written here, in a file, as a user writes them.
"""

import json
import textwrap

import numpy as np
import pytest

from pyro_aevb import load_run
from pyro_aevb.cli import main

SOURCE = textwrap.dedent('''
    import pyro, torch
    import pyro.distributions as dist
    from pyro.nn import PyroModule
    from torch import nn
    from pyro_aevb.plates import data_plate

    class Sized(PyroModule):
        """Takes latent_dim and hidden_dim, with defaults of its own (7, 33)."""
        def __init__(self, data_dim, latent_dim=7, hidden_dim=33):
            super().__init__()
            self.latent_dim = latent_dim
            self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, data_dim))
        def forward(self, x, idx=None, num_data=None):
            with data_plate(x, idx, num_data):
                z = pyro.sample("z", dist.Normal(x.new_zeros(self.latent_dim), 1.).to_event(1))
                pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    class SizedGuide(PyroModule):
        def __init__(self, data_dim, latent_dim=7, hidden_dim=33):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(data_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 2 * latent_dim))
        def forward(self, x, idx=None, num_data=None):
            with data_plate(x, idx, num_data):
                loc, log_scale = self.encoder(x).chunk(2, -1)
                pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    class Fixed(Sized):
        """Sizes itself: takes no latent_dim or hidden_dim."""
        def __init__(self, data_dim):
            super().__init__(data_dim)

    class FixedGuide(SizedGuide):
        def __init__(self, data_dim):
            super().__init__(data_dim)
''')


@pytest.fixture()
def setup(tmp_path):
    (tmp_path / "mine.py").write_text(SOURCE)
    data = tmp_path / "bits.npy"
    np.save(data, (np.random.default_rng(0).random((200, 12)) > 0.5).astype(np.float32))
    return tmp_path / "mine.py", data


def _train(tmp_path, source, data, model, guide, *flags):
    return main(["train", "--dataset", str(data), "--model", f"{source}:{model}", "--guide", f"{source}:{guide}",
                 "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run"), *flags])


def test_shape_flags_reach_a_class_that_takes_them_and_are_recorded(setup, tmp_path):
    source, data = setup
    assert _train(tmp_path, source, data, "Sized", "SizedGuide", "--latent-dim", "5", "--hidden-dim", "50") == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model_kwargs"] == {"latent_dim": 5, "hidden_dim": 50}
    assert config["guide_kwargs"] == {"latent_dim": 5, "hidden_dim": 50}
    run = load_run(tmp_path / "run")  # rebuilt with the recorded sizes, not the class defaults (7, 33)
    assert run.model.decoder[0].weight.shape == (50, 5) and run.guide.encoder[2].weight.shape == (10, 50)


def test_without_the_flags_a_class_keeps_its_own_defaults_recorded_so_the_run_survives_their_change(setup, tmp_path):
    """config.json records the arguments the classes were built with (their defaults included) and no shape
    setting that sized nothing; editing the file's defaults afterwards does not change the rebuilt run."""
    source, data = setup
    assert _train(tmp_path, source, data, "Sized", "SizedGuide") == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model_kwargs"] == {"latent_dim": 7, "hidden_dim": 33} and config["latent_dim"] is None
    source.write_text(SOURCE.replace("latent_dim=7, hidden_dim=33", "latent_dim=3, hidden_dim=9"))
    assert load_run(tmp_path / "run").model.decoder[0].weight.shape == (33, 7)


def test_a_flag_that_reaches_neither_class_is_refused_with_status_2(setup, tmp_path, capsys):
    source, data = setup
    capsys.readouterr()
    assert _train(tmp_path, source, data, "Fixed", "FixedGuide", "--latent-dim", "5") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pyro-aevb: error: --latent-dim") and "reaches neither" in err and "\n" not in err, err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_flag_and_the_kwargs_that_disagree_are_refused(setup, tmp_path, capsys):
    """--hidden-dim 16 with --model-kwargs '{"hidden_dim": 8}': the model would take 8 and the guide 16, the flag
    doing nothing for the model -- refused with one line instead."""
    source, data = setup
    capsys.readouterr()
    assert _train(tmp_path, source, data, "Sized", "SizedGuide", "--hidden-dim", "16", "--model-kwargs",
                  '{"hidden_dim": 8}') == 2
    err = capsys.readouterr().err.strip()
    assert "--hidden-dim" in err and "disagrees with the model's kwargs hidden_dim=8" in err and "\n" not in err, err
