"""What a trained VAE is for (pyro_aevb.applications; pyro-aevb encode|reconstruct|inpaint|denoise|latent-map|
interpolate) and the TensorBoard callback, on small models trained here on a subset of MNIST.

Two models, each trained in a few seconds on the first 5,000 training images:

* the paper's VAE (Nz = 10, 200 tanh units, Bernoulli likelihood on grey values, Adam 1e-3, 5 epochs;
  test bound about -157 nats), and
* the user model of ``user_models.py`` -- latent sites named "style" (2-d) and "content" (3-d), a plate over
  the pixels so the ``data`` plate sits at dim -2 -- on the same images statically binarised.

Errors are mean squared errors per pixel.  Every margin below is argued from the data, not tuned: a paired
comparison over test images must beat its own standard error three times over (so it is not noise), and a
ratio states how much of the baseline's error the model must explain.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.distributions import Normal

from pyro_aevb import AevbInputError, Dataset, Trainer
from pyro_aevb.applications import (decode, denoise, encode, inpaint, interpolate, latent_map, parse_mask, parse_noise,
                                    reconstruct_images)
from pyro_aevb.applications.latent_map import grid_quantiles
from pyro_aevb.cli import main
from pyro_aevb.data import apply_binarization
from pyro_aevb.evaluation import decode_means
from pyro_aevb.guides import AmortizedNormalGuide, FullVBGuide
from pyro_aevb.models import BayesianVAEModel, VAEModel
from pyro_aevb.tensorboard import TensorBoardCallback

sys.path.insert(0, str(Path(__file__).parent))
from user_models import TwoLatentGuide, TwoLatentModel  # noqa: E402

N_SHOWN = 200  # test images for inpainting and denoising: 200 x 392 missing pixels per mask


@pytest.fixture(scope="module")
def labelled(mnist):
    """The first 5,000 training and 1,000 test images of MNIST with their labels."""
    return Dataset("mnist", mnist.train[:5000].clone(), mnist.test[:1000].clone(), (28, 28),
                   train_labels=mnist.train_labels[:5000].clone(), test_labels=mnist.test_labels[:1000].clone())


@pytest.fixture(scope="module")
def vae(labelled):
    pyro.set_rng_seed(0)
    model = VAEModel(784, 10, (200,), init="torch")
    guide = AmortizedNormalGuide(784, 10, (200,), init="torch")
    Trainer(model, guide, labelled, elbo="analytic", optimizer="adam", lr=1e-3, progress=False).fit(epochs=5)
    return model, guide


@pytest.fixture(scope="module")
def user(labelled):
    """TwoLatentModel/Guide trained on the binarised images (their Bernoulli needs 0/1 pixels)."""
    data = apply_binarization(labelled, "static")
    pyro.set_rng_seed(0)
    model, guide = TwoLatentModel(784, hidden=64), TwoLatentGuide(784, hidden=64)
    Trainer(model, guide, data, elbo="analytic", optimizer="adam", lr=3e-3, progress=False).fit(epochs=5)
    return model, guide, data


def _paired(ours: torch.Tensor, baseline: torch.Tensor):
    """Mean and standard error of the per-image improvement ``baseline - ours``."""
    d = baseline - ours
    return float(d.mean()), float(d.std() / math.sqrt(len(d)))


def _per_image_missing_error(images, truth, missing):
    return (((images - truth) ** 2) * missing).sum(1) / missing.sum(1)


# ----------------------------------------------------------------------------- inpainting


@pytest.mark.parametrize("spec", ["top-half", "random:0.5"])
def test_inpainting_beats_the_mean_image_on_the_missing_pixels(vae, labelled, spec):
    """The posterior mean E[x_M | x_O] beats the mean image in the holes: per image, by more than three standard
    errors of the paired difference (so not by chance), and by at least 10% of the mean image's error, which is
    the pixels' variance across images (measured: 0.050 vs 0.060 top half, 0.040 vs 0.063 random half) -- 10% is
    the least a model that reads digit shape from the visible half must explain.  Against the encoder run once
    on the masked image, importance sampling must not be worse by more than three standard errors."""
    model, guide = vae
    x = labelled.test[:N_SHOWN]
    missing = parse_mask(spec, N_SHOWN, 784, (28, 28), seed=0)
    result = inpaint(model, guide, x, missing, labelled.train.mean(0), num_samples=100, rounds=3, seed=0)
    m = result.metrics()
    ours = _per_image_missing_error(result.images, x, missing)
    gain, stderr = _paired(ours, _per_image_missing_error(result.mean_image, x, missing))
    assert gain > 3 * stderr and m["missing_pixel_error"] < 0.9 * m["baseline_mean_image_error"], m
    gain_once, stderr_once = _paired(ours, _per_image_missing_error(result.encoder_once, x, missing))
    assert gain_once > -3 * stderr_once, m
    # what is seen is kept: the observed pixels of the estimate are the image's own
    assert torch.equal(result.images[~missing], x[~missing])
    assert 1 <= m["effective_sample_size"] <= 100 and m["missing_fraction"] == pytest.approx(float(missing.float().mean()))


def test_inpainting_never_reads_the_missing_pixels(vae, labelled):
    """Whatever the holes hold, the estimate is the same (same seed): only the observed pixels are evidence."""
    model, guide = vae
    x = labelled.test[:20]
    missing = parse_mask("left-half", 20, 784, (28, 28))
    junk = torch.where(missing, torch.rand_like(x), x)
    a = inpaint(model, guide, x, missing, labelled.train.mean(0), num_samples=20, seed=3).images
    b = inpaint(model, guide, junk, missing, labelled.train.mean(0), num_samples=20, seed=3).images
    assert torch.equal(a, b)


def test_the_iterated_encoder_is_the_better_proposal_than_the_prior(vae, labelled):
    """Both proposals give consistent estimates; the encoder at the imputed image puts its K = 100 draws where
    p(z | x_O) is, the prior (10 dimensions) almost never does.  So with the encoder the effective sample size
    is several times larger (measured 7.3 vs 1.2), the importance-sampled log p(x_O) -- a stochastic lower bound
    of the same number for both -- is higher (-84.8 vs -93.2 nats), and the holes are filled better."""
    model, guide = vae
    x = labelled.test[:100]
    missing = parse_mask("random:0.5", 100, 784, (28, 28))
    enc, prior = (inpaint(model, guide, x, missing, labelled.train.mean(0), proposal=p, seed=0).metrics()
                  for p in ("encoder", "prior"))
    assert enc["effective_sample_size"] > 3 * prior["effective_sample_size"], (enc, prior)
    assert enc["observed_log_likelihood"] > prior["observed_log_likelihood"], (enc, prior)
    assert enc["missing_pixel_error"] < prior["missing_pixel_error"], (enc, prior)


# ----------------------------------------------------------------------------- denoising


@pytest.mark.parametrize("spec", ["salt-pepper:0.2", "gaussian:0.3"])
def test_denoising_lowers_the_error_of_the_noisy_input(vae, labelled, spec):
    """The noise costs ~0.09 per pixel (sigma^2 = 0.09; 20% of pixels set to 0 or 1 at a squared distance ~0.45
    on average).  Decoding a well-inferred code alone would err by the model's reconstruction error of clean
    images (measured here, 0.038 < 0.045), and E[x_d | y_d, z] also keeps what y_d says of the clean pixel, so the
    denoised image must come in under half the noisy input's error (measured: 0.020 and 0.019) and under the
    encoder run once on the noisy image, which the noise misleads."""
    model, guide = vae
    x = labelled.test[:N_SHOWN]
    result = denoise(model, guide, x, parse_noise(spec), num_samples=100, rounds=3, seed=0)
    m = result.metrics()
    clean = reconstruct_images(model, guide, x).metrics()["reconstruction_error"]
    assert m["noisy_input_error"] > 0.08
    assert clean < 0.5 * m["noisy_input_error"], (clean, m)  # the premise of the margin
    assert m["error"] < 0.5 * m["noisy_input_error"] and m["error"] < m["baseline_encoder_once_error"], m


def test_noise_models_corrupt_as_specified():
    """salt-pepper:P hits a fraction P of the pixels with 0 or 1; gaussian:S adds noise of std S (unclipped):
    both within 4 standard errors on 100,000 pixels."""
    x = torch.full((100, 1000), 0.5)
    g = torch.Generator().manual_seed(0)
    y = parse_noise("salt-pepper:0.2").corrupt(x, g)
    hit = (y != 0.5).float().mean().item()
    assert abs(hit - 0.2) < 4 * math.sqrt(0.2 * 0.8 / x.numel()) and set(y.unique().tolist()) == {0.0, 0.5, 1.0}
    e = parse_noise("gaussian:0.3").corrupt(x, g) - x
    assert abs(e.std().item() - 0.3) < 4 * 0.3 / math.sqrt(2 * x.numel()) and e.max() > 0.5


# ----------------------------------------------------------------------------- encode / reconstruct / interpolate


def test_encode_round_trips_to_the_reconstruction(vae, labelled, tmp_path):
    """encode gives the Gaussian encoder's mu and sigma; decoding the means is the reconstruction E[x | z = mu]
    computed by hand from the decoder -- equal to float precision; the .npz keeps them with the labels."""
    model, guide = vae
    x, labels = labelled.test[:300], labelled.test_labels[:300]
    codes = encode(model, guide, x, labels)
    with torch.no_grad():
        loc, scale = guide.encode(x)
        by_hand = model.likelihood(model.decoder(loc)).mean
    torch.testing.assert_close(codes.means, loc, rtol=0, atol=1e-6)
    torch.testing.assert_close(codes.scales, scale, rtol=0, atol=1e-6)
    torch.testing.assert_close(decode(model, guide, codes.means, x), by_hand, rtol=0, atol=1e-6)
    recon = reconstruct_images(model, guide, x)
    torch.testing.assert_close(recon.images, by_hand, rtol=0, atol=1e-6)
    m = recon.metrics()
    assert m["test_elbo"] == pytest.approx(m["reconstruction_term"] - m["kl_term"], abs=1.0)  # one-draw terms
    saved = np.load(codes.save(tmp_path / "z.npz"))
    assert saved["z_mean"].shape == (300, 10) and np.array_equal(saved["labels"], labels.numpy())
    np.testing.assert_array_equal(saved["z_mean"], codes.means.numpy())
    assert list(saved["columns"][:2]) == ["z[0]", "z[1]"]


def test_interpolation_paths_end_at_the_reconstructions(vae, labelled):
    """A straight latent path from mu^a to mu^b decodes, at its ends, to the two reconstructions."""
    model, guide = vae
    a, b = labelled.test[0:8], labelled.test[8:16]
    result = interpolate(model, guide, a, b, steps=7)
    assert result.paths.shape == (8, 7, 784)
    torch.testing.assert_close(result.paths[:, 0], decode(model, guide, encode(model, guide, a).means, a))
    torch.testing.assert_close(result.paths[:, -1], decode(model, guide, encode(model, guide, b).means, b))
    m = result.metrics()
    assert 0 < m["mean_step_change"] <= m["max_step_change"]


# ----------------------------------------------------------------------------- latent map and probe


def test_linear_probe_on_z_beats_chance_by_a_wide_margin(vae, labelled, tmp_path):
    """A logistic regression on the 10 posterior means, fitted on 2,000 labelled training images, classifies
    the 1,000 test images far above chance (the most common digit, ~0.13): above 0.5, which is 20 standard
    errors of a 1,000-image accuracy (<= 0.016) away from it (measured 0.76; the probe on the 784 pixels 0.84)."""
    model, guide = vae
    result = latent_map(model, guide, labelled.test, labelled.test_labels, labelled.train[:2000],
                        labelled.train_labels[:2000])
    m = result.metrics()
    assert m["projection"] == "pca" and result.coordinates.shape == (1000, 2)
    assert m["chance_accuracy"] < 0.2 and m["linear_probe_accuracy"] > 0.5 and m["pixel_probe_accuracy"] > 0.5, m
    assert result.manifold.shape == (400, 784)
    assert result.save_picture(tmp_path / "map.png", (28, 28)).stat().st_size > 0


def test_two_dimensional_latents_give_the_papers_fig4(labelled, tmp_path):
    """For Nz = 2 the map is z itself and the manifold is decoded at the prior's inverse CDF of a uniform grid:
    its corner tiles are E[x | z = (Phi^-1(u_0), Phi^-1(u_0))] and E[x | z = (Phi^-1(u_last), Phi^-1(u_0))]."""
    pyro.set_rng_seed(0)
    model, guide = VAEModel(784, 2, (100,), init="torch"), AmortizedNormalGuide(784, 2, (100,), init="torch")
    small = Dataset("mnist", labelled.train[:2000], labelled.test[:300], (28, 28))
    Trainer(model, guide, small, elbo="analytic", optimizer="adam", lr=1e-3, progress=False).fit(epochs=2)
    result = latent_map(model, guide, labelled.test[:300], labelled.test_labels[:300], grid=5)
    assert result.method == "latent" and torch.equal(result.coordinates, result.codes.means)
    q = Normal(0.0, 1.0).icdf(grid_quantiles(5))
    corners = torch.tensor([[q[0], q[0]], [q[-1], q[0]]])
    expected = decode(model, guide, corners, labelled.test[:2])
    torch.testing.assert_close(result.manifold[[0, 20]], expected)
    assert result.linear_probe_accuracy is None
    assert result.save_picture(tmp_path / "fig4.png", (28, 28)).stat().st_size > 0


# ----------------------------------------------------------------------------- a user model


def test_a_user_model_with_its_own_site_names_goes_through_every_application(user):
    """Nothing assumes a site called "z": the layout is read from the model ("style", "content", datapoints on
    axis -3 of [M, 1, k] values); decoding its codes equals decoding the guide's locations by hand; inpainting
    beats the mean image and denoising the noisy input, by the margins argued above."""
    model, guide, data = user
    x = data.test[:N_SHOWN]
    codes = encode(model, guide, x, data.test_labels[:N_SHOWN])
    assert codes.layout.names == ("style", "content") and codes.layout.dim == 5
    with torch.no_grad():
        loc, _ = guide.encoder(x).unsqueeze(-2).chunk(2, dim=-1)
        by_hand = decode_means(model, {"style": loc[..., :2], "content": loc[..., 2:]}, x)
    torch.testing.assert_close(decode(model, guide, codes.means, x), by_hand, rtol=0, atol=1e-6)

    missing = parse_mask("random:0.5", N_SHOWN, 784, (28, 28))
    filled = inpaint(model, guide, x, missing, data.train.mean(0), seed=0)
    gain, stderr = _paired(_per_image_missing_error(filled.images, x, missing),
                           _per_image_missing_error(filled.mean_image, x, missing))
    m = filled.metrics()
    assert gain > 3 * stderr and m["missing_pixel_error"] < 0.9 * m["baseline_mean_image_error"], m
    cleaned = denoise(model, guide, x, parse_noise("salt-pepper:0.2"), seed=0).metrics()
    assert cleaned["error"] < 0.5 * cleaned["noisy_input_error"], cleaned
    mapped = latent_map(model, guide, data.test, data.test_labels, data.train[:2000], data.train_labels[:2000])
    assert mapped.method == "pca" and mapped.linear_probe_accuracy > 0.4  # 5 dims; chance ~0.13, measured 0.64
    assert interpolate(model, guide, x[:3], x[3:6], steps=4).paths.shape == (3, 4, 784)


def test_frey_face_with_a_gaussian_decoder(frey):
    """Frey Face (grey faces, appendix C.2's Gaussian decoder, no labels): inpainting the left half beats the mean
    face and denoising beats the noisy input, by the margins argued above (measured 0.005 vs 0.009 and 0.003 vs
    0.010); the Wiener gain uses the decoder's learned variance."""
    pyro.set_rng_seed(0)
    model = VAEModel(560, 5, (200,), likelihood="gaussian", init="torch")
    guide = AmortizedNormalGuide(560, 5, (200,), init="torch")
    Trainer(model, guide, frey, elbo="analytic", optimizer="adam", lr=1e-3, progress=False).fit(epochs=20)
    x = frey.test
    missing = parse_mask("left-half", x.shape[0], 560, frey.image_shape)
    filled = inpaint(model, guide, x, missing, frey.train.mean(0), seed=0)
    gain, stderr = _paired(_per_image_missing_error(filled.images, x, missing),
                           _per_image_missing_error(filled.mean_image, x, missing))
    m = filled.metrics()
    assert gain > 3 * stderr and m["missing_pixel_error"] < 0.9 * m["baseline_mean_image_error"], m
    cleaned = denoise(model, guide, x, parse_noise("gaussian:0.1"), seed=0).metrics()
    assert cleaned["error"] < 0.5 * cleaned["noisy_input_error"], cleaned
    assert latent_map(model, guide, x).linear_probe_accuracy is None


def test_full_vb_runs_fix_theta_at_one_draw(labelled):
    """A model with global latents (full VB, appendix F): the applications condition theta on one draw of
    q(theta) and work on the local latents alone."""
    pyro.set_rng_seed(0)
    model = BayesianVAEModel(784, 4, (20,))
    guide = FullVBGuide(model, AmortizedNormalGuide(784, 4, (20,)))
    x = labelled.test[:20]
    codes = encode(model, guide, x)
    assert codes.layout.names == ("z",) and codes.means.shape == (20, 4)
    assert decode(model, guide, codes.means, x).shape == (20, 784)
    assert inpaint(model, guide, x, parse_mask("top-half", 20, 784, (28, 28)), x.mean(0), num_samples=10,
                   rounds=1).images.shape == (20, 784)


# ----------------------------------------------------------------------------- masks


def test_masks_name_the_missing_pixels(tmp_path):
    top = parse_mask("top-half", 3, 6, (2, 3))
    assert top.tolist() == [[True] * 3 + [False] * 3] * 3
    left = parse_mask("left-half", 1, 6, (2, 3))
    assert left.tolist() == [[True, False, False, True, False, False]]
    shared = tmp_path / "m.npy"
    np.save(shared, np.array([[1, 0, 0], [0, 0, 1]], dtype=np.uint8))
    assert parse_mask(str(shared), 4, 6, (2, 3)).tolist() == [[True, False, False, False, False, True]] * 4
    per_image = tmp_path / "p.pt"
    torch.save(torch.eye(6, dtype=torch.bool)[:2], per_image)
    assert parse_mask(str(per_image), 2, 6, (2, 3)).equal(torch.eye(6, dtype=torch.bool)[:2])


@pytest.mark.parametrize("spec, image_shape, message", [
    ("top-half", None, "no image shape"),
    ("random:1.5", (2, 3), "strictly between 0 and 1"),
    ("random:x", (2, 3), "needs a number"),
    ("bottom", (2, 3), "unknown mask"),
    ("missing.npy", (2, 3), "not found"),
])
def test_bad_masks_say_how_to_fix_them(spec, image_shape, message):
    with pytest.raises(AevbInputError, match=message):
        parse_mask(spec, 2, 6, image_shape)


# ----------------------------------------------------------------------------- TensorBoard


def _events(log_dir):
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def test_tensorboard_event_files_are_written_and_readable(labelled, tmp_path):
    """Per epoch: the bounds of the metrics rows, KL and reconstruction terms, learning rate, and the sample and
    reconstruction grids, all read back with tensorboard's own event reader."""
    pyro.set_rng_seed(0)
    small = Dataset("mnist", labelled.train[:500], labelled.test[:100], (28, 28))
    model, guide = VAEModel(784, 5, (50,)), AmortizedNormalGuide(784, 5, (50,))
    callback = TensorBoardCallback(tmp_path / "tb", num_images=16, num_terms=100)
    rows = Trainer(model, guide, small, lr=0.02, progress=False, callbacks=[callback]).fit(epochs=2)
    callback.close()
    events = _events(tmp_path / "tb")
    tags = events.Tags()
    for tag in ("bound/train", "bound/test", "terms/train_kl", "terms/test_reconstruction", "optim/lr"):
        assert tag in tags["scalars"], tag
    assert [e.step for e in events.Scalars("bound/test")] == [1, 2]
    assert [e.value for e in events.Scalars("bound/test")] == pytest.approx([r["test_elbo"] for r in rows], rel=1e-6)
    assert events.Scalars("optim/lr")[0].value == pytest.approx(0.02)
    assert {"samples", "reconstructions"} <= set(tags["images"])
    grid = events.Images("samples")[-1]
    assert grid.width == 4 * 29 + 1 and grid.height == 4 * 29 + 1  # 4 x 4 tiles of 28 px, 1 px padding


def test_train_tensorboard_flag_and_the_missing_extra(tmp_path, capsys, monkeypatch):
    data = tmp_path / "tiny.npy"
    np.save(data, np.random.default_rng(0).random((60, 4, 4)).astype(np.float32))
    out = tmp_path / "run"
    argv = ["train", "--dataset", str(data), "--latent-dim", "2", "--hidden-dim", "8", "--epochs", "1",
            "--batch-size", "20", "--no-progress", "--out", str(out), "--tensorboard"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "bound/train" in _events(out / "tensorboard").Tags()["scalars"]
    monkeypatch.setattr("pyro_aevb.tensorboard.SummaryWriter", None)
    assert main(argv[:-2] + [str(tmp_path / "run2"), "--tensorboard"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'pyro-aevb[tensorboard]'" in err


# ----------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A small MNIST run trained by the CLI on 5,000 training samples."""
    out = tmp_path_factory.mktemp("apps") / "run"
    code = main(["train", "--dataset", "mnist", "--latent-dim", "8", "--hidden-dim", "100", "--optimizer", "adam",
                 "--lr", "1e-3", "--init", "torch", "--train-samples", "5000", "--seed", "0", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def unlabelled_run(tmp_path_factory):
    """A run on a user's array of 8x8 images: no labels."""
    root = tmp_path_factory.mktemp("unlabelled")
    np.save(root / "faces.npy", np.random.default_rng(1).random((120, 8, 8)).astype(np.float32))
    out = root / "run"
    assert main(["train", "--dataset", str(root / "faces.npy"), "--latent-dim", "3", "--hidden-dim", "16",
                 "--epochs", "1", "--batch-size", "20", "--no-progress", "--out", str(out)]) == 0
    return out


def _json(argv, capsys):
    code = main(argv + ["--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_every_command_prints_its_numbers_and_writes_its_picture(cli_run, capsys):
    run = str(cli_run)
    enc = _json(["encode", run, "--num-images", "500"], capsys)
    saved = np.load(enc["out"])
    assert saved["z_mean"].shape == (500, 8) and saved["labels"].shape == (500,) and Path(enc["picture"]).exists()
    rec = _json(["reconstruct", run, "--num-images", "500"], capsys)
    assert 0 < rec["reconstruction_error"] < 0.1 and rec["test_elbo"] < 0
    inp = _json(["inpaint", run, "--mask", "random:0.5", "--num-images", "50", "--num-samples", "20"], capsys)
    assert {"missing_pixel_error", "baseline_mean_image_error", "baseline_encoder_once_error"} <= set(inp)
    den = _json(["denoise", run, "--noise", "gaussian:0.3", "--num-images", "50", "--num-samples", "20"], capsys)
    assert den["error"] < den["noisy_input_error"]
    lat = _json(["latent-map", run, "--num-images", "500", "--probe-train", "1000", "--grid", "6"], capsys)
    assert lat["linear_probe_accuracy"] > 2 * lat["chance_accuracy"] and "pixel_probe_accuracy" in lat
    itp = _json(["interpolate", run, "--pairs", "3", "--steps", "5"], capsys)
    assert itp["num_pairs"] == 3
    for result in (rec, inp, den, lat, itp):
        assert Path(result["picture"]).stat().st_size > 0 and Path(result["picture"]).parent == cli_run


def test_latent_map_of_a_run_without_labels(unlabelled_run, capsys):
    code = main(["latent-map", str(unlabelled_run)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--no-labels" in err
    assert _json(["latent-map", str(unlabelled_run), "--no-labels", "--grid", "3"], capsys)["projection"] == "pca"


def _images_file(tmp_path, shape):
    path = tmp_path / "images.npy"
    np.save(path, np.ones(shape, dtype=np.float32))
    return str(path)


def _mask_file(tmp_path, shape):
    path = tmp_path / "mask.npy"
    np.save(path, np.ones(shape, dtype=np.uint8))
    return str(path)


def _bad_values(tmp_path):
    path = tmp_path / "mask2.npy"
    np.save(path, np.full(784, 2, dtype=np.uint8))
    return str(path)


@pytest.mark.parametrize("make_argv, message", [
    (lambda run, tmp: ["inpaint", run, "--mask", _mask_file(tmp, (27, 28))], "shape [27, 28]"),
    (lambda run, tmp: ["inpaint", run, "--mask", _bad_values(tmp)], "0 (observed) or 1 (missing)"),
    (lambda run, tmp: ["inpaint", run, "--mask", "middle"], "unknown mask"),
    (lambda run, tmp: ["inpaint", run, "--mask", "random:2"], "strictly between 0 and 1"),
    (lambda run, tmp: ["inpaint", run, "--mask", "top-half", "--num-images", "0"], "must be >= 1"),
    (lambda run, tmp: ["denoise", run, "--noise", "speckle:0.1"], "unknown noise"),
    (lambda run, tmp: ["denoise", run, "--noise", "gaussian:-1"], "positive"),
    (lambda run, tmp: ["encode", run, "--out", str(tmp / "z.csv")], ".npz"),
    (lambda run, tmp: ["interpolate", run, "--steps", "1"], "must be >= 2"),
    (lambda run, tmp: ["interpolate", run, "--pairs", "6", "--num-images", "5"], "lower --pairs"),
    (lambda run, tmp: ["reconstruct", str(tmp / "nowhere")], "run directory not found"),
    (lambda run, tmp: ["reconstruct", run, "--dataset", _images_file(tmp, (20, 5, 5))], "values per image"),
])
def test_bad_inputs_give_one_line_and_exit_2(cli_run, tmp_path, capsys, make_argv, message):
    code = main(make_argv(str(cli_run), tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("pyro-aevb: error:") and message in err, err
