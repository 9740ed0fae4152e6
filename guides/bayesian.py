"""Guides for full variational Bayes (appendix F): q(theta) q_phi(Z|X).

q(theta) is the mean-field Gaussian of appendix F,
``q(theta) = N(mu_theta, diag(sigma_theta^2))``, sampled by reparameterization
``theta = mu_theta + sigma_theta * zeta``, ``zeta ~ N(0, I)``.  Its sites are
found by tracing the model once: every latent sample site *outside* the
``data`` plate is global (the decoder weights of
:class:`pyro_aevb.models.BayesianVAEModel`, or any other global latent of a
user's model).  KL(q(theta) || p(theta)) between two Gaussians is analytic, so
estimator B (eq. 24) applies to it.

The variational parameters are plain ``nn.Parameter`` in an
``nn.ParameterDict`` (not Pyro's global param store), so two guides never
share values through a site name.

:class:`FullVBGuide` runs q(theta) (once per step, no plate) and then the
amortized local guide q_phi(z|x) (inside the data plate).
"""

import math
from typing import Callable, Dict, List, Optional

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb.errors import AevbInputError
from pyro_aevb.params import local_param_store, unique_name
from pyro_aevb.plates import is_global_latent


def _key(name: str) -> str:
    return name.replace(".", "__")


def global_sites(model: Callable, x: torch.Tensor) -> Dict[str, torch.Size]:
    """Name -> shape of every latent site of ``model(x)`` that is outside the ``data`` plate."""
    with torch.no_grad(), local_param_store():
        trace = poutine.trace(model).get_trace(x)
    return {name: site["value"].shape for name, site in trace.nodes.items() if is_global_latent(site)}


class MeanFieldWeightGuide(PyroModule):
    """q(theta) = prod_k N(theta_k; mu_k, sigma_k^2) over the global sites of a model.

    :param sites: name -> shape of the global sites (see :func:`global_sites`).
    :param init_loc_std: mu initialised from N(0, init_loc_std^2) (section 5: 0.01).
    :param init_scale: initial sigma of every weight.
    """

    def __init__(self, sites: Dict[str, torch.Size], init_loc_std: float = 0.01, init_scale: float = 0.01):
        super().__init__()
        if not sites:
            raise AevbInputError("the model has no global latent sites outside the data plate: nothing for q(theta)")
        if not init_scale > 0:
            raise AevbInputError(f"init_scale must be > 0, got {init_scale}")
        self.site_names: List[str] = list(sites)
        self.site_shapes = {name: torch.Size(shape) for name, shape in sites.items()}
        self.locs = nn.ParameterDict({_key(n): nn.Parameter(torch.randn(s) * init_loc_std) for n, s in sites.items()})
        self.log_scales = nn.ParameterDict({_key(n): nn.Parameter(torch.full(s, math.log(init_scale)))
                                            for n, s in sites.items()})

    def distribution(self, name: str) -> dist.Distribution:
        loc, log_scale = self.locs[_key(name)], self.log_scales[_key(name)]
        return dist.Normal(loc, torch.exp(log_scale)).to_event(loc.dim())

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        return {name: pyro.sample(name, self.distribution(name)) for name in self.site_names}

    @torch.no_grad()
    def sample_theta(self) -> Dict[str, torch.Tensor]:
        """One draw theta ~ q(theta), as a dict for ``poutine.condition``."""
        return {name: self.distribution(name).sample() for name in self.site_names}

    @torch.no_grad()
    def mean_theta(self) -> Dict[str, torch.Tensor]:
        return {name: self.locs[_key(name)].detach().clone() for name in self.site_names}


class FullVBGuide(PyroModule):
    """q(theta) q_phi(Z|X): global weights, then the amortized local guide.

    :param model: the model whose global sites q(theta) covers (traced once on dummy data).
    :param local: an amortized guide ``local(x, idx, num_data)`` sampling ``"z"`` in the data plate.
    """

    def __init__(self, model: Callable, local: torch.nn.Module, data_dim: Optional[int] = None,
                 init_scale: float = 0.01):
        super().__init__(name=unique_name(self))
        data_dim = int(data_dim or getattr(local, "data_dim", 0) or getattr(model, "data_dim", 0))
        if data_dim < 1:
            raise AevbInputError("FullVBGuide needs data_dim (or a local guide/model with .data_dim)")
        self.data_dim = data_dim
        self.latent_dim = getattr(local, "latent_dim", None)
        self.weights = MeanFieldWeightGuide(global_sites(model, torch.full((2, data_dim), 0.5)),
                                            init_scale=init_scale)
        self.local = local

    @property
    def encoder(self):
        return self.local.encoder

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        return self.local.posterior(x)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None):
        self.weights()
        return self.local(x, idx, num_data)
