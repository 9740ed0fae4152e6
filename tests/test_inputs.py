"""Conditioning inputs (pyro_aevb.inputs): a conditional VAE p(x | z, y) q(z | x, y) written here as a user writes
it (the label y a keyword argument of forward, as in Pyro's examples/cvae), trained and evaluated from Python and
the command line, sampled per class; the contract's checks of inputs; runs that remember the rows they were
trained on.  Fixed seeds; each tolerance says why.
"""

import json
import textwrap

import numpy as np
import pyro
import pytest
import torch
from PIL import Image

from pyro_aevb import (AevbInputError, Dataset, Trainer, check_model_guide, condition, evaluate_bound, evaluate_run,
                       load_run, log_likelihood, prior_means, reconstruct)
from pyro_aevb.applications import reconstruct_images
from pyro_aevb.applications.encode import decode, encode
from pyro_aevb.evaluation.terms import latent_site_terms
from pyro_aevb.loading import load_dataset
from pyro_aevb.cli import main
from pyro_aevb.rng import seeded
from pyro_aevb.specs import import_object

CVAE_SOURCE = textwrap.dedent('''
    import pyro, torch
    import pyro.distributions as dist
    from pyro.nn import PyroModule
    from torch import nn
    from pyro_aevb.nn import cat_broadcast
    from pyro_aevb.plates import data_plate

    class CVAE(PyroModule):
        """p(z) p(x | z, y): the class y (0..9) is an input, joined one-hot to z at the decoder."""
        def __init__(self, data_dim, latent=2, hidden=32):
            super().__init__()
            self.latent = latent
            self.decoder = nn.Sequential(nn.Linear(latent + 10, hidden), nn.Tanh(), nn.Linear(hidden, data_dim))
        def forward(self, x, idx=None, num_data=None, y=None):
            with data_plate(x, idx, num_data):
                z = pyro.sample("z", dist.Normal(x.new_zeros(self.latent), 1.).to_event(1))
                h = cat_broadcast(z, nn.functional.one_hot(y, 10).to(z.dtype))  # z may carry particle dims
                pyro.sample("x", dist.Bernoulli(logits=self.decoder(h)).to_event(1), obs=x)

    class Guide(PyroModule):
        """q(z | x, y)."""
        def __init__(self, data_dim, latent=2, hidden=32):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(data_dim + 10, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))
        def forward(self, x, idx=None, num_data=None, y=None):
            with data_plate(x, idx, num_data):
                loc, log_scale = self.encoder(torch.cat([x, nn.functional.one_hot(y, 10).to(x.dtype)], -1)).chunk(2, -1)
                pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))
''')


@pytest.fixture(scope="module")
def cvae_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "cvae.py"
    path.write_text(CVAE_SOURCE)
    return path


@pytest.fixture(scope="module")
def cvae(cvae_file):
    return import_object(f"{cvae_file}:CVAE"), import_object(f"{cvae_file}:Guide")


@pytest.fixture(scope="module")
def digits(mnist):
    """1,000 training and 300 test MNIST images binarised once, 14x14, with their labels as the input y."""
    g = torch.Generator().manual_seed(0)

    def small(x):
        return torch.bernoulli(torch.nn.functional.avg_pool2d(x.reshape(-1, 1, 28, 28), 2).reshape(len(x), -1),
                               generator=g)

    return Dataset("digits", small(mnist.train[:1000]), small(mnist.test[:300]), (14, 14),
                   train_inputs={"y": mnist.train_labels[:1000]}, test_inputs={"y": mnist.test_labels[:300]})


def test_a_conditional_vae_trains_and_every_number_is_its_bound_of_log_p_x_given_y(cvae, digits):
    """The metrics' test bound is evaluate_bound of the test rows with their y (same seed: equal to float
    precision), importance sampling lies above the bound (K = 200 on 100 rows; the IS estimate is a stochastic
    bound at least the ELBO in expectation, and the gap is several nats here against a standard error < 0.5),
    and the model uses y: on the same draws, the bound with every label shifted by one is worse by more than
    0.5 nats (measured after 10 epochs: 1.32 to 1.44 over two training and three evaluation seeds, the
    evaluation seeds moving it by 0.05)."""
    model_cls, guide_cls = cvae
    pyro.set_rng_seed(0)
    model, guide = model_cls(196), guide_cls(196)
    trainer = Trainer(model, guide, digits, elbo="analytic", optimizer="adam", lr=3e-3, progress=False)
    row = trainer.fit(epochs=10)[-1]
    y = digits.test_inputs["y"]
    with seeded(trainer.seed + 1_000_003 * trainer.epoch, digits.test.device):
        again = evaluate_bound(model, guide, digits.test, "analytic", inputs={"y": y})
    assert row["test_elbo"] == pytest.approx(again, abs=1e-9)
    ll = log_likelihood(model, guide, digits.test[:100], num_samples=200, inputs={"y": y[:100]})
    assert ll.mean > evaluate_bound(model, guide, digits.test[:100], "analytic", inputs={"y": y[:100]})
    with seeded(trainer.seed + 1_000_003 * trainer.epoch, digits.test.device):  # the same draws as `again`
        wrong = evaluate_bound(model, guide, digits.test, "analytic", inputs={"y": (y + 1) % 10})
    assert again - wrong > 0.5, (again, wrong)
    # sampling takes the condition per row: ten draws of class 3 differ from ten of class 7 on average
    x_like = digits.test[:10]
    threes = prior_means(model, x_like, inputs={"y": torch.full((10,), 3)}, seed=0)
    sevens = prior_means(model, x_like, inputs={"y": torch.full((10,), 7)}, seed=0)
    assert threes.shape == (10, 196) and float((threes - sevens).abs().mean()) > 1e-3
    assert reconstruct(model, guide, x_like, inputs={"y": y[:10]}).shape == (10, 196)
    # the applications in chunks smaller than the rows: each chunk gets its rows' inputs (batch 100 of 300 rows)
    conditioned = condition(model, {"y": y}), condition(guide, {"y": y})
    codes = encode(*conditioned, digits.test, batch_size=100).means
    assert torch.allclose(codes, encode(*conditioned, digits.test).means, atol=1e-6)
    assert torch.allclose(decode(*conditioned, codes, digits.test, batch_size=100),
                          decode(*conditioned, codes, digits.test), atol=1e-6)


def test_the_contract_names_a_missing_input_and_refuses_inputs_of_the_wrong_length(cvae, digits):
    """A missing input, one of the wrong length and one out of the model's range are each one line naming it."""
    model_cls, guide_cls = cvae
    model, guide = model_cls(196), guide_cls(196)
    with pytest.raises(AevbInputError, match="takes the input.*'y'.*which were not given"):
        check_model_guide(model, guide, digits.test)  # y=None in its signature, but it needs y

    class Strict(model_cls):  # y required by the signature: refused before the model runs
        def forward(self, x, idx=None, num_data=None, *, y):
            return super().forward(x, idx, num_data, y=y)

    with pytest.raises(AevbInputError, match="model's forward requires the input.*'y'.*data do not have"):
        check_model_guide(Strict(196), guide, digits.test, inputs={})
    with pytest.raises(AevbInputError, match="input 'y'.*needs one entry per row, 300 "):
        check_model_guide(model, guide, digits.test, inputs={"y": digits.test_inputs["y"][:7]})
    with pytest.raises(AevbInputError, match="takes the input.*'y'"):
        Trainer(model, guide, Dataset("bare", digits.train, digits.test), progress=False)
    with pytest.raises(AevbInputError, match="check that the data and the conditioning input.s. 'y' fit the guide"):
        check_model_guide(model, guide, digits.test, inputs={"y": torch.full((300,), 11)})  # a class of 0..9: 11
    with pytest.raises(AevbInputError, match="train inputs .* and the test inputs"):
        Dataset("half", digits.train, digits.test, train_inputs={"y": digits.train_inputs["y"]})


def test_an_input_a_program_does_not_name_is_not_passed_to_it(cvae, digits):
    """MNIST brings y; a model without y in its forward trains on the same data (the input is not passed), and
    condition() returns such a program unchanged; where it fails, the hint names no input it does not take."""
    from user_models import TwoLatentGuide, TwoLatentModel

    model, guide = TwoLatentModel(196), TwoLatentGuide(196)
    assert condition(model, digits.train_inputs) is model
    Trainer(model, guide, digits, elbo="trace", progress=False).fit(train_samples=200)
    with pytest.raises(AevbInputError, match="check that the data fit the guide") as refused:  # 196 vs 190 pixels
        check_model_guide(model, TwoLatentGuide(190), digits.test, inputs=digits.test_inputs)
    assert "'y'" not in str(refused.value)


def _write_npz(path, digits):
    np.savez(path, train=digits.train.numpy(), test=digits.test.numpy(),
             train_y=digits.train_inputs["y"].numpy(), test_y=digits.test_inputs["y"].numpy())


def test_a_conditional_vae_from_the_command_line_samples_per_class(cvae_file, digits, tmp_path, capsys):
    """train (an .npz with train_y / test_y), evaluate (its bound equals evaluate_run's with the same seed, set
    before or after load_run, and evaluate_bound's with the test y within the noise), sample with --condition and
    as a class grid, reconstruct."""
    data_file = tmp_path / "digits.npz"
    _write_npz(data_file, digits)
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(data_file), "--model", f"{cvae_file}:CVAE", "--guide",
                 f"{cvae_file}:Guide", "--optimizer", "adam", "--lr", "3e-3", "--epochs", "2", "--no-progress",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json", "--iw-samples", "20"]) == 0
    result = json.loads(capsys.readouterr().out)
    run = load_run(out)  # loading draws no random numbers: the seed may follow it (evaluate seeds before loading)
    pyro.set_rng_seed(0)  # evaluate's default --seed: Python gives the same numbers
    assert result["test_elbo_trace"] == pytest.approx(evaluate_run(run)["test_elbo_trace"], abs=1e-9)
    # and they are the bound given y: estimator B on other draws differs only by Monte Carlo noise (one draw of z
    # per row over 300 rows: estimates on different seeds differ by ~0.2 nats; 1 nat is about 5 of those)
    want = evaluate_bound(run.model, run.guide, digits.test, "analytic", inputs={"y": digits.test_inputs["y"]})
    assert result["test_elbo_analytic"] == pytest.approx(want, abs=1.0)
    assert result["test_log_likelihood"] > result["test_elbo_analytic"] - 1.0  # K = 20 IS vs the bound
    # --latent-terms passes each row's y as well: its KL equals the one computed in Python with the inputs
    assert main(["evaluate", str(out), "--json", "--latent-terms"]) == 0
    terms = json.loads(capsys.readouterr().out)
    pyro.set_rng_seed(0)
    run = load_run(out)
    mine = latent_site_terms(run.model, run.guide, digits.test, inputs={"y": digits.test_inputs["y"]})
    assert terms["test_kl_z"] == pytest.approx(mine.kl["z"], rel=1e-6)
    one = tmp_path / "threes.png"
    assert main(["sample", str(out), "--condition", "y=3", "--num-samples", "16", "--out", str(one)]) == 0
    grid = tmp_path / "grid.png"
    assert main(["sample", str(out), "--num-samples", "30", "--out", str(grid)]) == 0
    assert Image.open(grid).size == (3 * 15 + 1, 10 * 15 + 1)  # 10 rows (classes) of 3, 14-pixel images
    assert main(["sample", str(out), "--condition", "y=1,2", "--num-samples", "8", "--out", str(grid)]) == 0
    assert Image.open(grid).size == (4 * 15 + 1, 2 * 15 + 1)
    capsys.readouterr()
    assert main(["reconstruct", str(out), "--num-images", "10", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)  # the bound and its two terms come from the same draws
    assert shown["test_elbo"] == pytest.approx(shown["reconstruction_term"] - shown["kl_term"], abs=1e-9)
    assert main(["latent-map", str(out), "--num-images", "100"]) == 2  # a grid of codes is not rows of the data
    assert "not rows of the data" in capsys.readouterr().err
    assert main(["sample", str(out), "--condition", "q=3"]) == 2
    assert "takes no input 'q'" in capsys.readouterr().err


def test_a_run_trained_from_python_on_a_subset_evaluates_on_exactly_that_subset(cvae, digits, tmp_path, capsys):
    """Rows made in Python are stored with the run (data.pt: those rows only, not the tensors they were sliced
    from; the file's format adds under 64 KiB): load_data gives them back (same fingerprint) and
    `pyro-aevb evaluate` reports the bound of those rows (equal to evaluate_bound on them, same seed) and says
    that the rows are the stored ones, not the dataset their name came from."""
    model_cls, guide_cls = cvae
    subset = Dataset("digits", digits.train[:300], digits.test[:100], (14, 14),
                     train_inputs={"y": digits.train_inputs["y"][:300]}, test_inputs={"y": digits.test_inputs["y"][:100]})
    pyro.set_rng_seed(0)
    model, guide = model_cls(196), guide_cls(196)
    Trainer(model, guide, subset, optimizer="adam", lr=3e-3, progress=False, run_dir=tmp_path / "run",
            model_kwargs={"data_dim": 196}, guide_kwargs={"data_dim": 196}).fit(epochs=1)
    rows_bytes = sum(t.numel() * t.element_size() for t in (subset.train, subset.test, *subset.train_inputs.values(),
                                                            *subset.test_inputs.values()))
    assert (tmp_path / "run" / "data.pt").stat().st_size < rows_bytes + 64 * 1024  # the rows, not the tensors sliced
    back = load_run(tmp_path / "run").load_data()
    assert back.fingerprint() == subset.fingerprint() and back.test.shape[0] == 100
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "digits (rows made in Python, stored in data.pt: 300 train, 100 test)"
    run = load_run(tmp_path / "run")
    pyro.set_rng_seed(0)  # the bound of the 100 stored test rows, not of the 300 the name "digits" might suggest
    assert result["test_elbo_analytic"] == pytest.approx(
        evaluate_bound(run.model, run.guide, subset.test, "analytic", inputs=subset.test_inputs), abs=1.0)


def test_a_run_trained_from_python_on_its_own_rows_resumes_from_the_command_line(cvae, digits, tmp_path, capsys):
    """`pyro-aevb train --out RUN --resume` continues a run trained from Python on rows of its own -- a slice made in
    Python (stored in data.pt) and the first rows of a file (recorded by name and row counts) -- on exactly those
    rows, and equals the unbroken run to the bit (same thread count, same code path)."""
    model_cls, guide_cls = cvae
    data_file = tmp_path / "digits.npz"
    _write_npz(data_file, digits)
    made = {"slice": Dataset("digits", digits.train[:300], digits.test[:100], (14, 14),
                             train_inputs={"y": digits.train_inputs["y"][:300]},
                             test_inputs={"y": digits.test_inputs["y"][:100]}),
            "head": load_dataset(str(data_file)).head(300, 100)}
    for kind, data in made.items():
        runs = {}
        for name, epochs in (("broken", 1), ("unbroken", 2)):
            pyro.set_rng_seed(0)
            runs[name] = tmp_path / kind / name
            Trainer(model_cls(196), guide_cls(196), data, optimizer="adam", lr=3e-3, progress=False,
                    run_dir=runs[name], model_kwargs={"data_dim": 196}, guide_kwargs={"data_dim": 196}).fit(epochs)
        assert (runs["broken"] / "data.pt").exists() == (kind == "slice")
        assert main(["train", "--out", str(runs["broken"]), "--resume", "--epochs", "2", "--no-progress",
                     "--threads", str(torch.get_num_threads())]) == 0, capsys.readouterr().err
        resumed, unbroken = (load_run(runs[n]).metrics for n in ("broken", "unbroken"))
        assert [r["test_elbo"] for r in resumed] == [r["test_elbo"] for r in unbroken], kind


def test_a_run_on_a_file_records_the_file_and_refuses_it_once_changed(digits, tmp_path, capsys):
    """Rows loaded from a file are found again by path, not stored; if the file changes, evaluate refuses with
    one line (status 2) instead of scoring other rows."""
    data_file = tmp_path / "digits.npz"
    _write_npz(data_file, digits)
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(data_file), "--latent-dim", "2", "--hidden-dim", "16", "--epochs", "1",
                 "--no-progress", "--out", str(out)]) == 0
    assert not (out / "data.pt").exists()
    assert json.loads((out / "config.json").read_text())["data_fingerprint"]
    np.savez(data_file, train=digits.train[:500].numpy(), test=digits.test.numpy(),
             train_y=digits.train_inputs["y"][:500].numpy(), test_y=digits.test_inputs["y"].numpy())
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "differ from those" in err and "\n" not in err, err


GLOBAL_SOURCE = CVAE_SOURCE + textwrap.dedent('''

    class GlobalCVAE(CVAE):
        """The CVAE with a global latent: an offset of the decoder's logits, shared by every datapoint."""
        def forward(self, x, idx=None, num_data=None, y=None):
            offset = pyro.sample("offset", dist.Normal(x.new_zeros(x.shape[-1]), 1.).to_event(1))
            with data_plate(x, idx, num_data):
                z = pyro.sample("z", dist.Normal(x.new_zeros(self.latent), 1.).to_event(1))
                h = cat_broadcast(z, nn.functional.one_hot(y, 10).to(z.dtype))
                pyro.sample("x", dist.Bernoulli(logits=self.decoder(h) + offset).to_event(1), obs=x)

    class GlobalGuide(Guide):
        def __init__(self, data_dim, latent=2, hidden=32):
            super().__init__(data_dim, latent, hidden)
            self.offset_loc = nn.Parameter(torch.zeros(data_dim))
        def forward(self, x, idx=None, num_data=None, y=None):
            pyro.sample("offset", dist.Normal(self.offset_loc, 0.1).to_event(1))
            super().forward(x, idx, num_data, y)
''')


def test_a_conditional_model_with_a_global_latent_samples_and_reconstructs(digits, tmp_path, capsys):
    """theta ~ q(theta) drawn once, z ~ p(z) per row, each row decoded under its own y: prior_means from Python and
    `sample` / `reconstruct` from the command line (which once lost the rows' inputs on a one-row trace)."""
    source = tmp_path / "global_cvae.py"
    source.write_text(GLOBAL_SOURCE)
    data_file = tmp_path / "digits.npz"
    _write_npz(data_file, digits)
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(data_file), "--model", f"{source}:GlobalCVAE", "--guide",
                 f"{source}:GlobalGuide", "--optimizer", "adam", "--lr", "3e-3", "--train-samples", "300",
                 "--no-progress", "--out", str(out)]) == 0
    run = load_run(out)
    x_like = digits.test[:6]
    images = prior_means(run.model, x_like, guide=run.guide, inputs={"y": torch.arange(6)}, seed=0)
    assert images.shape == (6, 196) and bool(((images >= 0) & (images <= 1)).all())
    assert main(["sample", str(out), "--condition", "y=3", "--num-samples", "4", "--out",
                 str(tmp_path / "s.png")]) == 0
    capsys.readouterr()
    assert main(["reconstruct", str(out), "--num-images", "10", "--json"]) == 0, capsys.readouterr().err


def test_the_applications_work_on_flat_rows_of_a_conditional_full_vb_model(digits, tmp_path, capsys):
    """Rows without an image shape ([N, 195]: no square either) are drawn as one row of values each, so every
    number is printed (reconstruct, denoise, inpaint with a random mask; a half mask needs images and says so);
    denoise and inpaint work through more rows than one batch of a model with a conditioning input (each chunk
    gets its rows' inputs); from Python, reconstruct_images takes the inputs and its terms add up."""
    source = tmp_path / "global_cvae.py"
    source.write_text(GLOBAL_SOURCE)
    data_file = tmp_path / "flat.npz"
    np.savez(data_file, train=digits.train[:, :195].numpy(), test=digits.test[:, :195].numpy(),
             train_y=digits.train_inputs["y"].numpy(), test_y=digits.test_inputs["y"].numpy())
    out = str(tmp_path / "run")
    assert main(["train", "--dataset", str(data_file), "--model", f"{source}:GlobalCVAE", "--guide",
                 f"{source}:GlobalGuide", "--optimizer", "adam", "--lr", "3e-3", "--train-samples", "300",
                 "--no-progress", "--out", out]) == 0
    quick = ["--num-images", "150", "--num-samples", "4", "--rounds", "1", "--json"]  # 150 rows: two batches of 100
    for argv in (["reconstruct", out, "--json"], ["denoise", out, "--noise", "salt-pepper:0.2", *quick],
                 ["inpaint", out, "--mask", "random:0.3", *quick]):
        capsys.readouterr()
        assert main(argv) == 0, (argv, capsys.readouterr().err)
        assert Image.open(json.loads(capsys.readouterr().out)["picture"]).size[0] > 0
    assert main(["inpaint", out, "--mask", "top-half", "--json"]) == 2
    assert "needs images, but the data have no image shape" in capsys.readouterr().err
    run = load_run(out)
    data = run.load_data()
    m = reconstruct_images(run.model, run.guide, data.test[:50], num_data=data.train.shape[0],
                           inputs={"y": data.test_inputs["y"][:50]}).metrics()
    assert m["test_elbo"] == m["reconstruction_term"] - m["kl_term"] - m["kl_theta"] / m["num_data"]
