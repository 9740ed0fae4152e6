"""Training options: KL warm-up, learning-rate schedules, threads (docs/training_options.md).

Each test states the property it checks: the warm-up's step equals the hand computation on a model written
here, the metrics stay the unannealed bound, a warmed-up and scheduled run resumed through the command line
equals an unbroken one bit for bit, bad values are one line with status 2, and the thread count is applied.
"""

import json
import math
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb import Dataset, RunConfig, Trainer, load_run, train
from pyro_aevb.checkpoint import load_checkpoint, read_metrics
from pyro_aevb.cli import build_parser, main
from pyro_aevb.plates import data_plate
from pyro_aevb.threads import default_threads

D = 6  # pixels of the toy data
USER = Path(__file__).resolve().parent / "user_models.py"  # a model and guide as a user writes them


class TwoSiteModel(PyroModule):
    """p(a) p(b) prod_d Bernoulli(x_d | logits = W [a, b] + c): two latent sites (2-d and 1-d) and a pixel plate."""

    def __init__(self):
        super().__init__()
        self.decoder = nn.Linear(3, D)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data, dim=-2):
            a = pyro.sample("a", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            b = pyro.sample("b", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
            logits = self.decoder(torch.cat([a, b], -1))
            with pyro.plate("pixels", D, dim=-1):
                pyro.sample("x", dist.Bernoulli(logits=logits.squeeze(-2)), obs=x)


class RecordingGuide(PyroModule):
    """q(a|x) q(b|x), Gaussians from one linear encoder; keeps the last draws so that the test can redo the sum."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(D, 6)
        self.drawn = {}

    def forward(self, x, idx=None, num_data=None):
        loc, log_scale = self.encoder(x).unsqueeze(-2).chunk(2, dim=-1)
        with data_plate(x, idx, num_data, dim=-2):
            self.drawn["a"] = pyro.sample("a", dist.Normal(loc[..., :2], log_scale[..., :2].exp()).to_event(1))
            self.drawn["b"] = pyro.sample("b", dist.Normal(loc[..., 2:], log_scale[..., 2:].exp()).to_event(1))


def _toy_data():
    g = torch.Generator().manual_seed(0)
    return Dataset("toy", torch.bernoulli(torch.full((200, D), 0.3), generator=g),
                   torch.bernoulli(torch.full((50, D), 0.3), generator=g))


@pytest.mark.parametrize("elbo", ["trace", "analytic"])
def test_a_warmup_step_is_the_bound_with_every_latent_sites_kl_weighted_by_beta(elbo):
    """The t-th step of a warm-up of S steps trains on -(N/M) [sum log p(x|z) - beta KL], beta = t/S, summed over
    both latent sites: for estimator B with the closed-form Gaussian KL (eq. 10), for estimator A with the Monte
    Carlo log q(z|x) - log p(z) of the guide's own draws; the observation term keeps weight 1.  The loss is
    recomputed by hand from the networks before the step and the draws the step made.  Tolerance: float32 sums
    of ~10^3 terms in another order, relative 1e-5 (a missing beta would be off by (1 - beta) KL, ~10^2 here)."""
    data = _toy_data()
    model, guide = TwoSiteModel(), RecordingGuide()
    trainer = Trainer(model, guide, data, elbo=elbo, kl_warmup=4, batch_size=20, progress=False, backend="pyro")
    n, idx = data.train.shape[0], torch.arange(20)
    x = data.train[idx]
    for t in (1, 2):  # beta = 1/4, then 2/4
        before = {k: v.detach().clone() for k, v in {**dict(model.named_parameters(prefix="m")),
                                                     **dict(guide.named_parameters(prefix="g"))}.items()}
        loss = trainer.step(x, idx, n).item()
        a, b = (guide.drawn[k].detach().reshape(20, -1) for k in ("a", "b"))
        z = torch.cat([a, b], -1)
        log_lik = dist.Bernoulli(logits=z @ before["m.decoder.weight"].T + before["m.decoder.bias"]).log_prob(x).sum()
        loc, log_scale = (x @ before["g.encoder.weight"].T + before["g.encoder.bias"]).chunk(2, -1)
        scale = log_scale.exp()
        if elbo == "analytic":  # eq. (10): KL = sum_j -log sigma_j + (sigma_j^2 + mu_j^2 - 1) / 2, both sites
            kl = (-log_scale + (scale ** 2 + loc ** 2 - 1) / 2).sum()
        else:  # estimator A: log q(z|x) - log p(z) at the draws
            kl = (dist.Normal(loc, scale).log_prob(z) - dist.Normal(0.0, 1.0).log_prob(z)).sum()
        beta = t / 4
        expected = -(n / 20) * (log_lik - beta * kl).item()
        assert loss == pytest.approx(expected, rel=1e-5)
        assert abs((1 - beta) * (n / 20) * kl.item()) > 1e-3 * abs(expected)  # the weight is visible at this tolerance


def test_the_metrics_report_the_unannealed_bound_and_label_the_annealed_objective():
    """While beta < 1 the running training value is not a bound: the row says train_objective with the beta reached,
    and no train_running_elbo; train_elbo/test_elbo are the bound itself (beta has no part in evaluate).  Once a
    whole epoch trains at beta = 1 the row says train_running_elbo again.  Exact equality: the same seeded draws."""
    data = _toy_data()
    pyro.set_rng_seed(0)
    trainer = Trainer(TwoSiteModel(), RecordingGuide(), data, elbo="analytic", kl_warmup=15, batch_size=20,
                      progress=False)
    rows = trainer.fit(epochs=3)  # 10 steps per epoch: beta reaches 10/15, then 1 at step 15, then 1 throughout
    assert [r.get("beta") for r in rows] == [pytest.approx(10 / 15), 1.0, None]
    assert ["train_running_elbo" in r for r in rows] == [False, False, True]
    assert all("train_objective" in r for r in rows[:2])
    assert rows[-1]["test_elbo"] == trainer.evaluate(data.test)["bound"]


def _digits(tmp_path, mnist):
    path = tmp_path / "digits.npy"
    np.save(path, mnist.train[:600].numpy())  # 540 training rows after the 10% split: 11 steps of M = 50
    return str(path)


def _strip(rows):
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]


def _same_run(a, b):
    assert _strip(read_metrics(a)) == _strip(read_metrics(b))
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    assert sa["scheduler"] == sb["scheduler"] and sa["steps"] == sb["steps"]


def test_warmup_and_step_and_plateau_schedules_continue_bit_for_bit_after_resume(tmp_path, mnist):
    """A run stopped after 1 epoch (11 steps) in the middle of a 25-step warm-up and extended with --resume to 3
    epochs equals the unbroken 3-epoch run bit for bit (metrics, weights, scheduler state), for the step schedule
    (lr_t = lr gamma^floor((t - 1) / step_size) at the t-th step, checked in every row's lr) and for plateau."""
    data = _digits(tmp_path, mnist)
    common = ["train", "--dataset", data, "--latent-dim", "2", "--hidden-dim", "16", "--batch-size", "50",
              "--no-progress", "--kl-warmup", "25", "--lr", "0.02"]
    for name, kwargs in (("step", '{"step_size": 7, "gamma": 0.5}'), ("plateau", '{"factor": 0.5, "patience": 0}')):
        flags = [*common, "--lr-schedule", name, "--lr-schedule-kwargs", kwargs]
        assert main([*flags, "--epochs", "3", "--out", str(tmp_path / f"{name}_a")]) == 0
        assert main([*flags, "--epochs", "1", "--out", str(tmp_path / f"{name}_b")]) == 0
        assert main([*flags, "--epochs", "3", "--out", str(tmp_path / f"{name}_b"), "--resume"]) == 0
        _same_run(tmp_path / f"{name}_a", tmp_path / f"{name}_b")
        rows = read_metrics(tmp_path / f"{name}_a")
        # steps 23 and 24 of the third epoch are still annealed: its row reports the beta reached, 1
        assert [r.get("beta") for r in rows] == [pytest.approx(11 / 25), pytest.approx(22 / 25), 1.0]
        if name == "step":  # the 11th, 22nd, 33rd step
            assert [r["lr"] for r in rows] == [pytest.approx(0.02 * 0.5 ** ((t - 1) // 7)) for t in (11, 22, 33)]
        else:  # patience 0: halved after every evaluation that does not beat the best test bound
            rates = [0.02]
            for prev, row in zip(rows, rows[1:]):
                best = max(r["test_elbo"] for r in rows[:rows.index(row)])
                rates.append(rates[-1] if prev["test_elbo"] >= best else rates[-1] * 0.5)
            assert [r["lr"] for r in rows] == pytest.approx(rates)


def test_multistep_schedule_and_adam_options_are_applied_recorded_and_resumed_bit_for_bit(tmp_path, mnist, capsys):
    """Burda et al.'s recipe in small: Adam with its torch options (betas, eps) and a multistep schedule,
    lr_t = lr gamma^(number of milestones < t) at the t-th step (checked in every row's lr, steps 11, 22, 33).  The
    options reach torch's optimiser and the run's config; a run stopped after one epoch and resumed equals the
    unbroken run bit for bit; resuming it with other options is refused with status 2."""
    data = _digits(tmp_path, mnist)
    flags = ["train", "--dataset", data, "--latent-dim", "2", "--hidden-dim", "16", "--batch-size", "50",
             "--no-progress", "--optimizer", "adam", "--lr", "0.01", "--optimizer-kwargs",
             '{"betas": [0.9, 0.99], "eps": 1e-4}', "--lr-schedule", "multistep", "--lr-schedule-kwargs",
             '{"milestones": [5, 12, 30], "gamma": 0.5}']
    assert main([*flags, "--epochs", "3", "--out", str(tmp_path / "a")]) == 0
    assert main([*flags, "--epochs", "1", "--out", str(tmp_path / "b")]) == 0
    assert main([*flags, "--epochs", "3", "--out", str(tmp_path / "b"), "--resume"]) == 0
    _same_run(tmp_path / "a", tmp_path / "b")
    assert [r["lr"] for r in read_metrics(tmp_path / "a")] == [pytest.approx(0.01 * 0.5 ** k) for k in (1, 2, 3)]
    groups = load_checkpoint(tmp_path / "a")["optimizer"]["param_groups"]
    assert all(g["eps"] == 1e-4 and tuple(g["betas"]) == (0.9, 0.99) for g in groups)
    assert load_run(tmp_path / "a").config.optimizer_kwargs == {"betas": [0.9, 0.99], "eps": 1e-4}
    capsys.readouterr()
    other = [*flags[:-5], '{"eps": 1e-8}', *flags[-4:]]
    assert main([*other, "--epochs", "4", "--out", str(tmp_path / "b"), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "optimizer_kwargs" in err, err


def test_resume_keeps_every_setting_the_command_line_does_not_give(tmp_path, mnist, capsys):
    """``train --out RUN --resume --epochs 3`` continues the run with its own settings -- its rate, optimiser options,
    schedule, networks, data -- not the flags' defaults (a resumed Adam run at lr 1e-3 once jumped to Adagrad's
    default 0.02): the result equals the unbroken run given every flag; without a budget it keeps the run's own."""
    data = _digits(tmp_path, mnist)
    flags = ["train", "--dataset", data, "--latent-dim", "2", "--hidden-dim", "16", "--batch-size", "50",
             "--no-progress", "--optimizer", "adam", "--lr", "0.001", "--optimizer-kwargs", '{"eps": 1e-4}',
             "--lr-schedule", "multistep", "--lr-schedule-kwargs", '{"milestones": [5, 15], "gamma": 0.5}']
    assert main([*flags, "--epochs", "3", "--out", str(tmp_path / "a")]) == 0
    assert main([*flags, "--epochs", "1", "--out", str(tmp_path / "b")]) == 0
    assert main(["train", "--out", str(tmp_path / "b"), "--resume", "--epochs", "3", "--no-progress"]) == 0
    _same_run(tmp_path / "a", tmp_path / "b")
    assert json.loads((tmp_path / "b" / "config.json").read_text())["lr"] == 0.001
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "b"), "--resume", "--no-progress"]) == 0  # its own budget: done
    assert "warning: the run has already seen" in capsys.readouterr().err  # and it says so, as for a smaller one:
    assert main(["train", "--out", str(tmp_path / "b"), "--resume", "--epochs", "1"]) == 0  # (no empty bar either)
    err = capsys.readouterr().err
    assert "(epoch 3), as many as the budget asked (1 epoch) or more: nothing was trained" in err and "0step" not in err
    assert len(read_metrics(tmp_path / "b")) == 3
    assert main(["train", "--out", str(tmp_path / "b"), "--resume", "--epochs", "4", "--latent-dim", "3"]) == 2
    assert "latent_dim" in capsys.readouterr().err  # a setting given that differs is still refused


def test_a_killed_cosine_run_with_warmup_on_a_users_model_resumes_bit_for_bit(tmp_path, mnist):
    """Cosine over the budget (T_max = 33 steps for 3 epochs) with a warm-up, on a model of the user's trained by
    Pyro's ELBO: a run interrupted after its first epoch's checkpoint and resumed through the command line equals
    the unbroken run bit for bit; T_max is the first command's budget, kept by the checkpoint."""
    data = _digits(tmp_path, mnist)
    flags = ["--dataset", data, "--binarize", "static", "--model", f"{USER}:TwoLatentModel", "--model-kwargs",
             '{"hidden": 8}', "--guide", f"{USER}:TwoLatentGuide", "--guide-kwargs", '{"hidden": 8}', "--batch-size",
             "50", "--elbo", "trace", "--kl-warmup", "20", "--lr-schedule", "cosine", "--epochs", "3"]
    assert main(["train", *flags, "--out", str(tmp_path / "a"), "--no-progress"]) == 0

    def stop(trainer, row):  # after the first epoch's checkpoint is saved, as a kill would leave it
        raise KeyboardInterrupt

    config = RunConfig(dataset=data, binarize="static", model=f"{USER}:TwoLatentModel", model_kwargs={"hidden": 8},
                       guide=f"{USER}:TwoLatentGuide", guide_kwargs={"hidden": 8}, batch_size=50,
                       elbo="trace", kl_warmup=20, lr_schedule="cosine", epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "b", progress=False, callbacks=[stop])
    assert len(read_metrics(tmp_path / "b")) == 1
    assert main(["train", *flags, "--out", str(tmp_path / "b"), "--no-progress", "--resume"]) == 0
    _same_run(tmp_path / "a", tmp_path / "b")
    rows = read_metrics(tmp_path / "a")
    assert load_checkpoint(tmp_path / "a")["scheduler"]["T_max"] == 33
    assert rows[-1]["lr"] == pytest.approx(0.01 * (1 + math.cos(math.pi * 32 / 33)), rel=1e-4)  # 33rd step: t-1 = 32
    assert load_run(tmp_path / "a").config.kl_warmup == 20


@pytest.mark.parametrize("flags, says", [
    (["--kl-warmup", "-1"], "--kl-warmup"),
    (["--lr-schedule", "linear"], "--lr-schedule"),
    (["--lr-schedule", "step"], "step_size"),
    (["--lr-schedule", "step", "--lr-schedule-kwargs", '{"step_size": 0}'], "step_size must be an integer >= 1"),
    (["--lr-schedule", "cosine", "--lr-schedule-kwargs", '{"gamma": 0.5}'], "takes no 'gamma'"),
    (["--lr-schedule", "plateau", "--lr-schedule-kwargs", '{"factor": 2}'], "factor must be a number in (0, 1)"),
    (["--lr-schedule", "step", "--lr-schedule-kwargs", "{step_size: 5}"], "JSON object"),
    (["--lr-schedule-kwargs", '{"step_size": 5}'], "without a schedule"),
    (["--threads", "0"], "--threads"),
    (["--lr-schedule", "multistep"], "needs milestones"),
    (["--lr-schedule", "multistep", "--lr-schedule-kwargs", '{"milestones": [5, 3]}'], "non-decreasing list"),
    (["--optimizer", "adam", "--optimizer-kwargs", '{"momentum": 0.9}'], "adam takes no 'momentum'"),
    (["--optimizer", "adam", "--optimizer-kwargs", '{"betas": [0.9]}'], "betas must be two numbers in [0, 1)"),
    (["--optimizer", "adam", "--optimizer-kwargs", '{"eps": 0}'], "eps must be a finite number > 0"),
    (["--optimizer-kwargs", '{"betas": [0.9, 0.99]}'], "adagrad takes no 'betas'"),
    (["--optimizer-kwargs", "[1]"], "--optimizer-kwargs must be a JSON object"),
    (["--kl-warmup", "10", "--elbo", "iwae", "--num-particles", "2"], "estimators 'trace' and 'analytic'"),
])
def test_bad_training_options_are_one_line_with_status_2(tmp_path, mnist, capsys, flags, says):
    """Every bad value is refused before training, on one line naming what to change, with exit status 2."""
    data = _digits(tmp_path, mnist)
    status = main(["train", "--dataset", data, "--latent-dim", "2", "--hidden-dim", "8", "--batch-size", "50",
                   "--no-progress", "--epochs", "1", "--out", str(tmp_path / "r"), *flags])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and says in err, err


def test_resume_with_another_warmup_or_schedule_is_refused_with_status_2(tmp_path, mnist, capsys):
    """A run continues with the warm-up and schedule it was trained with (otherwise it would not continue it); the
    refusal names what may change, and every name is a flag of train."""
    data = _digits(tmp_path, mnist)
    flags = ["train", "--dataset", data, "--latent-dim", "2", "--hidden-dim", "8", "--batch-size", "50",
             "--no-progress", "--out", str(tmp_path / "r")]
    assert main([*flags, "--epochs", "1", "--kl-warmup", "5"]) == 0
    capsys.readouterr()
    for other in (["--kl-warmup", "6"], ["--kl-warmup", "5", "--lr-schedule", "cosine"]):
        assert main([*flags, "--epochs", "2", "--resume", *other]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "differ" in err, err
        named = err.split("(only ")[1].split(" may change")[0].split(", ")
        train = build_parser()._subparsers._group_actions[0].choices["train"]
        assert "--lr" in named and set(named) <= {flag for a in train._actions for flag in a.option_strings}, named


def test_threads_are_applied_and_recorded_and_the_default_shares_the_free_cores(tmp_path, mnist, monkeypatch):
    """--threads N sets torch's thread count for the run and config.json records it; the default is
    max(1, (cores - busy) // jobs), the rule reproduce's sweeps use for their workers, and OMP_NUM_THREADS, where
    set, is the cores to share (a CI job's choice)."""
    data = _digits(tmp_path, mnist)
    try:
        assert main(["train", "--dataset", data, "--latent-dim", "2", "--hidden-dim", "8", "--batch-size", "50",
                     "--no-progress", "--epochs", "1", "--threads", "2", "--out", str(tmp_path / "r")]) == 0
        assert torch.get_num_threads() == 2
        assert json.loads((tmp_path / "r" / "config.json").read_text())["threads"] == 2
    finally:
        torch.set_num_threads(1)  # the suite's one thread per worker (conftest)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr("os.getloadavg", lambda: (2.6, 0.0, 0.0))  # 3 cores busy: 5 free
    assert [default_threads(jobs) for jobs in (1, 2, 5, 6)] == [5, 2, 1, 1]
    monkeypatch.setattr("os.getloadavg", lambda: (11.0, 0.0, 0.0))  # more load than cores: still one thread
    assert default_threads(1) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert [default_threads(jobs) for jobs in (1, 2)] == [4, 2]


def test_guide_weight_decay_reaches_phi_only_is_recorded_and_kept_on_resume(tmp_path, mnist, capsys):
    """``--guide-weight-decay`` (0 by default: the paper decays theta only) is the weight decay of the guide's
    parameter group and not the model's; it shrinks the encoder's weights against the same run without it (same
    seed, same draws); the run records it, a resume keeps it, and a resume with another value is refused."""
    data = _digits(tmp_path, mnist)
    flags = ["train", "--dataset", data, "--latent-dim", "2", "--hidden-dim", "16", "--batch-size", "50",
             "--no-progress", "--epochs", "2"]
    assert main([*flags, "--out", str(tmp_path / "plain")]) == 0
    assert main([*flags, "--guide-weight-decay", "50", "--out", str(tmp_path / "decay")]) == 0
    theta, phi = load_checkpoint(tmp_path / "decay")["optimizer"]["param_groups"]
    assert (theta["weight_decay"], phi["weight_decay"]) == (1.0, 50.0)
    assert [g["weight_decay"] for g in load_checkpoint(tmp_path / "plain")["optimizer"]["param_groups"]] == [1.0, 0.0]
    norm = {name: sum(p.norm() ** 2 for p in load_run(tmp_path / name).guide.parameters()).item()
            for name in ("plain", "decay")}
    assert norm["decay"] < norm["plain"], norm
    assert load_run(tmp_path / "decay").config.guide_weight_decay == 50.0
    assert main(["train", "--out", str(tmp_path / "decay"), "--resume", "--epochs", "3", "--no-progress"]) == 0
    assert load_checkpoint(tmp_path / "decay")["optimizer"]["param_groups"][1]["weight_decay"] == 50.0
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "decay"), "--resume", "--epochs", "4",
                 "--guide-weight-decay", "1"]) == 2
    assert "guide_weight_decay" in capsys.readouterr().err
