"""A deep convolutional VAE: the paper's model with a transposed-convolution decoder.

    z ~ p(z) = N(0, I_J)
    h = act(MLP(z))                                    read as C_L feature maps of (H / 2^L) x (W / 2^L)
    out = ConvT_1(act(... act(ConvT_L(h))))            P maps of H x W, P = the likelihood's params per pixel
    x | z ~ p_theta(x|z) = likelihood(out)             Bernoulli logits (MNIST, appendix C.1) or a Gaussian's
                                                       mean logit and log-variance (Frey Face, appendix C.2)

inside the ``data`` plate (eq. 8's N/M scale), exactly as :class:`~pyro_aevb.models.VAEModel` with its MLP
decoder replaced; every ``ConvT`` is 4x4 with stride 2 (each doubles the height and width, see
:class:`~pyro_aevb.nn.ConvDecoder`).  Its recognition model is :class:`~pyro_aevb.guides.ConvNormalGuide`.
The data arrive as rows ``[N, H * W]``; ``image_shape = (H, W)`` says how to fold them.

Initialisation: PyTorch's default layer initialisation (``init="torch"``), not the paper's N(0, 0.01^2): with
0.01 weights each layer scales its input by about 0.01 * sqrt(fan_in) (0.16 for a 4x4 convolution over 16
channels), so the four layers between z and x start with an almost constant output.  Measured on 10,000 MNIST
images, 2 epochs, Adam 1e-3: test bound -139.7 (torch) against -192.1 (paper); ``docs/beyond/conv_two_layer.md``.
"""

from typing import Optional, Sequence, Union

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb.errors import AevbInputError
from pyro_aevb.nn import ACTIVATIONS, ConvDecoder, image_shape_of, initialize_, mlp
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate
from pyro_aevb.specs import records_arguments

from .likelihoods import Likelihood, get_likelihood


@records_arguments
class ConvVAEModel(PyroModule):
    """p_theta(x, z) = p(z) p_theta(x|z) with a convolutional decoder.

    :param data_dim: D = H * W.
    :param image_shape: ``(H, W)``.
    :param latent_dim: J, dimensions of z.
    :param hidden_dims: widths of the dense hidden layers between z and the feature maps.
    :param channels: feature-map channels C_1, ..., C_L, from the image inwards (as in the encoder).
    :param likelihood: a name in :data:`~pyro_aevb.models.LIKELIHOODS` or a :class:`Likelihood`.
    :param activation: hidden activation.
    :param init: ``"torch"`` (default, see the module docstring) or ``"paper"`` (N(0, 0.01^2)).
    :param min_scale: a floor added to a learned likelihood scale (gaussian, laplace).
    """

    def __init__(self, data_dim: int, image_shape: Sequence[int], latent_dim: int = 20,
                 hidden_dims: Sequence[int] = (256,), channels: Sequence[int] = (16, 32),
                 likelihood: Union[str, Likelihood] = "bernoulli", activation: str = "tanh", init: str = "torch",
                 min_scale: float = 0.0):
        super().__init__(name=unique_name(self))
        image_shape = image_shape_of(data_dim, image_shape)
        if int(latent_dim) < 1:
            raise AevbInputError(f"latent_dim must be >= 1, got {latent_dim}")
        self.data_dim, self.latent_dim = int(data_dim), int(latent_dim)
        self.likelihood = get_likelihood(likelihood).with_min_scale(min_scale)
        deconv = ConvDecoder(image_shape, channels, self.likelihood.params_per_dim, activation)
        self.decoder = initialize_(nn.Sequential(mlp(self.latent_dim, hidden_dims, deconv.in_dim, activation),
                                                 ACTIVATIONS[activation](), deconv), init)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        with data_plate(x, idx, num_data):
            prior = dist.Normal(torch.zeros((), device=x.device), 1.0).expand([x.shape[0], self.latent_dim])
            z = pyro.sample("z", prior.to_event(1))
            pyro.sample("x", self.likelihood(self.decoder(z)).to_event(1), obs=x)
        return z

