"""What the trainer relies on of an objective other than an SGVB estimator, declared.

:class:`~pyro_aevb.trainer.Trainer` takes ``elbo`` as an estimator name (A, B, IWAE: Pyro's ELBOs) or as an
objective module -- wake-sleep (:class:`~pyro_aevb.infer.WakeSleep`), Monte Carlo EM
(:class:`~pyro_aevb.infer.MonteCarloEM`) or one of yours -- that follows :class:`Objective`:

* ``objective(x, idx, num_data)`` returns the loss of the minibatch (in units of the whole dataset, as Pyro's
  ELBOs: the ``data`` plate scales by N/M), which the trainer differentiates and steps;
* ``is_bound``: whether minus that loss is a lower bound of log p(X) (then reported as ``train_running_elbo``,
  else ``train_objective``);
* ``eval_estimator``: the estimator (``"trace"``, ``"analytic"``) of the per-epoch bound with the guide, or
  ``None`` for no variational bound;
* ``state_dict()`` / ``load_state_dict(state)``: its own state, checkpointed with the run (a ``torch.nn.Module``
  has both).

One that updates the parameters itself (MCEM: an E step of HMC, then M steps) is an :class:`UpdatingObjective`:
``update(x, idx, num_data, optimizer)`` makes the step and returns the detached loss.
"""

from typing import Optional, Protocol, runtime_checkable

import torch


@runtime_checkable
class Objective(Protocol):
    is_bound: bool
    eval_estimator: Optional[str]

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, num_data: int) -> torch.Tensor: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict): ...


@runtime_checkable
class UpdatingObjective(Objective, Protocol):
    def update(self, x: torch.Tensor, idx: torch.Tensor, num_data: int,
               optimizer: torch.optim.Optimizer) -> torch.Tensor: ...
