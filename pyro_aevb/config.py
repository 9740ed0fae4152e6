"""Run configuration: everything needed to rebuild a model, guide and optimizer.

A :class:`RunConfig` is stored (as a plain dict) in every checkpoint, so
``load_run`` can rebuild the networks and ``--resume`` can continue training.
Defaults are the paper's MNIST setup (section 5): Nz = 20, 500 tanh hidden
units, Bernoulli decoder, M = 100, L = 1, Adagrad with step size 0.02,
weight decay from a N(0, I) prior on theta.
"""

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

import torch

from pyro_aevb.guides import (GUIDE_NAMES, ConvNormalGuide, DMMGuide, FullVBGuide, HierarchicalGuide, M2Guide,
                              get_guide)
from pyro_aevb.models import BayesianVAEModel, ConvVAEModel, DMMModel, HierarchicalVAEModel, M2Model, VAEModel

from .data import UINT8_MODES
from .errors import AevbInputError
from .nn import INITS
from .specs import build, is_import_path

OPTIMIZERS = ("adagrad", "adam")
#: built-in models by short name (``--model``); anything else is ``package.module:Class`` or ``file.py:Class``.
#: ``mlp``: the paper's VAE; ``conv``: convolutional encoder / transposed-convolution decoder; ``two_layer``: two
#: stochastic layers (Burda et al. 2015); ``dmm``: the deep Markov model of sequences (needs ``seq_len``); ``m2``:
#: the semi-supervised M2 of Kingma et al. (2014).  All but ``mlp`` bring their own guide (``--guide normal``).
MODELS = ("mlp", "conv", "two_layer", "dmm", "m2")
#: --model-kwargs each built-in model takes (the rest of its shape comes from the flags, see build_model_guide);
#: m2's --model-kwargs / --guide-kwargs go to its constructors over what the flags set (OWN_GUIDE)
MODEL_KWARGS = {"mlp": (), "conv": ("channels",), "two_layer": ("latent_dims", "hidden_dims"), "dmm": ()}
#: built-in models whose --model-kwargs and --guide-kwargs go to their constructors, over what the flags set
OWN_GUIDE = {"m2": "M2Guide: q(y|x) q(z|x,y)"}
#: the initialisation of each built-in model when --init is not given: the paper's N(0, 0.01^2) for the paper's
#: MLP (and the DMM, as measured in docs/beyond/dmm.md with --init given); PyTorch's default for the deeper
#: networks, which N(0, 0.01^2) starts nearly dead (models/conv.py), and for M2 (docs/beyond/m2.md)
DEFAULT_INIT = {"mlp": "paper", "conv": "torch", "two_layer": "torch", "dmm": "paper", "m2": "torch"}


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
    # objective (section 2.3)
    elbo: str = "analytic"
    num_particles: int = 1
    # Algorithm 1
    optimizer: str = "adagrad"
    lr: float = 0.02
    prior_precision: float = 1.0
    clip_grad_norm: Optional[float] = None
    batch_size: int = 100
    epochs: Optional[int] = None
    train_samples: Optional[int] = None
    seed: int = 0
    device: str = "cpu"
    # execution (issue 5): how the objective is evaluated; the numbers are the same
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
        need(self.lr > 0, f"learning rate must be > 0, got {self.lr}")
        for name in ("lr", "prior_precision", "min_scale"):
            need(math.isfinite(getattr(self, name)), f"{name.replace('_', ' ')} must be a finite number, got "
                                                     f"{getattr(self, name)}")
        need(self.clip_grad_norm is None or math.isfinite(self.clip_grad_norm),
             f"gradient-norm clip must be finite, got {self.clip_grad_norm}")
        need(0 <= self.seed < 2 ** 32, f"seed must be an integer in [0, 2^32), got {self.seed}")
        need(not (self.model == "mlp" and self.model_kwargs),
             "--model-kwargs applies to a model class of yours (and conv, two_layer); the built-in 'mlp' is set by "
             "--latent-dim, --hidden-dim, --num-hidden-layers, --activation, --likelihood, --min-scale and --init")
        need(not (self.model == "two_layer" and (self.latent_dim, self.hidden_dim, self.num_hidden_layers) != (
            20, 500, 1)), "--model two_layer is sized by --model-kwargs '{\"latent_dims\": [100, 50], "
                          "\"hidden_dims\": [[200, 200], [100, 100]]}' (its default, Burda et al.'s), not by "
                          "--latent-dim, --hidden-dim or --num-hidden-layers")
        need(not (self.model in ("conv", "two_layer") and self.guide in GUIDE_NAMES and self.guide != "normal"),
             f"--model {self.model} brings its own Gaussian q(z|x) (--guide normal); --guide {self.guide} builds an "
             "MLP encoder for --model mlp (or give a guide class of yours)")
        need(not (self.guide in GUIDE_NAMES and self.guide_kwargs and self.model not in OWN_GUIDE),
             f"--guide-kwargs applies to a guide class of yours; the built-in {self.guide!r} is set by --latent-dim, "
             "--hidden-dim, --num-hidden-layers, --activation and --init")
        need(not (self.model in OWN_GUIDE and self.guide in GUIDE_NAMES and self.guide != "normal"),
             f"--model {self.model} brings its own guide ({OWN_GUIDE.get(self.model)}); leave --guide out, or give "
             "a guide class of yours")
        need(self.uint8 is None or self.uint8 in UINT8_MODES,
             f"unknown uint8 reading {self.uint8!r}; choose from {list(UINT8_MODES)}")
        need(self.labels is None or self.labels >= 1, f"the number of labels must be >= 1, got {self.labels}")
        need(math.isfinite(self.alpha_over_n) and self.alpha_over_n >= 0,
             f"alpha / N of the classification term must be a finite number >= 0, got {self.alpha_over_n}")
        need(self.labelled_batch_size >= 1, f"the labelled batch size must be >= 1, got {self.labelled_batch_size}")
        need(self.min_scale >= 0, f"min scale must be >= 0, got {self.min_scale}")
        need(self.clip_grad_norm is None or self.clip_grad_norm > 0,
             f"gradient-norm clip must be > 0, got {self.clip_grad_norm}")
        need(self.prior_precision >= 0, f"prior precision must be >= 0, got {self.prior_precision}")
        need(self.model in MODELS or is_import_path(self.model),
             f"unknown model {self.model!r}; use one of {list(MODELS)} or package.module:Class / file.py:Class")
        need(self.guide in GUIDE_NAMES or is_import_path(self.guide),
             f"unknown guide {self.guide!r}; use one of {sorted(GUIDE_NAMES)} or package.module:Class / file.py:Class")
        need(self.init is None or self.init in INITS, f"unknown init {self.init!r}; choose from {list(INITS)}")
        need(self.init is None or self.model in MODELS or self.guide in GUIDE_NAMES,
             f"--init {self.init} sets the initialisation of the built-in networks, but the model and the guide "
             "are both classes of yours: initialise them in their constructors")
        need(self.seq_len is None or self.seq_len >= 1, f"--seq-len must be >= 1 frame, got {self.seq_len}")
        need(not (self.model in ("mlp", "conv", "two_layer", "m2") and self.seq_len is not None),
             f"--seq-len makes every datapoint a sequence of frames [T, D], but the {self.model} model treats "
             "datapoints as "
             "i.i.d. rows: use --model dmm or a sequence model of yours")
        need(not (self.model == "dmm" and self.seq_len is None),
             "--model dmm models sequences: give --seq-len T, the frames per sequence")
        need(not (self.model == "dmm" and self.guide in GUIDE_NAMES and self.guide != "normal"),
             f"--model dmm brings its own recurrent guide q(z_1:T | x_1:T); --guide {self.guide} is an i.i.d. "
             "q(z|x) of the mlp model (a guide class of yours, package.module:Class, is taken)")
        need(not (self.bayesian_decoder and self.model != "mlp"),
             "--bayesian-decoder makes the weights of the built-in MLP decoder (--model mlp) random; a model of "
             "yours declares its own global latents (outside the 'data' plate) and brings its own guide")
        need(isinstance(self.model_kwargs, dict) and isinstance(self.guide_kwargs, dict),
             "model_kwargs and guide_kwargs must be JSON objects")
        if self.model in MODEL_KWARGS:
            unknown = sorted(set(self.model_kwargs) - set(MODEL_KWARGS[self.model]))
            need(not unknown, f"--model-kwargs {unknown} do not apply to --model {self.model}; it takes "
                              f"{list(MODEL_KWARGS[self.model])}")
        need(self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose from {list(OPTIMIZERS)}")
        need(self.epochs is None or self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.train_samples is None or self.train_samples >= 1,
             f"training-sample budget must be >= 1, got {self.train_samples}")
        need(self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:"),
             f"unknown device {self.device!r}; use cpu, cuda, cuda:N or auto")
        if self.device.startswith("cuda"):
            need(torch.cuda.is_available(), f"device {self.device!r} requested but CUDA is not available")
        return self

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
        return cls(**{k: v for k, v in d.items() if k in names})


def build_model_guide(config: RunConfig, data_dim: int):
    """The model p_theta(x, z) and guide q_phi(z|x) that ``config`` describes.

    ``config.model`` is a built-in name or an import path built with ``model_kwargs``
    (:func:`pyro_aevb.specs.build`):

    * ``"mlp"``: the paper's :class:`~pyro_aevb.models.VAEModel`, from ``latent_dim``, ``hidden_dim``,
      ``num_hidden_layers``, ``activation``, ``likelihood``, ``min_scale`` and ``init``;
    * ``"conv"``: :class:`~pyro_aevb.models.ConvVAEModel` / :class:`~pyro_aevb.guides.ConvNormalGuide` on
      ``image_shape``, with ``latent_dim`` = J, ``hidden_dim`` x ``num_hidden_layers`` the dense layers between
      z and the feature maps, the same other flags, and ``model_kwargs={"channels": [16, 32]}``;
    * ``"two_layer"``: :class:`~pyro_aevb.models.HierarchicalVAEModel` / :class:`~pyro_aevb.guides.HierarchicalGuide`
      sized by ``model_kwargs`` (``latent_dims``, ``hidden_dims``; default Burda et al.'s 100/50 latents with
      200-200/100-100 deterministic layers) and ``activation``, ``likelihood``, ``min_scale``, ``init``;
    * ``"dmm"``: :class:`~pyro_aevb.models.DMMModel` / :class:`~pyro_aevb.guides.DMMGuide` of sequences
      (``seq_len``), its emission MLP, transition and guide RNN all ``hidden_dim`` wide;
    * ``"m2"``: :class:`~pyro_aevb.models.M2Model` with its own :class:`~pyro_aevb.guides.M2Guide`, K =
      ``num_classes``, from the same settings with ``model_kwargs`` and ``guide_kwargs`` over them.

    ``config.guide`` names a built-in q_phi(z|x) (:func:`pyro_aevb.guides.get_guide`; for ``conv`` and
    ``two_layer``, ``"normal"`` is the model's own encoder; for ``dmm`` its recurrent guide) or an import path (a
    guide class whose constructor takes ``model`` is given the model built here, to share modules with it).  With
    ``config.bayesian_decoder`` the decoder weights are random (appendix F):
    :class:`~pyro_aevb.models.BayesianVAEModel` and :class:`~pyro_aevb.guides.FullVBGuide`, q(theta) q_phi(z|x).
    Whether the pair follows the contract and suits the estimator is checked by the trainer
    (:mod:`pyro_aevb.contract`).
    """
    init = config.init or DEFAULT_INIT.get(config.model, "paper")
    if config.model == "m2":
        shared = dict(data_dim=data_dim, num_classes=config.num_classes or 10, latent_dim=config.latent_dim,
                      hidden_dims=config.hidden_dims, activation=config.activation, init=init)
        model = _construct(M2Model, {**shared, "likelihood": config.likelihood, "min_scale": config.min_scale,
                                     **config.model_kwargs}, "model")
        guide = (_construct(M2Guide, {**shared, **config.guide_kwargs}, "guide") if config.guide in GUIDE_NAMES
                 else build(config.guide, config.guide_kwargs, data_dim, "guide", model))
        return model, guide
    if config.model in ("conv", "two_layer"):
        model, paired = _beyond_the_paper(config, data_dim, init)
        guide = paired if config.guide in GUIDE_NAMES else build(config.guide, config.guide_kwargs, data_dim, "guide", model)
        return model, guide
    if config.model == "dmm":
        model = DMMModel(data_dim, config.latent_dim, config.hidden_dims, config.hidden_dim, config.likelihood,
                         config.activation, init, min_scale=config.min_scale)
    elif config.model == "mlp":
        if config.bayesian_decoder:
            model = BayesianVAEModel(data_dim, config.latent_dim, config.hidden_dims, config.likelihood,
                                     config.activation)
        else:
            model = VAEModel(data_dim, config.latent_dim, config.hidden_dims, config.likelihood, config.activation,
                             init, min_scale=config.min_scale)
    else:
        model = build(config.model, config.model_kwargs, data_dim, "model")
    if config.model == "dmm" and config.guide in GUIDE_NAMES:
        guide = DMMGuide(data_dim, config.latent_dim, config.hidden_dim, init=init)
    elif config.guide in GUIDE_NAMES:
        guide = get_guide(config.guide, data_dim, config.latent_dim, config.hidden_dims, config.activation,
                          init=init)
    else:
        guide = build(config.guide, config.guide_kwargs, data_dim, "guide", model)
    if config.bayesian_decoder:
        guide = FullVBGuide(model, guide, data_dim)
    return model, guide


def _beyond_the_paper(config: RunConfig, data_dim: int, init: str):
    """The model and its own guide for ``conv`` and ``two_layer`` (issue 9)."""
    kwargs, shared = dict(config.model_kwargs or {}), dict(activation=config.activation, init=init)
    likelihood = dict(likelihood=config.likelihood, min_scale=config.min_scale)
    if config.model == "conv":
        if config.image_shape is None:
            raise AevbInputError("--model conv needs images: mnist, frey, or an [N, H, W] array (the rows of an "
                                 "[N, D] array have no image shape)")
        kwargs.update(image_shape=config.image_shape, latent_dim=config.latent_dim, hidden_dims=config.hidden_dims)
        model_cls, guide_cls = ConvVAEModel, ConvNormalGuide
    else:
        model_cls, guide_cls = HierarchicalVAEModel, HierarchicalGuide
    try:
        return model_cls(data_dim, **kwargs, **likelihood, **shared), guide_cls(data_dim, **kwargs, **shared)
    except AevbInputError:
        raise
    except (TypeError, ValueError) as e:  # e.g. "channels": "wide" in --model-kwargs
        raise AevbInputError(f"cannot build --model {config.model} with --model-kwargs "
                             f"{json.dumps(config.model_kwargs)}: {type(e).__name__}: {e}") from None


def _construct(cls, kwargs: dict, role: str):
    """A built-in class from the flags and the JSON kwargs over them; a bad argument is one line (status 2)."""
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise AevbInputError(f"cannot build the {role} {cls.__name__} with {sorted(kwargs)}: {e}") from None
