"""Guides by name, and the check that estimator B can use a guide.

``get_guide(name, data_dim, latent_dim, hidden_dims, activation)`` builds one of
:data:`GUIDE_NAMES`; any other callable ``guide(x, idx=None, num_data=None)``
that samples ``"z"`` inside :func:`pyro_aevb.plates.data_plate` works with the
trainer too (pass it instead of a name).

Estimator B (eq. 7; Pyro's ``TraceMeanField_ELBO``) replaces
``E_q[log p(z) - log q(z|x)]`` by ``-KL(q || p)`` when torch knows that KL in
closed form and otherwise *silently* falls back to sampling (estimator A for
that site).  :func:`check_analytic_kl` traces the guide and the model once and
raises :class:`AevbInputError` naming the site and the distribution pair when
a latent site has no closed-form KL.
"""

from typing import Callable, Sequence, Union

import torch
from pyro import poutine
from pyro.poutine.subsample_messenger import _Subsample
from torch.distributions import kl_divergence

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
              activation: str = "tanh"):
    """Build the guide called ``guide`` (a name in :data:`GUIDE_NAMES`), or pass a callable through."""
    if callable(guide):
        return guide
    if guide not in GUIDE_NAMES:
        raise AevbInputError(f"unknown guide {guide!r}; choose from {sorted(GUIDE_NAMES)}")
    if guide == "normal":
        return AmortizedNormalGuide(data_dim, latent_dim, hidden_dims, activation)
    if guide == "lowrank":
        return AmortizedLowRankGuide(data_dim, latent_dim, hidden_dims, activation)
    if guide == "fullcov":
        return AmortizedFullCovGuide(data_dim, latent_dim, hidden_dims, activation)
    assert guide in FAMILIES
    return AmortizedLocScaleGuide(data_dim, latent_dim, hidden_dims, activation, family=guide)


def _describe(d) -> str:
    """``Independent(StudentT)``-style name of a (wrapped) distribution."""
    name = type(d).__name__
    return f"{name}({_describe(d.base_dist)})" if hasattr(d, "base_dist") else name


@torch.no_grad()
def check_analytic_kl(model: Callable, guide: Callable, x: torch.Tensor) -> None:
    """Raise :class:`AevbInputError` unless every latent site has a closed-form KL(q || p).

    :param x: any small batch the model accepts (e.g. two rows of 0.5).
    """
    guide_trace = poutine.trace(guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    for name, site in model_trace.nodes.items():
        if (site["type"] != "sample" or site["is_observed"] or name not in guide_trace.nodes
                or isinstance(site["fn"], _Subsample)):
            continue
        q, p = guide_trace.nodes[name]["fn"], site["fn"]
        try:
            kl_divergence(q, p)
        except NotImplementedError:
            analytic = sorted(n for n, (_, ok) in GUIDE_NAMES.items() if ok)
            raise AevbInputError(
                f"estimator B (--elbo analytic) needs KL(q || p) in closed form, but site {name!r} has "
                f"q = {_describe(q)} and p = {_describe(p)} with no analytic KL; use --elbo trace (estimator A) "
                f"or a guide with an analytic KL ({', '.join(analytic)})"
            ) from None
