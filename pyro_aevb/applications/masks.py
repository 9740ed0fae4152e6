"""Which pixels are missing, and the observation model of an image with holes (for inpainting).

A mask is a boolean ``[N, D]`` tensor, ``True`` where a pixel is **missing**.  Specs (``--mask``):

* ``top-half``, ``bottom-half``, ``left-half``, ``right-half`` -- that half of every image is missing
  (rows ``< H/2`` for ``top-half``, and so on; needs the data's image shape);
* ``random:P`` -- every pixel of every image missing independently with probability P, 0 < P < 1 (seeded);
* a path to a ``.npy`` or ``.pt`` array of 0/1 (or bool), 1 = missing, of shape ``[D]`` or ``[H, W]`` (one mask
  for all images) or ``[N, D]`` / ``[N, H, W]`` (one per image).

The observation model (:class:`MissingPixels`, see :mod:`.posterior`) scores only the observed pixels,

    log p(y_O | z) = sum_{d observed} log p_theta(y_d | z),

which is the exact marginal of the missing ones because p_theta(x|z) factorises over pixels; it is Pyro's
``MaskedDistribution`` (``Distribution.mask``, the mechanism of ``poutine.mask`` and ``obs_mask``) applied per
pixel.  The clean estimate keeps the observed pixels and fills the missing ones with E[x_d|z].
"""

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import pyro.distributions as dist
import torch

from ..errors import AevbInputError

HALVES = ("top-half", "bottom-half", "left-half", "right-half")
HOW_TO = ("use top-half, bottom-half, left-half, right-half, random:P (0 < P < 1) or the path of a .npy/.pt "
          "array of 0/1 (1 = missing) shaped [D], [H, W], [N, D] or [N, H, W]")


def _half(spec: str, image_shape: Tuple[int, int]) -> torch.Tensor:
    h, w = image_shape
    rows, cols = torch.arange(h).unsqueeze(1), torch.arange(w).unsqueeze(0)
    missing = {"top-half": rows < h // 2, "bottom-half": rows >= h - h // 2,
               "left-half": cols < w // 2, "right-half": cols >= w - w // 2}[spec]
    return missing.expand(h, w).reshape(-1)


def _random(spec: str, shape, seed: int) -> torch.Tensor:
    try:
        p = float(spec.split(":", 1)[1])
    except ValueError:
        raise AevbInputError(f"mask {spec!r}: random:P needs a number P, e.g. random:0.5") from None
    if not 0.0 < p < 1.0:
        raise AevbInputError(f"mask {spec!r}: the missing fraction P must be strictly between 0 and 1")
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p


def _from_file(path: Path, num_images: int, data_dim: int, image_shape) -> torch.Tensor:
    try:
        if path.suffix == ".npy":
            array = torch.from_numpy(np.load(path, allow_pickle=False))
        elif path.suffix == ".pt":
            array = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise AevbInputError(f"mask file {path}: unsupported type {path.suffix!r}; {HOW_TO}")
    except AevbInputError:
        raise
    except Exception as e:  # noqa: BLE001 -- any unreadable file is one line
        raise AevbInputError(f"could not read the mask file {path}: {e}") from e
    if not isinstance(array, torch.Tensor) or array.is_complex() or array.is_floating_point() and not torch.isfinite(
            array).all():
        raise AevbInputError(f"mask file {path}: expected a real array of 0/1; {HOW_TO}")
    if not ((array == 0) | (array == 1)).all():
        raise AevbInputError(f"mask file {path}: values must be 0 (observed) or 1 (missing)")
    array = array.bool()
    per_image = {(data_dim,), tuple(image_shape or ())}
    shape = tuple(array.shape)
    if shape in per_image:
        return array.reshape(1, data_dim).expand(num_images, data_dim)
    if shape[:1] == (num_images,) and shape[1:] in per_image:
        return array.reshape(num_images, data_dim)
    raise AevbInputError(f"mask file {path} has shape {list(shape)}, but the {num_images} images have "
                         f"{data_dim} pixels{f' ({image_shape[0]}x{image_shape[1]})' if image_shape else ''}: "
                         f"give a mask of shape [{data_dim}], [{num_images}, {data_dim}] or the image shape [H, W] / [{num_images}, H, W]")


def parse_mask(spec: str, num_images: int, data_dim: int, image_shape: Optional[Tuple[int, int]] = None,
               seed: int = 0) -> torch.Tensor:
    """The ``[num_images, data_dim]`` boolean mask (``True`` = missing) that ``spec`` describes."""
    spec = str(spec).strip()
    if spec in HALVES:
        if image_shape is None:
            raise AevbInputError(f"mask {spec!r} needs images, but the data have no image shape; use random:P or a "
                                 "mask file")
        missing = _half(spec, image_shape).unsqueeze(0).expand(num_images, data_dim)
    elif spec.startswith("random:"):
        missing = _random(spec, (num_images, data_dim), seed)
    elif Path(spec).suffix in (".npy", ".pt"):
        if not Path(spec).exists():
            raise AevbInputError(f"mask file not found: {spec}")
        missing = _from_file(Path(spec), num_images, data_dim, image_shape)
    else:
        raise AevbInputError(f"unknown mask {spec!r}; {HOW_TO}")
    if not missing.any():
        raise AevbInputError(f"mask {spec!r} hides no pixel: there is nothing to inpaint")
    return missing.contiguous()


class MissingPixels:
    """Observation model of images with holes: observed pixels scored by p_theta, missing ones marginalised.

    :param missing: ``[M, D]`` boolean, ``True`` where a pixel is missing.
    :param fill: what the encoder first sees in the holes (the mean training image, ``[D]``).
    """

    def __init__(self, missing: torch.Tensor, fill: torch.Tensor):
        self.missing, self.fill = missing.bool(), fill

    def __getitem__(self, rows: slice) -> "MissingPixels":
        return MissingPixels(self.missing[rows], self.fill)

    def impute(self, y: torch.Tensor) -> torch.Tensor:
        return torch.where(self.missing, self.fill.expand_as(y), y)

    def log_prob(self, pixel, y: torch.Tensor) -> torch.Tensor:
        observed = ~self.missing.reshape(y.shape)
        # the holes are scored 0 by the mask; they hold a draw of p_theta so that every value is in its support
        return dist.MaskedDistribution(pixel, observed).log_prob(torch.where(observed, y, pixel.sample()))

    def estimate(self, pixel, y: torch.Tensor) -> torch.Tensor:
        return torch.where(self.missing.reshape(y.shape), pixel.mean, y)
