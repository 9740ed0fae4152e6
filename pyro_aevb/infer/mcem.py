"""Monte Carlo EM (appendix E), the baseline of Fig. 3: no recognition model.

Each training point x^(i) keeps a persistent sample z^(i) of its posterior
p_theta(z | x^(i)) (all local latent sites of the model, flattened by
:class:`~pyro_aevb.infer.hmc.LatentLayout`).  Per minibatch X^M:

* **E step (Monte Carlo)**: one HMC transition of every chain in the minibatch,
  10 leapfrog steps, driven by grad_z log p(z) + grad_z log p_theta(x|z)
  (:class:`~pyro_aevb.infer.hmc.BatchedHMC`); each datapoint's step size is
  adapted towards a 90% acceptance rate, ``log eps_i += rate * (a_i - 0.9)``
  (a Robbins-Monro update applied on every visit of x^(i));
* **M step**: 5 weight updates of theta on
  ``(N/M) sum_{i in X^M} log p_theta(x^(i), z^(i)) + log p(theta)`` (the model
  conditioned on the sampled z with ``poutine.condition``; the data plate
  supplies the N/M scale; the trainer's weight decay supplies the N(0, I) prior).

It plugs into :class:`~pyro_aevb.trainer.Trainer` with ``guide=None``
(``Trainer(model, None, data, elbo=MonteCarloEM(model, data.train))``), so it
gets the same loop, checkpoints (the chains and step sizes are buffers of this
module), ``--resume``, metrics and dynamic binarization as AEVB.  A minibatch
counts M training samples, as on the paper's x-axis.
"""

import math

import torch
from pyro import poutine

from ..contract import inspect_model, require_local_only, require_real_latents
from ..errors import AevbInputError
from .hmc import BatchedHMC, LatentLayout, prior_draw


class MonteCarloEM(torch.nn.Module):
    """MCEM for a model following the contract with real-valued local latents (any names).

    :param model: the generative model.
    :param x: the training data (one persistent chain per row).
    :param num_steps: leapfrog steps per HMC transition (10 in appendix E).
    :param target_accept: acceptance rate the step sizes are adapted to (0.9).
    :param weight_updates: optimiser steps on theta per minibatch (5).
    """

    is_bound = False
    eval_estimator = None  # no guide: no variational bound to report per epoch

    def __init__(self, model, x: torch.Tensor, *, num_steps: int = 10, target_accept: float = 0.9,
                 weight_updates: int = 5, initial_step_size: float = 0.05, adapt_rate: float = 0.5):
        super().__init__()
        if int(weight_updates) < 1:
            raise AevbInputError(f"weight_updates must be >= 1, got {weight_updates}")
        if not 0.0 < target_accept < 1.0:
            raise AevbInputError(f"target_accept must be in (0, 1), got {target_accept}")
        self._programs = (model,)
        self.structure = inspect_model(model, x)
        require_local_only(self.structure, "Monte Carlo EM")
        require_real_latents(model, x, self.structure, "Monte Carlo EM")
        self.num_steps, self.target_accept = int(num_steps), float(target_accept)
        self.weight_updates, self.adapt_rate = int(weight_updates), float(adapt_rate)
        values = prior_draw(model, (x,))  # chains start from the prior
        self.layout = LatentLayout(self.structure, values)
        self.register_buffer("z", self.layout.flatten(values).detach().clone())
        self.register_buffer("log_step_size", torch.full((x.shape[0],), math.log(initial_step_size), device=x.device))
        self.accept_rate = float("nan")

    def e_step(self, x, idx) -> torch.Tensor:
        """One HMC transition of the minibatch's chains; returns the acceptance probabilities."""
        hmc = BatchedHMC(self._programs[0], x, self.num_steps, layout=self.layout, structure=self.structure)
        z, accept_prob = hmc.transition(self.z[idx], self.log_step_size[idx].exp())
        self.z[idx] = z
        self.log_step_size[idx] += self.adapt_rate * (accept_prob - self.target_accept)
        return accept_prob

    def forward(self, x, idx=None, num_data=None) -> torch.Tensor:
        """-(N/M) sum_i log p_theta(x_i, z_i) at the current samples (the M-step loss)."""
        rows = idx if idx is not None else torch.arange(x.shape[0], device=x.device)
        conditioned = poutine.condition(self._programs[0], data=self.layout.unflatten(self.z[rows]))
        return -poutine.trace(conditioned).get_trace(x, idx, num_data).log_prob_sum()

    def update(self, x, idx, num_data, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """The E step, then ``weight_updates`` optimiser steps on theta; returns the last M-step loss."""
        self.accept_rate = self.e_step(x, idx).mean()
        for _ in range(self.weight_updates):
            loss = self(x, idx, num_data)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return loss.detach()
