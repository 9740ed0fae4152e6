"""The paper reproductions (``pyro-aevb reproduce``): files, tables and the orderings the paper shows.

The quick budget is 3e4 training samples per run on MNIST and 1e5 on Frey Face -- 3e-4 and 1e-3 of the
paper's 1e8 -- so the numbers are far from the paper's; what must already hold is the *ordering* of Fig. 2
(AEVB's bound above wake-sleep's at equal budget, on both datasets) and that every bound is finite.
"""

import json
import math

import pytest

from pyro_aevb.cli import main
from pyro_aevb.reproduce import fig2, fig3, paper, reproduce


def _curve(rows, method, key, split):
    return [r[split] for r in rows if r["method"] == method and str(r["key"]) == str(key)]


def _read_curves(path):
    import csv

    with open(path) as f:
        return [dict(r, train=float(r["train"]), test=float(r["test"])) for r in csv.DictReader(f)]


def test_fig2_quick_mnist_aevb_above_wake_sleep_and_bounds_rising(tmp_path):
    """Fig. 2 ordering at equal budget (quick, 3e4 samples, Nz = 3 and 20): AEVB's train and test bounds
    are above wake-sleep's; AEVB's rise by > 100 nats from initialisation (~-520: every pixel near log 2)
    and wake-sleep's stay finite.  (Wake-sleep's bound is not monotone this early: its recognition model is
    trained on dreams, and at Nz = 20 the bound of q can dip far below its starting value before recovering.)"""
    out = tmp_path / "fig2"
    results = fig2.run(out, "mnist", "quick", latent_dims=(3, 20), log=lambda *_: None)
    for name in ("fig2.png", "curves.csv", "results.json", "results.md"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["budget"] == {"name": "quick", "train_samples": 30_000}
    rows = _read_curves(out / "curves.csv")
    for nz in ("3", "20"):
        aevb, ws = results["aevb"][nz], results["wake_sleep"][nz]
        assert aevb["test"] > ws["test"] and aevb["train"] > ws["train"], nz
        for method in ("aevb", "wake_sleep"):
            for split in ("train", "test"):
                curve = _curve(rows, method, nz, split)
                assert all(math.isfinite(v) for v in curve)
                if method == "aevb":
                    assert curve[-1] > curve[0] + 100  # from ~-520 at initialisation
    # the table puts the paper's numbers next to ours
    md = (out / "results.md").read_text()
    assert "-133.5" in md and "-99.5" in md and "-139.0" in md


def test_fig2_quick_frey_aevb_above_wake_sleep(tmp_path):
    """Frey Face's quick budget (1e5 samples, Nz = 2) is past the mean-face plateau (~+560 nats, where
    wake-sleep stays): AEVB's train and test bounds are above wake-sleep's, the point of the paper's figure.
    (Measured: AEVB ~+640, wake-sleep ~+565; at the old 3e4 both were still on the plateau and wake-sleep
    was ahead.)  Both curves finite."""
    from conftest import FREY_PATH

    out = tmp_path / "fig2f"
    results = fig2.run(out, "frey", "quick", latent_dims=(2,), data_path=str(FREY_PATH), log=lambda *_: None)
    aevb, ws = results["aevb"]["2"], results["wake_sleep"]["2"]
    assert aevb["train"] > ws["train"] and aevb["test"] > ws["test"]
    rows = _read_curves(out / "curves.csv")
    for method in ("aevb", "wake_sleep"):
        for split in ("train", "test"):
            curve = _curve(rows, method, 2, split)
            assert all(math.isfinite(v) for v in curve)
            assert curve[-1] > curve[0] + 500  # from ~-510 at initialisation to > 0


def test_fig3_small_run_writes_marginal_likelihoods_for_every_method(tmp_path):
    """Fig. 3 pipeline (tiny budget): every method gets a finite appendix-D estimate on train and test,
    keyed by method then Ntrain, and the estimate of a trained model beats the untrained level."""
    out = tmp_path / "fig3"
    res = fig3.run(out, budget="quick", num_train=(1000,), train_samples=3000, eval_points=20, log=lambda *_: None)
    for method in ("aevb", "wake_sleep", "mcem"):
        for split in ("train", "test"):
            value = res[method]["1000"][split]
            # untrained decoders give ~-540 nats (uniform pixels); any learner is far above after 3 epochs
            assert math.isfinite(value) and -400 < value < 0
    assert (out / "fig3.png").stat().st_size > 0
    assert "-143.2" in (out / "results.md").read_text()


def test_fig4_and_fig5_write_images_through_the_cli(tmp_path):
    """``pyro-aevb reproduce fig4|fig5`` each write a PNG and results from one command."""
    from conftest import FREY_PATH

    out4, out5 = tmp_path / "fig4", tmp_path / "fig5"
    assert main(["reproduce", "fig4", "--dataset", "frey", "--data-path", str(FREY_PATH), "--train-samples",
                 "2000", "--out", str(out4)]) == 0
    assert main(["reproduce", "fig5", "--latent-dims", "2,5", "--train-samples", "1000", "--out", str(out5)]) == 0
    for out, png in ((out4, "fig4.png"), (out5, "fig5.png")):
        assert (out / png).stat().st_size > 1000
        assert json.loads((out / "results.json").read_text())["aevb"]


def test_manifold_grid_uses_inverse_gaussian_cdf():
    """Fig. 4: the grid's latent coordinates are Phi^-1((i + 1/2) / n), symmetric about 0."""
    import torch
    from scipy.stats import norm

    from pyro_aevb.models import VAEModel
    from pyro_aevb.reproduce.fig4 import manifold_grid

    seen = []

    class Spy(torch.nn.Module):
        def forward(self, z):
            seen.append(z)
            return torch.zeros(z.shape[0], 4)

    model = VAEModel(4, 2, (3,))
    model.decoder = Spy()
    model.decoder.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    manifold_grid(model, n=4)
    z = seen[0]
    expected = torch.tensor(norm.ppf((torch.arange(4) + 0.5).numpy() / 4), dtype=torch.float32)
    assert torch.allclose(z[:4, 0], expected, atol=1e-5)  # first row: z1 ascending
    assert torch.allclose(z[::4, 1], expected.flip(0), atol=1e-5)  # first column: z2 descending


def test_paper_numbers_are_complete():
    """Every Nz of Fig. 2 has AEVB train/test and a wake-sleep level; Fig. 3 has all methods and Ntrain."""
    for dataset, dims in paper.FIG2_LATENT_DIMS.items():
        for nz in dims:
            assert set(paper.FIG2[dataset]["aevb"][nz]) == {"train", "test"}
            assert paper.FIG2[dataset]["wake_sleep"][nz]["test"] is not None
    for method in ("aevb", "wake_sleep", "mcem"):
        for n in paper.FIG3_NUM_TRAIN:
            assert paper.FIG3[method][n]["train"] is not None and paper.FIG3[method][n]["test"] is not None


def test_reproduce_rejects_bad_input(tmp_path, capsys):
    assert main(["reproduce", "fig3", "--dataset", "frey", "--out", str(tmp_path)]) == 2
    assert "MNIST" in capsys.readouterr().err
    assert main(["reproduce", "fig2", "--latent-dims", "3,x", "--out", str(tmp_path)]) == 2
    assert main(["reproduce", "fig2", "--budget", "huge", "--out", str(tmp_path)]) == 2
    from pyro_aevb import AevbInputError

    with pytest.raises(AevbInputError, match="figure"):
        reproduce("fig9", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("figure", ["fig2", "fig3", "fig4", "fig5"])
def test_quick_budget_of_every_figure_via_cli(tmp_path, figure):
    """The full quick budget of each figure, as CI's nightly job would run it (several minutes each)."""
    assert main(["reproduce", figure, "--budget", "quick", "--out", str(tmp_path / figure)]) == 0
    assert (tmp_path / figure / f"{figure}.png").exists()
