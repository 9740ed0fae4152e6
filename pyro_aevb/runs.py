"""Runs: train from a :class:`RunConfig` into a directory, load and evaluate it.

A run directory holds ``config.json`` (for people), ``checkpoint.pt`` (the
state, see :mod:`pyro_aevb.checkpoint`) and ``metrics.jsonl``.  These are the
functions the command line calls; notebooks call them too.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import pyro
import torch

from .checkpoint import DATA, load_checkpoint, load_checkpoint_to_resume, read_data
from .config import RunConfig, build_model_guide
from .guides import GUIDE_NAMES
from .contract import check_data_support, check_model_guide
from .data import Dataset, binarize_static
from .errors import AevbError, AevbInputError
from .evaluation.bound import evaluate_bound
from .evaluation.classify import classification_error, has_classifier
from .evaluation.full_vb import full_vb_bound
from .sequences import per_frame
from .inputs import evaluation_inputs
from .labels import balanced_labels, num_classes
from .loading import load_dataset
from .registry import SHAPE_SETTINGS, lookup
from .rng import seeded
from .rundir import RunDirectory
from .specs import build, complete_kwargs, is_import_path, resolve_spec, takes
from .trainer import Trainer, changeable_on_resume, changed_settings

BUILT_IN_DATASETS = ("mnist", "frey")


def recorded_data(run_dir: Path, config: RunConfig) -> Dataset:
    """The rows the run in ``run_dir`` (of settings ``config``) recorded, on the CPU: from ``data.pt`` when they were
    made in Python, else found again by name (``mnist``, ``frey``, the file) and split as recorded.  The caller
    checks them against the recorded fingerprint (``load_run(...).load_data()``, the trainer on resume)."""
    if (run_dir / DATA).exists():
        return Dataset.from_state(read_data(run_dir))
    if config.data_stored:
        raise AevbInputError(f"{run_dir} was trained on rows made in Python, stored in {DATA}, which is missing: copy "
                             "it back, or pass the data yourself")
    if config.dataset not in BUILT_IN_DATASETS and not Path(config.dataset).exists():
        raise AevbInputError(f"{run_dir} was trained on {config.dataset!r}, which is neither a built-in dataset nor a "
                             "file here (a run on a file finds it again by its path, checked by fingerprint): put the "
                             "file back, or evaluate with the library's functions on the rows you have")
    return load_dataset(config.dataset, config.binarize, config.data_path, config.seq_len, config.uint8).head(
        config.train_rows, config.test_rows)


def prepare_data(config: RunConfig) -> Dataset:
    """Load the dataset of ``config`` and move it to the device.  (The trainer checks it against the
    likelihood's support, once, when it is built.)"""
    return load_dataset(config.dataset, config.binarize, config.data_path, config.seq_len, config.uint8).to(
        config.resolved_device())


def _open(run_dir: Path, resume: bool, overwrite: bool) -> Optional[RunDirectory]:
    """The run directory opened for writing (rank 0 only under torch.distributed): see pyro_aevb.rundir."""
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return None
    return RunDirectory.open(run_dir, resume, overwrite)


def _absolute(path: Optional[str]) -> Optional[str]:
    return str(Path(path).expanduser().resolve()) if path else path


#: the shape settings that size the built-in guides (``--guide normal`` etc.)
BUILT_IN_GUIDE_SETTINGS = ("latent_dim", "hidden_dim", "num_hidden_layers", "activation")


def apply_settings(config: RunConfig, given: Sequence[str]) -> None:
    """The shape settings ``given`` explicitly (``--latent-dim`` ...) reach a class of yours whose constructor
    takes an argument of that name (into ``model_kwargs`` / ``guide_kwargs``, so ``config.json`` records what was
    built and ``load_run`` rebuilds it), unless its kwargs set it; one that reaches neither the model nor the
    guide is refused rather than ignored."""
    for name in (n for n in given if n in SHAPE_SETTINGS):
        reached = False
        for role in ("model", "guide"):
            spec, kwargs = getattr(config, role), getattr(config, f"{role}_kwargs")
            if is_import_path(spec):
                if name in kwargs and kwargs[name] != getattr(config, name):
                    raise AevbInputError(f"the setting {name}={getattr(config, name)!r} disagrees with the {role}'s "
                                         f"kwargs {name}={kwargs[name]!r}: give it once")
                if name in kwargs or takes(spec, name):
                    kwargs.setdefault(name, getattr(config, name))
                    reached = True
            elif role == "model" or name in BUILT_IN_GUIDE_SETTINGS:
                reached = True  # a built-in network is sized by the setting itself
        if not reached:
            raise AevbInputError(
                f"the setting {name}={getattr(config, name)!r} reaches neither the model nor the guide: the "
                f"constructor of {config.model if is_import_path(config.model) else config.guide} takes no "
                f"{name!r}; give it the argument, or set its own arguments with model_kwargs / guide_kwargs (CLI: "
                "--model-kwargs / --guide-kwargs)")


def _default_guide_of_yours(config: RunConfig) -> bool:
    """A model class of yours paired with a built-in q(z|x) (``--guide`` left at ``normal``, most often)."""
    return lookup(config.model) is None and config.guide in GUIDE_NAMES


def _structure(config: RunConfig, model, guide, data: Dataset):
    """The pair's structure, checked once on the first training rows as the model sees them -- the data's support
    first, so that data outside it is named as such -- for the estimator's default.  A model class of yours with a
    built-in guide that fails here is told which guide was used (the built-in one samples one site ``z`` of
    ``latent_dim`` dimensions from an MLP, which a model of yours rarely matches) instead of a bare shape error."""
    x, inputs = data.as_seen(64)
    check_data_support(model, x, f"{data.name} training data", inputs=inputs)
    try:
        return check_model_guide(model, guide, x, None, num_data=data.train.shape[0], inputs=inputs)
    except AevbInputError as e:
        if not _default_guide_of_yours(config):
            raise
        raise AevbInputError(
            f"{e} -- the guide was the built-in {config.guide!r} (--guide's default): an MLP q(z|x) sampling one "
            f"site 'z' with --latent-dim {config.latent_dim} dimensions; a model of yours usually needs its own "
            f"guide: --guide path.py:Guide") from None


def record_built(config: RunConfig) -> None:
    """Make ``config`` say what is built: a class of yours with its full constructor arguments (its defaults
    included, :func:`~pyro_aevb.specs.complete_kwargs`), and the shape settings that size no network of this run
    (a class of yours takes its own) as ``None``."""
    for role in ("model", "guide"):
        if is_import_path(getattr(config, role)):
            setattr(config, f"{role}_kwargs", complete_kwargs(getattr(config, role), getattr(config, f"{role}_kwargs")))
    for name in SHAPE_SETTINGS:
        built_in = lookup(config.model) is not None or (config.guide in GUIDE_NAMES and name in BUILT_IN_GUIDE_SETTINGS)
        if not built_in:
            setattr(config, name, None)


#: the settings a command line that resumes a run takes from the run where it does not give them (pyro_aevb.cli)
INHERITED_ON_RESUME = ("model", "model_kwargs", "guide", "guide_kwargs", "init", "dataset", "data_path", "binarize",
                       "seq_len", "uint8", "latent_dim", "hidden_dim", "num_hidden_layers", "activation", "likelihood",
                       "bayesian_decoder", "elbo", "num_particles", "optimizer", "optimizer_kwargs", "lr",
                       "prior_precision", "guide_weight_decay", "batch_size", "epochs", "train_samples", "seed",
                       "device", "backend", "compile", "min_scale", "clip_grad_norm", "labels", "alpha_over_n",
                       "labelled_batch_size", "kl_warmup", "lr_schedule", "lr_schedule_kwargs")


def resumed_config(run_dir) -> Optional[RunConfig]:
    """The settings of the run in ``run_dir`` that ``train(..., resume=True)`` would continue (its checkpoint's
    config), or ``None`` where there is no checkpoint to resume (``train`` then says so)."""
    try:
        with warnings.catch_warnings():  # a fallback checkpoint is announced when the trainer loads it
            warnings.simplefilter("ignore")
            return RunConfig.from_dict(load_checkpoint_to_resume(Path(run_dir))["config"])
    except AevbError:
        return None


def train(config: RunConfig, run_dir, resume: bool = False, progress: bool = True, overwrite: bool = False,
          callbacks: Sequence[Callable] = (), given: Sequence[str] = ()) -> Trainer:
    """Train the model/guide of ``config`` into ``run_dir`` (Algorithm 1); ``resume`` continues a run,
    ``overwrite`` starts afresh in a directory that holds one; ``callbacks`` are the trainer's per-epoch
    ``callback(trainer, row)`` (e.g. a TensorBoard writer); ``given`` names the settings set explicitly (the
    shape settings among them reach a class of yours, :func:`apply_settings`)."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise AevbInputError("--resume continues the run in --out and --overwrite replaces it: choose one")
    config.model, config.guide = resolve_spec(config.model), resolve_spec(config.guide)
    apply_settings(config, given)
    if config.dataset not in BUILT_IN_DATASETS and Path(config.dataset).expanduser().exists():
        config.dataset = _absolute(config.dataset)  # a file: recorded absolute, so the run evaluates from anywhere
    config.data_path = _absolute(config.data_path)
    entry = lookup(config.model)
    if config.init is None and (entry is not None or config.guide in GUIDE_NAMES):
        config.init = entry.init if entry is not None else "paper"  # recorded: what the built-in networks start from
    config.validate()
    record_built(config)
    if config.epochs is None and config.train_samples is None:
        raise AevbInputError("give a training budget: epochs or train_samples")
    directory = _open(run_dir, resume, overwrite)  # first: a second writer is told so, whatever is there
    try:
        if resume:
            with warnings.catch_warnings():  # the trainer warns about a fallback checkpoint when it loads it
                warnings.simplefilter("ignore")
                saved = RunConfig.from_dict(load_checkpoint(run_dir)["config"])  # (_open checked it is there)
            record_built(saved)  # a run recorded before it said what was built compares the same way
            if config.elbo is None:  # not given: the run's own
                config.elbo = saved.elbo
            if config.uint8 is None:  # not given: the run's own reading of uint8 data
                config.uint8 = saved.uint8
            changed = changed_settings(saved.to_dict(), config.to_dict())
            if changed:
                raise AevbInputError(f"--resume with settings that differ from the run in {run_dir}: "
                                     f"{', '.join(f'{f}={getattr(saved, f)!r} (run) vs {getattr(config, f)!r}' for f in changed)}"
                                     f" (only {changeable_on_resume(cli=True)} may change; leave the others out "
                                     "to keep the run's)")
        # a resumed run continues on its own rows (those made in Python: data.pt); the trainer checks them
        data = recorded_data(run_dir, saved).to(config.resolved_device()) if resume else prepare_data(config)
        config.uint8 = config.uint8 or data.info.get("uint8")  # the reading used, so a reload reads the same
        config.data_dim = data.data_dim
        config.image_shape = list(data.image_shape) if data.image_shape else None
        labels = None
        if config.labels is not None:  # checked before anything is built: one line for a dataset without labels
            labels = balanced_labels(data.train_labels, config.labels, what=f"the {data.name} training set")
        if data.train_labels is not None:
            config.num_classes = num_classes(data.train_labels)
        if config.threads is not None:  # the CLI's --threads or its default (pyro_aevb.threads)
            torch.set_num_threads(config.threads)
        pyro.set_rng_seed(config.seed)
        device = config.resolved_device()
        model, guide = build_model_guide(config, data.data_dim)
        model.to(device)
        guide.to(device)
        if config.elbo is None or _default_guide_of_yours(config):
            structure = _structure(config, model, guide, data)
            if config.elbo is None:  # not given: B where it applies, else A (ModelStructure.default_estimator)
                config.elbo = structure.default_estimator
        trainer = Trainer(model, guide, data, elbo=config.elbo, num_particles=config.num_particles,
                          optimizer=config.optimizer, lr=config.lr, prior_precision=config.prior_precision,
                          batch_size=config.batch_size, run_dir=directory or run_dir, config=config.to_dict(),
                          progress=progress,
                          backend=config.backend, compile=config.compile, seed=config.seed, resume=resume,
                          overwrite=overwrite, clip_grad_norm=config.clip_grad_norm, callbacks=callbacks,
                          labels=labels, alpha_over_n=config.alpha_over_n,
                          labelled_batch_size=config.labelled_batch_size, kl_warmup=config.kl_warmup,
                          lr_schedule=config.lr_schedule, lr_schedule_kwargs=config.lr_schedule_kwargs,
                          optimizer_kwargs=config.optimizer_kwargs, guide_weight_decay=config.guide_weight_decay)
        trainer.fit(epochs=config.epochs, train_samples=config.train_samples)
    except BaseException:
        if directory is not None:
            directory.abandon()  # refused before the run wrote a file (data, model, settings): the folder as it was
        raise
    finally:
        if directory is not None:
            directory.close()
    return trainer


@dataclass
class Run:
    """A trained run: ``model(x)`` and ``guide(x)`` are ordinary Pyro programs."""

    model: torch.nn.Module
    guide: torch.nn.Module
    config: RunConfig
    metrics: list
    train_samples: int
    run_dir: Path

    def load_data(self) -> Dataset:
        """Exactly the rows the run was trained and tested on (on the run's device): from ``data.pt`` in the run
        directory, or found again by name (``mnist``, ``frey``, the file) -- checked against the fingerprint the
        run recorded."""
        params = list(self.guide.parameters() if self.guide is not None else []) + list(self.model.parameters())
        device = params[0].device if params else torch.device("cpu")
        data = recorded_data(self.run_dir, self.config)
        if self.config.data_fingerprint is not None and data.fingerprint() != self.config.data_fingerprint:
            found = self.run_dir / DATA if (self.run_dir / DATA).exists() else repr(self.config.dataset)
            raise AevbInputError(f"the data {found} found now differ from those {self.run_dir} was trained on (their "
                                 "fingerprints differ: a changed file, split or binarization)")
        return data.to(device)


def _recorded(config: dict, role: str, data_dim: int, model=None):
    """A class of a run trained from Python, rebuilt from its recorded spec and constructor arguments (a guide
    that takes ``model`` is given ``model``, :func:`~pyro_aevb.specs.build`)."""
    spec, kwargs = config.get(role), config.get(f"{role}_kwargs")
    if spec is None:
        return None  # e.g. Monte Carlo EM: no guide
    if kwargs is None:
        raise AevbInputError(f"the run's {role} {spec} was trained without recorded constructor arguments: pass the "
                             f"instance, load_run(run_dir, {role}=...)")
    return build(spec, kwargs, data_dim, role, model)


def _rebuild(config: dict, data_dim: int, model=None, guide=None):
    """Model and guide of a run's config: a CLI run's from its settings (built-in names or import paths),
    a Python run's from the recorded classes; instances given are used as they are.  The model comes first: a
    guide whose constructor takes ``model`` is built with it (the one given, or the one rebuilt)."""
    if lookup(config.get("model", "mlp")) is not None:
        built_model, built_guide = build_model_guide(
            RunConfig.from_dict({k: v for k, v in config.items() if v is not None}), data_dim)
        if model is not None and guide is None and is_import_path(config.get("guide") or ""):
            built_guide = _recorded(config, "guide", data_dim, model)  # shares modules with the model given
        return model or built_model, guide or built_guide
    model = model or _recorded(config, "model", data_dim)
    return model, guide or _recorded(config, "guide", data_dim, model)


def load_run(run_dir, device: str = "cpu", model: Optional[torch.nn.Module] = None,
             guide: Optional[torch.nn.Module] = None) -> Run:
    """Rebuild the model and guide of a run directory from its checkpoint (on ``device``).

    Runs record their model and guide -- built-in settings, or classes with constructor arguments
    (:mod:`pyro_aevb.specs`) -- whether trained by ``pyro-aevb train`` or by ``Trainer(run_dir=...)``.
    For a class that cannot be imported again (defined in a notebook), pass fresh instances as
    ``model=`` / ``guide=``: the checkpoint's weights are loaded into them.  Loading draws no random numbers from
    the caller's stream, so ``pyro.set_rng_seed(S)`` before or after it gives the same evaluation.
    """
    state = load_checkpoint(run_dir, map_location="cpu")
    config = dict(state["config"])
    config.setdefault("model", "mlp")
    data_dim = config.get("data_dim") or _data_dim(state)
    with seeded(None, torch.device("cpu")):  # the constructors' random init, overwritten: the caller's stream kept
        model, guide = _rebuild(config, data_dim, model, guide)
    try:
        model.load_state_dict(state["model"])
        if guide is not None:
            guide.load_state_dict(state["guide"])
    except RuntimeError as e:
        raise AevbInputError(f"the checkpoint in {run_dir} does not fit the rebuilt model/guide "
                             f"({str(e).splitlines()[0]}): pass the instances it was trained with") from None
    dev = RunConfig(device=device).validate().resolved_device()
    return Run(model.to(dev).eval(), guide.to(dev).eval() if guide is not None else None,
               RunConfig.from_dict({k: v for k, v in config.items() if v is not None}), state["metrics"],
               int(state["train_samples"]), Path(run_dir))


def _data_dim(state: dict) -> int:
    """D of an older checkpoint without ``data_dim``: the encoder's first layer's input width."""
    for key, value in state["guide"].items():
        if key == "encoder.0.weight" or key.endswith(".encoder.0.weight"):
            return value.shape[1]
    raise AevbInputError("checkpoint records no data_dim and its guide has no encoder.0.weight: cannot tell the "
                         "data dimension")


def evaluate_run(run: Run, num_particles: int = 1, splits=("train", "test")) -> dict:
    """``train_samples``, ``dataset`` (its name; for rows made in Python, saying that they are the rows stored
    with the run, and how many), and the average per-datapoint bound with estimators A (trace) and B (analytic) on
    each split -- and for a run trained with ``elbo="iwae"`` also its K-sample bound (``{split}_elbo_iwae``, K =
    the run's ``num_particles``, ``iwae_samples``), the bound its metrics report -- on the test set, and
    for ``train`` the same fixed training subset as the metrics' ``train_elbo`` (the first rows, as many as the
    test set has), so that the two numbers mean the same; for sequence data
    ``[N, T, D]`` also per frame (``..._per_frame``, the bound / T); and ``test_error`` -- the fraction of test
    points misclassified -- when the guide is a classifier (:mod:`pyro_aevb.evaluation.classify`) and the test
    set has labels.

    With global latents (full VB, appendix F) ``{split}_elbo_{est}`` is the one bound per datapoint of
    :func:`~pyro_aevb.evaluation.evaluate_bound`: the mean local term over the split minus
    KL(q(theta) || p(theta)) / N_train, the same number as the trainer's ``train_elbo``/``test_elbo``; its parts
    are ``{split}_local_bound`` (the mean local term; estimator B where available) and ``kl_theta``."""
    data = run.load_data()
    dataset = run.config.dataset
    if run.config.data_stored:  # the name is where the rows came from; the rows are the stored ones
        dataset += f" (rows made in Python, stored in {DATA}: {data.train.shape[0]} train, {data.test.shape[0]} test)"
    out = {"train_samples": run.train_samples, "dataset": dataset}
    if data.seq_len:
        out["seq_len"] = data.seq_len
    if run.guide is None:  # e.g. Monte Carlo EM: no variational bound to report
        return out
    if has_classifier(run.guide) and data.test_labels is not None:
        out["test_error"] = classification_error(run.guide, data.test, data.test_labels)
    estimators = ["trace"]
    inputs = {split: evaluation_inputs(data.inputs(split), run.model, run.guide) for split in ("train", "test")}
    try:  # estimator B only where every KL is closed-form: never label a Monte Carlo number analytic
        check_model_guide(run.model, run.guide, data.test, "analytic", inputs=inputs["test"])
        estimators.append("analytic")
    except AevbInputError:
        pass
    global_latents = check_model_guide(run.model, run.guide, data.test, None, inputs=inputs["test"]).global_latents
    num_data = data.train.shape[0]  # N_train, over which full VB's theta-KL is spread
    if run.config.elbo == "iwae":  # the bound an IWAE run trains and its metrics report: K = its num_particles
        estimators.append("iwae")
        out["iwae_samples"] = run.config.num_particles
    for split in splits:
        x = getattr(data, split)
        if split == "train":  # the metrics' training subset: the first rows, as many as the test set has
            x = x[:data.num_train_evaluated]
            inputs["train"] = {k: v[:x.shape[0]] for k, v in inputs["train"].items()}
            if data.binarize == "dynamic":
                x = binarize_static(x)  # evaluate on one fixed binarization
        for est in estimators:
            if global_latents:  # appendix F: the bound and its two parts, from the same draws
                fv = full_vb_bound(run.model, run.guide, x, num_data, est, num_particles, inputs=inputs[split])
                out.update({f"{split}_elbo_{est}": fv.bound, f"{split}_local_bound": fv.local, "kl_theta": fv.kl})
            else:
                draws = run.config.num_particles if est == "iwae" else num_particles
                out[f"{split}_elbo_{est}"] = evaluate_bound(run.model, run.guide, x, est, draws, inputs=inputs[split])
            if data.seq_len:
                out[f"{split}_elbo_{est}_per_frame"] = per_frame(out[f"{split}_elbo_{est}"], data.seq_len)
    return out
