"""The SGVB objectives of section 2.3, as Pyro ELBOs.

For one datapoint x with L samples z^(l) = g_phi(eps^(l), x) from q_phi(z|x):

* estimator A (eq. 6), ``"trace"`` -> :class:`pyro.infer.Trace_ELBO`::

      L^A = (1/L) sum_l [ log p_theta(x, z^(l)) - log q_phi(z^(l)|x) ]

* estimator B (eq. 7, with the Gaussian KL of appendix B), ``"analytic"`` ->
  :class:`pyro.infer.TraceMeanField_ELBO`::

      L^B = -KL(q_phi(z|x) || p(z)) + (1/L) sum_l log p_theta(x|z^(l))
      -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)          (eq. 10)

* the IWAE bound (Burda et al., 2015), ``"iwae"`` ->
  :class:`~pyro_aevb.infer.iwae.ImportanceWeightedELBO`.

* estimator A with discrete latents summed out (``enumerate=True``: a site marked
  ``infer={"enumerate": "parallel"}``, contract rule 6) -> :class:`pyro.infer.TraceEnum_ELBO`::

      L = E_q(z|x) [ log sum_y p_theta(x, y, z) ]                 (y summed in the model), or
      L = sum_y q(y|x) E_q(z|x,y) [ log p_theta(x, y, z) - log q(z|x,y) ] + H(q(y|x))   (in the guide)

  e.g. eq. (7) of Kingma, Rezende, Mohamed & Welling (2014).  The continuous latents are still sampled by
  reparameterization; estimator B and the IWAE bound have no enumerating form and are refused.

Both A and B are unbiased for the same bound; B has lower variance when the KL
is analytic.  L is ``num_particles``; particles are vectorised over a plate to
the left of the model's own plates (``max_plate_nesting`` comes from the
checked :class:`~pyro_aevb.contract.ModelStructure`, not from an assumption).
Minibatch scaling by N/M comes from the ``data`` plate (eq. 8).
"""

from pyro.infer import ELBO, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO

from ..errors import AevbInputError
from .iwae import ImportanceWeightedELBO

ESTIMATORS = {
    "trace": Trace_ELBO,  # estimator A
    "analytic": TraceMeanField_ELBO,  # estimator B
    "iwae": ImportanceWeightedELBO,  # IWAE bound, K = num_particles >= 2
}


def make_elbo(name: str = "analytic", num_particles: int = 1, max_plate_nesting: int = 1,
              enumerate: bool = False) -> ELBO:
    """Build estimator ``name`` with L = ``num_particles`` samples per datapoint.

    :param max_plate_nesting: the model's plate depth (``ModelStructure.max_plate_nesting``); enumerated
        sites take the dimensions to the left of these plates and of the particles.
    :param enumerate: the model or guide has enumerated sites (``bool(ModelStructure.enumerated)``): estimator
        A is then :class:`~pyro.infer.TraceEnum_ELBO`.
    """
    if name not in ESTIMATORS:
        raise AevbInputError(f"unknown objective {name!r}; choose from {sorted(ESTIMATORS)}")
    if int(num_particles) < 1:
        raise AevbInputError(f"num_particles must be >= 1, got {num_particles}")
    if enumerate:
        if name != "trace":
            raise AevbInputError(f"objective {name!r} cannot sum out enumerated discrete latents: use 'trace' "
                                 "(estimator A, TraceEnum_ELBO)")
        return TraceEnum_ELBO(num_particles=int(num_particles), vectorize_particles=True,
                              max_plate_nesting=int(max_plate_nesting))
    return ESTIMATORS[name](num_particles=int(num_particles), vectorize_particles=True,
                            max_plate_nesting=int(max_plate_nesting))
