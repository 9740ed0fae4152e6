"""Data-parallel training: 2 processes (gloo, CPU) with the same global batch reach the same bound as one."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pyro_aevb import RunConfig, load_run, train
from pyro_aevb.runs import evaluate_run

ARGS = dict(latent_dim=5, hidden_dim=64, batch_size=100, epochs=4, elbo="analytic")


@pytest.fixture(scope="module")
def digits(tmp_path_factory, mnist):
    path = tmp_path_factory.mktemp("ddp") / "digits.npz"
    np.savez(path, train=mnist.train[:3000].numpy(), test=mnist.test[:1000].numpy())
    return str(path)


def test_two_processes_match_one(tmp_path, digits):
    """With the same global batch (M = 100: 50 per rank) and the same minibatch order, the 2-process run's
    final bound must lie within the seed-to-seed spread of single-process runs: DDP's averaged gradient
    is the same estimator as the single-process one, only the noise draws differ."""
    singles = [train(RunConfig(dataset=digits, seed=s, **ARGS), tmp_path / f"one{s}", progress=False)
               .metrics[-1]["test_elbo"] for s in (0, 1, 2)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "pyro_aevb", "train", "--distributed", "--dataset", digits, "--out", str(tmp_path / "two"),
           "--no-progress", "--seed", "0"] + [f"--{k.replace('_', '-')}={v}" for k, v in ARGS.items()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_samples"] for r in rows] == [3000, 6000, 9000, 12000]
    two = rows[-1]["test_elbo"]
    spread = max(singles) - min(singles)
    print("single-process final test bounds", singles, "two-process", two)
    # measured here: seeds 0-2 give -203.68, -203.04, -203.65 (sd ~0.35 nats); a margin of 1 nat beyond
    # the single-process range is ~3 sd, while a wrong N/M scaling (x2 or /2) moves the bound by >5 nats
    assert min(singles) - max(spread, 1.0) < two < max(singles) + max(spread, 1.0)
    # the run directory is an ordinary run: rank 0 wrote it and it loads and evaluates
    run = load_run(tmp_path / "two")
    assert evaluate_run(run, splits=("test",))["test_elbo_analytic"] == pytest.approx(two, abs=1.0)


def test_data_parallel_epochs_with_a_partial_batch_and_a_dataset_smaller_than_a_batch(tmp_path, mnist):
    """N % M != 0: partial minibatches are dropped, so an epoch is N - N % M samples and --epochs 2 writes
    exactly two rows; N < M: refused with status 2 instead of looping on empty epochs."""
    path = tmp_path / "d.npz"
    np.savez(path, train=mnist.train[:250].numpy(), test=mnist.test[:50].numpy())
    base = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29534",
            "-m", "pyro_aevb", "train", "--distributed", "--dataset", str(path), "--no-progress",
            "--latent-dim", "2", "--hidden-dim", "16", "--epochs", "2"]
    proc = subprocess.run(base + ["--batch-size", "100", "--out", str(tmp_path / "a")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_samples"] for r in rows] == [200, 400]
    proc = subprocess.run(base + ["--batch-size", "400", "--out", str(tmp_path / "b")], capture_output=True,
                          text=True, timeout=300)
    # each rank prints the one-line error (torchrun then reports the ranks' non-zero exit itself)
    assert proc.returncode != 0 and "pyro-aevb: error:" in proc.stderr and "fewer than one batch" in proc.stderr
