"""Reconstruct: test images beside their reconstructions, with the error and the bound.

    x_hat^(i) = E[x | z = mu^(i)],   mu^(i) = E_q[z | x^(i)]               (decoded posterior means, :mod:`.encode`)
    reconstruction_error = mean_{i, d} (x_hat_d^(i) - x_d^(i))^2          (mean squared error per pixel)
    test_elbo            = mean_i L(theta, phi; x^(i))                     (estimator B where every KL is closed
                                                                            form, else A; :mod:`~pyro_aevb.evaluation`;
                                                                            with global latents minus
                                                                            KL(q(theta) || p(theta)) / N_train)

and the bound's two terms, E_q[log p(x|z)] and KL(q(z|x) || p(z)) (:mod:`pyro_aevb.evaluation.terms`), from the
same draws as the bound: ``test_elbo = reconstruction_term - kl_term`` exactly, and with global latents (terms at
one draw of q(theta)) ``test_elbo = reconstruction_term - kl_term - kl_theta / N_train``.
Decoding the mean rather than a draw z ~ q makes the picture deterministic: it is what the code *means*.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import torch

from ..contract import check_model_guide
from ..errors import AevbInputError
from ..evaluation.bound import check_num_data, global_kl
from ..evaluation.terms import bound_terms
from ..inputs import Inputs, condition
from ..rng import seeded
from .encode import decode, encode
from .pictures import save_image_rows


def bound_estimator(model: Callable, guide: Callable, x: torch.Tensor) -> str:
    """``"analytic"`` (estimator B) where every KL has a closed form, else ``"trace"`` (A)."""
    try:
        check_model_guide(model, guide, x, "analytic")
        return "analytic"
    except AevbInputError:
        return "trace"


@dataclass
class Reconstruction:
    """Images ``[N, D]`` and their reconstructions, with the bound and its terms (nats per image; ``kl_theta``:
    KL(q(theta) || p(theta)) of the global latents, which the bound spreads over the ``num_data`` training rows)."""

    truth: torch.Tensor
    images: torch.Tensor
    bound: float
    reconstruction_term: float
    kl_term: float
    estimator: str
    kl_theta: Optional[float] = None
    num_data: Optional[int] = None

    def metrics(self) -> dict:
        out = {"reconstruction_error": float(((self.images - self.truth) ** 2).mean()), "test_elbo": self.bound,
               "reconstruction_term": self.reconstruction_term, "kl_term": self.kl_term}
        if self.kl_theta is not None:
            out.update(kl_theta=self.kl_theta, num_data=self.num_data)
        return dict(out, estimator=self.estimator, num_images=int(self.truth.shape[0]))

    def save_picture(self, path, image_shape: Tuple[int, int], num_images: int = 10) -> Path:
        m = self.metrics()
        return save_image_rows([self.truth[:num_images], self.images[:num_images]],
                               ["data", f"reconstruction\n{m['reconstruction_error']:.4f}"], image_shape, path,
                               title=f"decoded posterior means; bound {self.bound:.2f} nats, mean squared error "
                                     "per pixel")


@torch.no_grad()
def reconstruct_images(model: Callable, guide: Callable, x: torch.Tensor, seed: Optional[int] = 0,
                       num_data: Optional[int] = None, inputs: Optional[Inputs] = None) -> Reconstruction:
    """Reconstruct the rows of ``x`` at their posterior means and evaluate the bound on them (``seed``: of the
    pictures' and the bound's draws, as :func:`~pyro_aevb.applications.encode.encode`'s; ``num_data``: the
    training set size, which a model with global latents needs, :func:`~pyro_aevb.evaluation.evaluate_bound`;
    ``inputs``: the conditioning inputs of the rows of ``x``, :mod:`pyro_aevb.inputs`)."""
    model, guide = condition(model, inputs), condition(guide, inputs)
    images = decode(model, guide, encode(model, guide, x, seed=seed).means, x, seed=seed)
    estimator = bound_estimator(model, guide, x)
    global_latents = check_model_guide(model, guide, x, None).global_latents
    num_data = check_num_data(num_data, global_latents)
    with seeded(seed, x.device):  # the numbers follow seed too, as the pictures do
        terms = bound_terms(model, guide, x)  # (global latents: at one draw of q(theta))
    if not global_latents:  # the bound of the same draws as its two terms, so that they add up
        return Reconstruction(x, images, terms.reconstruction - terms.kl, terms.reconstruction, terms.kl, estimator)
    kl_theta = global_kl(model, guide, x)
    return Reconstruction(x, images, terms.reconstruction - terms.kl - kl_theta / num_data, terms.reconstruction,
                          terms.kl, estimator, kl_theta, num_data)
