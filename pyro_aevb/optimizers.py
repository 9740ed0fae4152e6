"""The optimisers of Algorithm 1's update by name: Adagrad (the paper, section 5) or Adam, with their torch options.

theta and phi are updated by torch's optimiser on the gradient of the minibatch bound (eq. 8); weight decay
``prior_precision`` on theta is the gradient of its N(0, I / precision) prior (the paper's "weight decay
corresponding to a prior"); phi gets none unless ``guide_weight_decay`` is set (not the paper's).  Each
optimiser's other constructor arguments are passed by their torch names
(``optimizer_kwargs``, CLI ``--optimizer-kwargs`` JSON): Adam's ``betas``, ``eps``; Adagrad's ``eps``,
``lr_decay``, ``initial_accumulator_value`` -- e.g. Burda et al.'s (2015) Adam with eps = 1e-4.
"""

import math
from typing import Optional

import torch

from .errors import AevbInputError


def _betas(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in value))


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _nonnegative(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


_betas.__doc__ = "two numbers in [0, 1), e.g. [0.9, 0.999]"
_positive.__doc__ = "a finite number > 0"
_nonnegative.__doc__ = "a finite number >= 0"
#: the torch constructor arguments each optimiser takes from ``optimizer_kwargs`` (lr and weight decay are set apart)
OPTIMIZER_OPTIONS = {"adagrad": {"eps": _positive, "lr_decay": _nonnegative, "initial_accumulator_value": _nonnegative},
                     "adam": {"betas": _betas, "eps": _positive}}


def check_optimizer_kwargs(name: str, kwargs: Optional[dict]) -> dict:
    """The torch constructor arguments ``kwargs`` of optimiser ``name`` (by their torch names), checked; a one-line
    :class:`AevbInputError` names what to change."""
    if name not in OPTIMIZER_OPTIONS:
        raise AevbInputError(f"unknown optimizer {name!r}; choose adagrad or adam")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise AevbInputError(f"optimizer_kwargs must be a dict (a JSON object), got {type(kwargs).__name__}")
    kwargs, checks = dict(kwargs or {}), OPTIMIZER_OPTIONS[name]
    unknown = sorted(set(kwargs) - set(checks))
    if unknown:
        raise AevbInputError(f"{name} takes no {', '.join(map(repr, unknown))} here; its options are {list(checks)} "
                             "(the learning rate and the weight decay have their own settings)")
    for key, value in kwargs.items():
        if not checks[key](value):
            raise AevbInputError(f"{name}'s {key} must be {checks[key].__doc__}, got {value!r}")
    if "betas" in kwargs:
        kwargs["betas"] = [float(b) for b in kwargs["betas"]]  # JSON and the checkpoint keep a list
    return kwargs


#: the Adagrad step size of our reproduction of the paper (docs/reproduction.md), the default of a new run
DEFAULT_LR = 0.02

#: the rates of the update, what each means and what it must be
_RATES = {"lr": ("the learning rate", _positive),
          "prior_precision": ("the prior precision (theta's weight decay)", _nonnegative),
          "guide_weight_decay": ("the guide's weight decay (on phi)", _nonnegative)}


def check_rates(**rates: float) -> None:
    """Refuse a learning rate ``lr`` that is not a finite number > 0 and weight decays (``prior_precision``,
    ``guide_weight_decay``) that are not finite numbers >= 0: one check for :func:`make_optimizer` and the run
    configuration."""
    for name, value in rates.items():
        what, ok = _RATES[name]
        if not ok(value):
            raise AevbInputError(f"{what} must be {ok.__doc__}, got {value!r}")


def make_optimizer(model: torch.nn.Module, guide: torch.nn.Module, name: str = "adagrad",
                   lr: float = DEFAULT_LR, prior_precision: float = 1.0, options: Optional[dict] = None,
                   guide_weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adagrad (the paper) or Adam; weight decay ``prior_precision`` on theta (the model) and
    ``guide_weight_decay`` on phi (the guide; 0, the paper: phi is variational, not a model parameter, but an L2
    penalty on it is a common regulariser of the recognition network); ``options``: the
    optimiser's other torch arguments (:data:`OPTIMIZER_OPTIONS`, e.g. Adam's ``{"betas": [0.9, 0.999],
    "eps": 1e-4}``).

    Every parameter is optimised once.  A parameter that model and guide share (e.g. a VampPrior whose
    p(z) = (1/K) sum_k q(z | u_k) runs the guide's encoder) shapes p(x, z), so it is a model parameter theta:
    it is in the model's group and gets the prior's weight decay; the guide's group holds the rest of phi.

    Call it after moving the networks to their device (the fused kernels are chosen per device)."""
    options = check_optimizer_kwargs(name, options)
    check_rates(lr=lr, prior_precision=prior_precision, guide_weight_decay=guide_weight_decay)
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    theta = [p for p in model.parameters() if p.requires_grad]
    shared = {id(p) for p in theta}
    phi = [p for p in guide.parameters() if p.requires_grad and id(p) not in shared] if guide is not None else []
    groups = [{"params": theta, "weight_decay": prior_precision}, {"params": phi, "weight_decay": guide_weight_decay}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise AevbInputError("model and guide have no trainable parameters")
    # torch's fused kernels (one kernel for all parameters) where every tensor allows it: Adam on CPU and
    # CUDA, Adagrad on CPU only (torch has no fused CUDA Adagrad; there it uses its multi-tensor kernels)
    devices = ("cpu",) if name == "adagrad" else ("cpu", "cuda")
    fused = all(p.is_floating_point() and p.device.type in devices for g in groups for p in g["params"])
    cls = torch.optim.Adagrad if name == "adagrad" else torch.optim.Adam
    return cls(groups, lr=lr, fused=fused or None, **options)
