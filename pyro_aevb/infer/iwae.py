"""The importance-weighted bound (Burda et al., 2015) as a training objective.

Per datapoint, with K proposals z_k ~ q_phi(z|x) of all its local latents::

    L_K(x) = E[ log (1/K) sum_k p_theta(x, z_k) / q_phi(z_k|x) ]  <=  log p_theta(x)

and the minibatch objective is (N/M) sum_{i in X^M} L_K(x^(i)) (eq. 8): the
plate's N/M scale applied *outside* the log-mean-exp.  (Pyro's ``RenyiELBO`` at
alpha = 0 applies the scaled log-probabilities inside it, which under
subsampling is ``logsumexp_k((N/M) log w_k)``, and has no
``differentiable_loss``.)  The weights come from
:func:`pyro_aevb.infer.weights.vectorized_log_weights` (any site names,
extra plates); a model with global latents is refused by the contract check,
since one theta per weight is not the full-VB bound.
"""

import math

import torch
from pyro.infer import ELBO

from ..contract import check_model_guide
from ..errors import AevbInputError
from .weights import vectorized_log_weights


class ImportanceWeightedELBO(ELBO):
    """The IWAE bound with K = ``num_particles`` >= 2 importance samples per datapoint.

    Usable like Pyro's ELBOs: ``loss``, ``loss_and_grads`` (for ``pyro.infer.SVI``), ``differentiable_loss``
    and ``elbo(model, guide)`` as a ``torch.nn.Module``.  The model/guide pair is checked against the
    contract on first use (:func:`~pyro_aevb.contract.check_model_guide` with ``"iwae"``).
    """

    def __init__(self, num_particles: int = 2, max_plate_nesting: int = 1, vectorize_particles: bool = True,
                 strict_enumeration_warning: bool = True):
        if int(num_particles) < 2:
            raise AevbInputError(f"the IWAE bound needs num_particles >= 2 (K = 1 is the ELBO), got {num_particles}")
        if not vectorize_particles:
            raise AevbInputError("the IWAE bound here is always vectorised over its K particles")
        super().__init__(num_particles=int(num_particles), max_plate_nesting=max_plate_nesting,
                         vectorize_particles=True, strict_enumeration_warning=strict_enumeration_warning)
        self._checked = {}

    def _structure(self, model, guide, args):
        key = (id(model), id(guide))
        if key not in self._checked:
            x = args[0]
            num_data = args[2] if len(args) > 2 else None
            self._checked[key] = check_model_guide(model, guide, x, "iwae", num_data=num_data)
        return self._checked[key]

    def _bound(self, model, guide, args, kwargs) -> torch.Tensor:
        """(N/M) sum_i [logsumexp_k log w_ik - log K], differentiable through reparameterised z."""
        if kwargs:
            raise AevbInputError(f"the IWAE bound takes the contract's positional arguments (x, idx, num_data), "
                                 f"not keywords {sorted(kwargs)}")
        structure = self._structure(model, guide, args)
        log_w, scale = vectorized_log_weights(model, guide, args, self.num_particles, structure)
        return scale * (torch.logsumexp(log_w, dim=0) - math.log(self.num_particles)).sum()

    def _get_trace(self, model, guide, args, kwargs):
        """Not used: the K weights of every datapoint come from one vectorised pass (``_bound``)."""
        raise NotImplementedError("ImportanceWeightedELBO computes its weights in one vectorised pass")

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        return -self._bound(model, guide, args, kwargs)

    @torch.no_grad()
    def loss(self, model, guide, *args, **kwargs) -> float:
        return -self._bound(model, guide, args, kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()
