"""Training = Algorithm 1 of the paper (minibatch AEVB).

    theta, phi <- initialise
    repeat
        X^M <- random minibatch of M datapoints
        eps <- random samples from p(eps)
        g   <- grad_{theta,phi} L^M(theta, phi; X^M, eps)      (eq. 8)
        theta, phi <- update with g (Adagrad)
    until convergence

The loss is the SGVB estimator of the model and guide -- any model that follows the contract, built-in or
yours -- traced once per minibatch shape into one graph of its forward and backward pass
(:class:`pyro_aevb.infer.graph.GraphELBO`: the library's estimator over Pyro's traces, checked equal to Pyro's
``Trace_ELBO`` / ``TraceMeanField_ELBO`` on the same draws when training starts; ``compile=True`` compiles the
graph with inductor).  It is ``-L^M``, i.e. in units of the whole dataset (the ``data`` plate scales the
minibatch sum by N/M).  A pair that cannot be traced (enumerated sites, a non-reparameterized latent, Python
control flow on tensor values) trains through Pyro's own ELBO, ``elbo(model, guide)`` as a
``torch.nn.Module``, with one warning saying why; ``backend="pyro"`` asks for that path, ``backend="graph"``
refuses the fallback.  The hot loop makes no host synchronisation except every ``log_every`` steps for the
progress bar.

Data parallel (``torch.distributed`` initialised, e.g. by ``torchrun``): every
rank draws the same permutation, takes a disjoint 1/K share of each global
minibatch of M and scales it by N/(M/K); DistributedDataParallel averages the K
gradients, which is an unbiased estimate of the same full-data gradient as one
process with the global batch M.  Rank 0 alone writes checkpoints and metrics.

MAP over theta (section 5, "weight decay corresponding to a prior
p(theta) = N(0, I)"): the objective is ``-sum_i L_i(theta, phi) - log p(theta)``
and ``-grad log p(theta) = theta``, so an L2 weight decay of exactly
``prior_precision = 1`` on the decoder's parameters -- applied to the gradient of
the dataset-scale loss -- is the N(0, I) prior; no 1/N factor is needed because
the loss is already summed over the N datapoints.  The recognition parameters
phi are variational, not model parameters, and get no decay (``guide_weight_decay``
regularises them where asked; not the paper's).

The model and guide are checked against the contract (:mod:`pyro_aevb.contract`)
when the trainer is built -- a plate sized by the minibatch would make the
weight decay above over-weight the prior by N/M, so it is refused -- and all
Pyro programs run in a private parameter store (:mod:`pyro_aevb.params`).
``elbo`` is an estimator name or an objective module with the same call
signature: wake-sleep and Monte Carlo EM (:mod:`pyro_aevb.infer`) train
through this same loop, with the same checkpoints, resume and binarization.

Epochs are permutations of the training set; per epoch the trainer appends
one line to ``metrics.jsonl`` and writes ``checkpoint.pt`` atomically (model,
guide, optimizer, RNG state, metrics so far), so a killed run resumed with
``Trainer.load_state_dict`` continues the same random stream and reproduces an
unbroken run's metrics exactly.

Two training options change the step, not the bound reported: a KL warm-up (``kl_warmup`` = S steps) trains the
t-th step on L_beta with the latent sites' terms weighted by beta_t = min(1, t / S)
(:mod:`pyro_aevb.infer.warmup`), and a learning-rate schedule (``lr_schedule``, :mod:`pyro_aevb.schedules`)
sets each step's rate.  The evaluated ``train_elbo`` / ``test_elbo`` are always the unannealed bound; the
checkpoint holds the step count and the scheduler's state, so a resumed run continues both exactly.
"""

import contextlib
import math
import numbers
import time
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch
from tqdm import tqdm

from .contract import check_data_support, check_model_guide, check_particles, inspect_model
from .data import Dataset, binarize_static
from .divergence import diverged_argument
from .errors import AevbError, AevbInputError, TrainingDiverged
from .evaluation.bound import evaluate_bound
from .evaluation.full_vb import full_vb_bound
from .infer.elbo import ESTIMATORS, make_elbo
from .infer.graph import GraphELBO, NotTraceable, untraceable_reason
from .infer.objective import Objective, UpdatingObjective
from .infer.warmup import LatentScaleMessenger, check_warmup_steps, kl_weight
from .inputs import condition, evaluation_inputs, label_inputs, rows, taken
from .labels import ALPHA_OVER_N, ClassificationTerm, unknown_labels
from .optimizers import DEFAULT_LR, check_optimizer_kwargs, make_optimizer
from .params import local_param_store
from .rng import seeded
from .rundir import RunDirectory, resume_state
from .schedules import check_schedule, is_per_step, make_scheduler, step_per_step
from .specs import class_spec, recorded_kwargs, require_module

BACKENDS = ("auto", "graph", "pyro")


KERNEL_OPTIONS = ("fused", "foreach", "capturable")


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Restore ``saved`` (an optimizer's ``state_dict``) into ``optimizer``, keeping ``optimizer``'s kernels.

    ``fused``/``foreach``/``capturable`` say how the update is computed, not what it is, and
    :func:`make_optimizer` picks them for the device the networks are on; torch's ``load_state_dict``
    would restore the saved ones, so a checkpoint written on a CPU (fused Adagrad) could not resume
    on a GPU, where no fused Adagrad exists."""
    groups = [dict(g, **{k: own[k] for k in KERNEL_OPTIONS if k in own})
              for g, own in zip(saved["param_groups"], optimizer.param_groups)]
    optimizer.load_state_dict(dict(saved, param_groups=groups))


#: the settings a user may change when resuming a run: its budget, its learning rate (lower, e.g. after a divergence)
#: and gradient clipping, and where and how the same numbers are computed (the CLI spells them as flags)
CHANGEABLE_ON_RESUME = ("epochs", "train_samples", "lr", "clip_grad_norm", "device", "backend", "compile", "threads")
#: what a resumed run may change: the settings above and what is recorded of its data (checked by fingerprint);
#: every other setting is the run's own
RESUMABLE_SETTINGS = set(CHANGEABLE_ON_RESUME) | {"data_dim", "image_shape", "num_classes", "data_fingerprint",
                                                  "data_stored", "train_rows", "test_rows"}


def changeable_on_resume(cli: bool = False) -> str:
    """The settings of :data:`CHANGEABLE_ON_RESUME` as a message names them: ``lr``, or the CLI's ``--lr``."""
    return ", ".join("--" + name.replace("_", "-") if cli else name for name in CHANGEABLE_ON_RESUME)


def changed_settings(saved: dict, config: dict) -> list:
    """The settings of ``config`` that differ from the resumed run's ``saved`` ones (outside
    :data:`RESUMABLE_SETTINGS`); constructor arguments (``*_kwargs``) are compared where both runs recorded them."""
    changed = []
    for name, value in config.items():
        if name in RESUMABLE_SETTINGS or name not in saved:
            continue
        old = saved[name]
        if name.endswith("_kwargs") and isinstance(old, dict) and isinstance(value, dict):
            if any(old[k] != value[k] for k in old.keys() & value.keys()):  # (defaults may be recorded on one side)
                changed.append(name)
        elif not (name.endswith("_kwargs") and (old is None or value is None)) and old != value:
            changed.append(name)
    return changed


def sample_budget(num_data: int, epochs: Optional[int] = None, train_samples: Optional[int] = None) -> int:
    """Training samples to see in total: ``train_samples``, or ``epochs`` passes over the N datapoints."""
    if (epochs is None) == (train_samples is None):
        raise AevbInputError("give exactly one of epochs or train_samples")
    name, value = ("epochs", epochs) if epochs is not None else ("train_samples", train_samples)
    whole_number(name, value)
    return int(train_samples) if train_samples is not None else int(epochs) * num_data


def whole_number(name: str, value) -> int:
    """``value`` as an int, refused unless it is a whole number >= 1 (``2.0`` is, ``1.5``, ``True`` and ``"2"`` are
    not)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 1
            or value != int(value)):
        raise AevbInputError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def budget_steps(num_data: int, batch_size: int, samples: int) -> int:
    """Optimisation steps that see ``samples`` training samples from the start of an epoch: ceil(N / M) per epoch
    (the last minibatch of an epoch may be short)."""
    epochs, rest = divmod(int(samples), int(num_data))
    return epochs * -(-num_data // batch_size) + -(-rest // batch_size)


def minibatches(num_data: int, batch_size: int, generator: Optional[torch.Generator] = None, device=None):
    """One epoch of minibatch indices: a random permutation of range(N) cut into pieces of M (the last
    may be shorter).  Drawn on the CPU so the stream is the same whatever the device."""
    return torch.randperm(num_data, generator=generator).to(device).split(batch_size)


def _rng_state(perm_generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "perm": perm_generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, perm_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"].cpu())
    perm_generator.set_state(state["perm"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class Trainer:
    """Minibatch AEVB (Algorithm 1) for any Pyro ``model(x, idx, num_data)`` / ``guide(x, idx, num_data)``
    that follows the contract of :mod:`pyro_aevb.contract` (checked here).

    :param model: generative model, a ``torch.nn.Module`` (e.g. :class:`pyro_aevb.models.VAEModel`).
    :param guide: recognition model, a ``torch.nn.Module`` (``None`` for Monte Carlo EM).
    :param data: a :class:`pyro_aevb.data.Dataset` (already on the training device).
    :param elbo: ``"trace"`` (estimator A), ``"analytic"`` (estimator B), ``"iwae"``, or an objective module
        called as ``objective(x, idx, num_data)`` (e.g. :class:`~pyro_aevb.infer.WakeSleep`,
        :class:`~pyro_aevb.infer.MonteCarloEM`); ``None`` (the default): B where it applies, else A
        (:attr:`~pyro_aevb.contract.ModelStructure.default_estimator`, as the CLI and ``evaluate_bound``).
    :param num_particles: L, samples of z per datapoint (K for ``"iwae"``).
    :param lr: the learning rate; ``None``: 0.02 (the paper's Adagrad) for a new run, and a resumed run's own
        (a rate given on resume is used from there on, e.g. a lower one after a divergence).
    :param batch_size: M.
    :param run_dir: where ``config.json``, ``metrics.jsonl`` and ``checkpoint.pt`` go (created if missing;
        ``None``: keep in memory only): a path, opened here (:meth:`pyro_aevb.rundir.RunDirectory.open`), or a
        :class:`~pyro_aevb.rundir.RunDirectory` the caller opened.
    :param config: the run's configuration, stored in ``config.json`` and checkpoints (``runs.train`` passes
        its :class:`~pyro_aevb.config.RunConfig`); by default the trainer records the model's and guide's
        classes and constructor arguments so that :func:`pyro_aevb.load_run` can rebuild them.
    :param model_kwargs: (and ``guide_kwargs``) the constructor arguments to record for a class that does not keep
        its own ``init_kwargs``.
    :param backend: ``"auto"`` (the traced graph, :class:`~pyro_aevb.infer.graph.GraphELBO`, where the pair can be
        traced, else Pyro's ELBO with a warning saying why), ``"graph"`` (the traced graph or an error) or
        ``"pyro"`` (Pyro's ELBO).
    :param compile: compile the traced graph with inductor (``torch.compile``; each minibatch shape compiles once,
        ~20 s on a CPU), or wrap Pyro's ELBO in ``torch.compile`` on the Pyro path.
    :param seed: seeds the minibatch permutations (a generator of their own, so they are the same on
        every rank and unaffected by the noise draws).
    :param resume: continue the run in ``run_dir`` from its checkpoint (same as calling :meth:`resume`).
    :param overwrite: start afresh in a ``run_dir`` that already holds a run (its files are replaced);
        without it, or ``resume``, such a directory is refused.
    :param clip_grad_norm: rescale each step's gradient to at most this total norm (off by default).
    :param callbacks: called as ``callback(trainer, row)`` after every epoch, once its metrics row is written
        and its checkpoint saved (rank 0 only): a tracker (TensorBoard, MLflow, ...) is one small class.
    :param labels: semi-supervised training (:mod:`pyro_aevb.labels`): the kept class of each training row, -1
        where unknown (e.g. :func:`~pyro_aevb.labels.balanced_labels`), given as the label input the model or
        guide declares (``label_inputs``) in training only; ``None``: every label unknown.
    :param alpha_over_n: (and ``labelled_batch_size``) the classification term of eq. (9) for a run with labels, alpha =
        ``alpha_over_n`` * N estimated from ``labelled_batch_size`` labelled rows per step
        (:class:`~pyro_aevb.labels.ClassificationTerm`); reported as ``train_classification`` per datapoint.
    :param eval_every: evaluate, write a metrics row and save the checkpoint every this many epochs and at the
        end of every :meth:`fit` (default 1: every epoch).  For a small dataset trained for many epochs (Frey
        Face's 1,765 frames for 1e7 samples are 5,700 epochs) a larger value keeps evaluation and checkpoint
        writes from dominating; a kill then loses at most this many epochs, and a resumed run still equals
        an unbroken one with the same value.
    :param kl_warmup: S, optimisation steps of a linear KL warm-up (:mod:`pyro_aevb.infer.warmup`): the t-th step
        trains on the bound with every latent site's term weighted by min(1, t / S); 0 (the default): none.
        Estimators ``"trace"`` and ``"analytic"`` only.  While beta < 1 a metrics row reports the running
        objective as ``train_objective`` with the ``beta`` reached, not as ``train_running_elbo``.
    :param lr_schedule: (and ``lr_schedule_kwargs``) a learning-rate schedule by name, ``"step"``, ``"multistep"``,
        ``"cosine"`` or ``"plateau"``, with torch's parameters (:mod:`pyro_aevb.schedules`); ``None``: a constant
        rate.  Every metrics row reports the rate of the epoch's last step, ``lr``.
    :param optimizer_kwargs: the optimiser's other torch arguments by their torch names (:data:`OPTIMIZER_OPTIONS`):
        Adam's ``betas``, ``eps``; Adagrad's ``eps``, ``lr_decay``, ``initial_accumulator_value``.
    :param guide_weight_decay: L2 weight decay on the guide's parameters phi (default 0, the paper: only theta
        has a prior).
    """

    def __init__(self, model: torch.nn.Module, guide: Optional[torch.nn.Module], data: Dataset, *,
                 elbo: Union[str, torch.nn.Module, None] = None, num_particles: int = 1, optimizer: str = "adagrad",
                 lr: Optional[float] = None, prior_precision: float = 1.0, batch_size: int = 100, run_dir: Optional[str] = None,
                 config: Optional[dict] = None, model_kwargs: Optional[dict] = None,
                 guide_kwargs: Optional[dict] = None, progress: bool = True, log_every: int = 50,
                 backend: str = "auto", compile: bool = False, seed: int = 0, callbacks: Sequence[Callable] = (),
                 resume: bool = False, overwrite: bool = False, clip_grad_norm: Optional[float] = None,
                 eval_every: int = 1, labels: Optional[torch.Tensor] = None,
                 alpha_over_n: float = ALPHA_OVER_N, labelled_batch_size: int = 100, kl_warmup: int = 0,
                 lr_schedule: Optional[str] = None, lr_schedule_kwargs: Optional[dict] = None,
                 optimizer_kwargs: Optional[dict] = None, guide_weight_decay: float = 0.0):
        self.callbacks = list(callbacks)
        self._lr_given = lr is not None  # not given: a resumed run keeps its own (resume)
        lr = DEFAULT_LR if lr is None else lr
        self.optimizer_kwargs = check_optimizer_kwargs(optimizer, optimizer_kwargs)
        self.kl_warmup = check_warmup_steps(kl_warmup)
        self.lr_schedule, self.lr_schedule_kwargs = lr_schedule, check_schedule(lr_schedule, lr_schedule_kwargs)
        self.eval_every = whole_number("eval_every", eval_every)
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise AevbInputError(f"clip_grad_norm must be > 0, got {clip_grad_norm}")
        self.clip_grad_norm = clip_grad_norm
        if model is None:
            raise AevbInputError("the model is None: give the generative model, a torch.nn.Module (e.g. a PyroModule)")
        if not isinstance(data, Dataset):
            raise AevbInputError(f"data must be a pyro_aevb.Dataset (its training and test rows), got "
                                 f"{type(data).__name__}: e.g. Dataset('mine', x_train, x_test) for tensors of rows")
        self.model, self.guide, self.data = require_module(model, "model"), require_module(guide, "guide"), data
        self.num_particles = whole_number("num_particles", num_particles)
        self.batch_size = whole_number("batch_size", batch_size)
        if backend not in BACKENDS:
            raise AevbInputError(f"unknown backend {backend!r}; choose from {list(BACKENDS)}")
        self._set_up_inputs(labels)
        # every row in the support, once, here, instead of validating every step (with dynamic binarization
        # the training rows are drawn binary each step, so a model of yours sees only binary ones)
        likelihood = getattr(model, "likelihood", None)
        if data.binarize != "dynamic" or hasattr(likelihood, "check_data"):
            check_data_support(model, data.train, f"{data.name} training data", inputs=self.train_inputs)
        check_data_support(model, data.test, f"{data.name} test data", inputs=self.eval_inputs["test"])
        warning = likelihood.point_mass_warning(data.train, f"{data.name} training data") if hasattr(
            likelihood, "point_mass_warning") else None
        if warning:
            warnings.warn(warning, RuntimeWarning, stacklevel=2)
        # rows as the model sees them, for the one-time checks (dynamic binarization draws them binary)
        self._probe = data.as_seen(64)[0]
        self._probe_inputs = rows(self.train_inputs, slice(0, self._probe.shape[0]))  # label inputs included
        n_train = data.train.shape[0]
        if elbo is None:  # B where it applies, else A (ModelStructure.default_estimator)
            if guide is None:
                raise AevbInputError("the SGVB estimators need a guide q(z|x); without one, pass an objective module "
                                     "that trains the model alone (e.g. elbo=MonteCarloEM(model, x))")
            elbo = check_model_guide(model, guide, self._probe, None, num_data=n_train,
                                     inputs=self._probe_inputs).default_estimator
        if not isinstance(elbo, (str, Objective)):
            raise AevbInputError(f"elbo must be an estimator name ({', '.join(sorted(ESTIMATORS))}) or an objective "
                                 f"module with is_bound, eval_estimator, state_dict and load_state_dict "
                                 f"(pyro_aevb.infer.objective.Objective), got {type(elbo).__name__}")
        self.objective = None if isinstance(elbo, str) else elbo
        # an objective with its own update rule (MCEM: E step + M steps)
        self._own_update = self.objective.update if isinstance(self.objective, UpdatingObjective) else None
        self.elbo_name = elbo if isinstance(elbo, str) else type(elbo).__name__
        self.is_bound = isinstance(elbo, str) or bool(elbo.is_bound)
        if isinstance(elbo, str):
            if elbo not in ESTIMATORS:
                raise AevbInputError(f"unknown objective {elbo!r}; choose from {sorted(ESTIMATORS)} or pass an "
                                     "objective module")
            if guide is None:
                raise AevbInputError(f"estimator {elbo!r} needs a guide")
            # the contract, checked once, on two training rows as a minibatch of the N
            self.structure = check_model_guide(model, guide, self._probe, elbo, num_data=n_train,
                                               inputs=self._probe_inputs)
            check_particles(model, guide, self._probe, self.num_particles, self.structure, num_data=n_train,
                            inputs=self._probe_inputs)
            self.eval_estimator = elbo
            loss = self._sgvb_loss(elbo, backend, compile)
            if self.label_names and labels is not None:
                self.classification = ClassificationTerm(
                    guide, self.label_names[0], data.train, self.train_inputs[self.label_names[0]],
                    self.train_inputs, float(alpha_over_n) * n_train, labelled_batch_size)
        else:
            used = sorted(set(taken(model, self.train_inputs)) | set(taken(guide, self.train_inputs) if guide else ()))
            if used:
                raise AevbInputError(f"{self.elbo_name} calls the model and guide without conditioning inputs, but "
                                     f"they take {', '.join(map(repr, used))} from the data: train them "
                                     "with an SGVB estimator (trace, analytic, iwae)")
            self.structure = inspect_model(model, self._probe, n_train) if guide is None else check_model_guide(
                model, guide, self._probe, None, num_data=n_train)
            self.eval_estimator = elbo.eval_estimator if guide is not None else None
            if self._own_update is not None or guide is None:  # e.g. MCEM: HMC and its own update, not one loss
                if backend == "graph":
                    raise AevbInputError(f"backend 'graph' traces one loss and its gradient; {self.elbo_name} updates "
                                         "the parameters itself: use backend 'auto' or 'pyro'")
                self.backend, loss = "pyro", elbo
            else:  # e.g. wake-sleep: its loss traced as the estimators are
                loss = self._sgvb_loss(elbo, backend, compile)
        self._graph = loss if isinstance(loss, GraphELBO) else None  # its KL weight is a graph input (warm-up)
        self.rank, self.world_size = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            self.rank, self.world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
            if self.objective is not None:
                raise AevbInputError(f"data-parallel training supports the SGVB estimators, not {self.elbo_name}")
            if batch_size % self.world_size:
                raise AevbInputError(f"batch size {batch_size} is not divisible by the {self.world_size} ranks")
            if batch_size > data.train.shape[0]:
                raise AevbInputError(f"data-parallel training drops partial minibatches, and the {data.train.shape[0]} "
                                     f"training points are fewer than one batch of {batch_size}: lower --batch-size")
            loss = torch.nn.parallel.DistributedDataParallel(loss)
        if self.kl_warmup and (self.objective is not None or elbo not in ("trace", "analytic")):
            raise AevbInputError(f"the KL warm-up weights the KL terms of estimators 'trace' and 'analytic'; "
                                 f"{self.elbo_name} has none apart: train with kl_warmup=0")
        if lr_schedule == "plateau" and self.eval_estimator is None:
            raise AevbInputError(f"the plateau schedule follows the test bound, and {self.elbo_name} without a guide "
                                 "evaluates none: choose the step or cosine schedule")
        self._latent_scale = LatentScaleMessenger(1.0) if self.kl_warmup and self._graph is None else None
        self.loss_fn: Callable = torch.compile(loss) if compile and self._graph is None else loss
        self.optimizer = make_optimizer(model, guide, optimizer, lr, prior_precision, self.optimizer_kwargs,
                                        guide_weight_decay)
        self.scheduler = None  # made when training starts (cosine's default length is the budget) or resumed
        self.perm_generator = torch.Generator().manual_seed(seed)
        self.seed = seed
        # the run directory: written through its one owner (pyro_aevb.rundir) by rank 0, read by every rank
        self.resume_dir = Path(str(run_dir)) if run_dir is not None else None
        self.config = dict(config) if config is not None else self._default_config(
            model_kwargs, guide_kwargs, optimizer=optimizer, lr=lr, prior_precision=prior_precision,
            backend=backend, compile=compile, kl_warmup=self.kl_warmup, lr_schedule=lr_schedule,
            lr_schedule_kwargs=self.lr_schedule_kwargs, optimizer_kwargs=self.optimizer_kwargs,
            guide_weight_decay=guide_weight_decay)
        self.directory: Optional[RunDirectory] = None
        if isinstance(run_dir, RunDirectory):
            self.directory = run_dir if self.rank == 0 else None  # opened by the caller (runs.train)
        elif run_dir is not None and self.rank == 0:
            self.directory = RunDirectory.open(run_dir, resume, overwrite)
        self.run_dir = self.directory.path if self.directory is not None else None
        self.progress, self.log_every = progress and self.rank == 0, log_every
        self.epoch = 0
        self.train_samples = 0
        self.wall_seconds = 0.0
        self._pending_seconds = 0.0  # training time of epochs since the last metrics row
        self._epoch_first_step = 0  # self.steps when the epoch started (a diverging step's number in its epoch)
        self.steps = 0  # optimisation steps of the run (resumed with it): the t of the warm-up and the schedules
        self._lr_used, self._annealed = float(lr), False  # last step's rate; beta < 1 since the last metrics row
        self.metrics: list = []
        self.lr = float(lr)
        # a resumed run's config.json is rewritten with its next checkpoint (e.g. a new lr), so that the two agree
        # even when the resumed budget trains nothing
        self._config_pending = resume
        try:
            self._decorrelate_ranks()
            self._set_up_evaluation()
            self._start(resume)
        except BaseException:
            if self.directory is not None and not isinstance(run_dir, RunDirectory):  # (the caller's: theirs)
                self.directory.abandon()  # refused before a file of the run was written: the folder as it was
            raise
        if self.batch_size > data.train.shape[0]:
            warnings.warn(f"batch_size {self.batch_size} is more than the {data.train.shape[0]} training rows: each "
                          "epoch is one step on all of them", RuntimeWarning, stacklevel=2)

    def _start(self, resume: bool) -> None:
        """The run directory's first files (a fresh run: the data's record, config.json, an empty metrics.jsonl) or
        the run's state from its checkpoint (``resume``: refused for other data or settings, writing nothing)."""
        if self.directory is not None:
            self.config.update(self._record_data(store=not resume))
            if not resume:
                self.write_config()
        if resume:
            self.resume()
        elif self.directory is not None:
            self.directory.write_metrics([])  # a fresh run starts a fresh metrics.jsonl

    def _sgvb_loss(self, elbo, backend: str, compile: bool) -> torch.nn.Module:
        """The loss module: the traced graph where the pair can be traced (checked equal to Pyro's ELBO -- or to the
        objective module ``elbo`` itself -- on the same draws, on a first minibatch), else Pyro's ELBO (the
        objective) with one warning saying why."""
        reason = None
        if backend != "pyro":
            m = min(self.batch_size, self.data.train.shape[0])
            rows_seen = self.data.as_seen(m)[0]
            idx = torch.arange(m, device=rows_seen.device)
            n = self.data.train.shape[0]
            reason = untraceable_reason(condition(self.guide, self.train_inputs), elbo, self.structure,
                                        (rows_seen, idx, n))
            if reason is None:
                try:
                    graph = GraphELBO(self.model, self.guide, elbo, self.num_particles, self.structure,
                                      self.train_inputs, compile=compile)
                    graph.check(rows_seen, idx, n)
                except NotTraceable as e:
                    reason = str(e)
            if reason is not None and backend == "graph":
                raise NotTraceable(f"backend 'graph': {reason}")
            if reason is None:
                self.backend = "graph"
                return graph
            warnings.warn(f"training through Pyro's interpreter (slower than the traced graph): {reason}",
                          RuntimeWarning, stacklevel=3)
        self.backend = "pyro"
        if not isinstance(elbo, str):
            return elbo
        model, guide = condition(self.model, self.train_inputs), condition(self.guide, self.train_inputs)
        return make_elbo(elbo, self.num_particles, self.structure.max_plate_nesting,
                         bool(self.structure.enumerated))(model, guide)

    def _set_up_inputs(self, labels: Optional[torch.Tensor]) -> None:
        """The conditioning inputs of training and of evaluation (:mod:`pyro_aevb.inputs`).

        Training gives every input of the training rows; a label input the model or guide declares gets
        ``labels`` (all unknown without them).  Evaluation gives every input of the evaluated rows except label
        inputs, so its bound is the unlabelled one."""
        data = self.data
        self.label_names = label_inputs(self.model, self.guide)
        self.classification = None
        if len(self.label_names) > 1:
            raise AevbInputError(f"the model and guide declare several label inputs {self.label_names}; semi-supervised "
                                 "training takes one")
        if labels is not None:
            if not self.label_names:
                raise AevbInputError("labels were given, but neither the model nor the guide takes labels: a model or "
                                     "guide with a latent class declares the input that observes it, label_inputs = "
                                     "('y',) (e.g. the m2 model's guide; pyro_aevb.inputs)")
            labels = torch.as_tensor(labels)
            if labels.dim() != 1 or labels.shape[0] != data.train.shape[0] or labels.is_floating_point():
                raise AevbInputError(f"labels must be integers, one per training row ({data.train.shape[0]}), got "
                                     f"{labels.dtype} of shape {list(labels.shape)}")
        known = {name: (labels if labels is not None else unknown_labels(data.train.shape[0])).to(data.train.device)
                 for name in self.label_names}
        self.train_inputs = {**data.train_inputs, **known}
        self.eval_inputs = {split: evaluation_inputs(data.inputs(split), self.model, self.guide)
                            for split in ("train", "test")}

    def _default_config(self, model_kwargs, guide_kwargs, **training) -> dict:
        """What a run trained from Python records: the classes, their constructor arguments, the settings."""
        config = {
            "model": class_spec(self.model), "model_kwargs": recorded_kwargs(self.model, model_kwargs),
            "guide": class_spec(self.guide) if self.guide is not None else None,
            "guide_kwargs": recorded_kwargs(self.guide, guide_kwargs) if self.guide is not None else None,
            "elbo": self.elbo_name, "num_particles": self.num_particles, "batch_size": self.batch_size,
            "seed": self.seed,
            "dataset": self.data.name, "binarize": self.data.binarize, "data_dim": self.data.data_dim,
            "seq_len": self.data.seq_len, "data_path": None,
            **training,
        }
        if self.resume_dir is not None and self.rank == 0 and (config["model_kwargs"] is None or
                                         (self.guide is not None and config["guide_kwargs"] is None)):
            warnings.warn("the model's or guide's constructor arguments are unknown, so load_run will need the "
                          "instances (load_run(run_dir, model=..., guide=...)); pass model_kwargs= / guide_kwargs= "
                          "to the Trainer, or set self.init_kwargs in the class (or decorate it with "
                          "pyro_aevb.records_arguments), to make the run rebuildable",
                          RuntimeWarning, stacklevel=3)
        return config

    def _record_data(self, store: bool) -> dict:
        """What the run records of its data, so that ``load_run(...).load_data()`` gives back exactly these rows:
        where they came from (``load_dataset``'s arguments, when the rows are exactly what it loads) or, for rows
        made in Python, the rows themselves in ``data.pt`` (written when ``store``); and their fingerprint, which
        loading and ``resume`` check."""
        fingerprint = self.data.fingerprint()
        origin = self.data.info.get("origin") or {}
        if origin.get("fingerprint") == fingerprint:
            return {"dataset": origin["dataset"], "binarize": origin["binarize"], "data_path": origin["data_path"],
                    "seq_len": origin["seq_len"], "uint8": origin["uint8"], "train_rows": origin.get("train_rows"),
                    "test_rows": origin.get("test_rows"), "data_fingerprint": fingerprint, "data_stored": False}
        if store:
            self.directory.write_data(self.data.state())
        return {"data_fingerprint": fingerprint, "data_stored": True}

    def write_config(self) -> None:
        """``config.json`` (atomically): what the run is, for people and for ``load_run``."""
        self.directory.write_config(self.config)

    def close(self) -> None:
        """Release the run directory's lock (also released when the process ends)."""
        if self.directory is not None:
            self.directory.close()

    def _set_up_evaluation(self) -> None:
        """The per-epoch evaluation: the bound on the test set and on a fixed training subset of the same size,
        computed the same way (the paper's Fig. 2 curves).  With global latents (full VB) both are
        ``local - KL(q(theta) || p(theta)) / N_train``, the training objective per datapoint, so train and test
        are comparable."""
        data = self.data
        subset = data.train[:data.num_train_evaluated]
        self.eval_train = binarize_static(subset) if data.binarize == "dynamic" else subset
        self.eval_train_inputs = rows(self.eval_inputs["train"], slice(0, subset.shape[0]))
        self.full_vb = bool(self.structure.global_latents) and self.eval_estimator in ("trace", "analytic")

    def evaluate(self, x: torch.Tensor, inputs: Optional[dict] = None) -> dict:
        """The bound per datapoint of ``x`` (with the conditioning ``inputs`` of its rows) as the metrics report it
        (``{}`` without a guide)."""
        if self.eval_estimator is None:
            return {}
        particles = self.num_particles if self.objective is None else 1
        # its own seeded noise: the evaluation neither perturbs the training stream nor depends on it
        with seeded(self.seed + 1_000_003 * self.epoch, x.device):
            if self.full_vb:
                fv = full_vb_bound(self.model, self.guide, x, self.data.train.shape[0], self.eval_estimator,
                                   particles, inputs=inputs)
                return {"bound": fv.bound, "kl_theta": fv.kl}
            return {"bound": evaluate_bound(self.model, self.guide, x, self.eval_estimator, particles,
                                            inputs=inputs)}

    def _decorrelate_ranks(self) -> None:
        """Under torch.distributed every rank starts from the same seed (same initial weights); give
        each rank its own noise stream so the K shares of a minibatch get independent eps draws."""
        if self.world_size > 1:
            torch.manual_seed(self.seed + 7919 * self.rank + 104729 * self.epoch)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "config": self.config,
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict() if self.guide is not None else {},
            "objective": self.objective.state_dict() if self.objective is not None else {},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "lr_schedule": self.lr_schedule,
            "optimizer_kwargs": self.optimizer_kwargs,
            "kl_warmup": self.kl_warmup,
            "steps": self.steps,
            "lr_used": self._lr_used,
            "rng": _rng_state(self.perm_generator),
            "epoch": self.epoch,
            "train_samples": self.train_samples,
            "wall_seconds": self.wall_seconds,
            "metrics": list(self.metrics),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.guide is not None:
            self.guide.load_state_dict(state["guide"])
        if self.objective is not None and state.get("objective"):
            self.objective.load_state_dict(state["objective"])
        self._check_same_options(state)
        if state.get("scheduler"):  # made on the fresh optimizer first (torch's constructor sets its rates), then
            self.scheduler = make_scheduler(self.optimizer, self.lr_schedule, self.lr_schedule_kwargs,  # restored
                                            state["scheduler"].get("T_max"))
        load_optimizer_state(self.optimizer, state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.steps = int(state.get("steps", 0))
        self._lr_used = float(state.get("lr_used", self.optimizer.param_groups[0]["lr"]))
        _set_rng_state(state["rng"], self.perm_generator)
        self.epoch = int(state["epoch"])
        self.train_samples = int(state["train_samples"])
        self.wall_seconds = float(state["wall_seconds"])
        self.metrics = list(state["metrics"])
        self._decorrelate_ranks()

    def _check_same_options(self, state: dict) -> None:
        """A resumed run continues with the warm-up, the schedule and the optimiser options it was trained with (one
        line otherwise)."""
        saved_warmup, saved_schedule = int(state.get("kl_warmup", 0)), state.get("lr_schedule")
        if saved_warmup != self.kl_warmup:
            raise AevbInputError(f"the run was trained with kl_warmup={saved_warmup}, not {self.kl_warmup}: resume "
                                 "with the run's own warm-up")
        if saved_schedule != self.lr_schedule or (self.lr_schedule and not state.get("scheduler")):
            raise AevbInputError(f"the run was trained with lr_schedule={saved_schedule!r}, not {self.lr_schedule!r}: "
                                 "resume with the run's own schedule")
        saved_options = state.get("optimizer_kwargs", {})
        if saved_options != self.optimizer_kwargs:
            raise AevbInputError(f"the run was trained with optimizer_kwargs={saved_options}, not "
                                 f"{self.optimizer_kwargs}: resume with the run's own optimiser options")
        if (self.kl_warmup or self.lr_schedule) and "steps" not in state:
            raise AevbInputError("this checkpoint predates KL warm-up and learning-rate schedules (it has no step "
                                 "count): resume it without them")

    def resume(self) -> None:
        """Continue from ``run_dir/checkpoint.pt``; ``metrics.jsonl`` is rewritten to match it."""
        state = resume_state(self.resume_dir)
        recorded = state["config"].get("data_fingerprint")
        if recorded is not None and self.config.get("data_fingerprint") not in (None, recorded):
            raise AevbInputError(f"the data differ from those the run in {self.resume_dir} was trained on (their "
                                 "fingerprints differ): resume with the same rows, or start a new run")
        changed = changed_settings(state["config"], self.config)
        if changed:
            raise AevbInputError(f"the run in {self.resume_dir} was trained with other settings: "
                                 + ", ".join(f"{f}={state['config'][f]!r} (run) vs {self.config[f]!r}" for f in changed)
                                 + f": resume with the run's own (only {changeable_on_resume()} may change)")
        self.load_state_dict(state)
        saved_lr = state["config"].get("lr")
        if not self._lr_given and saved_lr is not None:  # the run's own rate, as the CLI's --resume without --lr
            self.lr = self.config["lr"] = float(saved_lr)
        if self.scheduler is None:
            for group in self.optimizer.param_groups:  # a lower learning rate on resume (e.g. after a divergence)
                group["lr"] = self.lr
        elif saved_lr is not None and self.lr != saved_lr:  # a scheduled run: the whole schedule scaled
            ratio = self.lr / float(saved_lr)
            for group in self.optimizer.param_groups:
                group["lr"] *= ratio
                if "initial_lr" in group:
                    group["initial_lr"] = self.lr
            if hasattr(self.scheduler, "base_lrs"):
                self.scheduler.base_lrs = [lr * ratio for lr in self.scheduler.base_lrs]
        if self.directory is not None:
            self.directory.write_metrics(self.metrics)

    # ------------------------------------------------------------------ training
    def step(self, x: torch.Tensor, idx: torch.Tensor, num_data: int) -> torch.Tensor:
        """One update of Algorithm 1; returns the (detached) loss -L^M (without the classification term), or
        -L_beta in a KL warm-up (:mod:`pyro_aevb.infer.warmup`)."""
        try:
            if self._own_update is not None:  # e.g. MCEM: E step + M steps
                loss = self._own_update(x, idx, num_data, self.optimizer)
            else:
                with self._kl_weighted(kl_weight(self.steps + 1, self.kl_warmup)):
                    loss = self.loss_fn(x, idx, num_data)
                total = loss
                if self.classification is not None:  # eq. (9): + alpha E_p~l[-log q(y|x)], apart from the bound
                    term = self.classification()
                    self._classification_sum += term.detach()
                    total = loss + term
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                if self._graph is not None and x.device.type == "cpu":  # before the update, as Pyro's validation
                    self._graph.raise_if_invalid(x, idx, num_data)      # (a free read on a CPU; on a GPU: at syncs)
                if self.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self._parameters(), self.clip_grad_norm)
                self.optimizer.step()
                loss = loss.detach()
            self._lr_used = self.optimizer.param_groups[0]["lr"]
            if self.scheduler is not None and is_per_step(self.scheduler):
                step_per_step(self.scheduler)
        except Exception as e:  # e.g. distribution validation in the user's guide: diverged, or the code's error?
            self._raise_if_diverged(e, x, idx, num_data, self.steps - self._epoch_first_step + 1,
                                    self.train_inputs)
            raise
        self.steps += 1
        return loss

    def _check_arguments(self, x: torch.Tensor, idx: torch.Tensor, num_data: int) -> None:
        """On the traced graph, the distribution arguments' validation of the steps since the last call (read at the
        loop's host syncs); the error classified as a divergence or the code's, as a failing step's is."""
        if self._graph is None:
            return
        try:
            self._graph.raise_if_invalid(x, idx, num_data)
        except Exception as e:
            self._raise_if_diverged(e, x, idx, num_data, self.steps - self._epoch_first_step, self.train_inputs)
            raise

    def _kl_weighted(self, beta: float):
        """The context of a step's loss: the latent sites' terms weighted by ``beta`` in a KL warm-up."""
        if not self.kl_warmup:
            return contextlib.nullcontext()
        self._annealed = self._annealed or beta < 1.0
        if self._graph is not None:
            self._graph.set_kl_weight(beta)
            return contextlib.nullcontext()
        self._latent_scale.scale = beta
        return self._latent_scale

    def _raise_if_diverged(self, error: Exception, x, idx, num_data, step: Optional[int], inputs: dict) -> None:
        """Raise :class:`TrainingDiverged` from ``error`` where the state shows a divergence
        (:mod:`pyro_aevb.divergence`): after at least one update, a non-finite parameter, or a distribution
        argument on ``x`` (with the conditioning ``inputs`` its call had) that is NaN/inf or on the edge of its
        support; otherwise return (``error`` is the code's)."""
        if isinstance(error, AevbError) or self.steps == 0:
            return
        if not self._parameters_finite():
            raise self._diverged("a parameter", "non-finite", step) from error
        found = diverged_argument(condition(self.model, inputs), condition(self.guide, inputs), x, idx, num_data)
        if found is not None:
            raise self._diverged(*found, step) from error

    def _parameters(self):
        for module in (self.model, self.guide):
            if module is not None:
                yield from module.parameters()

    def _parameters_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self._parameters())

    def _diverged(self, what: str, value, step: Optional[int]) -> TrainingDiverged:
        where = f"epoch {self.epoch + 1}" + (f", step {step}" if step is not None else "")
        saved = self.metrics[-1]["epoch"] if self.metrics else 0  # the last checkpoint (eval_every)
        if self.run_dir is not None and saved > 0:
            remedy = (f"the checkpoint of epoch {saved} in {self.run_dir} is untouched: --resume with a lower "
                      "--lr or --clip-grad-norm")
        else:
            remedy = "no epoch had finished, nothing was saved: run again with a lower --lr or --clip-grad-norm"
        return TrainingDiverged(
            f"training diverged: {what} became {value} at {where}. Likely cause: a learning rate too high for this "
            f"model, or a likelihood with a learned scale collapsing on point masses in the data (constant pixels, "
            f"exact zeros; --min-scale); {remedy}")

    def fit(self, epochs: Optional[int] = None, train_samples: Optional[int] = None) -> list:
        """Train until ``train_samples`` datapoints (or ``epochs`` full passes) have been seen **in total**, counted
        from the start of the run: ``fit(epochs=1)`` then ``fit(epochs=3)`` trains two more epochs (and equals
        ``fit(epochs=3)`` at once); a budget already reached trains nothing (a RuntimeWarning says so); a budget
        below 1 or not a whole number is refused.

        Returns a copy of the run's metric rows so far, one per evaluation (also in ``metrics.jsonl``).
        """
        if self.directory is not None:
            self.directory.reacquire()
        try:
            with local_param_store():
                return self._fit(epochs, train_samples)
        except KeyboardInterrupt as e:  # Ctrl-C in a notebook or script: say what was kept and how to go on
            if self.run_dir is not None and self.metrics and hasattr(e, "add_note"):  # (notes: Python >= 3.11)
                e.add_note(f"pyro-aevb: the checkpoint of epoch {self.metrics[-1]['epoch']} is in {self.run_dir}: "
                           "continue with Trainer(..., run_dir=..., resume=True) and fit")
            raise
        finally:
            self.close()

    def _fit(self, epochs, train_samples) -> list:
        x_train = self.data.train
        n = x_train.shape[0]
        budget = sample_budget(n, epochs, train_samples)
        if self.world_size > 1 and epochs is not None:  # partial minibatches are dropped: an epoch is N - N % M
            budget = int(epochs) * (n // self.batch_size) * self.batch_size
        if budget <= self.train_samples:
            asked = f"{epochs} epoch{'s' * (epochs != 1)}" if epochs is not None else f"{budget} training samples"
            warnings.warn(f"the run has already seen {self.train_samples} training samples (epoch {self.epoch}), as "
                          f"many as the budget asked ({asked}) or more: nothing was trained; give a larger budget to "
                          "continue",
                          RuntimeWarning, stacklevel=3)
        dynamic = self.data.binarize == "dynamic"
        m = self.batch_size
        share = m // self.world_size  # this rank's part of each global minibatch
        total_steps = -(-(budget - self.train_samples) // m) if budget > self.train_samples else 0
        if self.lr_schedule is not None and self.scheduler is None:  # cosine's default T_max: this budget in steps
            self.scheduler = make_scheduler(self.optimizer, self.lr_schedule, self.lr_schedule_kwargs,
                                            self.steps + budget_steps(n, m, budget - self.train_samples))
        bar = tqdm(total=total_steps, disable=not self.progress or not total_steps, unit="step", leave=False)
        try:  # the bar is cleared however the loop ends, so an error is printed on a line of its own
            loss_sum, steps = torch.zeros((), device=x_train.device), 0  # since the last metrics row
            self._classification_sum = torch.zeros((), device=x_train.device)
            while self.train_samples < budget:
                start_time = time.perf_counter()
                epoch_steps, self._epoch_first_step = 0, self.steps
                for batch in minibatches(n, m, self.perm_generator, x_train.device):
                    if self.train_samples >= budget:
                        break
                    if self.world_size > 1 and batch.shape[0] < m:
                        break  # data parallel: a partial last batch could leave a rank empty; skip it
                    idx = batch[self.rank * share:(self.rank + 1) * share] if self.world_size > 1 else batch
                    x = x_train[idx]
                    if dynamic:
                        x = torch.bernoulli(x)
                    loss_sum += self.step(x, idx, n)
                    steps += 1
                    epoch_steps += 1
                    self.train_samples += batch.shape[0]
                    bar.update(1)
                    if steps % self.log_every == 0:  # the only host sync in the loop, and the finite-loss guard
                        self._check_arguments(x, idx, n)
                        running = (loss_sum / steps).item()
                        if not math.isfinite(running):
                            raise self._diverged("the loss", running, steps)
                        bar.set_postfix(epoch=self.epoch + 1, bound=f"{-running / n:.2f}")
                if epoch_steps == 0:
                    raise AevbInputError(f"no minibatch fits the {n} training points (batch size {m})")
                self._check_arguments(x, idx, n)
                self.epoch += 1
                self._pending_seconds += time.perf_counter() - start_time
                if self.epoch % self.eval_every and self.train_samples < budget:
                    continue  # no row, evaluation or checkpoint at this epoch (eval_every)
                if self.world_size > 1:  # the bound over all ranks
                    torch.distributed.all_reduce(loss_sum)
                    loss_sum /= self.world_size
                running = (loss_sum / steps).item()
                if not math.isfinite(running):
                    self.epoch -= 1
                    raise self._diverged("the loss", running, steps)
                if not self._parameters_finite():
                    self.epoch -= 1
                    raise self._diverged("a parameter", "non-finite", steps)
                train_seconds, start_time = self._pending_seconds, time.perf_counter()
                # the running value is the bound only where every step since the last row trained on it (beta = 1)
                row = {"epoch": self.epoch, "train_samples": self.train_samples,
                       "train_running_elbo" if self.is_bound and not self._annealed else "train_objective": -running / n}
                if self._annealed:
                    row["beta"] = kl_weight(self.steps, self.kl_warmup)
                self._annealed = False
                if self.classification is not None:  # alpha * CE per datapoint, the running mean (not in the bound)
                    row["train_classification"] = (self._classification_sum / steps).item() / n
                loss_sum, steps, self._pending_seconds = torch.zeros((), device=x_train.device), 0, 0.0
                self._classification_sum = torch.zeros((), device=x_train.device)
                try:
                    train_eval = self.evaluate(self.eval_train, self.eval_train_inputs)
                    test_eval = self.evaluate(self.data.test, self.eval_inputs["test"])
                except Exception as e:  # the evaluation of parameters that finished the epoch finite
                    # the pair passed the contract when training started: a failure of its check now is the
                    # parameters' doing -- the error from the user's line, classified as any failing step's
                    cause = e.__cause__ if isinstance(e, AevbInputError) and e.__cause__ is not None else e
                    self.epoch -= 1  # the message names the epoch whose parameters failed
                    self._raise_if_diverged(cause, self.data.test, None, None, None, self.eval_inputs["test"])
                    self._raise_if_diverged(cause, self.eval_train, None, None, None, self.eval_train_inputs)
                    self.epoch += 1
                    if cause is not e:
                        raise cause from None
                    raise
                if test_eval:
                    row.update(train_elbo=train_eval["bound"], test_elbo=test_eval["bound"])
                    if "kl_theta" in test_eval:
                        row["kl_theta"] = test_eval["kl_theta"]
                    if self.data.seq_len:  # sequences of T frames: the bounds per frame too (pyro_aevb.sequences)
                        row.update(train_elbo_per_frame=row["train_elbo"] / self.data.seq_len,
                                   test_elbo_per_frame=row["test_elbo"] / self.data.seq_len)
                    if not (math.isfinite(row["train_elbo"]) and math.isfinite(row["test_elbo"])):
                        self.epoch -= 1
                        raise self._diverged("the evaluated bound", row["test_elbo"], None)
                row["lr"] = self._lr_used
                if self.scheduler is not None and not is_per_step(self.scheduler):  # plateau: once per evaluation
                    self.scheduler.step(row["test_elbo"])
                self.wall_seconds += train_seconds + time.perf_counter() - start_time
                row.update(epoch_seconds=train_seconds, wall_seconds=self.wall_seconds)
                self.metrics.append(row)
                if self.directory is not None:
                    self.directory.save_checkpoint(self.state_dict())
                    self.directory.write_metrics(self.metrics)
                    if self._config_pending:
                        self.write_config()
                        self._config_pending = False
                if self.rank == 0:
                    for callback in self.callbacks:
                        callback(self, row)
                if self.progress:
                    bounds = (f"train bound {row['train_elbo']:.2f}, test bound {row['test_elbo']:.2f}"
                              if "test_elbo" in row else f"train objective {row['train_objective']:.2f}")
                    bar.write(f"epoch {row['epoch']}: {bounds} ({self.train_samples} samples, {train_seconds:.1f}s)")
        finally:
            bar.close()
        return [dict(row) for row in self.metrics]
