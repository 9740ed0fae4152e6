"""The generative model of the VAE (section 3 and appendix C of the paper).

    z ~ p(z) = N(0, I)                                   (prior, latent_dim dimensions)
    x | z ~ p_theta(x|z) = likelihood(decoder(z))        (appendix C.1 / C.2)

for every datapoint, inside the ``data`` plate so that minibatch terms are
scaled by N/M (eq. 8).  The decoder is ``mlp(latent_dim, hidden_dims,
params_per_dim * data_dim)``: the paper's default is one tanh hidden layer.
"""

from typing import Optional, Sequence, Union

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pyro_aevb.errors import AevbInputError
from pyro_aevb.nn import initialize_, mlp
from pyro_aevb.params import unique_name
from pyro_aevb.plates import data_plate
from pyro_aevb.specs import records_arguments

from .likelihoods import Likelihood, get_likelihood


@records_arguments
class VAEModel(PyroModule):
    """p_theta(x, z) = p(z) p_theta(x|z).

    The decoder is a plain ``torch.nn`` module (its weights are the global
    parameters theta, trained by MAP); calling the model runs the Pyro program
    and can be traced, conditioned or replayed with ``pyro.poutine``.

    :param data_dim: D, dimensions of one datapoint.
    :param latent_dim: J, dimensions of z.
    :param hidden_dims: hidden layer widths of the decoder MLP.
    :param likelihood: name (``"bernoulli"``, ``"gaussian"``) or :class:`Likelihood`.
    :param activation: hidden activation (``"tanh"`` in the paper).
    :param init: ``"paper"`` (N(0, 0.01^2), section 5) or ``"torch"`` (PyTorch's default layer initialisation).
    :param min_scale: a floor added to a learned likelihood scale (gaussian, laplace): keeps the density
        bounded on data with point masses (constant pixels).

    Each instance has a Pyro name of its own (:mod:`pyro_aevb.params`), so two models never share
    parameters through Pyro's global store; ``init_kwargs`` records the constructor arguments, so a run
    directory can rebuild it (:func:`pyro_aevb.load_run`).
    """

    #: a process-unique Pyro name (PyroSample site names of subclasses with random weights must stay fixed)
    unique_pyro_name = True

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims: Sequence[int] = (500,),
                 likelihood: Union[str, Likelihood] = "bernoulli", activation: str = "tanh", init: str = "paper",
                 min_scale: float = 0.0):
        super().__init__(name=unique_name(self) if self.unique_pyro_name else "")
        if int(latent_dim) < 1:
            raise AevbInputError(f"latent_dim must be >= 1, got {latent_dim}")
        if int(data_dim) < 1:
            raise AevbInputError(f"data_dim must be >= 1, got {data_dim}")
        self.data_dim = int(data_dim)
        self.latent_dim = int(latent_dim)
        self.likelihood = get_likelihood(likelihood).with_min_scale(min_scale)
        self.decoder = initialize_(mlp(self.latent_dim, hidden_dims,
                                       self.likelihood.params_per_dim * self.data_dim, activation), init)

    def prior(self, batch_shape, device=None) -> dist.Distribution:
        """p(z) = N(0, I) with ``batch_shape`` and one event of ``latent_dim``."""
        loc = torch.zeros((), device=device)
        return dist.Normal(loc, 1.0).expand(torch.Size(batch_shape) + (self.latent_dim,)).to_event(1)

    def likelihood_dist(self, z: torch.Tensor) -> dist.Distribution:
        """p_theta(x|z) as a distribution with one event of ``data_dim``."""
        return self.likelihood(self.decoder(z)).to_event(1)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", self.prior(x.shape[:1], x.device))
            pyro.sample("x", self.likelihood_dist(z), obs=x)
        return z
