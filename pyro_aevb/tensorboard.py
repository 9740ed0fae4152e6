"""TensorBoard logging for the :class:`~pyro_aevb.trainer.Trainer`: one callback, called as
``callback(trainer, row)`` after every epoch (``Trainer(..., callbacks=[TensorBoardCallback(log_dir)])`` or
``pyro-aevb train --tensorboard``).  Needs the optional extra: ``pip install 'pyro-aevb[tensorboard]'``.

Written at step = epoch, per datapoint in nats:

* ``bound/train``, ``bound/test`` -- the row's ``train_elbo`` and ``test_elbo`` (the bound on a fixed training
  subset and on the test set, computed alike), ``bound/train_running`` (the epoch's average minibatch bound;
  ``objective/train`` for an objective that is not a bound: wake-sleep, MCEM);
* ``terms/{train,test}_reconstruction`` and ``terms/{train,test}_kl`` -- E_q[log p(x|z)] and KL(q(z|x) || p(z)),
  the two parts of eq. 7, on the first ``num_terms`` rows of each split (:mod:`pyro_aevb.evaluation.terms`);
* ``optim/lr`` (``optim/lr_group<k>`` for every parameter group after the first when they differ),
  ``time/epoch_seconds``, ``progress/train_samples``;
* images ``samples`` (decoded prior samples, Fig. 5) and ``reconstructions`` (test images in the top half of the
  grid, decoded z ~ q(z|x) below them), for data with an image shape (or square).
"""

import math
from typing import Optional

import torch
from torchvision.utils import make_grid

from .errors import AevbInputError
from .evaluation.sampling import prior_means, reconstruct
from .evaluation.terms import bound_terms

try:  # the optional extra [tensorboard]
    from torch.utils.tensorboard import SummaryWriter
except ImportError:  # pragma: no cover - exercised only where tensorboard is missing
    SummaryWriter = None

INSTALL = "TensorBoard logging needs the tensorboard package: pip install 'pyro-aevb[tensorboard]'"


class TensorBoardCallback:
    """Per-epoch scalars and image grids of a training run, written with ``SummaryWriter(log_dir)``.

    :param log_dir: the event-file directory (``tensorboard --logdir`` it).
    :param num_images: images in the sample and reconstruction grids (0: no images).
    :param num_terms: rows of each split on which the reconstruction and KL terms are evaluated (0: none).
    :param seed: the prior draws and reconstructions use the same seed every epoch, so the grids are comparable.
    """

    def __init__(self, log_dir, num_images: int = 32, num_terms: int = 1000, seed: int = 0):
        if SummaryWriter is None:
            raise AevbInputError(INSTALL)
        self.log_dir = str(log_dir)
        self.writer = SummaryWriter(self.log_dir)
        self.num_images, self.num_terms, self.seed = int(num_images), int(num_terms), seed

    def __call__(self, trainer, row: dict) -> None:
        with torch.random.fork_rng(devices=[]):  # logging must not change the training's random stream
            torch.manual_seed(self.seed)
            self._log(trainer, row)

    def _log(self, trainer, row: dict) -> None:
        step = int(row["epoch"])
        scalar = self.writer.add_scalar
        for key, tag in (("train_elbo", "bound/train"), ("test_elbo", "bound/test"),
                         ("train_running_elbo", "bound/train_running"), ("train_objective", "objective/train"), ("epoch_seconds", "time/epoch_seconds"),
                         ("train_samples", "progress/train_samples")):
            if key in row:
                scalar(tag, row[key], step)
        rates = [group["lr"] for group in trainer.optimizer.param_groups]
        scalar("optim/lr", rates[0], step)
        for k, lr in enumerate(rates[1:], start=1):
            if lr != rates[0]:
                scalar(f"optim/lr_group{k}", lr, step)
        model, guide, data = trainer.model, trainer.guide, trainer.data
        if guide is not None and self.num_terms > 0:
            for split in ("train", "test"):
                terms = bound_terms(model, guide, getattr(data, split)[:self.num_terms])
                scalar(f"terms/{split}_reconstruction", terms.reconstruction, step)
                scalar(f"terms/{split}_kl", terms.kl, step)
        shape = self._image_shape(data)
        if shape is not None and self.num_images > 0:
            x = data.test[:self.num_images]
            samples = prior_means(model, x, guide=guide, seed=self.seed)
            self.writer.add_image("samples", self._grid(samples, shape), step)
            if guide is not None:
                recon = reconstruct(model, guide, x, seed=self.seed)
                self.writer.add_image("reconstructions", self._grid(torch.cat([x, recon]), shape), step)
        self.writer.flush()

    @staticmethod
    def _image_shape(data) -> Optional[tuple]:
        if data.image_shape is not None:
            return tuple(data.image_shape)
        side = math.isqrt(data.data_dim)
        return (side, side) if side * side == data.data_dim else None

    def _grid(self, images: torch.Tensor, shape) -> torch.Tensor:
        nrow = max(1, math.ceil(math.sqrt(self.num_images)))
        return make_grid(images.detach().float().cpu().clamp(0, 1).reshape(-1, 1, *shape), nrow=nrow, padding=1,
                         pad_value=1.0)

    def close(self) -> None:
        self.writer.close()
