"""The generative semi-supervised model M2 (Kingma, Rezende, Mohamed & Welling, 2014, section 2.2, eq. 2).

    p(y) = Cat(y | pi),   pi = (1/K, ..., 1/K)          the class, K values
    p(z) = N(z | 0, I)                                  the style, latent_dim dimensions
    p_theta(x | y, z) = f(x; y, z, theta)               a likelihood (Bernoulli for MNIST) of an MLP of [y, z]

for every datapoint, inside the ``data`` plate (N/M minibatch scale, eq. 8 of Kingma & Welling 2013).  y is
an ordinary latent site: the guide (:class:`pyro_aevb.guides.M2Guide`) enumerates it where the label is
unknown and puts a point mass on it where it is known, so this one program gives both bounds of the paper,
eq. (6) for labelled and eq. (7) for unlabelled points.  y is the one-hot class joined to z at the decoder's
input (:func:`pyro_aevb.nn.cat_broadcast` lets Pyro's enumeration dimension broadcast).
"""

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pyro_aevb.errors import AevbInputError
from pyro_aevb.nn import cat_broadcast, initialize_, mlp
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate
from pyro_aevb.specs import records_arguments

from .likelihoods import get_likelihood


@records_arguments
class M2Model(PyroModule):
    """p(y) p(z) p_theta(x | y, z), M2 of Kingma et al. (2014), eq. (2).

    :param data_dim: D.
    :param num_classes: K, values of y.
    :param latent_dim: dimensions of z (50 in the paper's MNIST experiments).
    :param hidden_dims: hidden layers of the decoder MLP (one of 500 in the paper).
    :param likelihood: a name of :data:`pyro_aevb.models.LIKELIHOODS` (``"bernoulli"`` for MNIST).
    :param activation: hidden activation (the paper's M2 uses softplus).
    :param init: ``"torch"`` (PyTorch's default layers, for Adam) or ``"paper"`` (N(0, 0.01^2)).
    :param min_scale: a floor added to a learned likelihood scale (gaussian, laplace).
    """

    def __init__(self, data_dim: int, num_classes: int = 10, latent_dim: int = 50,
                 hidden_dims: Sequence[int] = (500,), likelihood: str = "bernoulli", activation: str = "softplus",
                 init: str = "torch", min_scale: float = 0.0):
        super().__init__(name=unique_name(self))
        if int(num_classes) < 2:
            raise AevbInputError(f"num_classes must be >= 2, got {num_classes}")
        if int(latent_dim) < 1:
            raise AevbInputError(f"latent_dim must be >= 1, got {latent_dim}")
        self.data_dim, self.num_classes, self.latent_dim = int(data_dim), int(num_classes), int(latent_dim)
        self.likelihood = get_likelihood(likelihood).with_min_scale(min_scale)
        self.decoder = initialize_(mlp(self.num_classes + self.latent_dim, hidden_dims,
                                       self.likelihood.params_per_dim * self.data_dim, activation), init)

    def likelihood_dist(self, y: torch.Tensor, z: torch.Tensor) -> dist.Distribution:
        """p_theta(x | y, z), one event of D; ``y`` holds class indices, broadcast against ``z``'s batch."""
        one_hot = torch.nn.functional.one_hot(y, self.num_classes).to(z.dtype)
        return self.likelihood(self.decoder(cat_broadcast(one_hot, z))).to_event(1)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        m = x.shape[:1]
        with data_plate(x, idx, num_data):
            y = pyro.sample("y", dist.Categorical(logits=x.new_zeros(self.num_classes)).expand(m))
            z = pyro.sample("z", dist.Normal(x.new_zeros(()), 1.0).expand(m + (self.latent_dim,)).to_event(1))
            pyro.sample("x", self.likelihood_dist(y, z), obs=x)
