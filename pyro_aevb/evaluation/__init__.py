"""Evaluation, one job per module: the bound (:mod:`.bound`), full VB (:mod:`.full_vb`),
sampling/reconstruction through ``Predictive`` (:mod:`.sampling`), the bound's terms -- reconstruction, KL,
KL and active units per latent site (:mod:`.terms`) -- and the classification error of a guide that is a
classifier (:mod:`.classify`).  The estimators of log p(x) live in :mod:`pyro_aevb.infer` (importance
sampling, the appendix-D HMC estimator)."""

from ..infer.importance import LogLikelihood, log_likelihood, log_weights
from .bound import evaluate_bound
from .classify import classification_error, has_classifier, train_supervised
from .full_vb import (FullVBBound, fix_globals, full_vb_bound, global_kl, posterior_predictive_log_likelihood,
                      predictive_means)
from .sampling import (conditional_means, decode_means, discrete_latent, num_values, prior_means, reconstruct,
                       sample_globals)
from .terms import BoundTerms, LatentSiteTerms, bound_terms, latent_site_terms

__all__ = ["BoundTerms", "FullVBBound", "LatentSiteTerms", "LogLikelihood", "bound_terms", "classification_error",
           "conditional_means", "decode_means", "discrete_latent", "evaluate_bound", "fix_globals", "full_vb_bound",
           "global_kl", "has_classifier", "latent_site_terms", "log_likelihood", "log_weights", "num_values",
           "posterior_predictive_log_likelihood", "predictive_means", "prior_means", "reconstruct", "sample_globals",
           "train_supervised"]
