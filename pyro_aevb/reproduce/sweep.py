"""Resumable sweeps: a figure as a set of training runs, each in a run directory of its own.

A figure of the paper is a set of independent training runs -- Fig. 2: one per (method, Nz); Fig. 3: one per
(method, Ntrain).  Each is a :class:`RunSpec`.  :func:`run_sweep` trains every spec in
``OUT/runs/<method>_<key>/`` with the project's :class:`~pyro_aevb.trainer.Trainer` (``config.json``,
``metrics.jsonl``, atomic ``checkpoint.pt``), so that

* killing the command and running it again continues every run from its last checkpoint (a resumed run
  equals an unbroken one: the trainer restores its random streams, and the marginal-likelihood estimates
  run in a forked, seeded stream), and a finished run is not trained again;
* ``jobs`` runs train side by side, in worker processes with ``threads`` torch threads each, by default the
  free cores shared among them (:func:`pyro_aevb.threads.default_threads`, the rule of ``train``; on a GPU one
  each, several runs share it);
* the figure and tables can be redrawn from whatever has finished (:func:`collect` reads the run
  directories; ``--redraw`` draws without training).

A run stops at each of ``spec.points`` (training-sample counts spaced on the log axis of the figure); every
``spec.eval_every`` epochs and at every stop it evaluates, writes a metrics row and a checkpoint.  Fig. 3's
runs also estimate log p(x) at every stop (``spec.estimate``) into ``estimates.json``.

``OUT/sweep.json`` records what the sweep is (figure, dataset, seed, networks); running a different sweep
into the same folder is refused, and ``OUT/.lock`` keeps a second process out.
"""

import ctypes
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from queue import Empty
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from pyro_aevb.checkpoint import CHECKPOINT, RunLock, atomic_write, dumps, read_metrics
from pyro_aevb.data import Dataset, apply_binarization
from pyro_aevb.errors import AevbError, AevbInputError, Interrupted
from pyro_aevb.evaluation.terms import latent_site_terms
from pyro_aevb.guides import AmortizedNormalGuide, HierarchicalGuide
from pyro_aevb.infer.hmc import hmc_log_likelihood
from pyro_aevb.infer.importance import log_likelihood
from pyro_aevb.infer.mcem import MonteCarloEM
from pyro_aevb.infer.wake_sleep import WakeSleep
from pyro_aevb.models import HierarchicalVAEModel, VAEModel
from pyro_aevb.rng import seeded
from pyro_aevb.threads import default_threads
from pyro_aevb.trainer import Trainer

from .common import load, make_vae, seed_everything

MANIFEST = "sweep.json"
ESTIMATES = "estimates.json"
METHODS = ("aevb", "wake_sleep", "mcem")
BATCH_SIZE = 100


@dataclass(frozen=True)
class RunSpec:
    """One training run of a figure.

    :param key: Nz (Fig. 2) or Ntrain (Fig. 3), the figure's panel.
    :param num_train: train on the first ``num_train`` training points (``None``: all).
    :param points: training-sample counts at which the run stops, evaluates and checkpoints; the last is
        the run's budget.
    :param eval_test: average the per-epoch bounds over the first ``eval_test`` test points and as many
        training points (``None``: the whole test set).
    :param estimate: an estimate of log p(x) on the first ``eval_points`` training and test points: Fig. 3's
        appendix-D estimator at every stop (``{"eval_points", "num_warmup"}``), or importance sampling with
        ``num_samples`` proposals on the test points at the last stop (``{"method": "importance", "num_samples",
        "eval_points"}``, Burda et al.'s Table 1); ``None``: no estimate.
    :param network: other networks than the paper's one-hidden-layer pair: ``{"latent_dims": [...],
        "hidden_dims": [[...], ...]}`` (one stochastic layer: :class:`~pyro_aevb.models.VAEModel`; more:
        :class:`~pyro_aevb.models.HierarchicalVAEModel`), with ``"init"``.
    :param recipe: the trainer's settings where they differ from the paper's (estimator, particles, optimiser and
        its options, rate and schedule, prior precision, batch size): keyword arguments of
        :class:`~pyro_aevb.trainer.Trainer`.
    :param binarize: the training targets (:func:`pyro_aevb.data.apply_binarization`): ``none`` (the paper),
        ``static`` or ``dynamic``.
    :param label: the run's name (default ``<method>_<key>``).
    """

    figure: str
    dataset: str
    method: str
    key: int
    latent_dim: int
    hidden_units: int
    likelihood: str
    points: tuple
    seed: int = 0
    num_train: Optional[int] = None
    eval_test: Optional[int] = None
    eval_every: int = 1
    estimate: Optional[dict] = field(default=None, hash=False)
    data_path: Optional[str] = None
    device: str = "cpu"
    compile: bool = False  # inductor-compiled training step (Trainer(compile=True)); not part of the run's identity
    network: Optional[dict] = field(default=None, hash=False)
    recipe: Optional[dict] = field(default=None, hash=False)
    binarize: str = "none"
    label: Optional[str] = None

    @property
    def name(self) -> str:
        return self.label or f"{self.method}_{self.key}"

    @property
    def train_samples(self) -> int:
        return int(self.points[-1])

    def identity(self) -> dict:
        """What must not change when a sweep is continued (the budget may grow; the device may change)."""
        identity = {k: v for k, v in asdict(self).items()
                    if k in ("figure", "dataset", "seed", "latent_dim", "hidden_units", "likelihood", "num_train",
                             "eval_test")}
        # the settings that the paper's figures leave at their defaults, recorded only where set (older sweeps
        # continue)
        identity.update({k: v for k, v in (("network", self.network), ("recipe", self.recipe),
                                           ("binarize", self.binarize if self.binarize != "none" else None))
                         if v is not None})
        return identity


def run_dir(out, spec: RunSpec) -> Path:
    return Path(out) / "runs" / spec.name


def read_estimates(path: Path) -> List[dict]:
    try:
        return json.loads((path / ESTIMATES).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise AevbInputError(f"{path / ESTIMATES} is unreadable ({e}): delete it to estimate again") from None


def _stops(estimates: List[dict]) -> set:
    """The stops estimated so far (rows written before stops were recorded: their sample counts)."""
    return {r.get("stop", r["train_samples"]) for r in estimates}


def is_finished(out, spec: RunSpec) -> bool:
    """Whether ``spec``'s run reached its budget (and, for Fig. 3, estimated at every stop)."""
    path = run_dir(out, spec)
    if not (path / CHECKPOINT).exists():
        return False
    rows = read_metrics(path)
    if not rows or rows[-1]["train_samples"] < spec.train_samples:
        return False
    if spec.estimate is None:
        return True
    return _stops(read_estimates(path)) >= set(estimate_stops(spec))


def estimate_stops(spec: RunSpec) -> tuple:
    """The stops at which ``spec`` estimates log p(x): every stop (appendix D, Fig. 3) or the last (importance
    sampling)."""
    if spec.estimate is None:
        return ()
    return spec.points[-1:] if spec.estimate.get("method") == "importance" else tuple(spec.points)


def _dataset(spec: RunSpec) -> Dataset:
    # the first rows of the loaded data (Dataset.head keeps where they came from: the runs record that, not the rows)
    data = apply_binarization(load(spec.dataset, spec.data_path), spec.binarize)
    return data.head(spec.num_train, spec.eval_test).to(spec.device)


def _networks(spec: RunSpec, data_dim: int):
    """The model and guide of ``spec``: the paper's pair (section 5), or ``spec.network``'s."""
    if spec.network is None:
        return make_vae(data_dim, spec.latent_dim, spec.hidden_units, spec.likelihood)
    latent_dims = tuple(spec.network["latent_dims"])
    hidden = tuple(tuple(h) for h in spec.network["hidden_dims"])
    init = spec.network.get("init", "paper")
    if len(latent_dims) == 1:
        return (VAEModel(data_dim, latent_dims[0], hidden[0], spec.likelihood, init=init),
                AmortizedNormalGuide(data_dim, latent_dims[0], hidden[0], init=init))
    return (HierarchicalVAEModel(data_dim, latent_dims, hidden, spec.likelihood, init=init),
            HierarchicalGuide(data_dim, latent_dims, hidden, init=init))


def _trainer(spec: RunSpec, data: Dataset, model, guide, path: Path, resume: bool, callback) -> Trainer:
    """One trainer for every method: the objective is what differs."""
    common = dict(progress=False, batch_size=BATCH_SIZE, seed=spec.seed, run_dir=path, resume=resume,
                  eval_every=spec.eval_every, callbacks=[callback], compile=spec.compile)
    if spec.recipe is not None:  # an estimator of the bound with its own settings (Burda et al.'s VAE and IWAE)
        return Trainer(model, guide, data, **{**common, **spec.recipe})
    if spec.method == "aevb":
        return Trainer(model, guide, data, **common)
    if spec.method == "wake_sleep":
        return Trainer(model, guide, data, elbo=WakeSleep(model, guide, data.train), **common)
    return Trainer(model, None, data, elbo=MonteCarloEM(model, data.train), **common)


def run_one(spec: RunSpec, out, log: Callable = print) -> dict:
    """Train ``spec`` in its run directory up to its budget, continuing from a checkpoint if there is one."""
    path = run_dir(out, spec)
    path.mkdir(parents=True, exist_ok=True)
    resume = (path / CHECKPOINT).exists()
    seed_everything(spec.seed)
    data = _dataset(spec)
    model, guide = _networks(spec, data.data_dim)
    model.to(spec.device)
    guide.to(spec.device)

    def progress(trainer, row):  # every metrics row, once its checkpoint is saved
        bounds = (f"train {row['train_elbo']:9.2f}  test {row['test_elbo']:9.2f}" if "test_elbo" in row
                  else f"objective {row['train_objective']:9.2f}")
        log(f"  {spec.figure} {spec.dataset} {spec.name:>15s}: {row['train_samples']:>11d} samples  {bounds}  "
            f"({row['wall_seconds']:.0f}s)")

    trainer = _trainer(spec, data, model, guide, path, resume, progress)
    try:
        estimates = read_estimates(path) if spec.estimate else []
        done, wanted = _stops(estimates), set(estimate_stops(spec))
        for p in spec.points:
            if trainer.train_samples < p:
                trainer.fit(train_samples=p)
            if p in wanted and p not in done and trainer.train_samples >= p:
                estimates.append(_estimate(spec, model, guide, data, p, trainer.train_samples, trainer.wall_seconds))
                _write_json(path / ESTIMATES, estimates)
                done.add(p)
                splits = "  ".join(f"{k} {estimates[-1][k]:8.2f}" for k in ("train", "test") if k in estimates[-1])
                log(f"  {spec.figure} {spec.name:>15s}: {p:>11d} samples  log p(x): {splits}  "
                    f"({estimates[-1]['estimate_seconds']:.0f}s to estimate)")
    finally:
        trainer.close()
    return {"name": spec.name, "train_samples": trainer.train_samples, "wall_seconds": trainer.wall_seconds}


def _estimate(spec: RunSpec, model, guide, data: Dataset, stop: int, samples: int, wall: float) -> dict:
    """An estimate of log p(x), in a seeded stream of its own (so that it neither perturbs training nor depends on
    whether the run was resumed): appendix D's on the first ``eval_points`` training and test points, or
    importance sampling with ``num_samples`` proposals of the guide on the first ``eval_points`` test points
    (``None``: all), with the active units of every latent site (Burda et al., section 5.2) on them."""
    n = spec.estimate["eval_points"]
    row = {"stop": stop, "train_samples": samples, "wall_seconds": round(wall, 2)}
    start = time.perf_counter()
    with seeded(spec.seed + stop, data.train.device):
        if spec.estimate.get("method") == "importance":
            x = data.test[:n]
            est = log_likelihood(model, guide, x, num_samples=spec.estimate["num_samples"])
            row.update(test=est.mean, test_stderr=est.stderr, eval_points=int(x.shape[0]),
                       num_samples=int(spec.estimate["num_samples"]))
            row["active_units"] = latent_site_terms(model, guide, x).active_units
        else:
            for split, x in (("train", data.train[:n]), ("test", data.test[:n])):
                est = hmc_log_likelihood(model, x, num_warmup=spec.estimate["num_warmup"])
                row[split], row[f"{split}_stderr"] = est.mean, est.stderr
    row["estimate_seconds"] = round(time.perf_counter() - start, 2)
    return row


def _write_json(path: Path, obj) -> None:
    data = (dumps(obj, indent=1) + "\n").encode()  # strict JSON: a non-finite stderr is null
    atomic_write(path, lambda f: f.write(data))


def collect(out, specs: Sequence[RunSpec]) -> List[dict]:
    """Curve rows ``{method, key, train_samples, wall_seconds, train, test[, *_stderr]}`` of every run that
    has any, from its run directory: the evaluated bounds (metrics rows), or Fig. 3's estimates (a final
    importance-sampled estimate is not a curve: :func:`final_estimates`)."""
    rows = []
    for spec in specs:
        path = run_dir(out, spec)
        if spec.estimate is not None and spec.estimate.get("method") != "importance":  # Fig. 3: estimates at stops
            for r in read_estimates(path):
                rows.append({"method": spec.method, "key": spec.key, **r})
            continue
        for r in read_metrics(path):  # (also where the checkpoints were left behind, e.g. copied from a GPU)
            if r.get("test_elbo") is None:
                continue
            rows.append({"method": spec.method, "key": spec.key, "train_samples": r["train_samples"],
                         "wall_seconds": round(r["wall_seconds"], 2), "train": r["train_elbo"],
                         "test": r["test_elbo"]})
    return rows


def final_estimates(out, specs: Sequence[RunSpec]) -> Dict[str, dict]:
    """``{run name: its last importance-sampled estimate}`` of the runs that have one (``estimates.json``)."""
    found = {}
    for spec in specs:
        if spec.estimate is not None and spec.estimate.get("method") == "importance":
            rows = [r for r in read_estimates(run_dir(out, spec)) if "test" in r]
            if rows:
                found[spec.name] = rows[-1]
    return found


def check_manifest(out: Path, specs: Sequence[RunSpec], write: bool = True) -> None:
    """Refuse to continue (or draw, ``write=False``) a different sweep in ``out``; record this one."""
    identity = {s.name: s.identity() for s in specs}
    folder = {"figure": specs[0].figure, "dataset": specs[0].dataset}
    path = Path(out) / MANIFEST
    if path.exists():
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise AevbInputError(f"{path} is unreadable ({e}): delete it, or choose another --out") from None
        for key, value in folder.items():
            if recorded.get(key, value) != value:
                raise AevbInputError(f"{out} holds a {recorded.get('figure')} sweep of {recorded.get('dataset')}, "
                                     f"not {folder['figure']} of {folder['dataset']}: choose another --out")
        for name, ident in identity.items():
            old = recorded.get("runs", {}).get(name)
            if old is not None and old != ident:
                changed = sorted(k for k in ident if old.get(k) != ident[k])
                raise AevbInputError(f"{out} holds a sweep whose run {name} differs in {', '.join(changed)} "
                                     f"({', '.join(f'{k}={old.get(k)!r}' for k in changed)}): choose another --out "
                                     "(or delete that folder to start again)")
        identity = {**recorded.get("runs", {}), **identity}
    if write:
        _write_json(path, {**folder, "runs": identity})


def _init_worker(threads: int) -> None:
    """A worker process: ``threads`` torch threads; ended with its parent (Linux), so that a killed sweep
    leaves no orphan holding a run's lock."""
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _worker(spec: RunSpec, out, threads: int, queue) -> None:
    _init_worker(threads)
    queue.put(_isolated_run(spec, out))


def _isolated_run(spec: RunSpec, out) -> dict:
    """A worker's run: a failure is reported, not raised, so that the other runs go on."""
    try:
        return run_one(spec, out, log=lambda line: print(line, flush=True))
    except Exception as e:  # noqa: BLE001 -- reported by run_sweep once the other runs are done
        return {"name": spec.name, "error": f"{type(e).__name__}: {e}",
                "kind": type(e) if isinstance(e, AevbError) else RuntimeError}


#: seconds a sweep process waits for the folder's lock before it is refused: ``--run`` processes started together
#: each hold it for the milliseconds the manifest check takes; a whole sweep (``--jobs``) holds it while it trains.
MANIFEST_WAIT = 30.0


def run_sweep(specs: Sequence[RunSpec], out, jobs: int = 1, log: Callable = print,
              on_done: Optional[Callable[[], None]] = None, threads: Optional[int] = None,
              only: Optional[str] = None) -> Dict[str, dict]:
    """Train every unfinished spec (``jobs`` at a time, ``threads`` torch threads each: by default
    :func:`~pyro_aevb.threads.default_threads`); ``on_done()`` after each finishes (e.g. redraw).

    ``only``: train just the run of that name (e.g. ``"aevb_20"``), as one of several processes -- on one machine or
    under a scheduler (SLURM arrays, GNU parallel, Ray) -- sharing ``out``: the folder's lock is held only while the
    sweep's manifest is checked, the run directory's own lock while the run trains (a second process on the same
    run gets status 4); nothing is drawn (``--redraw`` collects)."""
    if int(jobs) < 1:
        raise AevbInputError(f"--jobs must be >= 1, got {jobs}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if only is not None:
        chosen = [s for s in specs if s.name == only]
        if not chosen:
            raise AevbInputError(f"--run {only!r} is not a run of this sweep; its runs: {', '.join(s.name for s in specs)}")
        lock = RunLock(out).acquire(wait=MANIFEST_WAIT)
        try:
            check_manifest(out, specs)
        finally:
            lock.release()
        if is_finished(out, chosen[0]):
            log(f"{only} already finished in {out}")
            return {}
        return {only: run_one(chosen[0], out, log)}
    lock = RunLock(out).acquire(wait=MANIFEST_WAIT)
    try:
        check_manifest(out, specs)
        pending = [s for s in specs if not is_finished(out, s)]
        if len(pending) < len(specs):
            log(f"{len(specs) - len(pending)} of {len(specs)} runs already finished in {out}")
        try:
            return _train_all(pending, out, jobs, log, on_done, threads)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted: the finished runs and every run's last checkpoint are in {out}; run "
                              "the same command again to continue") from None
    finally:
        lock.release()


def _train_all(pending: Sequence[RunSpec], out: Path, jobs: int, log: Callable, on_done,
               threads: Optional[int] = None) -> Dict[str, dict]:
    """Train ``pending`` in this process (``jobs`` = 1) or in ``jobs`` worker processes."""
    results: Dict[str, dict] = {}
    if jobs == 1 or len(pending) <= 1:
        for spec in pending:
            results[spec.name] = run_one(spec, out, log)
            if on_done:
                on_done()
        return results
    threads = threads or (default_threads(jobs) if pending[0].device == "cpu" else 1)
    # one fresh process per run, at most `jobs` at a time; results come back on a queue.  (Not
    # multiprocessing.Pool: its terminate() can deadlock on idle workers that hold the task queue's lock.)
    ctx = get_context("spawn")
    queue = ctx.Queue()
    waiting, running = list(pending), {}
    try:
        while waiting or running:
            while waiting and len(running) < int(jobs):
                spec = waiting.pop(0)
                running[spec.name] = ctx.Process(target=_worker, args=(spec, out, threads, queue), daemon=True)
                running[spec.name].start()
            try:
                result = queue.get(timeout=5)
            except Empty:  # a worker that died without a word (killed, out of memory) is reported, not waited for
                for name, proc in list(running.items()):
                    if not proc.is_alive():
                        running.pop(name)
                        results[name] = {"name": name, "error": f"its worker process ended with status "
                                                                f"{proc.exitcode}", "kind": Interrupted}
                continue
            running.pop(result["name"]).join()
            results[result["name"]] = result
            if "error" in result:
                log(f"  run {result['name']} failed: {result['error']}")
            elif on_done:
                on_done()
    except BaseException:
        for proc in running.values():
            proc.terminate()  # each run keeps its last checkpoint; the next call continues it
        raise
    failed = {name: r["error"] for name, r in results.items() if "error" in r}
    if failed:  # the first failure's kind sets the exit status (a bug: 70)
        kind = next(r["kind"] for r in results.values() if "error" in r)
        raise kind(f"{len(failed)} of {len(pending)} runs failed ({'; '.join(f'{k}: {v}' for k, v in failed.items())}"
                        f"); the others finished, and running the command again retries the failed ones")
    return results
