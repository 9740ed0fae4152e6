"""Decoder likelihoods p_theta(x|z): maps from decoder output to a distribution.

A :class:`Likelihood` turns the decoder's last affine layer ``out``
(``params_per_dim * D`` numbers per datapoint) into a distribution with batch
shape ``[..., D]``; the model declares the D pixels one event with
``.to_event(1)``.

* ``bernoulli`` -- appendix C.1, ``log p(x|z) = sum_i x_i log y_i + (1 - x_i) log(1 - y_i)``
  with ``y = sigmoid(out)``.  The paper applies it to MNIST's grey values in
  [0, 1] directly; the result is the cross-entropy, not a normalised density
  on [0, 1] (the continuous Bernoulli fixes that).  :class:`UnitIntervalBernoulli`
  is Pyro's Bernoulli with its support widened to [0, 1] so that validation
  still rejects values outside it.
* ``gaussian`` -- appendix C.2, ``log p(x|z) = log N(x; mu, diag(sigma^2))`` with
  ``mu = sigmoid(W4 h + b4)`` (data in (0, 1), as for Frey Face) and a learned
  ``log sigma^2 = W5 h + b5``.
* ``continuous_bernoulli`` -- Loaiza-Ganem & Cunningham (2019):
  ``p(x|lambda) = C(lambda) lambda^x (1 - lambda)^(1 - x)`` on [0, 1] with
  ``C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda)`` (``C(1/2) = 2``),
  ``lambda = sigmoid(out)``.  The normaliser C makes it a density on [0, 1], so
  its bound is a true log-density bound -- unlike ``bernoulli`` on grey values,
  whose "likelihood" integrates to less than 1 and is not comparable.  log C is
  computed from the logit itself (:func:`continuous_bernoulli_log_normaliser`),
  never from lambda, which rounds to 0 or 1 in float32 beyond |logit| ~ 17.
* ``laplace`` -- ``log p(x|z) = sum_i -|x_i - mu_i| / b_i - log(2 b_i)`` with
  ``mu = sigmoid(.)`` and a learned ``log b``; a heavier-tailed C.2.
* ``beta`` -- ``Beta(alpha, beta)`` with ``alpha, beta = softplus(.) + 1e-3``, a
  density on the *open* interval (0, 1): data with exact 0 or 1 (MNIST) is
  rejected by validation instead of giving log p = +-inf.

Any function ``out -> torch.distributions.Distribution`` with batch shape
``[..., D]`` is a likelihood too: ``get_likelihood(fn)`` (or
``VAEModel(..., likelihood=fn)``) wraps it with one decoder output per
dimension; use :class:`Likelihood` directly for more.  Validation: the
dataset is checked against ``Likelihood.support`` before training
(:meth:`Likelihood.check_data`, an :class:`AevbInputError`), and torch/Pyro
distribution validation (on by default) rejects out-of-support values in
``log_prob``; the Beta's support is the open interval so that exact 0 and 1
are rejected rather than scored as +-inf.
"""

import inspect
import math
from typing import Callable, Dict, Optional, Union

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from pyro_aevb.errors import AevbInputError


class UnitIntervalBernoulli(dist.Bernoulli):
    """Bernoulli log-likelihood evaluated at grey values ``x in [0, 1]``.

    ``log_prob(x) = x log p + (1 - x) log(1 - p)``, the cross-entropy used by
    the paper for MNIST.  Equal to the Bernoulli for binary x.
    """

    support = constraints.unit_interval


def continuous_bernoulli_log_normaliser(logits: torch.Tensor, small: float = 1e-2) -> torch.Tensor:
    """log C of the continuous Bernoulli from its logit eta = log(lambda / (1 - lambda)), stable for every eta.

    With 1 - 2 lambda = -tanh(eta / 2) and artanh(1 - 2 lambda) = -eta / 2 the normaliser is::

        C(eta) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) = eta / tanh(eta / 2)        (even; C(0) = 2)

    * |eta| >= ``small``: with a = |eta| and tanh(a / 2) = (1 - e^-a) / (1 + e^-a), exactly
      ``log C = log a - log(-expm1(-a)) + log1p(e^-a)``: no lambda, no 1 - lambda, nothing that rounds
      to 0 or 1 or overflows, for any a (at a = 30, log C = log 30 + O(e^-30)).
    * |eta| < ``small``: the Taylor series ``log C = log 2 + eta^2 / 12 - 7 eta^4 / 1440 + O(eta^6)``
      (the first omitted term is 62 eta^6 / 181440 < 4e-16 here), which avoids the 0/0 at eta = 0.

    Both branches are evaluated at safe inputs and selected with ``torch.where``, so the gradient is finite
    everywhere (d log C / d eta = 0 at eta = 0).
    """
    a = logits.abs()
    near_zero = a < small
    a_safe = torch.where(near_zero, torch.ones_like(a), a)
    exact = a_safe.log() - torch.log(-torch.expm1(-a_safe)) + torch.log1p(torch.exp(-a_safe))
    eta2 = torch.where(near_zero, logits, torch.zeros_like(logits)).pow(2)
    taylor = math.log(2.0) + eta2 / 12.0 - 7.0 * eta2.pow(2) / 1440.0
    return torch.where(near_zero, taylor, exact)


class StableContinuousBernoulli(dist.ContinuousBernoulli):
    """Pyro's continuous Bernoulli with its log-density and entropy normalised by
    :func:`continuous_bernoulli_log_normaliser` (from the logits), so it integrates to 1 for every logit.

    ``log p(x | eta) = x eta - softplus(eta) + log C(eta)``; torch's normaliser is computed from clamped
    probabilities and makes the density integrate to 0.89 at |logit| = 18 and 0.53 at 30 in float32.
    Sampling, mean and variance are torch's.
    """

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = torch.broadcast_tensors(self.logits, value)
        return (-torch.nn.functional.binary_cross_entropy_with_logits(logits, value, reduction="none")
                + continuous_bernoulli_log_normaliser(logits))

    def entropy(self) -> torch.Tensor:
        """H = -E[log p(x)] = -log C - E[x] eta + softplus(eta)."""
        return (-continuous_bernoulli_log_normaliser(self.logits) - self.mean * self.logits
                + torch.nn.functional.softplus(self.logits))


def _takes_min_scale(fn: Callable) -> bool:
    """Whether ``fn`` accepts a ``min_scale`` keyword (or any keyword)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature (some builtins): let the call decide
        return True
    return any(p.name == "min_scale" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


class Likelihood:
    """A named map ``decoder output -> Distribution`` over the D data dimensions.

    :param name: registry name.
    :param params_per_dim: numbers the decoder emits per data dimension.
    :param fn: ``fn(out)`` with ``out.shape[-1] == params_per_dim * D`` returns a
        distribution with batch shape ``out.shape[:-1] + (D,)``.
    :param support: the constraint the observed data must satisfy.
    :param learned_scale: the decoder learns a scale (Gaussian, Laplace, a StudentT of yours); then ``fn`` takes
        the floor as a keyword, ``fn(out, min_scale)``, and builds its distribution with
        ``scale = min_scale + learned scale`` itself -- only the likelihood knows which of its parameters is
        the scale, so nothing here rebuilds a distribution from its attributes.
    :param min_scale: the floor passed to ``fn`` (0: none).
    """

    def __init__(self, name: str, params_per_dim: int, fn: Callable[[torch.Tensor], dist.Distribution],
                 support: Optional[constraints.Constraint] = None, learned_scale: bool = False,
                 min_scale: float = 0.0):
        if int(params_per_dim) < 1:
            raise AevbInputError(f"params_per_dim must be >= 1, got {params_per_dim}")
        if not min_scale >= 0:
            raise AevbInputError(f"min_scale must be >= 0, got {min_scale}")
        if min_scale > 0 and not learned_scale:
            raise AevbInputError(f"the {name} likelihood has no learned scale: min_scale applies to gaussian and laplace")
        if learned_scale and not _takes_min_scale(fn):
            raise AevbInputError(f"likelihood {name!r} learns a scale, so its function must take the scale floor as "
                                 f"fn(out, min_scale) and add it to the scale it builds")
        self.name = name
        self.params_per_dim = int(params_per_dim)
        self.fn = fn
        self._support = support
        #: whether the decoder learns a scale (Gaussian, Laplace): its density is unbounded at point masses
        self.learned_scale = learned_scale
        #: a floor added to the learned scale (0: none), which keeps the density bounded
        self.min_scale = float(min_scale)

    def __json__(self) -> str:
        """Its name, where the name gives this likelihood back (a built-in one), for a run's record of the
        constructor arguments (:func:`pyro_aevb.specs.records_arguments`); a custom one has no JSON form."""
        if LIKELIHOODS.get(self.name) is self:
            return self.name
        raise TypeError(f"likelihood {self.name!r} is not a registered one")

    def with_min_scale(self, min_scale: float) -> "Likelihood":
        """The same likelihood with ``scale = min_scale + learned scale`` (for data with point masses)."""
        if not min_scale:
            return self
        return Likelihood(self.name, self.params_per_dim, self.fn, self._support, self.learned_scale, min_scale)

    @property
    def support(self) -> constraints.Constraint:
        """The data constraint; when not given, the support of ``fn`` on zeros for D = 1 (unless
        :meth:`check_data` has already probed it with the data's D, as the trainer does)."""
        return self.support_for(1)

    def support_for(self, data_dim: int) -> constraints.Constraint:
        """The data constraint, probing ``fn`` (when no support was given) with a decoder output of zeros for
        ``data_dim`` data dimensions; any failure of ``fn`` there is one :class:`AevbInputError` naming it."""
        if self._support is None:
            width = self.params_per_dim * int(data_dim)
            try:
                d = self(torch.zeros(1, width))
            except AevbInputError:
                raise
            except Exception as e:  # noqa: BLE001 -- a user's likelihood failing is one clear line
                detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
                raise AevbInputError(
                    f"likelihood {self.name!r} failed on a decoder output of shape [1, {width}] ({self.params_per_dim} "
                    f"per data dimension, D = {data_dim}): {type(e).__name__}: {detail} -- it must map out "
                    f"[..., {self.params_per_dim} * D] to a distribution with batch shape [..., D]") from e
            if not isinstance(d, torch.distributions.Distribution):
                raise AevbInputError(f"likelihood {self.name!r} returned {type(d).__name__}, not a Distribution")
            self._support = d.support
        return self._support

    def __call__(self, out: torch.Tensor) -> dist.Distribution:
        if self.learned_scale:
            return self.fn(out, min_scale=self.min_scale)
        return self.fn(out)

    def log_prob_rows(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """sum_d log p(x_d | out) per row, ``out`` of shape ``[..., M, params_per_dim * D]``, ``x`` ``[M, D]``.

        For the Bernoulli this is ``x . logits - sum_d softplus(logits_d)`` (the same number as the
        distribution's ``log_prob``, written so that the product with x is one batched matrix product and
        only the softplus is elementwise: the importance-sampling loop's hot spot); others use ``log_prob``.
        """
        if self is LIKELIHOODS.get("bernoulli"):
            return torch.einsum("...md,md->...m", out, x) - torch.nn.functional.softplus(out).sum(-1)
        return self(out).to_event(1).log_prob(x)

    def point_mass_warning(self, x: torch.Tensor, what: str = "data") -> Optional[str]:
        """A warning when a learned-scale likelihood meets dimensions that are constant across ``x``: there the
        density, and with it the bound, grows without limit as the scale collapses (and training diverges)."""
        x = x.reshape(-1, x.shape[-1])  # rows, or every frame of sequences [N, T, D]
        if not self.learned_scale or self.min_scale > 0 or x.shape[0] < 2:
            return None
        constant = int((x.amax(0) == x.amin(0)).sum())
        if constant == 0:
            return None
        return (f"{what}: {constant} of {x.shape[1]} dimensions are constant, and the {self.name} likelihood learns "
                f"its scale: on such point masses the density is unbounded, the scale collapses and the bound "
                f"grows without limit (training may diverge); set a scale floor (--min-scale 0.01, "
                f"VAEModel(..., min_scale=0.01)) or use a likelihood on [0, 1] (bernoulli, continuous_bernoulli)")

    def check_data(self, x: torch.Tensor, what: str = "data") -> None:
        """Raise :class:`AevbInputError` unless every value of ``x`` is in the support."""
        if not torch.isfinite(x).all():
            raise AevbInputError(f"{what} contains NaN or inf values")
        support = self.support_for(x.shape[-1])
        ok = support.check(x)
        if not bool(ok.all()):
            bad = x[~ok]
            raise AevbInputError(
                f"{what} has {bad.numel()} values outside the support of the {self.name} likelihood "
                f"({support}); e.g. {bad.flatten()[0].item():.4g} "
                f"(min {x.min().item():.4g}, max {x.max().item():.4g})"
            )

    def __repr__(self):
        return f"Likelihood({self.name!r}, params_per_dim={self.params_per_dim})"


class _OpenInterval(constraints.Constraint):
    """``lower < x < upper`` (torch has no open-interval constraint)."""

    def __init__(self, lower: float, upper: float):
        self.lower_bound, self.upper_bound = lower, upper
        super().__init__()

    def check(self, value):
        return (self.lower_bound < value) & (value < self.upper_bound)

    def __repr__(self):
        return f"OpenInterval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


open_unit_interval = _OpenInterval(0.0, 1.0)


class OpenUnitIntervalBeta(dist.Beta):
    """Beta whose support is the open interval (0, 1), so validation rejects exact 0 and 1."""

    support = open_unit_interval


def _bernoulli(out: torch.Tensor) -> dist.Distribution:
    return UnitIntervalBernoulli(logits=out)


def _gaussian(out: torch.Tensor, min_scale: float = 0.0) -> dist.Distribution:
    mean_logit, log_var = out.chunk(2, dim=-1)
    return dist.Normal(torch.sigmoid(mean_logit), torch.exp(0.5 * log_var) + min_scale)


def _continuous_bernoulli(out: torch.Tensor) -> dist.Distribution:
    return StableContinuousBernoulli(logits=out)


def _laplace(out: torch.Tensor, min_scale: float = 0.0) -> dist.Distribution:
    mean_logit, log_b = out.chunk(2, dim=-1)
    return dist.Laplace(torch.sigmoid(mean_logit), torch.exp(log_b) + min_scale)


def _beta(out: torch.Tensor) -> dist.Distribution:
    a, b = out.chunk(2, dim=-1)
    return OpenUnitIntervalBeta(torch.nn.functional.softplus(a) + 1e-3, torch.nn.functional.softplus(b) + 1e-3)


LIKELIHOODS: Dict[str, Likelihood] = {
    "bernoulli": Likelihood("bernoulli", 1, _bernoulli, constraints.unit_interval),
    "gaussian": Likelihood("gaussian", 2, _gaussian, constraints.real, learned_scale=True),
    "continuous_bernoulli": Likelihood("continuous_bernoulli", 1, _continuous_bernoulli, constraints.unit_interval),
    "laplace": Likelihood("laplace", 2, _laplace, constraints.real, learned_scale=True),
    "beta": Likelihood("beta", 2, _beta, open_unit_interval),
}


def get_likelihood(likelihood: Union[str, Likelihood, Callable]) -> Likelihood:
    """Look a likelihood up by name, pass a :class:`Likelihood` through, or wrap a function
    ``out -> Distribution`` (one decoder output per data dimension, support read from the distribution)."""
    if isinstance(likelihood, Likelihood):
        return likelihood
    if callable(likelihood):
        return Likelihood(getattr(likelihood, "__name__", "custom"), 1, likelihood)
    if likelihood not in LIKELIHOODS:
        raise AevbInputError(f"unknown likelihood {likelihood!r}; choose from {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[likelihood]
