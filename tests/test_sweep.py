"""Resumable figure sweeps (:mod:`pyro_aevb.reproduce.sweep`): a killed sweep continues where it stopped and
ends equal to an unbroken one, finished runs are not trained again, ``jobs`` worker processes give the same
numbers as one process, a failed run does not stop the others, a different sweep in the same folder is
refused, and the trainer's ``eval_every`` writes rows only where it says.

The runs are the paper's MNIST VAE shrunk (1,000 training images, Nz = 2, 50 hidden units, 200 test points)
so that each takes a second or two; the sweep code does not depend on the size.
"""

import json

import pytest
import torch

from pyro_aevb.cli import main
from pyro_aevb.data import Dataset
from pyro_aevb.errors import AevbInputError, Interrupted
from pyro_aevb.models import VAEModel
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.reproduce import sweep
from pyro_aevb.reproduce.sweep import RunSpec, collect, is_finished, run_dir, run_sweep
from pyro_aevb.trainer import Trainer


def _spec(method="aevb", key=2, seed=0, points=(300, 1000, 2500), **kw):
    return RunSpec("fig2", "mnist", method, key, key, 50, "bernoulli", points, seed=seed, num_train=1000,
                   eval_test=200, **kw)


def _curves(out, specs):
    """Every curve row without the wall-clock times (which differ between any two runs)."""
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in collect(out, specs)]


def _metrics(out, spec):
    rows = [json.loads(line) for line in (run_dir(out, spec) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("epoch_seconds", "wall_seconds")} for r in rows]


class _StopAfter:
    """A log that interrupts the sweep (as Ctrl-C would) at its ``n``-th line: the ``n``-th metrics row, written
    just after its checkpoint."""

    def __init__(self, n):
        self.n = n

    def __call__(self, line):
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def test_interrupted_sweep_continues_and_equals_an_unbroken_one(tmp_path):
    """Interrupted after its second stop, run again: every metrics row (bounds, running bound, sample counts)
    equals the unbroken sweep's exactly, and the second call trains only what was missing."""
    specs = [_spec("aevb"), _spec("wake_sleep")]
    run_sweep(specs, tmp_path / "unbroken", log=lambda _: None)
    with pytest.raises(Interrupted, match="run the same command again"):
        run_sweep(specs, tmp_path / "broken", log=_StopAfter(2))
    assert not is_finished(tmp_path / "broken", specs[0])
    lines = []
    run_sweep(specs, tmp_path / "broken", log=lines.append)
    # one line per metrics row: rows at 300, 1000, 2000 (epochs of N = 1000) and 2500 samples per run; the
    # first call stopped after the first run's second row
    assert len(lines) == 2 + 4, lines
    for spec in specs:
        assert _metrics(tmp_path / "broken", spec) == _metrics(tmp_path / "unbroken", spec)
    # a finished sweep trains nothing when run again
    lines = []
    run_sweep(specs, tmp_path / "broken", log=lines.append)
    assert lines == [f"2 of 2 runs already finished in {tmp_path / 'broken'}"]


def test_jobs_in_worker_processes_give_the_numbers_of_one_process(tmp_path):
    """``jobs=2`` (spawned workers, one torch thread each) writes the same curves as ``jobs=1``."""
    specs = [_spec("aevb", key=2), _spec("aevb", key=3)]
    run_sweep(specs, tmp_path / "one", log=lambda _: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference in one thread too: the sums then add in the same order
    try:
        run_sweep(specs, tmp_path / "one_thread", log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    run_sweep(specs, tmp_path / "two", jobs=2, log=lambda _: None)
    assert _curves(tmp_path / "two", specs) == _curves(tmp_path / "one_thread", specs)
    # stops at 300, 1000 (= N, an epoch), 2000 (an epoch) and 2500 samples, for each of the two runs
    assert len(_curves(tmp_path / "two", specs)) == len(_curves(tmp_path / "one", specs)) == 8


def test_a_failed_run_does_not_stop_the_others(tmp_path):
    """One run's failure (here a latent dimension of 0) is reported with its name after the other run has
    finished, as the input error it is (exit status 2 on the command line)."""
    good, bad = _spec("aevb", key=2), _spec("aevb", key=0)
    with pytest.raises(AevbInputError, match=r"1 of 2 runs failed \(aevb_0: "):
        run_sweep([good, bad], tmp_path, jobs=2, log=lambda _: None)
    assert is_finished(tmp_path, good)


def test_a_different_sweep_in_the_same_folder_is_refused(tmp_path):
    run_sweep([_spec(points=(300,))], tmp_path, log=lambda _: None)
    with pytest.raises(AevbInputError, match="differs in seed"):
        run_sweep([_spec(seed=1, points=(300,))], tmp_path, log=lambda _: None)
    # a larger budget is the same sweep carried further
    run_sweep([_spec(points=(300, 600))], tmp_path, log=lambda _: None)
    assert [r["train_samples"] for r in collect(tmp_path, [_spec()])] == [300, 600]


def test_cli_redraw_and_its_errors(tmp_path, capsys, monkeypatch):
    """``--redraw`` on a folder with nothing in it is one line and status 2; the sweep options are refused
    where they do not apply; a second process on the same folder gets status 4 once the wait is over."""
    monkeypatch.setattr(sweep, "MANIFEST_WAIT", 0.2)
    assert main(["reproduce", "fig2", "--redraw", "--latent-dims", "2", "--out", str(tmp_path / "empty")]) == 2
    assert "nothing to draw" in capsys.readouterr().err
    assert main(["reproduce", "fig4", "--jobs", "2", "--out", str(tmp_path / "f4")]) == 2
    assert main(["reproduce", "fig2", "--methods", "mcem", "--out", str(tmp_path / "m")]) == 2
    from pyro_aevb.checkpoint import RunLock

    (tmp_path / "held").mkdir()
    lock = RunLock(tmp_path / "held").acquire()
    try:
        assert main(["reproduce", "fig2", "--latent-dims", "2", "--train-samples", "100",
                     "--out", str(tmp_path / "held")]) == 4
    finally:
        lock.release()


def test_eval_every_writes_rows_every_k_epochs_and_at_the_end_of_each_fit(mnist, tmp_path):
    """eval_every=2: rows (and checkpoints) after epochs 2 and 4 and at the end of fit (epoch 5); a resumed
    run continues from the last of them and equals the unbroken run."""
    data = Dataset("mnist", mnist.train[:300], mnist.test[:100])

    def trainer(path, resume=False):
        torch.manual_seed(0)
        return Trainer(VAEModel(784, 2, (20,)), AmortizedNormalGuide(784, 2, (20,)), data, progress=False,
                       batch_size=100, eval_every=2, run_dir=path, resume=resume)

    unbroken = trainer(tmp_path / "a")
    unbroken.fit(epochs=5)
    assert [r["epoch"] for r in unbroken.metrics] == [2, 4, 5]
    unbroken.fit(epochs=9)
    first = trainer(tmp_path / "b")
    first.fit(epochs=5)
    first.close()
    resumed = trainer(tmp_path / "b", resume=True)
    resumed.fit(epochs=9)
    strip = [{k: v for k, v in r.items() if k not in ("epoch_seconds", "wall_seconds")} for r in resumed.metrics]
    assert [r["epoch"] for r in strip] == [2, 4, 5, 6, 8, 9]  # every 2nd epoch, and where each fit ends
    assert strip == [{k: v for k, v in r.items() if k not in ("epoch_seconds", "wall_seconds")}
                     for r in unbroken.metrics]
    with pytest.raises(AevbInputError, match="eval_every"):
        Trainer(VAEModel(784, 2, (20,)), AmortizedNormalGuide(784, 2, (20,)), data, eval_every=0)


def test_redraw_refuses_a_folder_of_another_figure_or_dataset(tmp_path, capsys):
    """--redraw draws only the sweep the folder holds: another dataset is one line, status 2 (it used to relabel
    MNIST bounds as Frey Face's)."""
    run_sweep([_spec(points=(300,))], tmp_path, log=lambda _: None)
    assert main(["reproduce", "fig2", "--dataset", "frey", "--redraw", "--out", str(tmp_path)]) == 2
    assert "holds a fig2 sweep of mnist" in capsys.readouterr().err


def test_fig3_estimates_at_a_stop_the_run_overshoots(tmp_path):
    """A budget that is not a multiple of M: the run passes its last stop (1050 -> 1100 samples) and still
    estimates there, once (it used to wait for an exact match that never came)."""
    spec = RunSpec("fig3", "mnist", "aevb", 1000, 2, 20, "bernoulli", (300, 1050), num_train=1000, eval_test=10,
                   estimate={"eval_points": 10, "num_warmup": 5})
    run_sweep([spec], tmp_path, log=lambda _: None)
    rows = collect(tmp_path, [spec])
    assert [r["stop"] for r in rows] == [300, 1050] and rows[-1]["train_samples"] == 1100
    assert is_finished(tmp_path, spec)


def test_redraw_states_the_samples_the_runs_reached(tmp_path):
    """A sweep carried to 600 samples and redrawn with the smaller budget of 300: the tables say what the runs
    reached, not only what the command asked (results.md used to say 300)."""
    from pyro_aevb.reproduce.fig2 import draw_figure

    run_sweep([_spec(points=(300, 600))], tmp_path, log=lambda _: None)
    results = draw_figure(tmp_path, [_spec(points=(300,))], "mnist", "quick")
    assert results["budget"] == {"name": "quick", "train_samples": 300, "reached": 600}
    assert "300 asked, up to 600 reached" in (tmp_path / "results.md").read_text()


def test_out_naming_a_file_is_refused_in_one_line(tmp_path, capsys):
    """--out must be a folder; a file there is bad input (status 2), not a write failure (it was status 5)."""
    (tmp_path / "afile").write_text("x")
    assert main(["reproduce", "fig2", "--latent-dims", "2", "--train-samples", "100",
                 "--out", str(tmp_path / "afile")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_print_commands_gives_one_resumable_command_per_run_equal_to_the_sweep(tmp_path, capsys, monkeypatch):
    """``--print-commands`` prints one ``--run NAME`` command per unfinished run (what ``--jobs`` runs, for a
    scheduler); each trains exactly that run -- the same metrics as the whole sweep in one process -- the list
    shrinks as runs finish, and ``--redraw`` collects them.  An unknown run name is one line, status 2."""
    monkeypatch.chdir(tmp_path)
    common = ["reproduce", "fig2", "--budget", "quick", "--latent-dims", "3", "--train-samples", "3000"]
    assert main([*common, "--out", "sweep"]) == 0
    capsys.readouterr()
    assert main([*common, "--out", "split", "--print-commands"]) == 0
    commands = capsys.readouterr().out.splitlines()
    assert [c.split()[-1] for c in commands] == ["aevb_3", "wake_sleep_3"]
    import shlex
    for command in commands:
        argv = shlex.split(command)
        assert argv[:2] == ["pyro-aevb", "reproduce"]
        assert main(argv[1:]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["finished"] is True
    assert main([*common, "--out", "split", "--print-commands"]) == 0
    assert capsys.readouterr().out == ""
    for name in ("aevb_3", "wake_sleep_3"):
        ours = [json.loads(x) for x in (tmp_path / "split" / "runs" / name / "metrics.jsonl").read_text().splitlines()]
        ref = [json.loads(x) for x in (tmp_path / "sweep" / "runs" / name / "metrics.jsonl").read_text().splitlines()]
        strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
        assert strip(ours) == strip(ref)
    assert main([*common, "--out", "split", "--redraw"]) == 0
    assert (tmp_path / "split" / "results.json").exists()
    capsys.readouterr()
    assert main([*common, "--out", "split", "--run", "aevb_7"]) == 2
    assert "not a run of this sweep" in capsys.readouterr().err


def test_run_processes_started_together_take_turns_at_the_folder_lock(tmp_path, capsys, monkeypatch):
    """``--run`` processes started at once (GNU parallel, a SLURM array) each hold the folder's lock only while they
    check the manifest: one that finds it held waits for it instead of failing (here the holder lets go after
    0.5 s, well inside :data:`MANIFEST_WAIT`); a folder held for longer than the wait is still refused, status 4."""
    import threading

    from pyro_aevb.checkpoint import RunLock

    out = tmp_path / "sweep"
    out.mkdir()
    lock = RunLock(out).acquire()
    threading.Timer(0.5, lock.release).start()
    argv = ["reproduce", "fig2", "--budget", "quick", "--latent-dims", "3", "--train-samples", "300",
            "--out", str(out), "--run", "aevb_3"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["finished"] is True
    monkeypatch.setattr(sweep, "MANIFEST_WAIT", 0.3)
    held = RunLock(out).acquire()
    try:
        assert main([*argv[:-1], "wake_sleep_3"]) == 4
        assert "being written by another process" in capsys.readouterr().err
    finally:
        held.release()


def test_a_sweep_run_records_where_its_rows_came_from_instead_of_storing_them(tmp_path):
    """A run on the first rows of MNIST (Dataset.head) records the dataset and the row counts, not a copy of the
    rows (data.pt was 188 MB per run of a paper-budget sweep); load_run finds exactly those rows again."""
    from pyro_aevb import load_run
    spec = _spec(points=(300,))
    run_sweep([spec], tmp_path, log=lambda _: None)
    path = run_dir(tmp_path, spec)
    assert not (path / "data.pt").exists()
    config = json.loads((path / "config.json").read_text())
    assert (config["dataset"], config["train_rows"], config["test_rows"], config["data_stored"]) == ("mnist", 1000, 200,
                                                                                                    False)
    data = load_run(path).load_data()
    assert data.train.shape[0] == 1000 and data.test.shape[0] == 200
    assert data.fingerprint() == config["data_fingerprint"]


def test_fig2_runs_end_with_an_importance_sampled_log_likelihood_that_is_the_saved_runs(tmp_path, monkeypatch,
                                                                                         capsys):
    """With a budget that asks for it (paper: K = 5000 on every test image; here K = 50 on 30), each AEVB run ends
    with its test log p(x) by importance sampling, in a seeded stream: the number in results.json is
    ``log_likelihood`` of the saved run on the same images and draws.  A run missing it is not finished: the next
    command computes it without training again."""
    from pyro_aevb import load_run, log_likelihood
    from pyro_aevb.reproduce import fig2
    from pyro_aevb.rng import seeded

    monkeypatch.setitem(fig2.BUDGET_SETTINGS, "quick", {**fig2.BUDGET_SETTINGS["quick"], "iw_samples": 50,
                                                        "eval_test": 30})
    out = tmp_path / "sweep"
    argv = ["reproduce", "fig2", "--latent-dims", "2", "--train-samples", "2000", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    run = load_run(out / "runs" / "aevb_2")
    estimate = json.loads((out / "runs" / "aevb_2" / "estimates.json").read_text())[-1]
    x = run.load_data().test
    assert x.shape[0] == 30 == estimate["eval_points"]
    with seeded(0 + estimate["stop"], x.device):
        ours = log_likelihood(run.model, run.guide, x, num_samples=50)
    assert results["aevb"]["2"]["log_likelihood"] == ours.mean and results["aevb"]["2"]["iw_samples"] == 50
    assert ours.mean > results["aevb"]["2"]["test"] - 1.0  # a tighter bound than the ELBO, up to IS noise
    assert "log_likelihood" not in results["wake_sleep"]["2"]
    rows = (out / "runs" / "aevb_2" / "metrics.jsonl").read_text()
    (out / "runs" / "aevb_2" / "estimates.json").unlink()
    capsys.readouterr()
    assert main([*argv, "--print-commands"]) == 0
    assert capsys.readouterr().out.split()[-1] == "aevb_2"
    assert main(argv) == 0
    assert (out / "runs" / "aevb_2" / "metrics.jsonl").read_text() == rows  # not trained again
    assert json.loads((out / "results.json").read_text())["aevb"]["2"]["log_likelihood"] == ours.mean
