"""Estimators and algorithms, one per module, all working from the traces of a checked model/guide pair:

* :mod:`.elbo` -- SGVB estimators A (``Trace_ELBO``, eq. 6) and B (``TraceMeanField_ELBO``, eq. 7);
* :mod:`.fused` -- the same two estimators without per-step Pyro tracing, for the built-in VAE (speed);
* :mod:`.iwae` -- the importance-weighted bound (Burda et al., 2015);
* :mod:`.importance` -- importance weights and the importance-sampled log p(x);
* :mod:`.hmc` -- batched HMC on p(z|x) and the appendix-D marginal-likelihood estimator;
* :mod:`.wake_sleep`, :mod:`.mcem` -- the paper's baselines, as objectives for the same trainer.
"""

from .elbo import ESTIMATORS, make_elbo
from .fused import FusedELBO, cross_check, is_fused_compatible
from .hmc import BatchedHMC, LatentLayout, fit_gaussian, hmc_log_likelihood
from .importance import LogLikelihood, log_likelihood, log_weights
from .iwae import ImportanceWeightedELBO
from .mcem import MonteCarloEM
from .wake_sleep import WakeSleep

__all__ = ["BatchedHMC", "ESTIMATORS", "FusedELBO", "ImportanceWeightedELBO", "LatentLayout", "LogLikelihood",
           "MonteCarloEM", "WakeSleep", "cross_check", "fit_gaussian", "hmc_log_likelihood", "is_fused_compatible",
           "log_likelihood", "log_weights", "make_elbo"]
