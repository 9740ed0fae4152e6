"""A minibatch loop shared by the baselines: random permutations of the training
set in minibatches of M, counting training samples as the paper's x-axes do
(one per datapoint per minibatch visit)."""

import time
from typing import Optional

import torch

from pyro_aevb.errors import AevbInputError


class MinibatchLoop:
    """Subclasses set ``self.train_x`` and ``self.batch_size`` and implement ``step(x, idx, num_data)``."""

    train_x: torch.Tensor
    batch_size: int

    def _init_loop(self):
        self.epoch = 0
        self.train_samples = 0
        self.wall_seconds = 0.0
        self.metrics: list = []

    def step(self, x: torch.Tensor, idx: torch.Tensor, num_data: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, train_samples: Optional[int] = None, epochs: Optional[int] = None) -> list:
        """Train until ``train_samples`` datapoints (or ``epochs`` passes) have been processed in total."""
        n = self.train_x.shape[0]
        if (epochs is None) == (train_samples is None):
            raise AevbInputError("give exactly one of epochs or train_samples")
        budget = int(train_samples) if train_samples is not None else int(epochs) * n
        while self.train_samples < budget:
            start_time = time.perf_counter()
            perm = torch.randperm(n, device=self.train_x.device)
            total, steps = 0.0, 0
            for start in range(0, n, self.batch_size):
                if self.train_samples >= budget:
                    break
                idx = perm[start:start + self.batch_size]
                total += self.step(self.train_x[idx], idx, n)
                steps += 1
                self.train_samples += idx.shape[0]
            self.epoch += 1
            self.wall_seconds += time.perf_counter() - start_time
            self.metrics.append({"epoch": self.epoch, "train_samples": self.train_samples,
                                 "train_objective": total / max(steps, 1) / n, "wall_seconds": self.wall_seconds})
        return self.metrics
