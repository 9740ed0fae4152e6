"""Marginal-likelihood estimators beyond the ELBO: the IWAE bound as a training
objective, and the HMC estimator of appendix D of the paper.

**IWAE bound** (Burda et al., 2015), Pyro's ``RenyiELBO(alpha=0)``.  Per datapoint,
with K proposals z_k ~ q_phi(z|x)::

    L_K(x) = E[ log (1/K) sum_k p_theta(x, z_k) / q_phi(z_k|x) ]  <=  log p_theta(x)

and the minibatch objective is (N/M) sum_{i in X^M} L_K(x^(i)) (eq. 8).
Pyro's :class:`~pyro.infer.RenyiELBO` keeps the ``data`` plate un-summed (it is
common to every site) and takes the logsumexp over particles per datapoint --
but with the *scaled* log-probabilities, so under subsampling it computes
``logsumexp_k((N/M) log w_k)`` instead of ``(N/M) logsumexp_k(log w_k)``, and it
has no ``differentiable_loss`` (needed to use an ELBO as an ``nn.Module``).
:class:`ImportanceWeightedELBO` is RenyiELBO at alpha = 0 with the plate scale
applied outside the logsumexp and a reparameterised ``differentiable_loss``.

**Appendix D estimator** for low-dimensional latent spaces.  With posterior
samples z^(l) ~ p_theta(z|x) and any normalised density q(z)::

    E_{p(z|x)}[ q(z) / (p(z) p_theta(x|z)) ] = int q(z) dz / p_theta(x) = 1 / p_theta(x)

so  p_theta(x) ~= [ (1/L) sum_l q(z^(l)) / (p(z^(l)) p_theta(x|z^(l))) ]^-1.
The protocol: (1) draw posterior samples with Hamiltonian Monte Carlo, whose
dynamics use grad_z log p(z) + grad_z log p_theta(x|z); (2) fit a density
estimator q(z) to them (here a full-covariance Gaussian per datapoint);
(3) draw fresh posterior samples and evaluate the estimator.  The paper used
50 posterior samples per datapoint and 4 leapfrog steps.

:class:`BatchedHMC` runs one HMC chain per datapoint, all chains advanced
together: the potential is ``U_i(z_i) = -log p_theta(x_i, z_i)`` (the model
traced with ``poutine.condition``), the leapfrog integrator is Pyro's
:func:`pyro.ops.integrator.velocity_verlet` on the summed potential (the chains
are independent, so the gradient of the sum is every chain's own gradient),
and the Metropolis accept/reject and the step size are per chain (the step
size adapted by Pyro's :class:`~pyro.ops.dual_averaging.DualAveraging`, as in
:class:`pyro.infer.mcmc.HMC`, applied elementwise).  ``pyro.infer.mcmc.HMC``
itself would accept or reject all N chains jointly, so its acceptance rate and
step size would degrade with the number of datapoints.
"""

import math
from typing import Callable, Optional, Tuple

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import RenyiELBO
from pyro.ops.dual_averaging import DualAveraging
from pyro.ops.integrator import potential_grad, velocity_verlet

from .errors import AevbInputError

# --------------------------------------------------------------------------- IWAE bound


class ImportanceWeightedELBO(RenyiELBO):
    """The IWAE bound: ``RenyiELBO(alpha=0)`` with the minibatch scale N/M outside the logsumexp.

    :param num_particles: K >= 2 importance samples per datapoint (K = 1 is the ELBO: use
        ``Trace_ELBO``).
    :param max_plate_nesting: 1 for the models here (the ``data`` plate); vectorised
        particles live in dim -2.
    """

    def __init__(self, num_particles: int = 2, max_plate_nesting: int = 1, vectorize_particles: bool = True,
                 strict_enumeration_warning: bool = True):
        if int(num_particles) < 2:
            raise AevbInputError(f"the IWAE bound needs num_particles >= 2 (K = 1 is the ELBO), got {num_particles}")
        super().__init__(alpha=0, num_particles=int(num_particles), max_plate_nesting=max_plate_nesting,
                         vectorize_particles=vectorize_particles,
                         strict_enumeration_warning=strict_enumeration_warning)

    def _bound(self, model, guide, args, kwargs) -> torch.Tensor:
        """(N/M) sum_i [logsumexp_k log w_ik - log K], differentiable through reparameterised z."""
        log_w, scales = [], set()
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            lw = 0.0
            for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
                for site in trace.nodes.values():
                    if site["type"] != "sample":
                        continue
                    if site["mask"] is not None:
                        raise AevbInputError(f"the IWAE bound does not support masked site {site['name']!r}")
                    scales.add(float(site["scale"]))
                    lw = lw + sign * site["unscaled_log_prob"]
            log_w.append(lw)
        if len(scales) > 1:
            raise AevbInputError(f"the IWAE bound needs one minibatch scale N/M for all sites, got {sorted(scales)}")
        # vectorised: one trace with particles in dim -2 -> [K, M]; else K traces of [M]
        log_w = log_w[0] if (self.vectorize_particles and len(log_w) == 1) else torch.stack(log_w)
        bound = torch.logsumexp(log_w, dim=0) - math.log(self.num_particles)
        return scales.pop() * bound.sum()

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        return -self._bound(model, guide, args, kwargs)

    @torch.no_grad()
    def loss(self, model, guide, *args, **kwargs) -> float:
        return -self._bound(model, guide, args, kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()


# --------------------------------------------------------------------------- HMC


def log_joint(model: Callable, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p_theta(x_i, z_i) per datapoint (shape ``[N]``): the model traced with ``z`` conditioned."""
    trace = poutine.trace(poutine.condition(model, data={"z": z})).get_trace(x)
    trace.compute_log_prob()
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample":
            total = total + site["log_prob"]
    return total


class BatchedHMC:
    """Independent HMC chains on p_theta(z_i | x_i), one per row of ``x``, advanced together.

    One transition per chain: momentum r ~ N(0, I); ``num_steps`` leapfrog steps of
    size eps_i (Pyro's velocity Verlet integrator); accept with probability
    min(1, exp(H(z, r) - H(z', r'))), H = U + |r|^2 / 2, independently per chain.

    :param model: a model ``model(x)`` with a latent site ``"z"`` in the ``data`` plate.
    :param x: the datapoints ``[N, D]`` (one chain each).
    :param num_steps: leapfrog steps per transition (4 in appendix D, 10 in appendix E).
    """

    def __init__(self, model: Callable, x: torch.Tensor, num_steps: int = 4):
        if int(num_steps) < 1:
            raise AevbInputError(f"num_steps (leapfrog steps) must be >= 1, got {num_steps}")
        self.model, self.x, self.num_steps = model, x, int(num_steps)
        self._last_energy = None

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        """U_i(z_i) = -log p(z_i) - log p_theta(x_i | z_i), shape ``[N]``."""
        return -log_joint(self.model, self.x, z)

    def _summed_potential(self, params: dict) -> torch.Tensor:
        energy = self.potential(params["z"])
        self._last_energy = energy.detach()  # per chain, at the last point the integrator visited
        return energy.sum()

    def transition(self, z: torch.Tensor, step_size: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """One HMC transition of every chain; returns the new ``z [N, J]`` and acceptance probabilities ``[N]``."""
        with torch.enable_grad():
            z = z.detach()
            z_grads, _ = potential_grad(self._summed_potential, {"z": z})
            u0 = self._last_energy
            r = torch.randn_like(z)
            # eps jittered uniformly in [0.8, 1.2] eps per transition (Neal 2011, sec. 5.4.2.2): a fixed
            # trajectory length can be near-periodic for some chain and then it barely mixes
            eps = step_size * (0.8 + 0.4 * torch.rand_like(step_size))
            z_new, r_new, _, _ = velocity_verlet({"z": z}, {"z": r}, self._summed_potential, lambda p: p,
                                                 eps.unsqueeze(-1), self.num_steps, z_grads)
        u1 = self._last_energy
        delta = (u0 + 0.5 * r.pow(2).sum(-1)) - (u1 + 0.5 * r_new["z"].pow(2).sum(-1))
        accept_prob = delta.clamp(max=0.0).exp().nan_to_num(0.0)
        accept = torch.rand_like(accept_prob) < accept_prob
        z_next = torch.where(accept.unsqueeze(-1), z_new["z"].detach(), z)
        return z_next, accept_prob

    def warmup(self, z: torch.Tensor, num_warmup: int, step_size: float = 0.1,
               target_accept: float = 0.8) -> Tuple[torch.Tensor, torch.Tensor]:
        """Burn in and adapt a step size per chain by dual averaging towards ``target_accept``.

        Returns the final state and the adapted step sizes ``[N]``.
        """
        log_eps = torch.full(z.shape[:1], math.log(step_size), device=z.device)
        adapter = DualAveraging(prox_center=log_eps + math.log(10.0))
        for _ in range(int(num_warmup)):
            z, accept_prob = self.transition(z, log_eps.exp())
            adapter.step(target_accept - accept_prob)
            log_eps, _ = adapter.get_state()
            log_eps = log_eps.clamp(-12.0, 2.0)
        if num_warmup > 0:
            log_eps = adapter.get_state()[1].clamp(-12.0, 2.0)
        return z, log_eps.exp()

    def sample(self, z: torch.Tensor, step_size: torch.Tensor, num_samples: int,
               thin: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
        """``num_samples`` draws per chain (every ``thin``-th transition): ``[S, N, J]``, and the last state."""
        draws = []
        for i in range(int(num_samples) * int(thin)):
            z, _ = self.transition(z, step_size)
            if (i + 1) % thin == 0:
                draws.append(z)
        return torch.stack(draws), z


# --------------------------------------------------------------------------- appendix D


def fit_gaussian(samples: torch.Tensor, jitter: float = 1e-6) -> dist.MultivariateNormal:
    """Density estimator q(z) of appendix D: a full-covariance Gaussian per chain fit to ``[S, N, J]`` samples.

    The sample covariance gets 0.1% of its mean variance (plus ``jitter``) added to the diagonal, so that it
    stays positive definite when a chain's samples are nearly collinear (e.g. after many rejections).
    """
    loc = samples.mean(0)
    centred = samples - loc
    cov = torch.einsum("sni,snj->nij", centred, centred) / (samples.shape[0] - 1)
    eye = torch.eye(samples.shape[-1], device=samples.device, dtype=samples.dtype)
    cov = cov + (jitter + 1e-3 * cov.diagonal(dim1=-2, dim2=-1).mean(-1)[:, None, None]) * eye
    return dist.MultivariateNormal(loc, covariance_matrix=cov)


def hmc_log_likelihood(model: Callable, x: torch.Tensor, num_samples: int = 50, num_steps: int = 4,
                       num_warmup: int = 100, thin: int = 1, init: Optional[torch.Tensor] = None,
                       batch_size: int = 1000, target_accept: float = 0.8):
    """Appendix D estimate of log p_theta(x) per row of ``x``, returned as a
    :class:`~pyro_aevb.evaluation.LogLikelihood` (mean, standard error over datapoints, per datapoint).

    :param model: ``model(x)`` with latent site ``"z"`` (e.g. :class:`~pyro_aevb.models.VAEModel`).
    :param num_samples: L, posterior samples to fit q(z) and (fresh ones) to evaluate the estimator.
    :param num_steps: leapfrog steps per HMC transition.
    :param num_warmup: burn-in transitions, with per-chain step-size adaptation.
    :param init: starting z ``[N, J]`` (e.g. the encoder's means); default: a draw from p(z).
    :param batch_size: datapoints (chains) run together.
    """
    from .evaluation import LogLikelihood

    if int(num_samples) < 2:
        raise AevbInputError(f"num_samples must be >= 2 to fit a density to the posterior samples, got {num_samples}")
    if x.dim() != 2 or x.shape[0] < 1:
        raise AevbInputError(f"x must have shape [N, D] with N >= 1, got {list(x.shape)}")
    if init is not None and init.shape[0] != x.shape[0]:
        raise AevbInputError(f"init has {init.shape[0]} rows but x has {x.shape[0]}")
    values = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        with torch.no_grad():
            zb = init[start:start + batch_size] if init is not None else poutine.trace(model).get_trace(xb).nodes["z"]["value"]
        hmc = BatchedHMC(model, xb, num_steps)
        zb, eps = hmc.warmup(zb.detach(), num_warmup, target_accept=target_accept)
        fit_draws, zb = hmc.sample(zb, eps, num_samples, thin)
        q = fit_gaussian(fit_draws)
        fresh, _ = hmc.sample(zb, eps, num_samples, thin)
        with torch.no_grad():
            log_ratio = torch.stack([q.log_prob(z) + hmc.potential(z) for z in fresh])  # log q - log p(x, z)
            values.append(-(torch.logsumexp(log_ratio, 0) - math.log(fresh.shape[0])))
    values = torch.cat(values)
    stderr = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return LogLikelihood(values.mean().item(), stderr, values.cpu())
