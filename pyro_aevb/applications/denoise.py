"""Denoising: the clean image behind a noisy one, by posterior inference on z under a noise model.

    y = noise(x),   E[x | y] = E_{p(z | y)} [ E[x | y, z] ],   p(z | y) ∝ p(z) prod_d p(y_d | z)

with p(y_d|z) and E[x_d|y_d,z] from the noise model (:mod:`.noise`) and the expectation over z by importance
sampling with the encoder iterated on the current estimate (:mod:`.posterior`) -- the machinery of
inpainting with a noise model in place of the mask.

Reported, as mean squared error per pixel against the clean image:

* ``error``                        -- this posterior mean;
* ``noisy_input_error``            -- the noisy image itself (doing nothing);
* ``baseline_encoder_once_error``  -- the encoder run once on the noisy image, decoded at its posterior mean.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import torch

from ..contract import check_data_support
from .encode import decode, encode
from .pictures import save_image_rows
from .posterior import infer_images


def mean_squared_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return float(((estimate - truth) ** 2).mean())


@dataclass
class Denoising:
    """Clean, noisy and denoised images (``[N, D]``) and the encoder-once baseline."""

    truth: torch.Tensor
    noisy: torch.Tensor
    images: torch.Tensor
    encoder_once: torch.Tensor
    log_evidence: torch.Tensor
    ess: torch.Tensor
    noise: str
    num_samples: int
    rounds: int
    proposal: str

    def metrics(self) -> dict:
        return {
            "error": mean_squared_error(self.images, self.truth),
            "noisy_input_error": mean_squared_error(self.noisy, self.truth),
            "baseline_encoder_once_error": mean_squared_error(self.encoder_once, self.truth),
            "noise": self.noise, "noisy_log_likelihood": float(self.log_evidence.mean()),
            "effective_sample_size": float(self.ess.mean()), "num_images": int(self.truth.shape[0]),
            "num_samples": self.num_samples, "rounds": self.rounds, "proposal": self.proposal,
        }

    def save_picture(self, path, image_shape: Tuple[int, int], num_images: int = 10) -> Path:
        n = slice(0, num_images)
        m = self.metrics()
        return save_image_rows(
            [self.truth[n], self.noisy[n], self.encoder_once[n], self.images[n]],
            ["clean", f"noisy ({self.noise})\n{m['noisy_input_error']:.4f}",
             f"encoder once\n{m['baseline_encoder_once_error']:.4f}",
             f"posterior ({self.proposal})\n{m['error']:.4f}"],
            image_shape, path, title="denoising: mean squared error per pixel against the clean image")


@torch.no_grad()
def denoise(model: Callable, guide: Callable, x: torch.Tensor, noise, num_samples: int = 100, rounds: int = 3,
            proposal: str = "encoder", clamp: Optional[Tuple[float, float]] = (0.0, 1.0), seed: Optional[int] = 0,
            batch_size: int = 100, noisy: Optional[torch.Tensor] = None) -> Denoising:
    """Corrupt the clean images ``x`` with ``noise`` (a model of :mod:`.noise`, seeded by ``seed``) -- or take
    ``noisy`` as given -- and denoise them."""
    check_data_support(model, x, "the clean images")
    if noisy is None:
        generator = torch.Generator(device=x.device).manual_seed(0 if seed is None else seed)
        noisy = noise.corrupt(x, generator)
    result = infer_images(model, guide, noisy, noise, num_samples, rounds, proposal, clamp, batch_size, seed)
    seen = noisy.clamp(*clamp) if clamp is not None else noisy
    once = decode(model, guide, encode(model, guide, seen, seed=seed).means, seen, seed=seed)
    return Denoising(x, noisy, result.images, once, result.log_evidence, result.ess, str(noise), int(num_samples),
                     int(rounds) if proposal == "encoder" else 1, proposal)
