"""pyro-aevb: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) in Pyro.

Data flows ``data -> model/guide -> objective -> trainer -> evaluation -> applications``:

* :mod:`pyro_aevb.data` -- MNIST, Frey Face and user arrays as tensors;
* :mod:`pyro_aevb.models` -- p(z) and p_theta(x|z); :mod:`pyro_aevb.guides` -- q_phi(z|x);
* :mod:`pyro_aevb.contract` -- what a model and a guide must be, checked;
* :mod:`pyro_aevb.inputs` -- conditioning inputs (a label y, a covariate) given to the model and guide by name;
* :mod:`pyro_aevb.labels` -- the labelled subset of semi-supervised training and the classification term (M2);
* :mod:`pyro_aevb.infer` -- SGVB estimators A and B, the IWAE bound, importance sampling, HMC and the
  appendix-D estimator, wake-sleep, Monte Carlo EM (one per module);
* :mod:`pyro_aevb.trainer` -- Algorithm 1 with atomic checkpoints;
* :mod:`pyro_aevb.evaluation` -- bounds, full VB, sampling through ``Predictive``;
* :mod:`pyro_aevb.applications` -- encode, reconstruct, inpaint, denoise, latent map, interpolate;
* :mod:`pyro_aevb.runs` / :mod:`pyro_aevb.cli` -- run directories and the command line.
"""

from .config import RunConfig, build_model_guide
from .contract import ModelStructure, check_model_guide, inspect_model
from .data import Dataset, load_array_file, load_frey, load_mnist
from .errors import AevbInputError
from .evaluation import (evaluate_bound, full_vb_bound, log_likelihood, posterior_predictive_log_likelihood,
                         prior_means, reconstruct)
from .infer import ImportanceWeightedELBO, MonteCarloEM, WakeSleep, hmc_log_likelihood, make_elbo
from .inputs import condition
from .labels import ClassificationTerm, balanced_labels
from .loading import load_dataset
from .plates import data_plate
from .runs import Run, evaluate_run, load_run, train
from .specs import records_arguments
from .optimizers import make_optimizer
from .trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "AevbInputError", "ClassificationTerm", "Dataset", "ImportanceWeightedELBO", "ModelStructure", "MonteCarloEM", "Run", "RunConfig",
    "Trainer", "WakeSleep", "balanced_labels", "build_model_guide", "check_model_guide", "condition", "data_plate",
    "evaluate_bound", "evaluate_run", "full_vb_bound", "hmc_log_likelihood", "inspect_model",
    "load_array_file", "load_dataset", "load_frey", "load_mnist", "load_run", "log_likelihood", "make_elbo",
    "make_optimizer", "posterior_predictive_log_likelihood", "prior_means", "reconstruct", "records_arguments",
    "train",
]
