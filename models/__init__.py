"""Generative side of AEVB: the prior p(z), decoder networks and likelihoods p(x|z).

Installed as ``pyro_aevb.models``.  :class:`BayesianVAEModel` is the full-VB
variant of appendix F (random decoder weights); :class:`ConvVAEModel` (transposed-convolution decoder) and
:class:`HierarchicalVAEModel` (stacked stochastic layers, Burda et al. 2015) go beyond the paper (issue 9).
"""

from .bayesian import BayesianLinear, BayesianMLP, BayesianVAEModel
from .conv import ConvVAEModel
from .hierarchical import HierarchicalVAEModel
from .likelihoods import LIKELIHOODS, Likelihood, UnitIntervalBernoulli, get_likelihood
from .vae import VAEModel

__all__ = ["BayesianLinear", "BayesianMLP", "BayesianVAEModel", "ConvVAEModel", "HierarchicalVAEModel", "LIKELIHOODS",
           "Likelihood", "UnitIntervalBernoulli", "VAEModel", "get_likelihood"]
