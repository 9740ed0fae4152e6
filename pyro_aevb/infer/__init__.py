"""Estimators and algorithms, one per module, all working from the traces of a checked model/guide pair:

* :mod:`.elbo` -- SGVB estimators A (``Trace_ELBO``, eq. 6) and B (``TraceMeanField_ELBO``, eq. 7);
* :mod:`.graph` -- the same estimators over Pyro's traces, traced once into one graph of the forward and
  backward pass (every model's training path);
* :mod:`.iwae` -- the importance-weighted bound (Burda et al., 2015);
* :mod:`.importance` -- importance weights and the importance-sampled log p(x);
* :mod:`.hmc` -- batched HMC on p(z|x) and the appendix-D marginal-likelihood estimator;
* :mod:`.wake_sleep`, :mod:`.mcem` -- the paper's baselines, as objectives for the same trainer.
"""

from .elbo import ESTIMATORS, make_elbo
from .graph import GraphELBO, NotTraceable, sgvb_loss
from .hmc import BatchedHMC, LatentLayout, fit_gaussian, hmc_log_likelihood
from .importance import LogLikelihood, log_likelihood, log_weights
from .iwae import ImportanceWeightedELBO
from .mcem import MonteCarloEM
from .wake_sleep import WakeSleep

__all__ = ["BatchedHMC", "ESTIMATORS", "GraphELBO", "ImportanceWeightedELBO", "LatentLayout", "LogLikelihood",
           "MonteCarloEM", "NotTraceable", "WakeSleep", "fit_gaussian", "hmc_log_likelihood", "sgvb_loss",
           "log_likelihood", "log_weights", "make_elbo"]
