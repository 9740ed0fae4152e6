"""``pyro-aevb reproduce iwae``: Burda et al.'s (2016) Table 1 protocol as a resumable sweep.

The properties checked: the schedule at the paper's budget is Burda et al.'s (3^i passes at 1e-3 * 10^(-i/7)),
k = 1 is one run reported for both objectives, each run's recipe is theirs, the reported NLL is the library's
``log_likelihood`` of the saved run on the same images and draws (one number, one meaning), and bad settings are
one line with status 2.
"""

import json
import math

import pytest

from pyro_aevb import load_run, log_likelihood
from pyro_aevb.cli import main
from pyro_aevb.reproduce import iwae, paper
from pyro_aevb.rng import seeded


def test_the_paper_budget_follows_burda_et_al_schedule(mnist):
    """At 3,280 passes of 2,500 minibatches of 20 (our 50,000 images), stage i ends after sum_{j <= i} 3^j passes
    (at every budget: medium is the paper's run stopped after 40 passes, so the paper budget continues it)
    and runs at 1e-3 * 10^(-i/7); the recipe is theirs (Adam's options, M = 20, no weight decay), with Adam's eps
    scaled as our objective is (N/M times their minibatch sum), so that the updates are theirs."""
    runs = iwae.specs("paper", ks=(1, 5, 50), layers=(1, 2))
    assert [r.name for r in runs] == ["l1_k1", "l1_vae_k5", "l1_iwae_k5", "l1_vae_k50", "l1_iwae_k50",
                                      "l2_k1", "l2_vae_k5", "l2_iwae_k5", "l2_vae_k50", "l2_iwae_k50"]
    steps_per_pass = mnist.train.shape[0] // iwae.BATCH
    ends = [(3 ** (i + 1) - 1) // 2 * steps_per_pass for i in range(8)]  # sum_{j<=i} 3^j passes, in steps
    recipe = runs[2].recipe
    assert recipe["lr_schedule_kwargs"]["milestones"] == ends[:7]
    assert runs[0].points == tuple(e * iwae.BATCH for e in ends)  # a row and a checkpoint at every stage's end
    medium = iwae.specs("medium", ks=(5,), methods=("iwae",))[0]  # the same run, stopped after stages 0..3
    assert medium.recipe == recipe and medium.points == tuple(e * iwae.BATCH for e in ends[:4])
    assert runs[0].train_samples == paper.IWAE_PASSES * mnist.train.shape[0] == ends[-1] * iwae.BATCH
    assert (recipe["elbo"], recipe["num_particles"], runs[1].recipe["elbo"]) == ("iwae", 5, "trace")
    # Adam's eps is not scale-invariant: theirs acts on the minibatch sum, ours on N/M times it (eq. 8)
    assert recipe["optimizer_kwargs"] == {"betas": [0.9, 0.999], "eps": 1e-4 * mnist.train.shape[0] / 20}
    assert recipe["batch_size"] == 20
    assert recipe["prior_precision"] == 0.0 and runs[0].binarize == "dynamic"
    # MultiStepLR (its rates checked step by step in tests/test_training_options.py): stage i at lr gamma^i
    assert recipe["lr"] == 1e-3 and recipe["lr_schedule_kwargs"]["gamma"] ** 7 == pytest.approx(0.1, rel=1e-12)


def test_a_small_sweep_reports_the_runs_own_importance_sampled_log_likelihood(tmp_path, capsys):
    """A tiny budget through the command line: k = 1 is one run listed under VAE and IWAE; each reported NLL is
    -log_likelihood(model, guide, test images, K = 5000) of the saved run on the same images in the same seeded
    stream, to the last bit; its active units are a count per stochastic layer; Table 1's values stand beside
    ours; --print-commands lists nothing once every run has finished."""
    out = tmp_path / "iwae"
    common = ["reproduce", "iwae", "--train-samples", "400", "--ks", "1,2", "--eval-points", "10", "--threads", "1",
              "--out", str(out)]
    assert main(common) == 0
    results = json.loads((out / "results.json").read_text())
    table = results["layers_1"]
    assert set(table) == {"vae", "iwae"} and table["vae"]["1"] == table["iwae"]["1"]
    assert {k for m in table.values() for k in m} == {"1", "2"} and results["settings"]["runs_finished"] == 3
    for name, method, k in (("l1_k1", "vae", "1"), ("l1_vae_k2", "vae", "2"), ("l1_iwae_k2", "iwae", "2")):
        run = load_run(out / "runs" / name)
        assert run.config.elbo == ("iwae" if method == "iwae" else "trace") and run.config.num_particles == int(k)
        estimate = json.loads((out / "runs" / name / "estimates.json").read_text())[-1]
        x = run.load_data().test[:10]
        with seeded(0 + estimate["stop"], x.device):
            ours = log_likelihood(run.model, run.guide, x, num_samples=5000)
        assert table[method][k]["nll"] == -ours.mean and estimate["num_samples"] == 5000
        assert len(table[method][k]["active_units"]) == 1 and 0 <= table[method][k]["active_units"][0] <= 50
        assert math.isfinite(table[method][k]["nll"]) and table[method][k]["nll"] > 0
    md = (out / "results.md").read_text()
    assert "86.76" in md and "85.54" not in md  # Burda's k = 1 and (not asked) k = 5 IWAE
    assert (out / "iwae.png").exists()
    capsys.readouterr()
    assert main([*common, "--print-commands"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("flags, says", [
    (["--ks", "0"], "k, the samples per datapoint"),
    (["--ks", "1,x"], "--ks must be comma-separated integers"),
    (["--layers", "3"], "number of stochastic layers"),
    (["--methods", "wake_sleep"], "unknown method"),
    (["--dataset", "frey"], "MNIST"),
    (["--eval-points", "1"], "eval_points must be an integer >= 2"),
    (["--eval-points", "20000"], "more than MNIST's 10000 test images"),
    (["--dataset", "frey", "--print-commands"], "MNIST"),
    (["--methods", ""], "e.g. vae,iwae"),
])
def test_bad_iwae_settings_are_one_line_with_status_2(tmp_path, capsys, flags, says):
    assert main(["reproduce", "iwae", "--train-samples", "100", "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err


def test_iwae_flags_are_refused_for_the_papers_figures(tmp_path, capsys):
    assert main(["reproduce", "fig2", "--layers", "2", "--out", str(tmp_path)]) == 2
    assert "--layers applies to iwae" in capsys.readouterr().err


def test_table1_numbers_are_complete():
    """Every (layers, method, k) of Table 1 has an NLL and one active-unit count per stochastic layer."""
    for layers, methods in paper.IWAE_TABLE1.items():
        for method in ("vae", "iwae"):
            assert sorted(methods[method]) == [1, 5, 50]
            assert all(len(v["active_units"]) == layers and v["nll"] > 80 for v in methods[method].values())
        assert methods["vae"][1] == methods["iwae"][1]  # k = 1: the same objective


def test_print_commands_checks_what_the_runs_would_check_and_lists_each_run_once(tmp_path, capsys):
    """``--layers 1,1`` is one layer's runs, listed once; a folder that holds another sweep (another seed) is
    refused by ``--print-commands`` as by the runs themselves, status 2."""
    argv = ["reproduce", "iwae", "--train-samples", "100", "--ks", "1,2", "--eval-points", "10", "--threads", "1",
            "--out", str(tmp_path / "s")]
    assert main([*argv, "--layers", "1,1", "--print-commands"]) == 0
    assert [line.split()[-1] for line in capsys.readouterr().out.splitlines()] == ["l1_k1", "l1_vae_k2", "l1_iwae_k2"]
    assert main([*argv, "--run", "l1_k1"]) == 0
    capsys.readouterr()
    assert main([*argv, "--seed", "1", "--print-commands"]) == 2
    assert "differs in seed" in capsys.readouterr().err
