"""Noise models for denoising: how a noisy image y is made from a clean x, and what y says about x given z.

Pixels are corrupted independently.  With p_theta(x_d|z) the model's per-pixel distribution (mean m_d,
variance v_d) each noise model gives the two per-pixel quantities :mod:`.posterior` needs:

* ``salt-pepper:P`` -- with probability P a pixel is replaced by the lowest or the highest grey value (0 or 1,
  half each), otherwise kept: y_d = x_d.  Then

      p(y_d | z)      = (1 - P) p_theta(y_d | z) + (P / 2) [y_d in {0, 1}]
      E[x_d | y_d, z] = pi_d y_d + (1 - pi_d) m_d,     pi_d = (1 - P) p_theta(y_d|z) / p(y_d|z)

  (pi_d: the posterior probability that the pixel was kept).  For the paper's Bernoulli decoder p_theta(y_d|z)
  is a probability at y_d in {0, 1} and this is exact; for a density (Gaussian decoder) the impulse term is an
  outlier component of density P/2 on the grey-value scale, the usual robust likelihood.
* ``gaussian:S`` -- y_d = x_d + S eps_d, eps_d ~ N(0, 1), not clipped.  With the clean pixel's distribution
  matched by its first two moments (exact for the Gaussian decoder of appendix C.2),

      p(y_d | z)      = N(y_d; m_d, v_d + S^2)
      E[x_d | y_d, z] = m_d + v_d / (v_d + S^2) (y_d - m_d)           (the Wiener / Kalman gain)

The encoder first sees y itself (clipped to the data range by :func:`~.posterior.infer_images`).
"""

import math

import torch

from ..errors import AevbInputError

KINDS = ("salt-pepper", "gaussian")
HOW_TO = "use salt-pepper:P (0 < P < 1, the fraction of pixels hit) or gaussian:S (S > 0, the noise's std)"


class SaltPepperNoise:
    """Impulse noise: a fraction ``rate`` of the pixels set to ``low`` or ``high`` (half each)."""

    def __init__(self, rate: float, low: float = 0.0, high: float = 1.0):
        self.rate, self.low, self.high = float(rate), float(low), float(high)

    def __getitem__(self, rows: slice) -> "SaltPepperNoise":
        return self

    def __str__(self) -> str:
        return f"salt-pepper:{self.rate:g}"

    def corrupt(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        hit = torch.rand(x.shape, generator=generator, device=x.device) < self.rate
        salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
        impulse = torch.where(salt, torch.full_like(x, self.high), torch.full_like(x, self.low))
        return torch.where(hit, impulse, x)

    def impute(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def _terms(self, pixel, y: torch.Tensor):
        """log (1 - P) p_theta(y_d|z), log (P/2) [y_d impulse-valued], per pixel."""
        in_support = pixel.support.check(y)
        safe = torch.where(in_support, y, pixel.sample())  # a draw is in the support; its score is discarded
        kept = torch.where(in_support, pixel.log_prob(safe), torch.full_like(safe, -math.inf))
        kept = kept + math.log1p(-self.rate)
        impulse = torch.where((y == self.low) | (y == self.high), math.log(self.rate / 2), -math.inf)
        return kept, impulse.to(kept.dtype)

    def log_prob(self, pixel, y: torch.Tensor) -> torch.Tensor:
        kept, impulse = self._terms(pixel, y)
        return torch.logaddexp(kept, impulse)

    def estimate(self, pixel, y: torch.Tensor) -> torch.Tensor:
        kept, impulse = self._terms(pixel, y)
        p_kept = torch.exp(kept - torch.logaddexp(kept, impulse))
        return p_kept * y + (1 - p_kept) * pixel.mean


class GaussianNoise:
    """Additive white noise of standard deviation ``sigma`` (unclipped)."""

    def __init__(self, sigma: float):
        self.sigma = float(sigma)

    def __getitem__(self, rows: slice) -> "GaussianNoise":
        return self

    def __str__(self) -> str:
        return f"gaussian:{self.sigma:g}"

    def corrupt(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + self.sigma * torch.randn(x.shape, generator=generator, device=x.device)

    def impute(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def _moments(self, pixel):
        try:
            return pixel.mean, pixel.variance
        except NotImplementedError:
            raise AevbInputError(f"gaussian denoising needs the mean and variance of the likelihood, which "
                                 f"{type(pixel).__name__} does not give; use salt-pepper noise") from None

    def log_prob(self, pixel, y: torch.Tensor) -> torch.Tensor:
        mean, var = self._moments(pixel)
        total = var + self.sigma ** 2
        return -0.5 * ((y - mean) ** 2 / total + torch.log(2 * math.pi * total))

    def estimate(self, pixel, y: torch.Tensor) -> torch.Tensor:
        mean, var = self._moments(pixel)
        return mean + var / (var + self.sigma ** 2) * (y - mean)


def parse_noise(spec: str, low: float = 0.0, high: float = 1.0):
    """The noise model ``spec`` names (``salt-pepper:P`` or ``gaussian:S``); ``low``/``high`` are the data's
    darkest and brightest grey values (the impulses of salt-and-pepper noise)."""
    kind, _, value = str(spec).strip().partition(":")
    if kind not in KINDS or not value:
        raise AevbInputError(f"unknown noise {spec!r}; {HOW_TO}")
    try:
        level = float(value)
    except ValueError:
        raise AevbInputError(f"noise {spec!r}: {value!r} is not a number; {HOW_TO}") from None
    if kind == "salt-pepper":
        if not 0.0 < level < 1.0:
            raise AevbInputError(f"noise {spec!r}: the fraction of pixels hit must be strictly between 0 and 1")
        return SaltPepperNoise(level, low, high)
    if not (level > 0.0 and math.isfinite(level)):
        raise AevbInputError(f"noise {spec!r}: the standard deviation must be a positive number")
    return GaussianNoise(level)
