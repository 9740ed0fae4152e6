"""Wake-sleep (Hinton, Dayan, Frey & Neal, 1995), the baseline of Figs. 2 and 3.

Same generative model p_theta(z) p_theta(x|z) and recognition model q_phi(z|x)
as AEVB (``VAEModel`` and ``AmortizedNormalGuide``), but two separate objectives:

* **wake phase** (theta): z ~ q_phi(z|x) for real data, held fixed, and
  ``max_theta  (N/M) sum_{i in X^M} log p_theta(x^(i), z^(i)) + log p(theta)``;
* **sleep phase** (phi): dreamed pairs (z, x) ~ p_theta(z) p_theta(x|z), and
  ``max_phi  (N/M) sum_{i=1}^{M} log q_phi(z^(i) | x^(i))``, i.e. minimise
  KL(p_theta(z|x) || q_phi(z|x)) averaged over the model's own data.

Both are plain Pyro programs: the wake loss is the model replayed on a detached
guide trace (``poutine.replay``), the dream is the model with its observation
removed (``poutine.uncondition``), and the sleep loss is the guide conditioned
on the dreamed z (``poutine.condition``) and run on the dreamed x.  Both run in
the ``data`` plate subsampled by the minibatch indices, so every term carries
the N/M scale of eq. (8).  The wake loss has no gradient in phi and the sleep
loss none in theta, so one backward pass of their sum performs both phases;
the optimiser is the one AEVB uses (Adagrad, weight decay = N(0, I) prior on
theta only).

Pyro's ``ReweightedWakeSleep`` with one particle and sleep-phi is the same
algorithm, but it runs the guide on the *observed* arguments rather than the
dreamed x (so an amortised q(z|x) would be trained on mismatched pairs) and
its docs exclude minibatching; hence this explicit version.
"""

import torch
from pyro import poutine

from pyro_aevb.data import Dataset
from pyro_aevb.trainer import make_optimizer

from ._loop import MinibatchLoop


class WakeSleep(MinibatchLoop):
    """Minibatch wake-sleep for ``model(x, idx, num_data)`` / ``guide(x, idx, num_data)`` with latent site ``"z"``.

    :param model: generative model (e.g. :class:`pyro_aevb.models.VAEModel`).
    :param guide: recognition model (e.g. :class:`pyro_aevb.guides.AmortizedNormalGuide`).
    :param data: training data (``data.train`` is used).
    :param optimizer, lr, prior_precision, batch_size: as for :class:`pyro_aevb.Trainer`.
    """

    def __init__(self, model, guide, data: Dataset, *, optimizer: str = "adagrad", lr: float = 0.02,
                 prior_precision: float = 1.0, batch_size: int = 100):
        self.model, self.guide = model, guide
        self.train_x = data.train
        self.batch_size = int(batch_size)
        self.optimizer = make_optimizer(model, guide, optimizer, lr, prior_precision)
        self._init_loop()

    def wake_loss(self, x, idx, num_data) -> torch.Tensor:
        """-(N/M) sum_i log p_theta(x_i, z_i), z_i ~ q_phi(z|x_i) held fixed."""
        with torch.no_grad():
            guide_trace = poutine.trace(self.guide).get_trace(x, idx, num_data)
        model_trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(x, idx, num_data)
        return -model_trace.log_prob_sum()

    def sleep_loss(self, x, idx, num_data) -> torch.Tensor:
        """-(N/M) sum_i log q_phi(z_i | x_i) on dreams (z_i, x_i) ~ p_theta(z, x)."""
        with torch.no_grad():
            dream = poutine.trace(poutine.uncondition(self.model)).get_trace(x, idx, num_data)
        z, x_dream = dream.nodes["z"]["value"], dream.nodes["x"]["value"]
        guide_trace = poutine.trace(poutine.condition(self.guide, data={"z": z})).get_trace(x_dream, idx, num_data)
        return -guide_trace.log_prob_sum()

    def step(self, x, idx, num_data) -> float:
        """One wake and one sleep update on the minibatch; returns the wake loss."""
        wake = self.wake_loss(x, idx, num_data)
        loss = wake + self.sleep_loss(x, idx, num_data)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return wake.item()
