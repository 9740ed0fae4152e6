"""Rows of images with a title each (original / masked / inpainted ...), the applications' pictures."""

import math
import warnings
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ..plots import pyplot, save_figure


def image_shape_of(data_dim: int, image_shape: Optional[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    """``image_shape``, or a square for D = s^2; ``None`` for other data, which have no image shape."""
    if image_shape is not None:
        return tuple(image_shape)
    side = math.isqrt(int(data_dim))
    return (side, side) if side * side == data_dim else None


def picture_shape(data_dim: int, image_shape: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    """How a picture draws each datapoint: as an image (:func:`image_shape_of`), or, for data without an image
    shape, as one row of its ``data_dim`` values."""
    return image_shape_of(data_dim, image_shape) or (1, int(data_dim))


def strip(images: torch.Tensor, image_shape: Tuple[int, int], pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """``[n, D]`` images side by side as one ``[H, n (W + pad)]`` array (padding drawn white)."""
    h, w = image_shape
    imgs = images.detach().float().cpu().clamp(0, 1).reshape(-1, h, w).numpy()
    out = np.full((h, imgs.shape[0] * (w + pad) - pad), pad_value, dtype=np.float32)
    for i, img in enumerate(imgs):
        out[:, i * (w + pad):i * (w + pad) + w] = img
    return out


#: colour of missing pixels in a picture (RGB)
HOLE_COLOUR = (0.25, 0.45, 1.0)


def save_image_rows(rows: Sequence[torch.Tensor], titles: Sequence[str], image_shape: Tuple[int, int], path,
                    title: str = "", holes: Optional[Sequence[Optional[torch.Tensor]]] = None) -> Path:
    """One strip of images per row, its title on the left; grey values in [0, 1].  ``holes[r]`` (``[n, D]``
    bool, optional) marks pixels of row r drawn in :data:`HOLE_COLOUR` (missing pixels)."""
    plt = pyplot()
    strips = []
    for r, images in enumerate(rows):
        rgb = np.repeat(strip(images, image_shape)[..., None], 3, axis=-1)
        if holes is not None and holes[r] is not None:
            rgb[strip(holes[r].float(), image_shape, pad_value=0.0) > 0.5] = HOLE_COLOUR
        strips.append(rgb)
    width = strips[0].shape[1] / 28 * 0.75 + 1.8
    row_height = max(0.8 * image_shape[0] / 28, 0.5)  # (a row of small images keeps room for its title)
    fig, axes = plt.subplots(len(rows), 1, figsize=(width, len(rows) * row_height + 0.4), squeeze=False)
    for ax, s, t in zip(axes[:, 0], strips, titles):
        ax.imshow(s, interpolation="nearest", aspect="auto" if image_shape[0] == 1 else "equal")  # rows: taller
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(t, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    with warnings.catch_warnings():  # matplotlib's note when small images leave no room to tighten: drawn as is
        warnings.filterwarnings("ignore", message="Tight layout not applied", category=UserWarning)
        fig.tight_layout()
    return save_figure(fig, path)
