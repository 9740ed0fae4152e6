"""What a trained VAE is for: the paper's "recognition, denoising, representation and visualization".

The last stage of the data flow ``data -> model/guide -> objective -> trainer -> evaluation -> applications``;
one job per module, each returning a result with ``metrics()`` (the numbers) and ``save_picture()``:

* :mod:`.encode` -- posterior means and scales of every image (``.npz``), decoding codes back;
* :mod:`.reconstruct` -- images beside their decoded posterior means, error and bound;
* :mod:`.inpaint` -- missing pixels filled in by posterior inference on z from the observed ones (:mod:`.masks`);
* :mod:`.denoise` -- the same machinery with a noise model (:mod:`.noise`);
* :mod:`.latent_map` -- the test set in latent space (Fig. 4, or PCA), decoded manifold, linear probe (:mod:`.probe`);
* :mod:`.interpolate` -- decoded straight paths between images in latent space.

Shared pieces: :mod:`.latents` (the local latents of any model as one matrix Z), :mod:`.posterior`
(importance sampling of p(z | partial or noisy image) with the iterated encoder as proposal),
:mod:`.pictures`.  Everything works for any model and guide that follow the contract
(:mod:`pyro_aevb.contract`): any latent site names, several latent sites, global latents fixed at one draw.
"""

from .denoise import Denoising, denoise
from .encode import Encoding, decode, encode
from .inpaint import Inpainting, inpaint
from .interpolate import Interpolation, interpolate
from .latent_map import LatentMap, latent_map
from .latents import LatentLayout, latent_layout
from .masks import MissingPixels, parse_mask
from .noise import GaussianNoise, SaltPepperNoise, parse_noise
from .posterior import PosteriorImages, infer_images
from .probe import chance_accuracy, linear_probe_accuracy
from .reconstruct import Reconstruction, reconstruct_images

__all__ = ["Denoising", "Encoding", "GaussianNoise", "Inpainting", "Interpolation", "LatentLayout", "LatentMap",
           "MissingPixels", "PosteriorImages", "Reconstruction", "SaltPepperNoise", "chance_accuracy", "decode",
           "denoise", "encode", "infer_images", "inpaint", "interpolate", "latent_layout", "latent_map",
           "linear_probe_accuracy", "parse_mask", "parse_noise", "reconstruct_images"]
