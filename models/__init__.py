"""Generative side of AEVB: the prior p(z), decoder networks and likelihoods p(x|z).

Installed as ``pyro_aevb.models``.  :class:`BayesianVAEModel` is the full-VB
variant of appendix F (random decoder weights); :class:`ConvVAEModel` (transposed-convolution decoder),
:class:`HierarchicalVAEModel` (stacked stochastic layers, Burda et al. 2015) and :class:`DMMModel` (the deep
Markov model of sequences, Krishnan et al., 2017) go beyond the paper (issue 9).
"""

from .bayesian import BayesianLinear, BayesianMLP, BayesianVAEModel
from .conv import ConvVAEModel
from .dmm import DMMModel, GatedTransition
from .hierarchical import HierarchicalVAEModel
from .likelihoods import LIKELIHOODS, Likelihood, UnitIntervalBernoulli, get_likelihood
from .vae import VAEModel

__all__ = ["BayesianLinear", "BayesianMLP", "BayesianVAEModel", "ConvVAEModel", "DMMModel", "GatedTransition",
           "HierarchicalVAEModel", "LIKELIHOODS",
           "Likelihood", "UnitIntervalBernoulli", "VAEModel", "get_likelihood"]
