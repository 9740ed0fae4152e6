"""Run configuration: everything needed to rebuild a model, guide and optimizer.

A :class:`RunConfig` is stored (as a plain dict) in every checkpoint, so
``load_run`` can rebuild the networks and ``--resume`` can continue training.
Defaults are the paper's MNIST setup (section 5): Nz = 20, 500 tanh hidden
units, Bernoulli decoder, M = 100, L = 1, Adagrad with step size 0.02,
weight decay from a N(0, I) prior on theta.
"""

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

import torch

from pyro_aevb.guides import GUIDE_NAMES, get_guide

from . import builtin_models  # noqa: F401 -- registers the built-in models (pyro_aevb.registry)
from .errors import AevbInputError
from .infer.warmup import check_warmup_steps
from .nn import INITS
from .optimizers import DEFAULT_LR, check_optimizer_kwargs, check_rates
from .registry import SHAPE_SETTINGS, lookup, model_names
from .schedules import check_schedule
from .specs import build, is_import_path

OPTIMIZERS = ("adagrad", "adam")


def _flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")


@dataclass
class RunConfig:
    # data
    dataset: str = "mnist"
    data_path: Optional[str] = None
    binarize: str = "none"
    # what uint8 values of an array file are: "pixels" (/255) or "counts" (kept); None = not said (pixels, with a
    # warning), recorded as the reading used when training starts, so load_run/evaluate reload the same data
    uint8: Optional[str] = None
    seq_len: Optional[int] = None  # T: datapoints are windows of T frames [T, D] (pyro_aevb.sequences)
    # model p(z) p(x|z) and guide q(z|x): built-in names, or import paths with JSON kwargs (pyro_aevb.specs)
    model: str = "mlp"
    model_kwargs: dict = field(default_factory=dict)
    guide_kwargs: dict = field(default_factory=dict)
    # init of the built-in networks: paper = N(0, 0.01^2) (section 5); torch = PyTorch's default layer
    # initialisation; None = not given (paper for built-in networks; classes of yours initialise themselves)
    init: Optional[str] = None
    data_dim: Optional[int] = None  # D, recorded when training starts so the run can be rebuilt
    image_shape: Optional[list] = None  # (H, W) of image data, recorded likewise (the conv model folds rows by it)
    latent_dim: int = 20
    hidden_dim: int = 500
    num_hidden_layers: int = 1
    activation: str = "tanh"
    likelihood: str = "bernoulli"
    min_scale: float = 0.0  # floor added to a learned likelihood scale (gaussian, laplace)
    guide: str = "normal"  # q(z|x): a name in pyro_aevb.guides.GUIDE_NAMES
    bayesian_decoder: bool = False  # full VB over the decoder weights (appendix F)
    # semi-supervised training: keep this many training labels, balanced over the classes (pyro_aevb.labels);
    # num_classes = K, recorded from the data when training starts (for a model of labels, e.g. m2)
    labels: Optional[int] = None
    num_classes: Optional[int] = None
    # the classification term of eq. (9) in a run with labels: alpha = alpha_over_n * N, from labelled_batch_size
    # labelled rows per step (pyro_aevb.labels.ClassificationTerm)
    alpha_over_n: float = 100.0
    labelled_batch_size: int = 100
    # what the run was trained on, recorded when training starts: the data's fingerprint, and whether the rows
    # are stored in the run directory (data.pt; rows made in Python) rather than found again by name
    data_fingerprint: Optional[str] = None
    data_stored: bool = False
    train_rows: Optional[int] = None  # the run used the first rows of the named dataset's splits (Dataset.head)
    test_rows: Optional[int] = None
    # objective (section 2.3)
    elbo: Optional[str] = None  # None: B where it applies, else A (ModelStructure.default_estimator); resolved
    # when the run starts and recorded
    num_particles: int = 1
    # Algorithm 1
    optimizer: str = "adagrad"
    optimizer_kwargs: dict = field(default_factory=dict)  # its other torch arguments (Adam's betas, eps; Trainer)
    lr: float = DEFAULT_LR
    prior_precision: float = 1.0
    guide_weight_decay: float = 0.0  # L2 on phi (not the paper's)
    clip_grad_norm: Optional[float] = None
    # training options (docs/training_options.md): a linear KL warm-up over this many optimisation steps (0: none),
    # a learning-rate schedule by name with torch's parameters (pyro_aevb.schedules), the torch threads used
    kl_warmup: int = 0
    lr_schedule: Optional[str] = None
    lr_schedule_kwargs: dict = field(default_factory=dict)
    threads: Optional[int] = None
    batch_size: int = 100
    epochs: Optional[int] = None
    train_samples: Optional[int] = None
    seed: int = 0
    device: str = "cpu"
    # execution: how the objective is evaluated (the traced graph or Pyro's interpreter); the numbers are the same
    backend: str = "auto"
    compile: bool = False

    def validate(self) -> "RunConfig":
        def need(cond, msg):
            if not cond:
                raise AevbInputError(msg)

        need(self.latent_dim >= 1, f"latent dim must be >= 1, got {self.latent_dim}")
        need(self.hidden_dim >= 1, f"hidden dim must be >= 1, got {self.hidden_dim}")
        need(self.num_hidden_layers >= 1, f"number of hidden layers must be >= 1, got {self.num_hidden_layers}")
        need(self.num_particles >= 1, f"num particles must be >= 1, got {self.num_particles}")
        need(self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}")
        check_rates(lr=self.lr, prior_precision=self.prior_precision, guide_weight_decay=self.guide_weight_decay)
        need(math.isfinite(self.min_scale), f"min scale must be a finite number, got {self.min_scale}")
        need(self.clip_grad_norm is None or math.isfinite(self.clip_grad_norm),
             f"gradient-norm clip must be finite, got {self.clip_grad_norm}")
        need(0 <= self.seed < 2 ** 32, f"seed must be an integer in [0, 2^32), got {self.seed}")
        entry = lookup(self.model)  # the registered model's own rules (pyro_aevb.registry); None: a class of yours
        self._validate_model(entry, need)
        need(not (self.guide in GUIDE_NAMES and self.guide_kwargs and not (entry and entry.guide_kwargs)),
             f"--guide-kwargs applies to a guide class of yours; the built-in {self.guide!r} is set by --latent-dim, "
             "--hidden-dim, --num-hidden-layers, --activation and --init")
        need(self.labels is None or self.labels >= 1, f"the number of labels must be >= 1, got {self.labels}")
        need(math.isfinite(self.alpha_over_n) and self.alpha_over_n >= 0,
             f"alpha / N of the classification term must be a finite number >= 0, got {self.alpha_over_n}")
        need(self.labelled_batch_size >= 1, f"the labelled batch size must be >= 1, got {self.labelled_batch_size}")
        need(self.min_scale >= 0, f"min scale must be >= 0, got {self.min_scale}")
        need(self.clip_grad_norm is None or self.clip_grad_norm > 0,
             f"gradient-norm clip must be > 0, got {self.clip_grad_norm}")
        need(entry is not None or is_import_path(self.model),
             f"unknown model {self.model!r}; use one of {list(model_names())} or package.module:Class / file.py:Class")
        need(self.guide in GUIDE_NAMES or is_import_path(self.guide),
             f"unknown guide {self.guide!r}; use one of {sorted(GUIDE_NAMES)} or package.module:Class / file.py:Class")
        need(self.init is None or self.init in INITS, f"unknown init {self.init!r}; choose from {list(INITS)}")
        need(self.init is None or entry is not None or self.guide in GUIDE_NAMES,
             f"--init {self.init} sets the initialisation of the built-in networks, but the model and the guide "
             "are both classes of yours: initialise them in their constructors")
        need(self.seq_len is None or self.seq_len >= 1, f"--seq-len must be >= 1 frame, got {self.seq_len}")
        need(isinstance(self.model_kwargs, dict) and isinstance(self.guide_kwargs, dict),
             "model_kwargs and guide_kwargs must be JSON objects")
        check_warmup_steps(self.kl_warmup)
        need(isinstance(self.lr_schedule_kwargs, dict), "lr_schedule_kwargs must be a JSON object")
        check_schedule(self.lr_schedule, self.lr_schedule_kwargs)
        need(self.threads is None or (isinstance(self.threads, int) and self.threads >= 1),
             f"the number of threads must be >= 1, got {self.threads}")
        need(self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose from {list(OPTIMIZERS)}")
        check_optimizer_kwargs(self.optimizer, self.optimizer_kwargs)
        need(self.epochs is None or self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.train_samples is None or self.train_samples >= 1,
             f"training-sample budget must be >= 1, got {self.train_samples}")
        need(self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:"),
             f"unknown device {self.device!r}; use cpu, cuda, cuda:N or auto")
        if self.device.startswith("cuda"):
            need(torch.cuda.is_available(), f"device {self.device!r} requested but CUDA is not available")
        return self

    def _validate_model(self, entry, need) -> None:
        """The rules a registered model declares (:class:`~pyro_aevb.registry.ModelEntry`)."""
        if entry is None:
            need(not self.bayesian_decoder,
                 "--bayesian-decoder makes the weights of the built-in MLP decoder (--model mlp) random; a model of "
                 "yours declares its own global latents (outside the 'data' plate) and brings its own guide")
            return
        name, takers = entry.name, [n for n in model_names() if lookup(n).model_kwargs != ()]
        need(isinstance(self.model_kwargs, dict), "model_kwargs and guide_kwargs must be JSON objects")
        if entry.model_kwargs == ():
            need(not self.model_kwargs, f"--model-kwargs applies to a model class of yours (and "
                                        f"{', '.join(takers)}); the built-in {name!r} is set by "
                                        f"{entry.sized_by or 'the shape flags'}")
        elif entry.model_kwargs is not None:
            unknown = sorted(set(self.model_kwargs) - set(entry.model_kwargs))
            need(not unknown, f"--model-kwargs {unknown} do not apply to --model {name}; it takes "
                              f"{list(entry.model_kwargs)}")
        default = RunConfig()
        unused = [_flag(s) for s in SHAPE_SETTINGS if s not in entry.settings and getattr(self, s) != getattr(default, s)]
        need(not unused, f"--model {name} is sized by {entry.sized_by or 'the settings its registration lists'}, not "
                         f"by {', '.join(unused)}")
        need(not (entry.own_guide and self.guide in GUIDE_NAMES and self.guide != "normal"),
             f"--model {name} brings its own guide ({entry.own_guide}); --guide {self.guide} is a q(z|x) of the mlp "
             "model: leave --guide out, or give a guide class of yours")
        need(not (entry.sequences is False and self.seq_len is not None),
             f"--seq-len makes every datapoint a sequence of frames [T, D], but the {name} model treats datapoints "
             "as i.i.d. rows: use --model dmm or a sequence model of yours")
        need(not (entry.sequences is True and self.seq_len is None),
             f"--model {name} models sequences: give --seq-len T, the frames per sequence")
        need(not (self.bayesian_decoder and entry.wrap_guide is None),
             "--bayesian-decoder makes the weights of the built-in MLP decoder (--model mlp) random; a model of "
             "yours declares its own global latents (outside the 'data' plate) and brings its own guide")

    @property
    def hidden_dims(self):
        return (self.hidden_dim,) * self.num_hidden_layers

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if d.get("backend") == "fused":  # a run from before the traced graph: its fused path is now the graph
            d["backend"] = "auto"
        return cls(**d)


def build_model_guide(config: RunConfig, data_dim: int):
    """The model p_theta(x, z) and guide q_phi(z|x) that ``config`` describes.

    ``config.model`` is a registered name (:mod:`pyro_aevb.registry`; the built-ins in
    :mod:`pyro_aevb.builtin_models`), built from the run's settings by its registration, or an import path built
    with ``model_kwargs`` (:func:`pyro_aevb.specs.build`).  The guide is a class of yours when ``config.guide`` is
    an import path (a guide class whose constructor takes ``model`` is given the model built here, to share modules
    with it), else the one the model brings, else the built-in q_phi(z|x) ``config.guide`` names
    (:func:`pyro_aevb.guides.get_guide`) from the same settings.  Whether the pair follows the contract and suits
    the estimator is checked by the trainer (:mod:`pyro_aevb.contract`).
    """
    entry = lookup(config.model)
    init = config.init or (entry.init if entry is not None else "paper")
    if entry is None:
        model, own_guide = build(config.model, config.model_kwargs, data_dim, "model"), None
    else:
        model, own_guide = entry.build(config, data_dim, init)
    if is_import_path(config.guide):
        guide = build(config.guide, config.guide_kwargs, data_dim, "guide", model)
    elif own_guide is not None:
        guide = own_guide
    else:
        guide = get_guide(config.guide, data_dim, config.latent_dim, config.hidden_dims, config.activation, init=init)
    if entry is not None and entry.wrap_guide is not None:
        guide = entry.wrap_guide(config, model, guide, data_dim)
    return model, guide
