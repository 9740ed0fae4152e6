"""Batched Hamiltonian Monte Carlo on p_theta(z | x), and the marginal-likelihood estimator of appendix D.

**Appendix D** (for low-dimensional latent spaces).  With posterior samples
z^(l) ~ p_theta(z|x) and any normalised density q(z)::

    E_{p(z|x)}[ q(z) / (p(z) p_theta(x|z)) ] = int q(z) dz / p_theta(x) = 1 / p_theta(x)

so  p_theta(x) ~= [ (1/L) sum_l q(z^(l)) / (p(z^(l)) p_theta(x|z^(l))) ]^-1.
The protocol: (1) draw posterior samples with HMC, whose dynamics use
grad_z log p(z) + grad_z log p_theta(x|z); (2) fit a density q(z) to them
(here a full-covariance Gaussian per datapoint); (3) draw fresh posterior
samples and evaluate the estimator.  The paper used 50 posterior samples per
datapoint and 4 leapfrog steps.

*Direction of its bias.*  This is a reciprocal importance-sampling
(harmonic-mean type) estimator: the average inside the brackets is unbiased
for 1/p(x), so by Jensen ``E[log p_hat] >= log p(x)`` -- it is biased
**upward**, the opposite of the importance-sampled estimator (biased downward,
a lower bound).  Its variance is finite only when q has lighter tails than the
posterior; :func:`fit_gaussian`'s diagonal jitter widens q, which is the risky
direction, so the estimate should be read as approximate (tight where the
posterior is close to Gaussian, as in the paper's low-dimensional spaces).

**BatchedHMC** runs one chain per datapoint, all advanced together, in the
flattened space of all local latent sites of the model (any names, any
number, extra plates -- :class:`LatentLayout`): the potential is
``U_i(z_i) = -log p_theta(x_i, z_i)`` (the model traced with
``poutine.condition``; masked entries count 0 and site scales are left out,
as in importance sampling -- :func:`pyro_aevb.plates.site_log_density` -- so
with a masked observation both estimate log p(x_observed)), the leapfrog integrator is Pyro's
:func:`pyro.ops.integrator.velocity_verlet` on the summed potential (the chains
are independent, so the gradient of the sum is every chain's own gradient),
and the Metropolis accept/reject and the step size are per chain (adapted by
Pyro's :class:`~pyro.ops.dual_averaging.DualAveraging`, elementwise).
``pyro.infer.mcmc.HMC`` itself would accept or reject all N chains jointly.
Latents must be real-valued and local (checked).
"""

import math
from typing import Callable, Dict, Optional, Tuple

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.ops.dual_averaging import DualAveraging
from pyro.ops.integrator import potential_grad, velocity_verlet

from ..contract import ModelStructure, inspect_model, require_local_only, require_real_latents
from ..errors import AevbInputError
from ..params import local_param_store
from ..plates import is_local_latent, site_log_density, sum_to_datapoints
from .importance import LogLikelihood


class LatentLayout:
    """All local latent sites of a model as one flat vector per datapoint: ``dict <-> [N, D]``.

    Each site's value has its datapoint axis at ``structure.latent_axes``; it is moved to the front and the
    rest flattened, so the layout holds whatever shapes and plates the sites have.
    """

    def __init__(self, structure: ModelStructure, values: Dict[str, torch.Tensor]):
        self.names = structure.local_latents
        self.axes = dict(zip(structure.local_latents, structure.latent_axes))
        self.rest = {n: values[n].movedim(self.axes[n], 0).shape[1:] for n in self.names}
        self.sizes = [int(torch.Size(self.rest[n]).numel()) for n in self.names]

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    def flatten(self, values: Dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([values[n].movedim(self.axes[n], 0).reshape(values[n].shape[self.axes[n]], -1)
                          for n in self.names], dim=-1)

    def unflatten(self, flat: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = {}
        for name, part in zip(self.names, flat.split(self.sizes, dim=-1)):
            out[name] = part.reshape((flat.shape[0],) + tuple(self.rest[name])).movedim(0, self.axes[name])
        return out


def prior_draw(model: Callable, args: tuple) -> Dict[str, torch.Tensor]:
    """One draw of every local latent from the prior (the model traced with its observations in place)."""
    with torch.no_grad():
        trace = poutine.trace(model).get_trace(*args)
    return {name: site["value"] for name, site in trace.nodes.items() if is_local_latent(site)}


class BatchedHMC:
    """Independent HMC chains on p_theta(z_i | x_i), one per row of ``x``, advanced together.

    One transition per chain: momentum r ~ N(0, I); ``num_steps`` leapfrog steps of
    size eps_i (Pyro's velocity Verlet integrator); accept with probability
    min(1, exp(H(z, r) - H(z', r'))), H = U + r^T r / 2, independently per chain.

    :param model: a model following the contract (:mod:`pyro_aevb.contract`), with real local latents.
    :param x: the datapoints ``[N, ...]`` (one chain each).
    :param num_steps: leapfrog steps per transition (4 in appendix D, 10 in appendix E).
    :param layout: how the latents map to the flat state (built from a prior draw by default).
    :param structure: the model's checked structure (checked here when not given).
    """

    def __init__(self, model: Callable, x: torch.Tensor, num_steps: int = 4, layout: Optional[LatentLayout] = None,
                 structure: Optional[ModelStructure] = None):
        if int(num_steps) < 1:
            raise AevbInputError(f"num_steps (leapfrog steps) must be >= 1, got {num_steps}")
        if structure is None:
            structure = inspect_model(model, x)
            require_local_only(structure, "HMC on p(z|x)")
            require_real_latents(model, x, structure, "HMC on p(z|x)")
        self.model, self.x, self.num_steps, self.structure = model, x, int(num_steps), structure
        self.layout = layout or LatentLayout(structure, prior_draw(model, (x[:1],)))
        self._last_energy = None

    def initial_state(self) -> torch.Tensor:
        """A draw of z ~ p(z) for every chain, flattened ``[N, D]``."""
        return self.layout.flatten(prior_draw(self.model, (self.x,)))

    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        """log p_theta(x_i, z_i) per chain, shape ``[N]``, each site counted as importance sampling counts it
        (:func:`~pyro_aevb.plates.site_log_density`): masked entries (``poutine.mask``, ``obs_mask``) count 0,
        and scales are left out (each datapoint counts once).

        A leapfrog trajectory can leave the region where the model's distributions are defined (e.g. a rate
        exp(z) that overflows); there the log-density is -inf, so the proposal is rejected instead of failing
        (validation is off here for that reason)."""
        conditioned = poutine.condition(self.model, data=self.layout.unflatten(z))
        with pyro.validation_enabled(False):
            trace = poutine.trace(conditioned).get_trace(self.x)
            trace.compute_log_prob()
        total = torch.zeros(z.shape[0], device=z.device)
        for site in trace.nodes.values():
            if site["type"] == "sample" and (site["is_observed"] or is_local_latent(site)):
                total = total + sum_to_datapoints(site_log_density(site), self.structure.data_dim)
        return torch.where(torch.isfinite(total) | (total == float("inf")), total,
                           torch.full_like(total, -float("inf")))

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        """U_i(z_i) = -log p(z_i) - log p_theta(x_i | z_i), shape ``[N]``."""
        return -self.log_joint(z)

    def _summed_potential(self, params: dict) -> torch.Tensor:
        energy = self.potential(params["z"])
        self._last_energy = energy.detach()  # per chain, at the last point the integrator visited
        return energy.sum()

    def transition(self, z: torch.Tensor, step_size: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """One HMC transition of every chain; returns the new ``z [N, D]`` and acceptance probabilities ``[N]``."""
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
        """``num_samples`` draws per chain (every ``thin``-th transition): ``[S, N, D]``, and the last state."""
        draws = []
        for i in range(int(num_samples) * int(thin)):
            z, _ = self.transition(z, step_size)
            if (i + 1) % thin == 0:
                draws.append(z)
        return torch.stack(draws), z


def fit_gaussian(samples: torch.Tensor, jitter: float = 1e-6) -> dist.MultivariateNormal:
    """Density estimator q(z) of appendix D: a full-covariance Gaussian per chain fit to ``[S, N, D]`` samples.

    The sample covariance gets 0.1% of its mean variance (plus ``jitter``) added to the diagonal, so that it
    stays positive definite when a chain's samples are nearly collinear (e.g. after many rejections).  This
    widens q slightly -- the direction that raises the estimator's variance (see the module docstring).
    """
    loc = samples.mean(0)
    centred = samples - loc
    cov = torch.einsum("sni,snj->nij", centred, centred) / (samples.shape[0] - 1)
    eye = torch.eye(samples.shape[-1], device=samples.device, dtype=samples.dtype)
    cov = cov + (jitter + 1e-3 * cov.diagonal(dim1=-2, dim2=-1).mean(-1)[:, None, None]) * eye
    return dist.MultivariateNormal(loc, covariance_matrix=cov)


def hmc_log_likelihood(model: Callable, x: torch.Tensor, num_samples: int = 50, num_steps: int = 4,
                       num_warmup: int = 100, thin: int = 1, init: Optional[torch.Tensor] = None,
                       batch_size: int = 1000, target_accept: float = 0.8) -> LogLikelihood:
    """Appendix D estimate of log p_theta(x) per row of ``x`` (biased upward; see the module docstring).

    :param model: a model following the contract with real-valued local latents (any names).
    :param num_samples: L, posterior samples to fit q(z) and (fresh ones) to evaluate the estimator.
    :param num_steps: leapfrog steps per HMC transition.
    :param num_warmup: burn-in transitions, with per-chain step-size adaptation.
    :param init: starting latents, flattened ``[N, D]`` (e.g. the encoder's means); default: a draw from p(z).
    :param batch_size: datapoints (chains) run together.
    """
    if int(num_samples) < 2:
        raise AevbInputError(f"num_samples must be >= 2 to fit a density to the posterior samples, got {num_samples}")
    if x.dim() < 2 or x.shape[0] < 1:
        raise AevbInputError(f"x must have shape [N, D] with N >= 1, got {list(x.shape)}")
    if init is not None and init.shape[0] != x.shape[0]:
        raise AevbInputError(f"init has {init.shape[0]} rows but x has {x.shape[0]}")
    with local_param_store():
        structure = inspect_model(model, x)
        require_local_only(structure, "the appendix-D estimator")
        require_real_latents(model, x, structure, "the appendix-D estimator")
        values = []
        layout = None
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            hmc = BatchedHMC(model, xb, num_steps, layout=layout, structure=structure)
            layout = hmc.layout
            if init is not None:
                zb = init[start:start + batch_size]
                if zb.shape[-1] != layout.dim:
                    raise AevbInputError(f"init has {zb.shape[-1]} columns but the model's latents have {layout.dim}")
            else:
                zb = hmc.initial_state()
            zb, eps = hmc.warmup(zb.detach(), num_warmup, target_accept=target_accept)
            fit_draws, zb = hmc.sample(zb, eps, num_samples, thin)
            q = fit_gaussian(fit_draws)
            fresh, _ = hmc.sample(zb, eps, num_samples, thin)
            with torch.no_grad():
                log_ratio = torch.stack([q.log_prob(z) + hmc.potential(z) for z in fresh])  # log q - log p(x, z)
                values.append(-(torch.logsumexp(log_ratio, 0) - math.log(fresh.shape[0])))
    return LogLikelihood.of(torch.cat(values))
