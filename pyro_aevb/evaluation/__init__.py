"""Evaluation, one job per module: the bound (:mod:`.bound`), full VB (:mod:`.full_vb`) and
sampling/reconstruction through ``Predictive`` (:mod:`.sampling`).  The estimators of log p(x) live in
:mod:`pyro_aevb.infer` (importance sampling, the appendix-D HMC estimator)."""

from ..infer.importance import LogLikelihood, log_likelihood, log_weights
from .bound import evaluate_bound
from .full_vb import (FullVBBound, fix_globals, full_vb_bound, global_kl, posterior_predictive_log_likelihood,
                      predictive_means)
from .sampling import decode_means, prior_means, reconstruct, sample_globals

__all__ = ["FullVBBound", "LogLikelihood", "decode_means", "evaluate_bound", "fix_globals", "full_vb_bound",
           "global_kl", "log_likelihood", "log_weights", "posterior_predictive_log_likelihood", "predictive_means",
           "prior_means", "reconstruct", "sample_globals"]
