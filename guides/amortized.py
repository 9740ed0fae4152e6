"""The amortized recognition model q_phi(z|x) of appendix C.2.

    h = tanh(W3 x + b3)
    mu = W4 h + b4,  log sigma^2 = W5 h + b5
    q_phi(z|x) = N(z; mu, diag(sigma^2))

Sampling uses the reparameterization trick of section 2.4 (eq. 10):
``z = mu + sigma * eps`` with ``eps ~ N(0, I)`` -- Pyro's ``Normal.rsample``,
so gradients flow through z into phi.  The guide repeats the model's ``data``
plate, so its log q terms get the same N/M minibatch scale.
"""

from typing import Optional, Sequence, Tuple

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pyro_aevb.errors import AevbInputError
from pyro_aevb.nn import initialize_, mlp
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate
from pyro_aevb.specs import records_arguments


@records_arguments
class AmortizedNormalGuide(PyroModule):
    """Gaussian MLP encoder: x -> (loc, scale) of a diagonal Normal over z.

    :param data_dim: D, dimensions of one datapoint.
    :param latent_dim: J, dimensions of z.
    :param hidden_dims: hidden layer widths of the encoder MLP.
    :param activation: hidden activation (``"tanh"`` in the paper).
    :param init: ``"paper"`` (N(0, 0.01^2)) or ``"torch"`` (PyTorch's default).
    """


    def __init__(self, data_dim: int, latent_dim: int, hidden_dims: Sequence[int] = (500,),
                 activation: str = "tanh", init: str = "paper"):
        super().__init__(name=unique_name(self))
        if int(latent_dim) < 1:
            raise AevbInputError(f"latent_dim must be >= 1, got {latent_dim}")
        self.data_dim = int(data_dim)
        self.latent_dim = int(latent_dim)
        self.encoder = initialize_(mlp(self.data_dim, hidden_dims, 2 * self.latent_dim, activation), init)

    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(mu, sigma)`` of q_phi(z|x)."""
        loc, log_var = self.encoder(x).chunk(2, dim=-1)
        return loc, torch.exp(0.5 * log_var)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        """q_phi(z|x) with batch shape ``x.shape[:-1]`` and one event of ``latent_dim``."""
        loc, scale = self.encode(x)
        return dist.Normal(loc, scale).to_event(1)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        with data_plate(x, idx, num_data):
            return pyro.sample("z", self.posterior(x))
