"""Generative side of AEVB: the prior p(z), decoder networks and likelihoods p(x|z).

Installed as ``pyro_aevb.models``.  :class:`BayesianVAEModel` is the full-VB
variant of appendix F (random decoder weights); :class:`M2Model` the semi-supervised
M2 of Kingma, Rezende, Mohamed & Welling (2014).
"""

from .bayesian import BayesianLinear, BayesianMLP, BayesianVAEModel
from .likelihoods import LIKELIHOODS, Likelihood, UnitIntervalBernoulli, get_likelihood
from .m2 import M2Model
from .vae import VAEModel

__all__ = ["BayesianLinear", "BayesianMLP", "BayesianVAEModel", "LIKELIHOODS", "Likelihood", "M2Model",
           "UnitIntervalBernoulli", "VAEModel", "get_likelihood"]
