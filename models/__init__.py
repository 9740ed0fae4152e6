"""Generative side of AEVB: the prior p(z), decoder networks and likelihoods p(x|z).

Installed as ``pyro_aevb.models``.
"""

from .likelihoods import LIKELIHOODS, Likelihood, UnitIntervalBernoulli, get_likelihood
from .vae import VAEModel

__all__ = ["LIKELIHOODS", "Likelihood", "UnitIntervalBernoulli", "VAEModel", "get_likelihood"]
