"""Run configuration: everything needed to rebuild a model, guide and optimizer.

A :class:`RunConfig` is stored (as a plain dict) in every checkpoint, so
``load_run`` can rebuild the networks and ``--resume`` can continue training.
Defaults are the paper's MNIST setup (section 5): Nz = 20, 500 tanh hidden
units, Bernoulli decoder, M = 100, L = 1, Adagrad with step size 0.02,
weight decay from a N(0, I) prior on theta.
"""

from dataclasses import asdict, dataclass, fields
from typing import Optional

import torch

from .errors import AevbInputError

OPTIMIZERS = ("adagrad", "adam")


@dataclass
class RunConfig:
    # data
    dataset: str = "mnist"
    data_path: Optional[str] = None
    binarize: str = "none"
    # model p(z) p(x|z) and guide q(z|x)
    latent_dim: int = 20
    hidden_dim: int = 500
    num_hidden_layers: int = 1
    activation: str = "tanh"
    likelihood: str = "bernoulli"
    guide: str = "normal"  # q(z|x): a name in pyro_aevb.guides.GUIDE_NAMES
    bayesian_decoder: bool = False  # full VB over the decoder weights (appendix F)
    # objective (section 2.3)
    elbo: str = "analytic"
    num_particles: int = 1
    # Algorithm 1
    optimizer: str = "adagrad"
    lr: float = 0.02
    prior_precision: float = 1.0
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
        need(self.prior_precision >= 0, f"prior precision must be >= 0, got {self.prior_precision}")
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
    """The model p_theta(x, z) and amortized guide q_phi(z|x) that ``config`` describes.

    ``config.guide`` names q_phi(z|x) (:func:`pyro_aevb.guides.get_guide`).  With
    ``config.bayesian_decoder`` the decoder weights are random (appendix F): the
    model is :class:`~pyro_aevb.models.BayesianVAEModel` and the guide
    :class:`~pyro_aevb.guides.FullVBGuide`, q(theta) q_phi(z|x).  Estimator B
    (``elbo="analytic"``) is refused with :class:`AevbInputError` when a latent
    site has no closed-form KL (:func:`~pyro_aevb.guides.check_analytic_kl`).
    """
    from pyro_aevb.guides import FullVBGuide, check_analytic_kl, get_guide
    from pyro_aevb.models import BayesianVAEModel, VAEModel

    local = get_guide(config.guide, data_dim, config.latent_dim, config.hidden_dims, config.activation)
    if config.bayesian_decoder:
        model = BayesianVAEModel(data_dim, config.latent_dim, config.hidden_dims, config.likelihood,
                                 config.activation)
        guide = FullVBGuide(model, local, data_dim)
    else:
        model = VAEModel(data_dim, config.latent_dim, config.hidden_dims, config.likelihood, config.activation)
        guide = local
    if config.elbo == "analytic":
        with torch.random.fork_rng(devices=[]):  # the check's trace must not shift the training RNG stream
            check_analytic_kl(model, guide, torch.full((2, data_dim), 0.5))
    return model, guide
