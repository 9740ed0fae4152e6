"""Shared pieces of the figure reproductions: budgets, training curves, output files.

A *budget* fixes the number of training samples per run (the x-axis of the
paper's Figs. 2 and 3) and how many datapoints the final numbers are averaged
over.  ``paper`` is the paper's ~1e8 training samples; ``quick`` runs in a few
minutes on 2 CPU cores (CI); ``medium`` is in between.

Every figure writes into its output directory: ``<fig>.png``, ``curves.csv``,
``results.json`` (final numbers keyed by method, then by Nz or Ntrain, each
``{"train": ..., "test": ...}``, plus the budget) and ``results.md`` (ours next
to the paper's).
"""

import csv
import json
import math
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import pyro

from pyro_aevb.checkpoint import dumps
from pyro_aevb.data import Dataset, load_frey, load_mnist
from pyro_aevb.errors import AevbInputError
from pyro_aevb.evaluation.bound import evaluate_bound
from pyro_aevb.guides import AmortizedNormalGuide
from pyro_aevb.models import VAEModel
from pyro_aevb.plots import pyplot  # noqa: F401 -- the figure modules draw with it
from pyro_aevb.trainer import Trainer

BUDGETS = ("quick", "medium", "paper")
DATASETS = ("mnist", "frey")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise AevbInputError(f"unknown {name} {value!r}; choose from {list(choices)}")


def seed_everything(seed: int) -> None:
    pyro.set_rng_seed(seed)
    pyro.clear_param_store()


def load(dataset: str, data_path: Optional[str] = None) -> Dataset:
    check_choice("dataset", dataset, DATASETS)
    return load_mnist(data_path) if dataset == "mnist" else load_frey(data_path)


def prepare_run(settings: dict, dataset: str, train_samples: Optional[int], out_dir, data_path: Optional[str]):
    """The shared set-up of a figure run: its budget ``settings``, the training-sample total, the
    output folder (created), the dataset and the train/test subsets the bounds are averaged over."""
    total = int(train_samples) if train_samples is not None else settings["train_samples"][dataset]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load(dataset, data_path)
    eval_train = settings.get("eval_train", settings["eval_test"])  # default: as many points as the test set
    x_train = data.train[:eval_train] if eval_train else data.train
    x_test = data.test[:settings["eval_test"]] if settings["eval_test"] else data.test
    return settings, total, out, data, x_train, x_test


MAX_TRAIN_SAMPLES = 10 ** 12  # 100,000 times the paper's budget


def checkpoints(total: int, batch_size: int, num: int, first: Optional[int] = None) -> List[int]:
    """``num`` training-sample counts spaced evenly on a log axis from ``first`` (default total/1000)
    to ``total``, rounded up to multiples of M."""
    if not 1 <= total <= MAX_TRAIN_SAMPLES:
        raise AevbInputError(f"training samples per run must be between 1 and {MAX_TRAIN_SAMPLES:.0e}, got {total}")
    first = max(batch_size, min(total, first if first is not None else total // 1000))
    if num <= 1:
        return [int(total)]
    points = np.geomspace(first, total, num)
    points = sorted({int(math.ceil(p / batch_size) * batch_size) for p in points} | {int(total)})
    return [p for p in points if p <= total]


def make_vae(data_dim: int, latent_dim: int, hidden: int, likelihood: str):
    """The paper's networks (one tanh hidden layer each side) for AEVB and wake-sleep."""
    model = VAEModel(data_dim, latent_dim, (hidden,), likelihood)
    guide = AmortizedNormalGuide(data_dim, latent_dim, (hidden,))
    return model, guide


def bound_row(method, key, samples, wall, model, guide, x_train, x_test) -> dict:
    return {"method": method, "key": key, "train_samples": int(samples), "wall_seconds": round(wall, 2),
            "train": evaluate_bound(model, guide, x_train), "test": evaluate_bound(model, guide, x_test)}


def aevb_curve(model, guide, data: Dataset, points: Sequence[int], x_train, x_test, key,
               log: Callable = print, **trainer_kwargs) -> List[dict]:
    """Algorithm 1 (the project's :class:`~pyro_aevb.Trainer`) stopped at each of ``points``; bounds at each."""
    trainer = Trainer(model, guide, Dataset(data.name, data.train, x_test, data.image_shape),
                      progress=False, **trainer_kwargs)
    rows = []
    for p in points:
        if trainer.train_samples < p:  # a minibatch may have carried it past this stop already
            trainer.fit(train_samples=p)
        rows.append(bound_row("aevb", key, trainer.train_samples, trainer.wall_seconds, model, guide,
                              x_train, x_test))
        log(f"  aevb    {key}: {rows[-1]['train_samples']:>10d} samples  train {rows[-1]['train']:9.2f}"
            f"  test {rows[-1]['test']:9.2f}  ({trainer.wall_seconds:.0f}s)")
    return rows


def final_numbers(rows: Sequence[dict]) -> Dict[str, Dict[str, dict]]:
    """``{method: {str(key): {"train", "test", "train_samples", "wall_seconds"}}}`` from the last row of each
    curve (the most training samples)."""
    out: Dict[str, Dict[str, dict]] = {}
    for r in sorted(rows, key=lambda r: r["train_samples"]):
        out.setdefault(r["method"], {})[str(r["key"])] = {
            "train": r["train"], "test": r["test"], "train_samples": r["train_samples"],
            "wall_seconds": r.get("wall_seconds")}
    return out


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def write_json(path: Path, obj) -> None:
    Path(path).write_text(dumps(obj, indent=2) + "\n")  # strict JSON: a non-finite number is null


def _fmt(v, prec=1):
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{prec}f}"


def comparison_table(ours: dict, paper: dict, methods: Sequence[str], keys: Sequence, key_label: str,
                     reading_error: float) -> str:
    """Markdown table: for every method and key, our train/test next to the paper's, and the test gap."""
    lines = [f"| method | {key_label} | samples | ours train | paper train | ours test | paper test | "
             "test gap (ours − paper) |", "|---|---|---|---|---|---|---|---|"]
    for m in methods:
        for k in keys:
            o = ours.get(m, {}).get(str(k))
            if o is None:
                continue
            p = paper.get(m, {}).get(k, {}) or {}
            gap = None if p.get("test") is None else o["test"] - p["test"]
            flag = "" if gap is None or abs(gap) <= reading_error else " *"
            samples = f"{o['train_samples']:.1e}" if o.get("train_samples") else "–"
            lines.append(f"| {m} | {k} | {samples} | {_fmt(o['train'])} | {_fmt(p.get('train'))} | {_fmt(o['test'])} | "
                         f"{_fmt(p.get('test'))} | {_fmt(gap)}{flag} |")
    lines.append("")
    lines.append(f"`*`: gap larger than the reading error of the paper's figure (±{reading_error:g} nats).")
    return "\n".join(lines)


def run_totals(ours: dict) -> tuple:
    """``(wall seconds summed over the runs, most training samples any run reached)`` of a sweep's final
    numbers ``ours[method][key]``."""
    entries = [v for m in ours.values() for v in m.values()]
    return sum(v["wall_seconds"] for v in entries), max(v["train_samples"] for v in entries)


def write_results(out: Path, figure: str, dataset: str, budget: str, train_samples, ours: dict, table: str,
                  wall: float, settings: dict, extra_md: str = "", reached: Optional[int] = None) -> dict:
    """``train_samples`` is the command's budget; ``reached``, the most any run has trained so far (a sweep
    carried further by an earlier, larger ``--train-samples`` and redrawn with a smaller one)."""
    budget_info = {"name": budget, "train_samples": train_samples}
    samples_md = f"{train_samples}"
    if reached is not None and reached != train_samples:
        budget_info["reached"] = int(reached)
        samples_md = f"{train_samples} asked, up to {int(reached)} reached (per run: the samples column)"
    results = {"figure": figure, "dataset": dataset, **ours, "budget": budget_info,
               "wall_seconds": round(wall, 1), "settings": settings}
    write_json(out / "results.json", results)
    md = [f"# {figure}, {dataset}, budget `{budget}`", "",
          f"Training samples per run: {samples_md}; wall time {_duration(wall)}; settings: "
          f"`{json.dumps(settings)}`.", "", table, ""]
    if extra_md:
        md += [extra_md, ""]
    (out / "results.md").write_text("\n".join(md))
    return results


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def _duration(seconds: float) -> str:
    """``"42 s"``, ``"12.5 min"`` or ``"3.2 h"``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"
