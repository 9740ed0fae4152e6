"""KL warm-up: the latent sites' terms of the bound weighted by beta, annealed linearly from 0 to 1.

The bound of a datapoint is an observation term and the latent sites' terms (eq. 3, 7)::

    L(theta, phi; x) = E_q(z|x)[log p_theta(x|z)] - KL(q_phi(z|x) || p(z))

where, with several latent sites z_1..z_K (any names, extra plates, global latents such as full VB's theta),
the KL is the sum of the sites' KLs.  Warm-up (Bowman et al. 2016; Sonderby et al. 2016) trains on

    L_beta = E_q(z|x)[log p_theta(x|z)] - beta_t KL(q_phi(z|x) || p(z)),     beta_t = min(1, t / S)

for the t-th optimisation step (t = 1, 2, ...) of a warm-up of S steps: beta rises from 0 (before the first
step) to 1 (at step S and after).  For estimator A (eq. 6) the KL is the Monte Carlo
``log q_phi(z|x) - log p(z)`` of every latent site, for estimator B (eq. 7) its closed form (eq. 10 for the
Gaussian); both are weighted by beta, the observation term keeps weight 1.  While beta < 1, L_beta is not a
bound on log p(x) (it exceeds L), so the trainer reports it as ``train_objective`` and evaluates the
unannealed L.

Pyro weights a site's log-density by the site's ``scale`` (``poutine.scale``, the same mechanism that scales a
minibatch by N/M, eq. 8): ``Trace_ELBO`` sums ``scale * log p`` of the model's sites and ``scale * log q`` of
the guide's, ``TraceMeanField_ELBO`` weights each site's KL by the guide site's ``scale``.  So beta * KL is a
:class:`~pyro.poutine.scale_messenger.ScaleMessenger` that scales the sample sites that are not observed, in
model and guide alike (:class:`LatentScaleMessenger`).  A discrete site summed out by enumeration
(``infer={"enumerate": "parallel"}``, ``TraceEnum_ELBO``) keeps weight 1: its term is inside the enumerated sum
together with the observations that depend on it, and Pyro needs one scale for all of them.
"""

from pyro.poutine.scale_messenger import ScaleMessenger

from ..errors import AevbInputError


def kl_weight(step: int, warmup_steps: int) -> float:
    """beta_t = min(1, t / S) for the t-th optimisation step (1-based) of a warm-up of S steps (S = 0: 1)."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


def check_warmup_steps(steps) -> int:
    """``steps`` as a number of optimisation steps >= 0, or a one-line :class:`AevbInputError`."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise AevbInputError(f"the KL warm-up is a number of optimisation steps >= 0 (0: none), got {steps!r}")
    return steps


class LatentScaleMessenger(ScaleMessenger):
    """``poutine.scale(beta)`` for the latent sites only: every sample site that is not observed and not
    enumerated has its log-density (its KL term, for estimator B) weighted by ``beta``.

    Used as a context around an ELBO's evaluation, it applies to the model's and the guide's sites alike
    (Pyro processes it after ``replay``, so a site enumerated in the guide is recognised in the model too)::

        with LatentScaleMessenger(0.25):
            loss = Trace_ELBO().differentiable_loss(model, guide, x)   # -(E[log p(x|z)] - 0.25 KL)
    """

    def _process_message(self, msg) -> None:
        if msg["type"] == "sample" and not msg["is_observed"] and not msg["infer"].get("enumerate"):
            msg["scale"] = self.scale * msg["scale"]
