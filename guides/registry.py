"""Guides by name, and the check that estimator B can use a guide.

``get_guide(name, data_dim, latent_dim, hidden_dims, activation)`` builds one of
:data:`GUIDE_NAMES` (a callable passed instead of a name is returned as it is).  The trainer takes any guide
that follows the contract of :mod:`pyro_aevb.contract` and is a ``torch.nn.Module`` (e.g. a ``PyroModule``),
so that its parameters are trained and checkpointed.

Estimator B (eq. 7; Pyro's ``TraceMeanField_ELBO``) replaces
``E_q[log p(z) - log q(z|x)]`` by ``-KL(q || p)`` when torch knows that KL in
closed form and otherwise *silently* falls back to sampling (estimator A for
that site).  :func:`check_analytic_kl` traces the guide and the model once and
raises :class:`AevbInputError` naming the site and the distribution pair when
a latent site has no closed-form KL.
"""

from typing import Callable, Sequence, Union

import torch
from pyro_aevb.contract import check_model_guide
from pyro_aevb.errors import AevbInputError

from .amortized import AmortizedNormalGuide
from .location_scale import FAMILIES, AmortizedLocScaleGuide
from .lowrank import AmortizedFullCovGuide, AmortizedLowRankGuide

#: name -> (section 2.4 route, whether KL(q || N(0, I)) is analytic)
GUIDE_NAMES = {
    "normal": ("location-scale", True),
    "laplace": ("location-scale", True),
    "studentt": ("location-scale", False),
    "logistic": ("location-scale", False),
    "gumbel": ("inverse-cdf", True),
    "lognormal": ("composition", False),
    "lowrank": ("location-scale, correlated (rank 2 + diagonal)", True),
    "fullcov": ("location-scale, correlated (full covariance)", True),
}


def get_guide(guide: Union[str, Callable], data_dim: int, latent_dim: int, hidden_dims: Sequence[int] = (500,),
              activation: str = "tanh", init: str = "paper"):
    """Build the guide called ``guide`` (a name in :data:`GUIDE_NAMES`), or pass a callable through."""
    if callable(guide):
        return guide
    if guide not in GUIDE_NAMES:
        raise AevbInputError(f"unknown guide {guide!r}; choose from {sorted(GUIDE_NAMES)}")
    if guide == "normal":
        return AmortizedNormalGuide(data_dim, latent_dim, hidden_dims, activation, init)
    if guide == "lowrank":
        return AmortizedLowRankGuide(data_dim, latent_dim, hidden_dims, activation, init=init)
    if guide == "fullcov":
        return AmortizedFullCovGuide(data_dim, latent_dim, hidden_dims, activation, init)
    assert guide in FAMILIES
    return AmortizedLocScaleGuide(data_dim, latent_dim, hidden_dims, activation, family=guide, init=init)


def check_analytic_kl(model: Callable, guide: Callable, x: torch.Tensor) -> None:
    """Raise :class:`AevbInputError` unless every latent site has a closed-form KL(q || p) (estimator B).

    The contract check of :mod:`pyro_aevb.contract` with estimator ``"analytic"``.
    """
    check_model_guide(model, guide, x, "analytic")
