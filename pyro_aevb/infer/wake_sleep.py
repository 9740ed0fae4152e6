"""Wake-sleep (Hinton, Dayan, Frey & Neal, 1995), the baseline of Figs. 2 and 3.

Same generative model p_theta(z) p_theta(x|z) and recognition model q_phi(z|x)
as AEVB, but two separate objectives:

* **wake phase** (theta): z ~ q_phi(z|x) for real data, held fixed, and
  ``max_theta  (N/M) sum_{i in X^M} log p_theta(x^(i), z^(i)) + log p(theta)``;
* **sleep phase** (phi): dreamed pairs (z, x) ~ p_theta(z) p_theta(x|z), and
  ``max_phi  (N/M) sum_{i=1}^{M} log q_phi(z^(i) | x^(i))``, i.e. minimise
  KL(p_theta(z|x) || q_phi(z|x)) averaged over the model's own data.

Both are plain Pyro programs on whatever latent sites the model has: the wake
loss is the model replayed on a detached guide trace (``poutine.replay``), the
dream is the model with its observation removed (``poutine.uncondition``), and
the sleep loss is the guide conditioned on *all* the dreamed latents
(``poutine.condition``) and run on the dreamed observation.  Both run in the
``data`` plate subsampled by the minibatch, so every term carries the N/M
scale of eq. (8).  The wake loss has no gradient in phi and the sleep loss none
in theta, so one backward pass of their sum performs both phases; the
:class:`~pyro_aevb.trainer.Trainer` runs it with the same loop, optimiser
(weight decay = N(0, I) prior on theta only), checkpoints, ``--resume`` and
dynamic binarization as AEVB.

Pyro's ``ReweightedWakeSleep`` with one particle and sleep-phi is the same
algorithm, but it runs the guide on the *observed* arguments rather than the
dreamed x (so an amortised q(z|x) would be trained on mismatched pairs) and
its docs exclude minibatching; hence this explicit version.  The guide's input
is the model's argument x, so the model must observe exactly one site, with
x's shape (checked), and have no global latents.
"""

import torch
from pyro import poutine

from ..contract import check_model_guide, require_local_only
from ..errors import AevbInputError


class WakeSleep(torch.nn.Module):
    """The wake-sleep loss for :class:`~pyro_aevb.trainer.Trainer` (``Trainer(model, guide, data, elbo=WakeSleep(model, guide, data.train))``).

    :param model: generative model following the contract (:mod:`pyro_aevb.contract`).
    :param guide: recognition model.
    :param x: data to check the pair on (e.g. ``data.train``).
    """

    #: the per-epoch test metric is the variational bound of q_phi with estimator B (the paper's Fig. 2)
    is_bound = False

    def __init__(self, model, guide, x: torch.Tensor):
        super().__init__()
        self._programs = (model, guide)  # not submodules: the trainer checkpoints them itself
        self.structure = check_model_guide(model, guide, x, None)
        require_local_only(self.structure, "wake-sleep")
        if len(self.structure.observed) != 1:
            raise AevbInputError(f"wake-sleep runs the guide on the dreamed observation, so the model must observe "
                                 f"exactly one site; it observes {list(self.structure.observed)}")
        self.observed = self.structure.observed[0]
        self.eval_estimator = "analytic"
        try:
            check_model_guide(model, guide, x, "analytic")
        except AevbInputError:
            self.eval_estimator = "trace"

    def wake_loss(self, x, idx, num_data) -> torch.Tensor:
        """-(N/M) sum_i log p_theta(x_i, z_i), z_i ~ q_phi(z|x_i) held fixed."""
        model, guide = self._programs
        with torch.no_grad():
            guide_trace = poutine.trace(guide).get_trace(x, idx, num_data)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, idx, num_data)
        return -model_trace.log_prob_sum()

    def sleep_loss(self, x, idx, num_data) -> torch.Tensor:
        """-(N/M) sum_i log q_phi(z_i | x_i) on dreams (z_i, x_i) ~ p_theta(z, x)."""
        model, guide = self._programs
        with torch.no_grad():
            dream = poutine.trace(poutine.uncondition(model)).get_trace(x, idx, num_data)
        latents = {name: dream.nodes[name]["value"] for name in self.structure.local_latents}
        x_dream = dream.nodes[self.observed]["value"]
        if x_dream.shape != x.shape:
            raise AevbInputError(f"wake-sleep runs the guide on the dreamed {self.observed!r}, which has shape "
                                 f"{list(x_dream.shape)}, not x's {list(x.shape)}")
        guide_trace = poutine.trace(poutine.condition(guide, data=latents)).get_trace(x_dream, idx, num_data)
        return -guide_trace.log_prob_sum()

    def forward(self, x, idx=None, num_data=None) -> torch.Tensor:
        """Wake loss + sleep loss (their gradients touch theta and phi respectively)."""
        return self.wake_loss(x, idx, num_data) + self.sleep_loss(x, idx, num_data)
