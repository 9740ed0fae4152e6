"""The MLflow callback (``train --mlflow``), against a local file store under tmp_path, read back with MLflow's own
client: the config as params, each metrics row at step = train_samples, the run's files as artifacts, one MLflow run
continued by --resume, a fresh one for --overwrite, and the one-line errors (no mlflow, a store that refuses)."""

import json
import sys

import numpy as np
import pytest

from pyro_aevb.checkpoint import read_metrics
from pyro_aevb.cli import main
from pyro_aevb.mlflow_tracking import RUN_FILE, flatten

mlflow = pytest.importorskip("mlflow", reason="mlflow is in the [test] extra (make install); pip install mlflow-skinny")
from mlflow.tracking import MlflowClient  # noqa: E402


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A local file store (MLflow 3 refuses file stores unless MLFLOW_ALLOW_FILE_STORE is set)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return (tmp_path / "mlruns").as_uri()


def _argv(tmp_path, out, epochs):
    data = tmp_path / "tiny.npy"
    if not data.exists():
        np.save(data, np.random.default_rng(0).random((60, 4, 4)).astype(np.float32))
    return ["train", "--dataset", str(data), "--latent-dim", "2", "--hidden-dim", "8", "--epochs", str(epochs),
            "--batch-size", "20", "--lr", "0.05", "--no-progress", "--out", str(out)]


def test_params_metrics_artifacts_and_resume_continue_one_mlflow_run(tmp_path, store, capsys):
    """Params are the run's config; every metric of metrics.jsonl is logged at step = train_samples; a --resume
    appends to the same MLflow run (its id in RUN/mlflow.json); the run ends FINISHED with the run's files."""
    out = tmp_path / "run"
    assert main(_argv(tmp_path, out, 1) + ["--mlflow", store]) == 0, capsys.readouterr().err
    first = json.loads((out / RUN_FILE).read_text())
    assert main(_argv(tmp_path, out, 2) + ["--resume", "--mlflow", store]) == 0, capsys.readouterr().err
    assert json.loads((out / RUN_FILE).read_text()) == first

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("pyro-aevb")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [first["run_id"]]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    config = json.loads((out / "config.json").read_text())
    assert run.data.params["lr"] == "0.05" and run.data.params["latent_dim"] == "2"
    assert {k: v for k, v in flatten(config).items() if k != "epochs"} == \
        {k: v for k, v in run.data.params.items() if k != "epochs"}  # epochs: the first command's 1, kept
    rows = read_metrics(out)
    assert len(rows) == 2
    for key in ("test_elbo", "train_elbo", "train_running_elbo", "epoch"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [r["train_samples"] for r in rows]
        assert [m.value for m in history] == pytest.approx([r[key] for r in rows], rel=1e-12)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "metrics.jsonl", "checkpoint.pt", "bound.png"} <= artifacts


def test_overwrite_starts_a_new_mlflow_run(tmp_path, store, capsys):
    """A fresh run in the same directory (--overwrite) is a new MLflow run, not a continuation of the old one."""
    out = tmp_path / "run"
    assert main(_argv(tmp_path, out, 1) + ["--mlflow", store]) == 0, capsys.readouterr().err
    old = json.loads((out / RUN_FILE).read_text())["run_id"]
    assert main(_argv(tmp_path, out, 1) + ["--overwrite", "--mlflow", store]) == 0, capsys.readouterr().err
    new = json.loads((out / RUN_FILE).read_text())["run_id"]
    client = MlflowClient(tracking_uri=store)
    assert new != old
    assert len(client.get_metric_history(new, "test_elbo")) == 1 and len(client.get_metric_history(old, "test_elbo")) == 1


def test_missing_mlflow_and_a_refusing_store_are_one_line_errors(tmp_path, store, capsys, monkeypatch):
    """Without the mlflow package, and with a tracking URI MLflow cannot use, train stops with status 2 and one line,
    before any training (no run directory is written)."""
    assert main(_argv(tmp_path, tmp_path / "bad", 1) + ["--mlflow", "nosuchscheme://x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pyro-aevb: error: MLflow tracking at nosuchscheme://x: ")
    assert not (tmp_path / "bad").exists()
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    assert main(_argv(tmp_path, tmp_path / "none", 1) + ["--mlflow", store]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'pyro-aevb[mlflow]'" in err
    assert not (tmp_path / "none").exists()


def test_flatten_params():
    """Nested settings become dotted keys, non-strings JSON, and over-long values are cut to MLflow's limit."""
    flat = flatten({"a": {"b": 1, "c": None}, "d": [1, 2], "e": {}, "f": "x" * 600})
    assert flat["a.b"] == "1" and flat["a.c"] == "null" and flat["d"] == "[1, 2]" and flat["e"] == "{}"
    assert len(flat["f"]) == 500 and flat["f"].endswith("...")
