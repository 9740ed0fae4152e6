"""Generative side of AEVB: the prior p(z), decoder networks and likelihoods p(x|z).

Installed as ``pyro_aevb.models``.  :class:`BayesianVAEModel` is the full-VB
variant of appendix F (random decoder weights); :class:`DMMModel` the deep Markov model of
sequences (Krishnan et al., 2017).
"""

from .bayesian import BayesianLinear, BayesianMLP, BayesianVAEModel
from .dmm import DMMModel, GatedTransition
from .likelihoods import LIKELIHOODS, Likelihood, UnitIntervalBernoulli, get_likelihood
from .vae import VAEModel

__all__ = ["BayesianLinear", "BayesianMLP", "BayesianVAEModel", "DMMModel", "GatedTransition", "LIKELIHOODS",
           "Likelihood", "UnitIntervalBernoulli", "VAEModel", "get_likelihood"]
