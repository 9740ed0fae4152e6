"""The command line: the README commands work, and bad input gives one clear line with exit code 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pyro_aevb.cli import main


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_resume_evaluate_sample_on_mnist(tmp_path, capsys):
    """The README's command (with a small budget), --resume on the same --out, then evaluate (--json; --iw-samples
    with and without its bar)."""
    out = str(tmp_path / "x")
    argv = ["train", "--dataset", "mnist", "--latent-dim", "20", "--hidden-dim", "500", "--likelihood", "bernoulli",
            "--elbo", "analytic", "--optimizer", "adagrad", "--lr", "0.02", "--batch-size", "100",
            "--train-samples", "2000", "--seed", "0", "--out", out, "--no-progress"]
    code, stdout, err = _run(argv, capsys)
    assert code == 0, err
    resume = [a if a != "2000" else "3000" for a in argv] + ["--resume"]
    code, stdout, err = _run(resume, capsys)
    assert code == 0, err
    assert json.loads(stdout)["train_samples"] == 3000
    code, stdout, err = _run(["evaluate", out, "--json"], capsys)
    assert code == 0, err
    result = json.loads(stdout)
    assert result["train_samples"] == 3000
    # estimators A and B estimate the same bound: on 10,000 test images their averages agree closely
    assert result["test_elbo_trace"] == pytest.approx(result["test_elbo_analytic"], abs=1.0)
    assert -543 < result["test_elbo_analytic"] < -150
    for quiet in ([], ["--no-progress"]):  # the importance-sampling bar goes to stderr unless told not to
        code, stdout, err = _run(["evaluate", out, "--iw-samples", "2", *quiet], capsys)
        assert code == 0 and "test_log_likelihood" in stdout and ("log p(x), K=2" in err) == (not quiet), err
    code, stdout, err = _run(["sample", out, "--num-samples", "16"], capsys)
    assert code == 0, err
    assert (tmp_path / "x" / "samples.png").stat().st_size > 0
    code, stdout, err = _run(["plot", out], capsys)
    assert code == 0 and (tmp_path / "x" / "bound.png").exists()


def _bad(tmp_path, name, array):
    path = tmp_path / name
    np.save(path, array)
    return str(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: str(p / "missing.npy"), "not found"),
        (lambda p: _bad(p, "nan.npy", np.full((20, 4), np.nan, dtype=np.float32)), "NaN"),
        (lambda p: _bad(p, "shape.npy", np.zeros((2, 3, 4, 5), dtype=np.float32)), "shape"),
        (lambda p: _bad(p, "range.npy", np.full((20, 4), 3.0, dtype=np.float32)), "outside the support"),
        (lambda p: _bad(p, "text.npy", np.array([["a", "b"]] * 10)), "dtype"),
    ],
)
def test_bad_data_gives_one_line_and_exit_2(tmp_path, capsys, make, message):
    code, _, err = _run(["train", "--dataset", make(tmp_path), "--epochs", "1", "--out", str(tmp_path / "r"),
                         "--no-progress"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("pyro-aevb: error:") and message in err, err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--latent-dim", "0"], "must be >= 1"),
        (["--elbo", "nope"], "invalid choice"),
        (["--lr", "-1"], "--lr: the learning rate must be a finite number > 0"),
        (["--epochs", "1", "--train-samples", "5"], "not allowed with"),
        (["--seed", "-1"], "must be in [0, 2^32)"),
        (["--seed", "99999999999999999999"], "must be in [0, 2^32)"),
        (["--prior-precision", "inf"], "--prior-precision: the prior precision (theta's weight decay) must be a finite"),
        (["--guide-weight-decay", "-1"], "--guide-weight-decay: the guide's weight decay (on phi) must be a finite "
                                         "number >= 0"),
        (["--lr", "nan"], "--lr: the learning rate"),
        (["--clip-grad-norm", "0"], "--clip-grad-norm: must be a finite number > 0"),
        (["--model-kwargs", '{"latent_dim": 7}'], "--model-kwargs applies to a model class of yours"),
        (["--guide-kwargs", '{"hidden": 7}'], "--guide-kwargs applies to a guide class of yours"),
        (["--min-scale", "0.1"], "min_scale applies to gaussian and laplace"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, extra, message):
    data = _bad(tmp_path, "ok.npy", np.random.rand(20, 4).astype(np.float32))
    code, _, err = _run(["train", "--dataset", data, "--out", str(tmp_path / "r"), "--no-progress", *extra], capsys)
    assert code == 2
    assert err.count("\n") == 1 and message in err, err


def test_evaluate_missing_run_dir(tmp_path, capsys):
    code, _, err = _run(["evaluate", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "run directory not found" in err
    (tmp_path / "afile").write_text("x")
    code, _, err = _run(["evaluate", str(tmp_path / "afile")], capsys)
    assert code == 2 and "is a file, not a run directory" in err


def test_a_refused_train_leaves_the_folder_as_it_was(tmp_path, capsys):
    """Every refused `train` (status 2) leaves the folder it names as it was, byte for byte, .lock included: a new
    --out refused for its data or model is not made, nor are the parents made for it; a run's folder refused a fresh start or a resume with other
    settings keeps its files; a --resume of an empty folder or a missing one makes nothing."""
    data = _bad(tmp_path, "ok.npy", np.random.rand(30, 4).astype(np.float32))
    small = ["--latent-dim", "2", "--hidden-dim", "4", "--batch-size", "10", "--no-progress"]

    def files(folder):
        return {f.name: f.read_bytes() for f in folder.iterdir()} if folder.exists() else None

    for argv in (["--dataset", _bad(tmp_path, "nan.npy", np.full((30, 4), np.nan, np.float32))],
                 ["--dataset", data, "--model", "no_such_module:Model"]):
        new = tmp_path / "new" / "run"
        assert _run(["train", *argv, "--out", str(new), "--epochs", "1", *small], capsys)[0] == 2
        assert not (tmp_path / "new").exists(), argv
    run = tmp_path / "run"
    assert _run(["train", "--dataset", data, "--out", str(run), "--epochs", "1", *small], capsys)[0] == 0
    (run / ".lock").write_text("12345\n")  # as a killed writer leaves it
    before = files(run)
    for argv in (["--dataset", data, "--epochs", "1", *small], ["--resume", "--batch-size", "5"]):
        code, _, err = _run(["train", "--out", str(run), *argv, "--no-progress"], capsys)
        assert code == 2 and files(run) == before, (argv, err)
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        assert _run(["train", "--out", str(folder), "--resume"], capsys)[0] == 2
    assert files(tmp_path / "empty") == {} and not (tmp_path / "missing").exists()


def test_console_script_exit_code(tmp_path):
    """The installed entry point (python -m pyro_aevb) maps errors to exit status 2."""
    proc = subprocess.run([sys.executable, "-m", "pyro_aevb", "evaluate", str(tmp_path)], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "holds no checkpoint" in proc.stderr


def test_reader_commands_refuse_bad_outputs_and_values(tmp_path, capsys):
    """Picture outputs need a picture format; --iw-samples and --seed are checked before any work; --theta-samples,
    which only full-VB runs' --iw-samples use, is refused where it would be ignored."""
    data = _bad(tmp_path, "ok.npy", np.random.rand(30, 4).astype(np.float32))
    run = str(tmp_path / "r")
    assert _run(["train", "--dataset", data, "--out", run, "--no-progress", "--epochs", "1", "--latent-dim", "2",
                 "--hidden-dim", "4", "--batch-size", "9"], capsys)[0] == 0
    for argv, message in ((["sample", run, "--out", str(tmp_path / "x.txt")], "use a file ending in .png"),
                          (["plot", run, "--out", str(tmp_path / "x.txt")], "use a file ending in .png"),
                          (["evaluate", run, "--iw-samples", "-1"], "must be >= 0"),
                          (["evaluate", run, "--seed", "-1"], "must be in [0, 2^32)"),
                          (["evaluate", run, "--theta-samples", "3"], "give --iw-samples K too"),
                          (["evaluate", run, "--theta-samples", "3", "--iw-samples", "5"], "this run has none")):
        code, _, err = _run(argv, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    # an estimate refused after the bounds were computed: the bounds are still printed (stdout), the error follows
    code, out, err = _run(["evaluate", run, "--theta-samples", "3", "--iw-samples", "5", "--json"], capsys)
    assert code == 2 and "this run has none" in err and "test_elbo_analytic" in json.loads(out)
