"""Generative side of AEVB: the prior p(z), decoder networks and likelihoods p(x|z).

Installed as ``pyro_aevb.models``.  :class:`BayesianVAEModel` is the full-VB
variant of appendix F (random decoder weights); :class:`ConvVAEModel` (transposed-convolution decoder),
:class:`HierarchicalVAEModel` (stacked stochastic layers, Burda et al. 2015), :class:`DMMModel` (the deep
Markov model of sequences, Krishnan et al., 2017) and :class:`M2Model` (the semi-supervised M2 of Kingma,
Rezende, Mohamed & Welling, 2014) go beyond the paper.
"""

from .bayesian import BayesianLinear, BayesianMLP, BayesianVAEModel
from .conv import ConvVAEModel
from .dmm import DMMModel, GatedTransition
from .hierarchical import HierarchicalVAEModel
from .likelihoods import LIKELIHOODS, Likelihood, UnitIntervalBernoulli, get_likelihood
from .m2 import M2Model
from .vae import VAEModel

__all__ = ["BayesianLinear", "BayesianMLP", "BayesianVAEModel", "ConvVAEModel", "DMMModel", "GatedTransition",
           "HierarchicalVAEModel", "LIKELIHOODS", "Likelihood", "M2Model", "UnitIntervalBernoulli", "VAEModel",
           "get_likelihood"]
