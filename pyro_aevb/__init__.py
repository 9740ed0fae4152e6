"""pyro-aevb: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) in Pyro.

Data flows ``data -> model/guide -> objective -> trainer -> evaluation``:

* :mod:`pyro_aevb.data` -- MNIST, Frey Face and user arrays as tensors;
* :mod:`pyro_aevb.models` -- p(z) and p_theta(x|z); :mod:`pyro_aevb.guides` -- q_phi(z|x);
* :mod:`pyro_aevb.objectives` -- SGVB estimators A and B (Pyro ELBOs);
* :mod:`pyro_aevb.trainer` -- Algorithm 1 with atomic checkpoints;
* :mod:`pyro_aevb.evaluation` -- bounds and importance-sampled log-likelihoods;
* :mod:`pyro_aevb.runs` / :mod:`pyro_aevb.cli` -- run directories and the command line.
"""

from .config import RunConfig, build_model_guide
from .data import Dataset, load_array_file, load_dataset, load_frey, load_mnist
from .errors import AevbInputError
from .evaluation import evaluate_bound, full_vb_bound, log_likelihood, posterior_predictive_log_likelihood
from .objectives import make_elbo
from .runs import Run, evaluate_run, load_run, train
from .trainer import Trainer, make_optimizer
from .estimators import ImportanceWeightedELBO, hmc_log_likelihood
from .baselines import MonteCarloEM, WakeSleep

__version__ = "0.1.0"

__all__ = [
    "AevbInputError", "Dataset", "Run", "RunConfig", "Trainer", "build_model_guide", "evaluate_bound",
    "evaluate_run", "load_array_file", "load_dataset", "load_frey", "load_mnist", "load_run", "log_likelihood",
    "make_elbo", "make_optimizer", "train",
    "ImportanceWeightedELBO", "MonteCarloEM", "WakeSleep", "hmc_log_likelihood",
    "full_vb_bound", "posterior_predictive_log_likelihood",
]
