"""Learning-rate schedules by name, with torch's own schedulers (``torch.optim.lr_scheduler``).

Algorithm 1 updates theta, phi with a step size; a schedule makes it a function of the step.  Four, each with
its torch parameters by their torch names (``lr_schedule_kwargs``, CLI ``--lr-schedule-kwargs`` JSON), every
one optional except ``step_size`` and ``milestones``:

* ``step``: :class:`~torch.optim.lr_scheduler.StepLR`, lr_t = lr * gamma^floor((t - 1) / step_size) for the t-th
  optimisation step, t = 1, 2, ... (``step_size`` steps, ``gamma`` default 0.1);
* ``multistep``: :class:`~torch.optim.lr_scheduler.MultiStepLR`, lr_t = lr * gamma^(number of milestones < t): the
  rate drops by ``gamma`` (default 0.1) after each of the steps in ``milestones`` (non-decreasing, a step
  listed twice drops it twice; required) -- e.g. Burda et al.'s (2015) 3^i passes at 1e-3 * 10^(-i/7),
  ``pyro-aevb reproduce iwae``;
* ``cosine``: :class:`~torch.optim.lr_scheduler.CosineAnnealingLR`,
  lr_t = eta_min + (lr - eta_min) (1 + cos(pi (t - 1) / T_max)) / 2 while t - 1 <= T_max, eta_min after (``T_max``
  steps, default: the budget of the run's first ``fit`` in steps; ``eta_min`` default 0);
* ``plateau``: :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` on the test bound, stepped once per
  evaluation (every ``eval_every`` epochs): the rate is multiplied by ``factor`` (default 0.1) after ``patience``
  evaluations (default 10) without a test bound above the best by more than ``threshold`` nats (default 1e-4;
  ``threshold_mode`` default ``abs``, since torch's relative threshold in mode ``max`` counts a slightly worse
  bound as better when the bound is negative), with ``cooldown`` and ``min_lr``.

``step`` and ``cosine`` count optimisation steps, the unit of ``kl_warmup`` and of a budget in training samples
(an epoch is ceil(N / M) steps: 500 for MNIST's 50,000 images at M = 100).  The scheduler's state is saved in the
checkpoint, so a resumed run continues it exactly.
"""

import math
from typing import Optional

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR, ReduceLROnPlateau, StepLR

from .errors import AevbInputError


def _count(minimum: int):
    def check(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    check.__doc__ = f"an integer >= {minimum}"
    return check


def _number(low: float, high: float = math.inf, open_low: bool = False, open_high: bool = False):
    def check(value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    check.__doc__ = (f"a number in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
                     if math.isfinite(high) else f"a number {'>' if open_low else '>='} {low:g}")
    return check


def _milestones(value) -> bool:
    return (isinstance(value, list) and len(value) > 0 and all(_count(1)(v) for v in value)
            and all(a <= b for a, b in zip(value, value[1:])))


_milestones.__doc__ = "a non-empty non-decreasing list of integers >= 1 (optimisation steps)"


def _mode(value) -> bool:
    return value in ("abs", "rel")


_mode.__doc__ = "'abs' or 'rel'"

#: each schedule's torch class, its parameters with their checks, and the defaults that differ from torch's
SCHEDULES = {
    "step": (StepLR, {"step_size": _count(1), "gamma": _number(0, open_low=True)}, {}),
    "multistep": (MultiStepLR, {"milestones": _milestones, "gamma": _number(0, open_low=True)}, {}),
    "cosine": (CosineAnnealingLR, {"T_max": _count(1), "eta_min": _number(0)}, {}),
    "plateau": (ReduceLROnPlateau, {"factor": _number(0, 1, open_low=True, open_high=True), "patience": _count(0),
                                    "threshold": _number(0), "threshold_mode": _mode, "cooldown": _count(0),
                                    "min_lr": _number(0), "eps": _number(0)},
                {"threshold_mode": "abs"}),
}
REQUIRED = {"step": ("step_size",), "multistep": ("milestones",)}
EXAMPLE = {"step_size": 1000, "milestones": [1000, 4000]}


def check_schedule(name: Optional[str], kwargs: Optional[dict]) -> dict:
    """The parameters of schedule ``name`` (``None``: no schedule, no parameters), checked; a one-line
    :class:`AevbInputError` names what to change."""
    kwargs = dict(kwargs or {})
    if name is None:
        if kwargs:
            raise AevbInputError(f"learning-rate schedule parameters {sorted(kwargs)} were given without a schedule: "
                                 f"name one of {list(SCHEDULES)}")
        return kwargs
    if name not in SCHEDULES:
        raise AevbInputError(f"unknown learning-rate schedule {name!r}; choose from {list(SCHEDULES)}")
    _, checks, _ = SCHEDULES[name]
    unknown = sorted(set(kwargs) - set(checks))
    if unknown:
        raise AevbInputError(f"the {name} schedule takes no {', '.join(map(repr, unknown))}; its parameters are "
                             f"{list(checks)}")
    missing = [k for k in REQUIRED.get(name, ()) if k not in kwargs]
    if missing:
        raise AevbInputError(f"the {name} schedule needs {', '.join(missing)}, e.g. "
                             f"{{\"{missing[0]}\": {EXAMPLE[missing[0]]}}} (in optimisation steps)")
    for key, value in kwargs.items():
        if not checks[key](value):
            raise AevbInputError(f"the {name} schedule's {key} must be {checks[key].__doc__}, got {value!r}")
    return kwargs


def make_scheduler(optimizer: torch.optim.Optimizer, name: str, kwargs: Optional[dict],
                   total_steps: Optional[int] = None):
    """Torch's scheduler for ``name`` on ``optimizer``; ``total_steps`` is ``cosine``'s T_max when not given."""
    cls, _, defaults = SCHEDULES[name]
    kwargs = {**defaults, **check_schedule(name, kwargs)}
    if name == "cosine":
        kwargs.setdefault("T_max", max(1, int(total_steps or 1)))
    if name == "plateau":
        kwargs["mode"] = "max"  # the test bound: higher is better
    return cls(optimizer, **kwargs)


def is_per_step(scheduler) -> bool:
    """Whether ``scheduler`` is stepped after every optimisation step (``step``, ``multistep``, ``cosine``), rather
    than once per evaluation with the test bound (``plateau``)."""
    return isinstance(scheduler, LRScheduler) and not isinstance(scheduler, ReduceLROnPlateau)


def step_per_step(scheduler) -> None:
    """Advance a per-step scheduler by one optimisation step; ``cosine`` stays at ``eta_min`` after T_max steps
    (torch's cosine would climb back up)."""
    if isinstance(scheduler, CosineAnnealingLR) and scheduler.last_epoch >= scheduler.T_max:
        return
    scheduler.step()
