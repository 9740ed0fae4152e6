"""A VAE with several stochastic layers (Burda et al. 2015, section 5), by default two.

    z_L ~ p(z_L) = N(0, I)
    z_l | z_{l+1} ~ N(mu_l(z_{l+1}), diag sigma_l^2(z_{l+1}))      l = L-1, ..., 1
    x | z_1 ~ p_theta(x | z_1) = likelihood(MLP_0(z_1))

inside the ``data`` plate; ``(mu_l, log sigma_l^2) = MLP_l(z_{l+1})``.  ``hidden_dims[l]`` are the deterministic
layers between z_l and z_{l+1} (z_0 = x), used in both directions: the default is Burda et al.'s two-layer
architecture, x -[200, 200]- z_1 (100) -[100, 100]- z_2 (50), tanh.  The recognition model is
:class:`~pyro_aevb.guides.HierarchicalGuide` (x -> z_1 -> z_2).  Sites are called ``z1``, ``z2``, ...

The guide samples z_1 first and the model z_L first, so the guide is not mean-field: KL(q(z_1|x) || p(z_1|z_2))
in closed form at a z_2 drawn from q(z_2|z_1) is not the bound's term, and estimator B is refused
(:mod:`pyro_aevb.contract`); train with estimator A (``trace``) or the IWAE bound.

Initialisation: PyTorch's default (``init="torch"``): with N(0, 0.01^2) weights each of the six layers between
z_2 and x scales its input by about 0.01 * sqrt(fan_in) <= 0.14, so z_2 starts with no influence on x at all.
"""

from typing import Optional, Sequence, Union

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

from .likelihoods import Likelihood, get_likelihood


def gaussian_layer(net: nn.Module, h: torch.Tensor) -> dist.Distribution:
    """N(mu, diag sigma^2) with ``(mu, log sigma^2) = net(h).chunk(2)``, one event over the last dimension."""
    loc, log_var = net(h).chunk(2, dim=-1)
    return dist.Normal(loc, torch.exp(0.5 * log_var)).to_event(1)


@records_arguments
class HierarchicalVAEModel(PyroModule):
    """p_theta(x, z_1, ..., z_L) = p(z_L) prod_l p_theta(z_l | z_{l+1}) p_theta(x | z_1).

    :param data_dim: D.
    :param latent_dims: sizes of z_1, ..., z_L (default Burda et al.'s (100, 50)).
    :param hidden_dims: per stochastic layer l, the deterministic widths between z_{l-1} and z_l (z_0 = x).
    :param likelihood: p(x | z_1), a name in :data:`~pyro_aevb.models.LIKELIHOODS` or a :class:`Likelihood`.
    :param activation: hidden activation (tanh, as Burda et al.).
    :param init: ``"torch"`` (default, see the module docstring) or ``"paper"``.
    :param min_scale: a floor added to a learned likelihood scale (gaussian, laplace).
    """

    def __init__(self, data_dim: int, latent_dims: Sequence[int] = (100, 50),
                 hidden_dims: Sequence[Sequence[int]] = ((200, 200), (100, 100)),
                 likelihood: Union[str, Likelihood] = "bernoulli", activation: str = "tanh", init: str = "torch",
                 min_scale: float = 0.0):
        super().__init__(name=unique_name(self))
        if int(data_dim) < 1:
            raise AevbInputError(f"data_dim must be >= 1, got {data_dim}")
        self.data_dim = int(data_dim)
        self.latent_dims, hidden = check_layers(latent_dims, hidden_dims)
        self.likelihood = get_likelihood(likelihood).with_min_scale(min_scale)
        # decoders[0]: z_1 -> x; decoders[l]: z_{l+1} -> (mu, log sigma^2) of z_l, hidden widths reversed
        outs = (self.likelihood.params_per_dim * self.data_dim,) + tuple(2 * d for d in self.latent_dims[:-1])
        self.decoders = nn.ModuleList(initialize_(mlp(d_in, tuple(reversed(h)), d_out, activation), init)
                                      for d_in, h, d_out in zip(self.latent_dims, hidden, outs))

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        top = len(self.latent_dims)
        with data_plate(x, idx, num_data):
            prior = dist.Normal(torch.zeros((), device=x.device), 1.0).expand([x.shape[0], self.latent_dims[-1]])
            z = pyro.sample(f"z{top}", prior.to_event(1))
            for layer in range(top - 1, 0, -1):
                z = pyro.sample(f"z{layer}", gaussian_layer(self.decoders[layer], z))
            pyro.sample("x", self.likelihood(self.decoders[0](z)).to_event(1), obs=x)
        return z
