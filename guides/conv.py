"""The convolutional recognition model q_phi(z|x) of the deep convolutional VAE.

    h = MLP(act(Conv_L(... act(Conv_1(x)))))         4x4 convolutions of stride 2, each halving H and W
    mu, log sigma^2 = h.chunk(2)
    q_phi(z|x) = N(z; mu, diag(sigma^2))

sampled by the reparameterization trick (eq. 10, ``Normal.rsample``) inside the ``data`` plate, as the paper's
Gaussian MLP encoder (appendix C.2) with its hidden layer replaced by a convolutional stack
(:class:`~pyro_aevb.nn.ConvEncoder`).  Its model is :class:`~pyro_aevb.models.ConvVAEModel`; the default
initialisation is PyTorch's (see there).
"""

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb.errors import AevbInputError
from pyro_aevb.nn import ConvEncoder, image_shape_of, initialize_, mlp
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate
from pyro_aevb.specs import records_arguments


@records_arguments
class ConvNormalGuide(PyroModule):
    """Gaussian convolutional encoder: x -> (mu, sigma) of a diagonal Normal over z.

    :param data_dim: D = H * W.
    :param image_shape: ``(H, W)``.
    :param latent_dim: J.
    :param hidden_dims: widths of the dense hidden layers between the feature maps and (mu, log sigma^2).
    :param channels: channels C_1, ..., C_L of the convolutions.
    :param activation: hidden activation.
    :param init: ``"torch"`` (default) or ``"paper"``.
    """

    def __init__(self, data_dim: int, image_shape: Sequence[int], latent_dim: int = 20,
                 hidden_dims: Sequence[int] = (256,), channels: Sequence[int] = (16, 32), activation: str = "tanh",
                 init: str = "torch"):
        super().__init__(name=unique_name(self))
        image_shape = image_shape_of(data_dim, image_shape)
        if int(latent_dim) < 1:
            raise AevbInputError(f"latent_dim must be >= 1, got {latent_dim}")
        self.data_dim, self.latent_dim = int(data_dim), int(latent_dim)
        conv = ConvEncoder(image_shape, channels, activation)
        self.encoder = initialize_(nn.Sequential(conv, mlp(conv.out_dim, hidden_dims, 2 * self.latent_dim,
                                                           activation)), init)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        with data_plate(x, idx, num_data):
            loc, log_var = self.encoder(x).chunk(2, dim=-1)
            return pyro.sample("z", dist.Normal(loc, torch.exp(0.5 * log_var)).to_event(1))
