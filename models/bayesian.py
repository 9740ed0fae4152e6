"""Full variational Bayes over the decoder weights (appendix F of the paper).

The decoder weights theta become random variables with prior
``p(theta) = N(0, I)``::

    theta ~ p(theta) = N(0, I)                              (global, once per dataset)
    for i in 1..N:  z_i ~ N(0, I),  x_i | z_i, theta ~ p_theta(x_i | z_i)

Each ``Linear`` layer's weight and bias are ``PyroSample`` sites
(``decoder.0.weight``, ``decoder.0.bias``, ...), drawn at the start of
:meth:`BayesianVAEModel.forward`, *outside* the ``data`` plate, so that with a
minibatch of M of N datapoints the objective (eq. 21, or eq. 24 with analytic
KLs) is

    L(phi; X) ~= (N / M) sum_{i in X^M} [ log p_theta(x_i|z_i) + log p(z_i) - log q(z_i|x_i) ]
                 + log p(theta) - log q(theta)

-- the local terms scaled by N/M by the plate, the theta term counted once.
The model has no ``nn.Parameter``: every weight is a latent variable, and its
variational posterior q(theta) lives in the guide
(:class:`pyro_aevb.guides.FullVBGuide`).

Inside Pyro's vectorised particle plate (dim -2) theta has shape ``[L, 1, out, in]``;
:class:`BayesianLinear` multiplies each particle's input by its own weight.
"""

from typing import Dict, Optional, Sequence, Union

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule, PyroSample
from torch import nn

from pyro_aevb.errors import AevbInputError
from pyro_aevb.specs import records_arguments
from pyro_aevb.nn import ACTIVATIONS

from .likelihoods import Likelihood
from .vae import VAEModel


class BayesianLinear(PyroModule):
    """``y = W x + b`` with ``W ~ N(0, prior_scale^2 I)``, ``b ~ N(0, prior_scale^2 I)`` as PyroSample sites."""

    def __init__(self, in_features: int, out_features: int, prior_scale: float = 1.0):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = PyroSample(dist.Normal(0.0, prior_scale).expand([self.out_features, self.in_features]).to_event(2))
        self.bias = PyroSample(dist.Normal(0.0, prior_scale).expand([self.out_features]).to_event(1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if weight.dim() == 2:
            return torch.nn.functional.linear(h, weight, bias)
        # particle-batched weights [..., L, 1, out, in]: drop the singleton data-plate dim and
        # multiply each particle's [..., L, M, in] input by its own weight.
        weight = weight.squeeze(-3)
        return torch.matmul(h, weight.transpose(-1, -2)) + bias


class BayesianMLP(PyroModule):
    """``BayesianLinear -> act -> ... -> BayesianLinear`` (the decoder MLP of appendix C with random weights)."""

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int, activation: str = "tanh",
                 prior_scale: float = 1.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise AevbInputError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        dims = [int(in_dim), *map(int, hidden_dims), int(out_dim)]
        if min(dims) < 1:
            raise AevbInputError(f"layer sizes must be >= 1, got {dims}")
        layers = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(BayesianLinear(a, b, prior_scale))
            if i < len(dims) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.layers = PyroModule[nn.ModuleList](layers)

    def sample_weights(self) -> None:
        """Touch every weight so that its sample site is recorded here (outside any data plate)."""
        for layer in self.layers:
            if isinstance(layer, BayesianLinear):
                layer.weight, layer.bias  # noqa: B018 -- attribute access draws the PyroSample

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h)
        return h


@records_arguments
class BayesianVAEModel(VAEModel):
    """p(theta) p(Z) p_theta(X|Z) with theta the decoder weights (appendix F).

    Same arguments as :class:`pyro_aevb.models.VAEModel` plus ``prior_scale``
    (the standard deviation of p(theta); 1 in the paper's appendix F).  The
    model has no parameters, so it keeps Pyro's default (empty) name: the weight
    sites are ``decoder.layers.0.weight``, ... in every instance.
    """

    unique_pyro_name = False

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims: Sequence[int] = (500,),
                 likelihood: Union[str, Likelihood] = "bernoulli", activation: str = "tanh",
                 prior_scale: float = 1.0):
        if not prior_scale > 0:
            raise AevbInputError(f"prior_scale must be > 0, got {prior_scale}")
        super().__init__(data_dim, latent_dim, hidden_dims, likelihood, activation)
        # theta becomes random: the point-estimated MLP of VAEModel is replaced by PyroSample weights
        self.decoder = BayesianMLP(self.latent_dim, hidden_dims, self.likelihood.params_per_dim * self.data_dim,
                                   activation, prior_scale)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        self.decoder.sample_weights()  # theta: global sites, outside the data plate
        return super().forward(x, idx, num_data)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, theta: Dict[str, torch.Tensor]) -> dist.Distribution:
        """p_theta(x|z) for fixed weights ``theta`` (a dict site name -> value, e.g. one draw of q(theta))."""
        return self.likelihood(poutine.condition(self.decoder, data=theta)(z)).to_event(1)
