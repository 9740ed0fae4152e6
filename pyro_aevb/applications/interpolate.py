"""Interpolate: decoded straight paths in latent space between pairs of test images.

For a pair (x^a, x^b) with posterior means mu^a, mu^b (:mod:`.encode`) and S steps t_s = s / (S - 1),

    z(t) = (1 - t) mu^a + t mu^b,      frame_s = E[x | z(t_s)],

a straight line in Z (all local latent sites at once).  Under the N(0, I) prior a straight line between two
typical codes passes slightly closer to the origin than either end; for the short paths between test codes the
difference from a great-circle path is small, so the plain line is drawn.  Numbers:

* ``endpoint_error``   -- mean squared error per pixel of the path's ends against the two images (how well the
  ends reconstruct);
* ``mean_step_change`` -- mean squared change per pixel between consecutive frames, and ``max_step_change``
  its largest value over the paths: a decoder that is smooth along the path has max close to mean, a jump shows
  as a max well above it.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import torch

from ..errors import AevbInputError
from .encode import decode, encode
from .pictures import save_image_rows


@dataclass
class Interpolation:
    """``paths`` ``[P, S, D]`` decoded frames between the images ``starts`` and ``ends`` (``[P, D]``)."""

    starts: torch.Tensor
    ends: torch.Tensor
    paths: torch.Tensor

    def metrics(self) -> dict:
        steps = ((self.paths[:, 1:] - self.paths[:, :-1]) ** 2).mean(-1)
        ends = torch.cat([self.paths[:, 0] - self.starts, self.paths[:, -1] - self.ends])
        return {"endpoint_error": float((ends ** 2).mean()), "mean_step_change": float(steps.mean()),
                "max_step_change": float(steps.max()), "num_pairs": int(self.paths.shape[0]),
                "steps": int(self.paths.shape[1])}

    def save_picture(self, path, image_shape: Tuple[int, int]) -> Path:
        rows = [torch.cat([s.unsqueeze(0), p, e.unsqueeze(0)]) for s, p, e in zip(self.starts, self.paths, self.ends)]
        return save_image_rows(rows, [f"pair {i + 1}" for i in range(len(rows))], image_shape, path,
                               title="image, decoded straight path in latent space, image")


@torch.no_grad()
def interpolate(model: Callable, guide: Callable, starts: torch.Tensor, ends: torch.Tensor, steps: int = 10,
                seed: Optional[int] = 0) -> Interpolation:
    """Decode ``steps`` points on the straight latent path from each row of ``starts`` to the same row of ``ends``."""
    if int(steps) < 2:
        raise AevbInputError(f"a path needs at least 2 steps (its two ends), got {steps}")
    if starts.shape != ends.shape:
        raise AevbInputError(f"start and end images differ in shape: {list(starts.shape)} vs {list(ends.shape)}")
    mu_a = encode(model, guide, starts, seed=seed).means
    mu_b = encode(model, guide, ends, seed=seed).means
    t = torch.linspace(0.0, 1.0, int(steps), device=mu_a.device).reshape(1, -1, 1)
    z = ((1 - t) * mu_a.unsqueeze(1) + t * mu_b.unsqueeze(1)).reshape(-1, mu_a.shape[-1])
    x_like = starts.repeat_interleave(int(steps), dim=0)
    frames = decode(model, guide, z, x_like, seed=seed)
    return Interpolation(starts, ends, frames.reshape(starts.shape[0], int(steps), -1))
