"""Monte Carlo EM (appendix E), the baseline of Fig. 3: no recognition model.

Each training point x^(i) keeps a persistent sample z^(i) of its posterior
p_theta(z | x^(i)).  Per minibatch X^M:

* **E step (Monte Carlo)**: one HMC transition of every chain in the minibatch,
  10 leapfrog steps, driven by grad_z log p(z) + grad_z log p_theta(x|z)
  (:class:`pyro_aevb.estimators.BatchedHMC`); each datapoint's step size is
  adapted towards a 90% acceptance rate, ``log eps_i += rate * (a_i - 0.9)``
  (a Robbins-Monro update applied on every visit of x^(i));
* **M step**: 5 weight updates of theta on
  ``(N/M) sum_{i in X^M} log p_theta(x^(i), z^(i)) + log p(theta)`` (the model
  conditioned on the sampled z with ``poutine.condition``; the data plate
  supplies the N/M scale; weight decay supplies the N(0, I) prior), with Adagrad.

A minibatch counts M training samples, as on the paper's x-axis.
"""

import math

import torch
from pyro import poutine

from pyro_aevb.data import Dataset
from pyro_aevb.errors import AevbInputError
from pyro_aevb.estimators import BatchedHMC

from ._loop import MinibatchLoop


class MonteCarloEM(MinibatchLoop):
    """MCEM for ``model(x, idx, num_data)`` with latent site ``"z"`` (e.g. :class:`pyro_aevb.models.VAEModel`).

    :param num_steps: leapfrog steps per HMC transition (10 in appendix E).
    :param target_accept: acceptance rate the step sizes are adapted to (0.9).
    :param weight_updates: optimiser steps on theta per minibatch (5).
    """

    def __init__(self, model, data: Dataset, *, num_steps: int = 10, target_accept: float = 0.9,
                 weight_updates: int = 5, lr: float = 0.02, prior_precision: float = 1.0, batch_size: int = 100,
                 initial_step_size: float = 0.05, adapt_rate: float = 0.5):
        if int(weight_updates) < 1:
            raise AevbInputError(f"weight_updates must be >= 1, got {weight_updates}")
        if not 0.0 < target_accept < 1.0:
            raise AevbInputError(f"target_accept must be in (0, 1), got {target_accept}")
        self.model = model
        self.train_x = data.train
        self.batch_size = int(batch_size)
        self.num_steps, self.target_accept = int(num_steps), float(target_accept)
        self.weight_updates, self.adapt_rate = int(weight_updates), float(adapt_rate)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adagrad(params, lr=lr, weight_decay=prior_precision)
        n = self.train_x.shape[0]
        with torch.no_grad():  # chains start from the prior
            self.z = poutine.trace(poutine.uncondition(model)).get_trace(self.train_x).nodes["z"]["value"].clone()
        self.log_step_size = torch.full((n,), math.log(initial_step_size), device=self.train_x.device)
        self.accept_rate = float("nan")
        self._init_loop()

    def e_step(self, x, idx) -> torch.Tensor:
        """One HMC transition of the minibatch's chains; returns the acceptance probabilities."""
        hmc = BatchedHMC(self.model, x, self.num_steps)
        z, accept_prob = hmc.transition(self.z[idx], self.log_step_size[idx].exp())
        self.z[idx] = z
        self.log_step_size[idx] += self.adapt_rate * (accept_prob - self.target_accept)
        return accept_prob

    def m_loss(self, x, idx, num_data) -> torch.Tensor:
        """-(N/M) sum_i log p_theta(x_i, z_i) at the current samples."""
        conditioned = poutine.condition(self.model, data={"z": self.z[idx]})
        return -poutine.trace(conditioned).get_trace(x, idx, num_data).log_prob_sum()

    def step(self, x, idx, num_data) -> float:
        accept_prob = self.e_step(x, idx)
        self.accept_rate = accept_prob.mean().item()
        for _ in range(self.weight_updates):
            loss = self.m_loss(x, idx, num_data)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return loss.item()
