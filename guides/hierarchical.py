"""The recognition model of the hierarchical VAE (Burda et al. 2015): x -> z_1 -> ... -> z_L.

    z_1 | x ~ N(mu_1(x), diag sigma_1^2(x))
    z_l | z_{l-1} ~ N(mu_l(z_{l-1}), diag sigma_l^2(z_{l-1}))       l = 2, ..., L

each ``(mu_l, log sigma_l^2) = MLP_l(z_{l-1})`` with the deterministic widths ``hidden_dims[l-1]`` (the same
ones as the model's, :class:`~pyro_aevb.models.HierarchicalVAEModel`), sampled by the reparameterization
trick (eq. 10) one layer after the other inside the ``data`` plate.  q(z_1, ..., z_L | x) is a chain, not a
product, so estimator B does not apply (see the model).
"""

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb.errors import AevbInputError
from pyro_aevb.nn import check_layers, initialize_, mlp
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate
from pyro_aevb.specs import records_arguments


@records_arguments
class HierarchicalGuide(PyroModule):
    """q_phi(z_1, ..., z_L | x) = q_phi(z_1 | x) prod_{l >= 2} q_phi(z_l | z_{l-1}), Gaussian layers.

    :param data_dim: D.
    :param latent_dims: sizes of z_1, ..., z_L.
    :param hidden_dims: per stochastic layer, the deterministic widths below it.
    :param activation: hidden activation.
    :param init: ``"torch"`` (default) or ``"paper"``.
    """

    def __init__(self, data_dim: int, latent_dims: Sequence[int] = (100, 50),
                 hidden_dims: Sequence[Sequence[int]] = ((200, 200), (100, 100)), activation: str = "tanh",
                 init: str = "torch"):
        super().__init__(name=unique_name(self))
        if int(data_dim) < 1:
            raise AevbInputError(f"data_dim must be >= 1, got {data_dim}")
        self.data_dim = int(data_dim)
        self.latent_dims, hidden = check_layers(latent_dims, hidden_dims)
        ins = (self.data_dim,) + self.latent_dims[:-1]
        self.encoders = nn.ModuleList(initialize_(mlp(d_in, h, 2 * d_out, activation), init)
                                      for d_in, h, d_out in zip(ins, hidden, self.latent_dims))

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        h = x
        with data_plate(x, idx, num_data):
            for layer, encoder in enumerate(self.encoders, start=1):
                loc, log_var = encoder(h).chunk(2, dim=-1)
                h = pyro.sample(f"z{layer}", dist.Normal(loc, torch.exp(0.5 * log_var)).to_event(1))
        return h
