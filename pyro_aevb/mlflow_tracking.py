"""MLflow tracking for the :class:`~pyro_aevb.trainer.Trainer`: one callback, called as ``callback(trainer, row)``
after every epoch (``Trainer(..., callbacks=[MLflowCallback(...)])`` or ``pyro-aevb train --mlflow [URI]``).
Needs the optional extra: ``pip install 'pyro-aevb[mlflow]'``.  (The module is not called ``mlflow.py`` so that it
never stands in for the mlflow package.)

What one MLflow run holds:

* **params** -- the run's configuration (``trainer.config``, the same as ``RUN/config.json``), nested keys joined
  with dots, written when the MLflow run is created (MLflow params cannot change, so a ``--resume`` with another
  ``--lr`` keeps the first value: the new one is in ``config.json``);
* **metrics** -- every number of each metrics row (``train_elbo``, ``test_elbo``, ``train_running_elbo``,
  ``epoch``, ``epoch_seconds``, ...) at ``step = train_samples``, the x axis of the paper's figures;
* **artifacts** (:meth:`MLflowCallback.finish`, after the last epoch) -- ``config.json``, ``metrics.jsonl``,
  ``checkpoint.pt`` and the bound curve ``bound.png`` of the run directory.

A run directory remembers its MLflow run in ``RUN/mlflow.json`` (tracking URI, experiment and run id, written
atomically): ``--resume`` continues the same MLflow run, ``--overwrite`` (a fresh run) starts a new one.
"""

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Optional

from .checkpoint import CHECKPOINT, CONFIG, METRICS, atomic_write, read_metrics
from .errors import AevbInputError
from .plots import plot_bound_curve

INSTALL = "MLflow tracking needs the mlflow package: pip install 'pyro-aevb[mlflow]'"
RUN_FILE = "mlflow.json"  # the MLflow run of a run directory, so that --resume continues it
DEFAULT_EXPERIMENT = "pyro-aevb"
MAX_PARAM_LENGTH = 500  # the longest param value every MLflow 2.x/3.x store accepts
BATCH = 100  # params per log_batch call (MLflow's limit)


def _mlflow():
    """The mlflow modules the callback uses, imported on first use (an optional dependency)."""
    try:
        import mlflow
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise AevbInputError(INSTALL) from None
    return mlflow, MlflowClient, Metric, Param, MlflowException


def _one_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def flatten(config: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``: MLflow params are flat strings (JSON for lists, ``None`` as null),
    cut to :data:`MAX_PARAM_LENGTH` characters."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        flat[name] = text if len(text) <= MAX_PARAM_LENGTH else text[:MAX_PARAM_LENGTH - 3] + "..."
    return flat


def numbers(row: dict) -> dict:
    """The finite numbers of a metrics row (booleans and non-numbers left out)."""
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class MLflowCallback:
    """Logs a training run to MLflow: its configuration as params, each metrics row as metrics at
    ``step = train_samples``, and (:meth:`finish`) the run directory's files as artifacts.

    :param tracking_uri: where MLflow stores runs: a tracking server (``http://host:5000``), a database
        (``sqlite:///mlflow.db``) or a local folder; ``None``: MLflow's own default (``MLFLOW_TRACKING_URI``,
        else MLflow's local store in the working directory, where ``mlflow ui`` run in that directory finds it).
    :param experiment: the MLflow experiment (created if missing).
    :param run_name: the MLflow run's name (default: the run directory's name).
    :param log_artifacts: whether :meth:`finish` uploads the run directory's files.
    """

    def __init__(self, tracking_uri: Optional[str] = None, experiment: str = DEFAULT_EXPERIMENT,
                 run_name: Optional[str] = None, log_artifacts: bool = True):
        mlflow, MlflowClient, self._Metric, self._Param, self._MlflowException = _mlflow()
        self.tracking_uri = str(tracking_uri) if tracking_uri else mlflow.get_tracking_uri()
        self.experiment, self.run_name, self.log_artifacts = experiment, run_name, bool(log_artifacts)
        with self._errors():  # a store that refuses or does not answer fails here, before any training
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
            self.client.get_experiment_by_name(self.experiment)
        self.run_id: Optional[str] = None
        self.run_dir: Optional[Path] = None

    def __call__(self, trainer, row: dict) -> None:
        with self._errors():
            if self.run_id is None:
                self._start(trainer)
            timestamp = _now_ms()
            step = int(row.get("train_samples", row.get("epoch", 0)))
            metrics = [self._Metric(k, v, timestamp, step) for k, v in numbers(row).items()]
            self.client.log_batch(self.run_id, metrics=metrics)

    def _start(self, trainer) -> None:
        """Continue the run directory's MLflow run when the trainer resumed it, else create one."""
        self.run_dir = Path(trainer.run_dir) if trainer.run_dir is not None else None
        resumed = len(trainer.metrics) > 1  # the first row of a fresh run is its only one
        stored = self._stored() if resumed else None
        if stored is not None:
            self.run_id = stored
            self.client.update_run(stored, status="RUNNING")
            return
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(self.experiment)
        name = self.run_name or (self.run_dir.name if self.run_dir is not None else None)
        self.run_id = self.client.create_run(experiment_id, run_name=name).info.run_id
        params = [self._Param(k, v) for k, v in flatten(trainer.config).items()]
        for i in range(0, len(params), BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + BATCH])
        if self.run_dir is not None:
            record = {"tracking_uri": self.tracking_uri, "experiment_id": experiment_id, "run_id": self.run_id}
            atomic_write(self.run_dir / RUN_FILE, lambda f: f.write((json.dumps(record) + "\n").encode()))

    def _stored(self) -> Optional[str]:
        """The run id in ``RUN/mlflow.json`` if it names a run of this tracking store, else ``None``."""
        path = self.run_dir / RUN_FILE if self.run_dir is not None else None
        if path is None or not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("tracking_uri") != self.tracking_uri:
            return None
        try:
            return self.client.get_run(str(record.get("run_id"))).info.run_id
        except self._MlflowException:  # deleted, or never in this store
            return None

    def finish(self, status: str = "FINISHED") -> None:
        """End the MLflow run: on success upload the run directory's files (``status="FINISHED"``); after a failure
        (``"FAILED"``, ``"KILLED"``) only mark it, never raising, so the failure itself is what is reported."""
        if self.run_id is None:
            return
        if status != "FINISHED":
            try:
                self.client.set_terminated(self.run_id, status=status)
            except Exception:  # noqa: BLE001 - the training's own error is the one to report
                pass
            return
        with self._errors():
            if self.log_artifacts and self.run_dir is not None:
                for name in (CONFIG, METRICS, CHECKPOINT):
                    if (self.run_dir / name).exists():
                        self.client.log_artifact(self.run_id, str(self.run_dir / name))
                rows = read_metrics(self.run_dir)
                if rows and all("test_elbo" in r and "train_elbo" in r for r in rows):
                    with tempfile.TemporaryDirectory() as tmp:
                        self.client.log_artifact(self.run_id, str(plot_bound_curve(rows, Path(tmp) / "bound.png")))
            self.client.set_terminated(self.run_id, status="FINISHED")

    def _errors(self):
        return _TrackingErrors(self.tracking_uri, self._MlflowException)


def finish_all(callbacks, status: str) -> None:
    """Call ``finish(status)`` on every callback that has one (a tracker ending its run after training)."""
    for callback in callbacks:
        finish = getattr(callback, "finish", None)
        if callable(finish):
            finish(status)


def _now_ms() -> int:
    return int(time.time() * 1000)


class _TrackingErrors:
    """MLflow's errors (a store that refuses, a server that does not answer) as one-line input errors naming the
    tracking URI; the epoch's checkpoint is already saved when a callback runs, so the run can be resumed."""

    def __init__(self, uri: str, mlflow_exception):
        self.uri, self.mlflow_exception = uri, mlflow_exception

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is not None and isinstance(error, (self.mlflow_exception, OSError)):
            raise AevbInputError(f"MLflow tracking at {self.uri}: {_one_line(error)}") from error
        if error is not None and isinstance(error, ImportError):  # e.g. mlflow-skinny has no SQL store (alembic)
            raise AevbInputError(f"MLflow tracking at {self.uri} needs the package {error.name or 'of its store'}, "
                                 "which this install lacks: install the full client with pip install "
                                 "'pyro-aevb[mlflow]', or track to a server URI") from error
        return False
