"""Inpainting: fill in missing pixels by posterior inference on z given only the observed pixels.

    E[x_M | x_O] = E_{p(z | x_O)} [ E[x_M | z] ],        p(z | x_O) ∝ p(z) prod_{d in O} p_theta(x_d | z)

estimated by importance sampling with the encoder iterated on the imputed image as proposal
(:mod:`.posterior`; the missing pixels marginalise out of the observed likelihood, :mod:`.masks`).

Reported, as mean squared error per *missing* pixel against the true image (which the method never sees):

* ``missing_pixel_error``           -- this posterior mean;
* ``baseline_mean_image_error``     -- the mean training image in the holes (knows nothing of the image);
* ``baseline_encoder_once_error``   -- the encoder run once on the masked image (holes filled with the mean
  image) and decoded at its posterior mean: amortised inference with no correction for the holes.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import torch

from ..contract import check_data_support
from ..errors import AevbInputError
from .encode import decode, encode
from .masks import MissingPixels
from .pictures import save_image_rows
from .posterior import infer_images

def missing_pixel_error(estimate: torch.Tensor, truth: torch.Tensor, missing: torch.Tensor) -> float:
    """Mean squared error over the missing pixels of all images."""
    return float(((estimate - truth) ** 2)[missing].mean())


@dataclass
class Inpainting:
    """Inpainted images and the baselines, all ``[N, D]``, with the mask (``True`` = missing)."""

    truth: torch.Tensor
    missing: torch.Tensor
    images: torch.Tensor
    mean_image: torch.Tensor
    encoder_once: torch.Tensor
    log_evidence: torch.Tensor
    ess: torch.Tensor
    num_samples: int
    rounds: int
    proposal: str

    def metrics(self) -> dict:
        return {
            "missing_pixel_error": missing_pixel_error(self.images, self.truth, self.missing),
            "baseline_mean_image_error": missing_pixel_error(self.mean_image, self.truth, self.missing),
            "baseline_encoder_once_error": missing_pixel_error(self.encoder_once, self.truth, self.missing),
            "missing_fraction": float(self.missing.float().mean()),
            "observed_log_likelihood": float(self.log_evidence.mean()),
            "effective_sample_size": float(self.ess.mean()),
            "num_images": int(self.truth.shape[0]), "num_samples": self.num_samples, "rounds": self.rounds,
            "proposal": self.proposal,
        }

    def save_picture(self, path, image_shape: Tuple[int, int], num_images: int = 10) -> Path:
        n = slice(0, num_images)
        m = self.metrics()
        return save_image_rows(
            [self.truth[n], self.truth[n], self.mean_image[n], self.encoder_once[n], self.images[n]],
            ["original", "observed", f"mean image\n{m['baseline_mean_image_error']:.4f}",
             f"encoder once\n{m['baseline_encoder_once_error']:.4f}",
             f"posterior ({self.proposal})\n{m['missing_pixel_error']:.4f}"],
            image_shape, path, title="inpainting: mean squared error per missing pixel (missing pixels in blue)",
            holes=[None, self.missing[n], None, None, None])


@torch.no_grad()
def inpaint(model: Callable, guide: Callable, x: torch.Tensor, missing: torch.Tensor, mean_image: torch.Tensor,
            num_samples: int = 100, rounds: int = 3, proposal: str = "encoder",
            clamp: Optional[Tuple[float, float]] = (0.0, 1.0), seed: Optional[int] = 0,
            batch_size: int = 100) -> Inpainting:
    """Inpaint the ``missing`` pixels (``[N, D]`` bool, ``True`` = missing) of the images ``x`` (``[N, D]``).

    ``x``'s missing pixels are never read: the model sees them replaced by ``mean_image`` (``[D]``).
    """
    check_data_support(model, x, "the images")
    if missing.shape != x.shape:
        raise AevbInputError(f"the mask has shape {list(missing.shape)} but the images have {list(x.shape)}: give "
                             "one boolean per pixel (True = missing)")
    if mean_image.shape != x.shape[1:]:
        raise AevbInputError(f"mean image of shape {list(mean_image.shape)} for images of shape {list(x.shape[1:])}")
    missing = missing.to(x.device).bool()
    observation = MissingPixels(missing, mean_image)
    y = observation.impute(x)  # the holes hold the mean image from here on: x's missing pixels are gone
    result = infer_images(model, guide, y, observation, num_samples, rounds, proposal, clamp, batch_size, seed)
    codes = encode(model, guide, y, seed=seed)
    once = torch.where(missing, decode(model, guide, codes.means, y, seed=seed), y)
    images = torch.where(missing, result.images, y)  # the observed pixels exactly (sum_k w_k y = y up to rounding)
    return Inpainting(x, missing, images, y, once, result.log_evidence, result.ess, int(num_samples),
                      int(rounds) if proposal == "encoder" else 1, proposal)
