"""Failure paths: kills, divergence, a second writer, corrupt files and random command lines.

Each test runs the real command line (a subprocess where the test kills it) on a small array dataset, and
states the behaviour it checks: nothing is lost, nothing is silently wrong, every failure is one line with its
documented exit status (pyro_aevb.errors) and never a traceback.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_aevb import evaluate_bound, load_run
from pyro_aevb.checkpoint import CHECKPOINT, PREVIOUS, load_checkpoint, read_metrics
from pyro_aevb.cli import main

TRAIN = ["--latent-dim", "2", "--hidden-dim", "16", "--batch-size", "50", "--no-progress"]

#: runs the CLI with every atomic write paused (fault injection on the test side; the library has no hook)
SLOW_WRITES = str(Path(__file__).parent / "slow_writes.py")


@pytest.fixture(scope="module")
def digits(tmp_path_factory, mnist):
    """600 MNIST images (grey values) as a user's .npy file: 540 train / 60 test after the 10% split."""
    path = tmp_path_factory.mktemp("failures") / "digits.npy"
    np.save(path, mnist.train[:600].numpy())
    return str(path)


def _cli(*args, env=None, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "pyro_aevb", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=timeout, **kw)


def _strip(rows):
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]


def _temp_files(run_dir):
    return sorted(p.name for p in Path(run_dir).glob(".*.tmp"))


def test_sigkill_at_random_moments_including_mid_write_then_resume_equals_an_unbroken_run(tmp_path, digits):
    """Fault injection: every atomic write pauses 0.2 s between writing and renaming (tests/slow_writes.py),
    so kills land inside checkpoint and metrics writes as well as between them.  Four SIGKILLs -- one as soon as
    a checkpoint temp file appears, one as soon as a metrics temp file appears, two at random times -- each
    followed by --resume (or a fresh start if no epoch had finished): the final metrics equal an unbroken run's
    bit for bit, and no temp file is left."""
    epochs = 6
    args = ["train", "--dataset", digits, *TRAIN, "--epochs", epochs]
    unbroken = tmp_path / "unbroken"
    done = _cli(*args, "--out", unbroken)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "killed"
    rng = random.Random(0)
    kills = ["checkpoint", "metrics", rng.uniform(1.0, 4.0), rng.uniform(1.0, 4.0)]
    landed = []
    for kill in kills:
        resume = ["--resume"] if (run / CHECKPOINT).exists() else (["--overwrite"] if run.exists() else [])
        proc = subprocess.Popen([sys.executable, SLOW_WRITES, "0.2", *map(str, args), "--out", str(run), *resume],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        start = time.time()
        while proc.poll() is None and time.time() - start < 120:
            temps = " ".join(_temp_files(run)) if run.exists() else ""
            if (kill == "checkpoint" and f".{CHECKPOINT}." in temps) or (kill == "metrics" and ".metrics.jsonl." in temps) \
                    or (isinstance(kill, float) and time.time() - start > kill):
                proc.send_signal(signal.SIGKILL)
                landed.append((kill, temps))
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
    assert [k for k, _ in landed[:2]] == ["checkpoint", "metrics"], landed  # the two kills inside writes happened
    final = _cli(*args, "--out", run, "--resume" if (run / CHECKPOINT).exists() else "--overwrite")
    assert final.returncode == 0, final.stderr
    assert _strip(read_metrics(run)) == _strip(read_metrics(unbroken))
    assert torch.equal(load_checkpoint(run)["model"]["decoder.0.weight"],
                       load_checkpoint(unbroken)["model"]["decoder.0.weight"])
    assert _temp_files(run) == []
    assert (os.stat(run / CHECKPOINT).st_mode & 0o777) == (0o666 & ~_umask())  # normal permissions, not 0600


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_diverging_run_stops_with_status_3_and_keeps_the_last_good_checkpoint(tmp_path, digits):
    """One good epoch, then --resume with a learning rate of 1e8 (a lower or higher lr is allowed on resume):
    the loss turns non-finite, the run stops with status 3 and a message naming the epoch and the remedies;
    the checkpoint still holds epoch 1, metrics.jsonl is valid JSON with one row, and the run evaluates to
    epoch 1's numbers."""
    run = tmp_path / "div"
    assert _cli("train", "--dataset", digits, *TRAIN, "--likelihood", "gaussian", "--min-scale", "0.01",
                "--epochs", 1, "--out", run).returncode == 0
    before = read_metrics(run)
    bad = _cli("train", "--dataset", digits, *TRAIN, "--likelihood", "gaussian", "--min-scale", "0.01",
               "--epochs", 3, "--lr", "1e8", "--out", run, "--resume")
    assert bad.returncode == 3, bad.stderr
    assert "training diverged" in bad.stderr and "epoch 2" in bad.stderr and "--lr" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert load_checkpoint(run)["epoch"] == 1
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows == before and len(rows) == 1
    ev = _cli("evaluate", run, "--json")
    assert ev.returncode == 0, ev.stderr
    # exactly epoch 1's number: the trainer evaluates with the seed (seed + 1000003 * epoch), so the reloaded
    # checkpoint under the same seed must give the same bound to the last bit
    loaded = load_run(run)
    torch.manual_seed(0 + 1_000_003 * 1)
    again = evaluate_bound(loaded.model, loaded.guide, loaded.load_data().test, "analytic")
    assert again == rows[0]["test_elbo"]


# A VAE as Pyro's tutorial writes it (examples/vae): networks in nn.Modules inside PyroModules, the encoder's
# scale = exp(fc22(h)), a Bernoulli decoder without validation -- nothing of this package but the data plate.
TUTORIAL_VAE = '''
import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb.plates import data_plate


class Decoder(nn.Module):
    def __init__(self, z_dim, hidden_dim, data_dim):
        super().__init__()
        self.fc1, self.fc21 = nn.Linear(z_dim, hidden_dim), nn.Linear(hidden_dim, data_dim)

    def forward(self, z):
        return torch.sigmoid(self.fc21(nn.functional.softplus(self.fc1(z))))


class Encoder(nn.Module):
    def __init__(self, z_dim, hidden_dim, data_dim):
        super().__init__()
        self.fc1 = nn.Linear(data_dim, hidden_dim)
        self.fc21, self.fc22 = nn.Linear(hidden_dim, z_dim), nn.Linear(hidden_dim, z_dim)

    def forward(self, x):
        h = nn.functional.softplus(self.fc1(x))
        return self.fc21(h), torch.exp(self.fc22(h))


class Model(PyroModule):
    def __init__(self, data_dim, z_dim=2, hidden_dim=16):
        super().__init__()
        self.z_dim, self.decoder = z_dim, Decoder(z_dim, hidden_dim, data_dim)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], self.z_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(self.decoder(z), validate_args=False).to_event(1), obs=x)


class Guide(PyroModule):
    def __init__(self, data_dim, z_dim=2, hidden_dim=16):
        super().__init__()
        self.encoder = Encoder(z_dim, hidden_dim, data_dim)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            loc, scale = self.encoder(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))
'''


def _tutorial_run(tmp_path):
    """The tutorial VAE's file and 200 random binary rows of 12 pixels (180 train / 20 test) in tmp_path."""
    (tmp_path / "tutorial_vae.py").write_text(TUTORIAL_VAE)
    np.save(tmp_path / "bits.npy", (np.random.default_rng(0).random((200, 12)) < 0.3).astype(np.float32))
    module = str(tmp_path / "tutorial_vae.py")
    return ["train", "--dataset", str(tmp_path / "bits.npy"), "--model", f"{module}:Model", "--guide",
            f"{module}:Guide", "--optimizer", "adam", "--batch-size", "50", "--no-progress"]


def test_a_users_tutorial_vae_diverging_is_status_3_and_resumes_from_the_last_good_checkpoint(tmp_path, capsys):
    """At Adam lr 50 the first update moves every weight by ~50, and the encoder's exp(fc22(h)) overflows to inf
    or underflows to 0 inside the user's guide, where torch's validation raises ValueError ("Expected parameter
    scale ...").  That is a divergence (an argument at the edge of its support, or NaN/inf, after an update),
    whatever code raised it: status 3 with the divergence message, not status 2 "your code raised".  With a good
    epoch saved first, the diverging --resume leaves it untouched, and a --resume at a sane lr continues from it."""
    train = _tutorial_run(tmp_path)
    fresh = tmp_path / "fresh"
    assert main([*train, "--lr", "50", "--epochs", "3", "--out", str(fresh)]) == 3
    err = capsys.readouterr().err
    assert "training diverged" in err and "epoch 1, step" in err and "nothing was saved" in err, err
    assert "your code raised" not in err and "Traceback" not in err
    assert not (fresh / CHECKPOINT).exists()

    run = tmp_path / "run"
    assert main([*train, "--lr", "0.001", "--epochs", "1", "--out", str(run)]) == 0
    before = read_metrics(run)
    capsys.readouterr()
    assert main([*train, "--lr", "50", "--epochs", "3", "--out", str(run), "--resume"]) == 3
    err = capsys.readouterr().err
    assert "training diverged" in err and "epoch 2, step" in err and "checkpoint of epoch 1" in err, err
    assert load_checkpoint(run)["epoch"] == 1 and read_metrics(run) == before
    assert main([*train, "--lr", "0.001", "--epochs", "2", "--out", str(run), "--resume"]) == 0
    after = read_metrics(run)
    assert len(after) == 2 and after[0] == before[0] and load_checkpoint(run)["epoch"] == 2


def test_a_bug_in_a_users_guide_stays_status_2_naming_the_code(tmp_path, capsys):
    """Not every exception in training is a divergence.  (1) A guide that indexes a per-datapoint table of the
    wrong size (100 rows for 180 training points) passes the contract check (which traces rows 0 and 1) and
    fails at step 1, before any update: status 2 naming the user's file.  (2) A guide whose scale is an
    unconstrained parameter (the bug), started at 3, under Adam lr 5: the first update moves it by ~-5 (the KL
    term's gradient 3 - 1/3 > 0 pushes it down), and the next step raises the same ValueError ("Expected
    parameter scale") as a divergence -- but every parameter is finite and the scale is -2, outside its support
    rather than at its edge (log(-2) is NaN, not -inf): status 2 naming the user's code, not 3."""
    train = _tutorial_run(tmp_path)
    table = TUTORIAL_VAE + '''

class TableGuide(Guide):
    def __init__(self, data_dim):
        super().__init__(data_dim)
        self.offset = nn.Parameter(torch.zeros(100, 2))  # should be one row per training point

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            loc, scale = self.encoder(x)
            shift = self.offset[idx] if idx is not None else 0.0
            pyro.sample("z", dist.Normal(loc + shift, scale).to_event(1))


class RawScaleGuide(Guide):
    def __init__(self, data_dim):
        super().__init__(data_dim)
        self.scale = nn.Parameter(torch.tensor(3.0))

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            loc, _ = self.encoder(x)
            pyro.sample("z", dist.Normal(loc, self.scale.expand_as(loc)).to_event(1))
'''
    (tmp_path / "tutorial_vae.py").write_text(table)
    module = str(tmp_path / "tutorial_vae.py")
    for guide, lr in (("TableGuide", "0.001"), ("RawScaleGuide", "5")):
        args = [*train[:train.index("--guide") + 1], f"{module}:{guide}", *train[train.index("--guide") + 2:]]
        assert main([*args, "--lr", lr, "--epochs", "1", "--out", str(tmp_path / guide)]) == 2, guide
        err = capsys.readouterr().err
        assert "your code raised" in err and "tutorial_vae.py:" in err and "diverged" not in err, err


def test_learned_scale_on_constant_pixels_warns_once_and_offers_a_floor(tmp_path, digits):
    """MNIST has constant border pixels: the Gaussian likelihood's density is unbounded there."""
    out = _cli("train", "--dataset", digits, *TRAIN, "--likelihood", "gaussian", "--train-samples", 100,
               "--out", tmp_path / "g")
    assert out.stderr.count("pyro-aevb: warning:") == 1 and "--min-scale" in out.stderr
    floored = _cli("train", "--dataset", digits, *TRAIN, "--likelihood", "gaussian", "--min-scale", "0.01",
                   "--train-samples", 100, "--out", tmp_path / "f")
    assert floored.returncode == 0 and "warning" not in floored.stderr


def test_two_writers_on_one_run_directory_exactly_one_proceeds(tmp_path, digits):
    run = tmp_path / "shared"
    # the first writer runs long enough (30 epochs, each write paused 0.2 s) to still hold the lock when the
    # second has started up
    first = subprocess.Popen([sys.executable, SLOW_WRITES, "0.2", "train", "--dataset", digits, *TRAIN, "--epochs",
                              "30", "--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    start = time.time()
    while not (run / ".lock").exists() or not (run / ".lock").read_text().strip():
        assert time.time() - start < 60 and first.poll() is None
        time.sleep(0.05)
    second = _cli("train", "--dataset", digits, *TRAIN, "--epochs", 1, "--lr", "0.1", "--out", run, "--overwrite")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 4 and f"PID {first.pid}" in second.stderr, second.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["lr"] == 0.02 and [r["epoch"] for r in read_metrics(run)] == list(range(1, 31))


def test_corrupt_files_truncated_checkpoint_falls_back_garbage_without_fallback_is_one_line(tmp_path, digits):
    run = tmp_path / "c"
    assert _cli("train", "--dataset", digits, *TRAIN, "--epochs", 2, "--out", run).returncode == 0
    data = (run / CHECKPOINT).read_bytes()
    (run / CHECKPOINT).write_bytes(data[:len(data) // 2])  # truncated
    resumed = _cli("train", "--dataset", digits, *TRAIN, "--epochs", 3, "--out", run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "using the previous checkpoint" in resumed.stderr and "epoch 1" in resumed.stderr
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3]
    # garbage and no previous checkpoint: one line that says how to go on, then --overwrite starts afresh
    (run / CHECKPOINT).write_bytes(b"not a checkpoint")
    (run / PREVIOUS).unlink()
    again = _cli("train", "--dataset", digits, *TRAIN, "--epochs", 4, "--out", run, "--resume")
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    assert _cli("evaluate", run).returncode == 2
    fresh = _cli("train", "--dataset", digits, *TRAIN, "--epochs", 1, "--out", run, "--overwrite")
    assert fresh.returncode == 0 and [r["epoch"] for r in read_metrics(run)] == [1]


def test_a_torn_metrics_line_is_skipped_by_readers(tmp_path, digits):
    run = tmp_path / "t"
    assert _cli("train", "--dataset", digits, *TRAIN, "--epochs", 2, "--out", run).returncode == 0
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "train_sam')
    plot = _cli("plot", run)
    assert plot.returncode == 0 and "torn last line" in plot.stderr
    resumed = _cli("train", "--dataset", digits, *TRAIN, "--epochs", 3, "--out", run, "--resume")
    assert resumed.returncode == 0 and [r["epoch"] for r in read_metrics(run)] == [1, 2, 3]


def test_interrupt_before_the_first_epoch_says_there_is_nothing_to_resume(tmp_path, digits):
    run = tmp_path / "i"
    proc = subprocess.Popen([sys.executable, "-m", "pyro_aevb", "train", "--dataset", digits, *TRAIN, "--epochs",
                             "50", "--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    start = time.time()
    while not (run / "config.json").exists():
        assert time.time() - start < 60
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if (run / CHECKPOINT).exists():  # the first epoch finished before the signal: resume is offered
        assert proc.returncode == 130 and "--resume" in err
    else:
        assert proc.returncode == 130 and "nothing was saved" in err and "Traceback" not in err
        assert _cli("train", "--dataset", digits, *TRAIN, "--epochs", 1, "--out", run).returncode == 0


def test_relative_dataset_paths_are_recorded_absolute_and_evaluate_takes_a_seed(tmp_path, digits):
    work = tmp_path / "work"
    work.mkdir()
    (work / "my.npy").write_bytes(Path(digits).read_bytes())
    assert _cli("train", "--dataset", "my.npy", *TRAIN, "--epochs", 1, "--out", "run", cwd=work).returncode == 0
    elsewhere = _cli("evaluate", work / "run", "--json", "--seed", "3", cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stderr
    again = _cli("evaluate", work / "run", "--json", "--seed", "3", cwd=tmp_path)
    assert json.loads(elsewhere.stdout) == json.loads(again.stdout)  # seeded: the same Monte Carlo numbers


def _malformed_files(root: Path):
    root.mkdir(exist_ok=True)
    files = {}
    (root / "empty.npy").write_bytes(b"")
    files["empty"] = root / "empty.npy"
    (root / "text.npy").write_text("hello")
    files["text"] = root / "text.npy"
    np.save(root / "nan.npy", np.full((20, 4), np.nan, dtype=np.float32))
    files["nan"] = root / "nan.npy"
    np.save(root / "tiny.npy", np.random.RandomState(0).rand(30, 6).astype(np.float32))
    files["tiny"] = root / "tiny.npy"
    np.save(root / "scalar.npy", np.float32(3.0))
    files["scalar"] = root / "scalar.npy"
    np.save(root / "strings.npy", np.array(["a", "b"]))
    files["strings"] = root / "strings.npy"
    np.save(root / "big_values.npy", np.random.RandomState(0).rand(30, 6).astype(np.float32) * 50)
    files["big"] = root / "big_values.npy"
    np.savez(root / "noarrays.npz")
    files["npz"] = root / "noarrays.npz"
    (root / "run_garbage").mkdir(exist_ok=True)
    (root / "run_garbage" / CHECKPOINT).write_bytes(b"\x00" * 10)
    files["dir"] = root
    return files


def test_cli_fuzzing_never_gives_a_traceback_or_exit_status_1(tmp_path, capsys):
    """300 random command lines (fixed seed) over every subcommand with valid, invalid and malformed arguments
    and files: each ends with a documented status (0, 2, 3, 4, 5) and never a Python traceback or status 1/70."""
    files = _malformed_files(tmp_path / "files")
    rng = random.Random(0)
    values = {
        "--dataset": [*map(str, files.values()), "mnistt", str(tmp_path / "missing.npy")],
        "--latent-dim": ["1", "2", "0", "-3", "x", "1e3"], "--hidden-dim": ["4", "0", "abc"],
        "--num-hidden-layers": ["1", "0"], "--activation": ["tanh", "relu", "gelu?"],
        "--likelihood": ["bernoulli", "gaussian", "beta", "laplace", "nope"],
        "--guide": ["normal", "studentt", "lowrank", "nope", "no.such.module:X", "x.py:Y", ":"],
        "--model": ["mlp", "conv?", "os:getcwd", "json:JSONDecoder", "a:b:c"],
        "--model-kwargs": ["{}", "[1]", "{bad", '{"hidden": -1}'], "--init": ["paper", "torch", "zero"],
        "--elbo": ["trace", "analytic", "iwae", "renyi"], "--num-particles": ["1", "2", "0"],
        "--optimizer": ["adam", "adagrad", "sgd"], "--lr": ["0.01", "-1", "nan", "inf", "1e9"],
        "--prior-precision": ["1", "-1", "nan"], "--batch-size": ["10", "0", "1000"],
        "--train-samples": ["20", "0", "-5"], "--epochs": ["1", "0"], "--seed": ["0", "x"],
        "--device": ["cpu", "cuda", "tpu"], "--binarize": ["none", "static", "dynamic", "maybe"],
        "--backend": ["auto", "pyro", "fused", "jax"], "--clip-grad-norm": ["1", "0", "-2"],
        "--min-scale": ["0", "0.01", "-1"],
    }
    statuses = {}
    for i in range(300):
        command = rng.choice(["train", "train", "train", "evaluate", "sample", "plot", "data", "reproduce", "bogus"])
        if command == "train":
            argv = ["train", "--out", str(tmp_path / f"run{i % 7}"), "--no-progress", "--dataset",
                    rng.choice([str(files["tiny"]), str(files["tiny"]), *map(str, files.values())])]
            for flag in rng.sample(sorted(values), rng.randint(0, 6)):
                argv += [flag, rng.choice(values[flag])]
            if "--epochs" not in argv and "--train-samples" not in argv:
                argv += ["--train-samples", "20"]
            if rng.random() < 0.2:
                argv.append(rng.choice(["--resume", "--overwrite", "--distributed", "--compile"]))
        else:
            target = rng.choice([str(tmp_path / "run0"), str(files["dir"] / "run_garbage"), str(tmp_path / "nowhere"),
                                 str(files["tiny"])])
            argv = {"evaluate": ["evaluate", target] + rng.choice([[], ["--iw-samples", "3"], ["--iw-samples", "-1"],
                                                                 ["--num-particles", "0"], ["--json"]]),
                    "sample": ["sample", target, "--num-samples", rng.choice(["4", "0", "x"])],
                    "plot": ["plot", target],
                    "data": ["data", rng.choice(["mnist?", "cifar"])],
                    "reproduce": ["reproduce", rng.choice(["fig9", "fig2"]), "--budget", rng.choice(["huge", "x"])],
                    "bogus": ["bogus"]}[command]
        if "--compile" in argv or "--distributed" in argv:
            continue  # compiling takes ~20 s; --distributed needs torchrun (both covered elsewhere)
        status = main(argv)
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err, (argv, captured.err)
        assert status in (0, 2, 3, 4, 5), (argv, status, captured.err)
        if status:
            lines = [line for line in captured.err.splitlines() if line.startswith("pyro-aevb: error:")]
            assert len(lines) == 1, (argv, captured.err)
        statuses[status] = statuses.get(status, 0) + 1
    assert statuses.get(0, 0) >= 20 and statuses.get(2, 0) >= 100, statuses  # both paths were exercised


def test_disk_full_is_one_line_with_status_5_and_the_last_epoch_survives(tmp_path, digits, monkeypatch, capsys):
    """The second epoch's checkpoint write fails with ENOSPC (simulated): status 5, a message that says the
    disk is full and how to go on, the first epoch's checkpoint and metrics intact, no temp file left."""
    import errno

    import pyro_aevb.checkpoint as checkpoint

    real_atomic_write, checkpoint_writes = checkpoint.atomic_write, []

    def atomic_write(path, write):
        if Path(path).name == CHECKPOINT:
            checkpoint_writes.append(path)
            if len(checkpoint_writes) == 2:  # the device fills up while the second checkpoint is written
                def write(f):
                    f.write(b"partial")
                    raise OSError(errno.ENOSPC, "No space left on device")
        return real_atomic_write(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", atomic_write)
    run = tmp_path / "full"
    status = main(["train", "--dataset", digits, *TRAIN, "--epochs", "3", "--out", str(run)])
    err = capsys.readouterr().err
    assert status == 5 and "disk full" in err and "--resume" in err and "Traceback" not in err
    assert load_checkpoint(run)["epoch"] == 1 and [r["epoch"] for r in read_metrics(run)] == [1]
    assert _temp_files(run) == []


def test_a_refused_resume_leaves_the_run_directory_as_it_was(tmp_path):
    """Resuming with other rows (fingerprints differ) or another warm-up is refused with one AevbInputError, and
    config.json, metrics.jsonl and the checkpoint keep every byte (the refusal happens before anything is
    written)."""
    from pyro_aevb import AevbInputError, Dataset, Trainer
    from pyro_aevb.guides import AmortizedNormalGuide
    from pyro_aevb.models import VAEModel

    g = torch.Generator().manual_seed(0)
    rows = torch.bernoulli(torch.full((80, 6), 0.4), generator=g)
    data = Dataset("toy", rows[:60], rows[60:])

    def trainer(d, resume=False, **kw):
        return Trainer(VAEModel(6, 2, (8,)), AmortizedNormalGuide(6, 2, (8,)), d, batch_size=20, progress=False,
                       run_dir=tmp_path / "run", resume=resume, **kw)

    trainer(data).fit(epochs=1)
    files = {name: (tmp_path / "run" / name).read_bytes() for name in ("config.json", "metrics.jsonl", CHECKPOINT)}
    other = Dataset("toy", 1 - rows[:60], rows[60:])
    for d, kw, says in ((other, {}, "fingerprints differ"), (data, {"kl_warmup": 5}, "kl_warmup")):
        with pytest.raises(AevbInputError, match=says):
            trainer(d, resume=True, **kw).fit(epochs=2)
        assert {name: (tmp_path / "run" / name).read_bytes() for name in files} == files
