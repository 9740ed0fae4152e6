"""The structured recognition model of the deep Markov model (Krishnan, Shalit & Sontag, 2017, arXiv:1609.09869).

Under the model (``models/dmm.py``) z_t is independent of x_{1:t-1} given z_{t-1}, so the true posterior
factorises as p(z_{1:T} | x) = p(z_1 | x) prod_{t=2}^T p(z_t | z_{t-1}, x_{t:T}); the guide copies that form
(the paper's structured inference network "ST-R", called DKS with the combiner below):

    q_phi(z_{1:T} | x_{1:T}) = prod_{t=1}^T q_phi(z_t | z_{t-1}, x_{t:T}),        z_0 = 0
    h_t = RNN_backward(x_T, x_{T-1}, ..., x_t)                  a GRU run from the last frame back
    h_t^comb = (tanh(W z_{t-1} + b) + h_t) / 2                   the paper's combiner function
    q_phi(z_t | z_{t-1}, x_{t:T}) = N(W_mu h_t^comb + b_mu, diag softplus(W_sigma h_t^comb + b_sigma)^2)

Every z_t is drawn by reparameterization (z_t = mu_t + sigma_t * eps_t), so estimators A and B apply.  With
estimator B (``--elbo analytic``) Pyro's ``TraceMeanField_ELBO`` replaces each
E_q[log p(z_t | z_{t-1}) - log q(z_t | z_{t-1}, x)] by -KL(q(z_t | z_{t-1}, x) || p(z_t | z_{t-1})) at the
sampled z_{t-1}: the paper's bound, eq. 6,

    L(x; theta, phi) = sum_t E_q[log p_theta(x_t | z_t)] - KL(q(z_1 | x) || p(z_1))
                       - sum_{t=2}^T E_{q(z_{t-1} | x)}[KL(q(z_t | z_{t-1}, x) || p(z_t | z_{t-1}))],

an unbiased estimate whose gradients flow through the reparameterized z_{t-1}.
"""

from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb.errors import AevbInputError
from pyro_aevb.nn import initialize_
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate
from pyro_aevb.specs import records_arguments
from pyro_aevb.sequences import require_sequences


class Combiner(nn.Module):
    """(z_{t-1}, h_t) -> mu_t, sigma_t of q_phi(z_t | z_{t-1}, x_{t:T})."""

    def __init__(self, latent_dim: int, rnn_dim: int, init: str = "paper"):
        super().__init__()
        self.z_to_hidden = initialize_(nn.Linear(latent_dim, rnn_dim), init)
        self.loc = initialize_(nn.Linear(rnn_dim, latent_dim), init)
        self.scale = initialize_(nn.Linear(rnn_dim, latent_dim), init)

    def forward(self, z_prev: torch.Tensor, h: torch.Tensor):
        combined = 0.5 * (torch.tanh(self.z_to_hidden(z_prev)) + h)
        return self.loc(combined), nn.functional.softplus(self.scale(combined))


@records_arguments
class DMMGuide(PyroModule):
    """q_phi(z_{1:T} | x_{1:T}) for minibatches of sequences ``x [M, T, D]`` (module docstring).

    :param data_dim: D, values per frame.
    :param latent_dim: J, dimensions of each z_t.
    :param rnn_dim: hidden width of the backward GRU (and of the combiner).
    :param init: ``"paper"`` (every parameter from N(0, 0.01^2)) or ``"torch"``.
    """

    def __init__(self, data_dim: int, latent_dim: int, rnn_dim: int = 200, init: str = "paper"):
        super().__init__(name=unique_name(self))
        if min(int(data_dim), int(latent_dim), int(rnn_dim)) < 1:
            raise AevbInputError(f"data_dim, latent_dim and rnn_dim must be >= 1, got {data_dim}, {latent_dim}, "
                                 f"{rnn_dim}")
        self.data_dim, self.latent_dim = int(data_dim), int(latent_dim)
        self.rnn = initialize_(nn.GRU(self.data_dim, int(rnn_dim), batch_first=True), init)
        self.combiner = Combiner(self.latent_dim, int(rnn_dim), init)

    def backward_states(self, x: torch.Tensor) -> torch.Tensor:
        """h_t = RNN(x_T, ..., x_t) for every t: ``[M, T, rnn_dim]``."""
        h, _ = self.rnn(x.flip(-2))
        return h.flip(-2)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        require_sequences(x, "deep Markov model's guide")
        h = self.backward_states(x)
        combiner = self.combiner  # looked up once: each PyroModule attribute access registers parameters
        zs = []
        with data_plate(x, idx, num_data):
            z = x.new_zeros(x.shape[:1] + (self.latent_dim,))  # z_0
            for t in pyro.markov(range(x.shape[1])):
                loc, scale = combiner(z, h[:, t])
                z = pyro.sample(f"z_{t + 1}", dist.Normal(loc, scale).to_event(1))
                zs.append(z)
        return zs
