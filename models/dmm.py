"""The deep Markov model (Krishnan, Shalit & Sontag, *Structured Inference Networks for Nonlinear State Space
Models*, AAAI 2017, arXiv:1609.09869): the generative side.

For a sequence of frames x_{1:T}, x_t in R^D, with latent states z_t in R^J:

    z_1 ~ N(0, I)
    z_t | z_{t-1} ~ N(mu(z_{t-1}), diag sigma(z_{t-1})^2)          t = 2, ..., T   (transition)
    x_t | z_t ~ p_theta(x_t | z_t)                                 t = 1, ..., T   (emission)

    p_theta(x_{1:T}, z_{1:T}) = p(z_1) prod_{t=2}^T p(z_t | z_{t-1}) prod_{t=1}^T p_theta(x_t | z_t)

(the paper's generative model, with no actions u_t).  The transition is the paper's *gated transition
function* (its experiments section), J -> J with ``transition_dim`` hidden units:

    g_t = sigmoid(W_2 relu(W_1 z_{t-1} + b_1) + b_2)                  gate in (0, 1)^J
    h_t = W_4 relu(W_3 z_{t-1} + b_3) + b_4                           proposed non-linear mean
    mu(z_{t-1}) = (1 - g_t) * (W_mu z_{t-1} + b_mu) + g_t * h_t       W_mu = I, b_mu = 0 at initialisation
    sigma(z_{t-1}) = softplus(W_sigma relu(h_t) + b_sigma)

so the model starts close to a linear (identity) dynamics and learns where to depart from it.  The emission is
the decoder of Kingma & Welling's appendix C.2 -- one tanh hidden layer, then for ``likelihood="gaussian"``
mean sigmoid(W_4 h + b_4) and log sigma^2 = W_5 h + b_5 -- the same network as the Frey Face VAE
(:class:`~pyro_aevb.models.VAEModel`); any likelihood of :data:`~pyro_aevb.models.LIKELIHOODS` works.
With T = 1 the model is exactly that VAE's p(z) p_theta(x | z).

As a Pyro program: the states are sample sites ``"z_1"``, ..., ``"z_T"`` in a ``pyro.markov`` loop (each
depends on the one before only), inside the ``data`` plate over sequences (:func:`pyro_aevb.plates.data_plate`);
the T frames are one observed site ``"x"`` with event shape ``[T, D]``, whose log-density is
sum_t log p_theta(x_t | z_t) -- one site, so whatever decodes "the observed site" (sampling, reconstruction)
sees whole sequences.  Every tensor op broadcasts over leading dimensions, so vectorised particles (estimator A
with L > 1, the IWAE bound, importance sampling of log p(x)) work unchanged.
"""

from typing import Optional, Sequence, Union

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb.errors import AevbInputError
from pyro_aevb.nn import initialize_, mlp
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate
from pyro_aevb.specs import records_arguments
from pyro_aevb.sequences import require_sequences

from .likelihoods import Likelihood, get_likelihood


class GatedTransition(nn.Module):
    """mu(z_{t-1}), sigma(z_{t-1}) of p(z_t | z_{t-1}): the gated transition function (module docstring)."""

    def __init__(self, latent_dim: int, transition_dim: int, init: str = "paper"):
        super().__init__()
        self.gate = initialize_(mlp(latent_dim, (transition_dim,), latent_dim, "relu"), init)
        self.proposed_mean = initialize_(mlp(latent_dim, (transition_dim,), latent_dim, "relu"), init)
        self.scale = initialize_(nn.Linear(latent_dim, latent_dim), init)
        self.linear_mean = nn.Linear(latent_dim, latent_dim)
        with torch.no_grad():  # identity dynamics to start from (W_mu = I, b_mu = 0)
            self.linear_mean.weight.copy_(torch.eye(latent_dim))
            self.linear_mean.bias.zero_()

    def forward(self, z_prev: torch.Tensor):
        g = torch.sigmoid(self.gate(z_prev))
        h = self.proposed_mean(z_prev)
        loc = (1 - g) * self.linear_mean(z_prev) + g * h
        scale = nn.functional.softplus(self.scale(torch.relu(h)))
        return loc, scale


@records_arguments
class DMMModel(PyroModule):
    """p_theta(x_{1:T}, z_{1:T}) of the deep Markov model, for minibatches of sequences ``x [M, T, D]``.

    :param data_dim: D, values per frame.
    :param latent_dim: J, dimensions of each state z_t.
    :param hidden_dims: hidden widths of the emission MLP (the paper's decoder: one tanh layer).
    :param transition_dim: hidden width of the gated transition's two MLPs.
    :param likelihood: the emission's likelihood (``"gaussian"`` for Frey Face, appendix C.2).
    :param activation: the emission's hidden activation (tanh in the paper).
    :param init: ``"paper"`` (N(0, 0.01^2), section 5) or ``"torch"``; W_mu = I either way.
    :param min_scale: floor added to a learned likelihood scale (gaussian, laplace).
    """

    unique_pyro_name = True

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims: Sequence[int] = (200,), transition_dim: int = 200,
                 likelihood: Union[str, Likelihood] = "gaussian", activation: str = "tanh", init: str = "paper",
                 min_scale: float = 0.0):
        super().__init__(name=unique_name(self))
        if int(latent_dim) < 1 or int(data_dim) < 1 or int(transition_dim) < 1:
            raise AevbInputError(f"data_dim, latent_dim and transition_dim must be >= 1, got {data_dim}, "
                                 f"{latent_dim}, {transition_dim}")
        self.data_dim, self.latent_dim = int(data_dim), int(latent_dim)
        self.likelihood = get_likelihood(likelihood).with_min_scale(min_scale)
        self.emitter = initialize_(mlp(self.latent_dim, hidden_dims, self.likelihood.params_per_dim * self.data_dim,
                                       activation), init)
        self.transition = GatedTransition(self.latent_dim, int(transition_dim), init)

    def emission(self, z: torch.Tensor) -> dist.Distribution:
        """p_theta(x_t | z_t) for states ``z [..., J]``: a distribution with batch shape ``[..., D]``."""
        return self.likelihood(self.emitter(z))

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        require_sequences(x, "deep Markov model")
        transition = self.transition  # looked up once: each PyroModule attribute access registers parameters
        zs = []
        with data_plate(x, idx, num_data):
            z = None
            for t in pyro.markov(range(x.shape[1])):
                if z is None:  # p(z_1) = N(0, I)
                    prior = dist.Normal(x.new_zeros(()), 1.0).expand(x.shape[:1] + (self.latent_dim,))
                else:  # p(z_t | z_{t-1})
                    prior = dist.Normal(*transition(z))
                z = pyro.sample(f"z_{t + 1}", prior.to_event(1))
                zs.append(z)
            # log p(x | z) = sum_t log p_theta(x_t | z_t): event shape [T, D]
            pyro.sample("x", self.emission(torch.stack(zs, dim=-2)).to_event(2), obs=x)
        return zs
