"""Generative side of AEVB: the prior p(z), decoder networks and likelihoods p(x|z).

Installed as ``pyro_aevb.models``.  :class:`BayesianVAEModel` is the full-VB
variant of appendix F (random decoder weights).
"""

from .bayesian import BayesianLinear, BayesianMLP, BayesianVAEModel
from .likelihoods import LIKELIHOODS, Likelihood, UnitIntervalBernoulli, get_likelihood
from .vae import VAEModel

__all__ = ["BayesianLinear", "BayesianMLP", "BayesianVAEModel", "LIKELIHOODS", "Likelihood", "UnitIntervalBernoulli",
           "VAEModel", "get_likelihood"]
