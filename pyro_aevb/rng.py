"""Random streams that leave the caller's alone.

Checks, evaluations and pictures draw random numbers of their own; they run in a forked RNG (CPU and, for
a CUDA tensor, its device) so that training is the same random stream whether or not they run -- which is
what makes a resumed run equal an unbroken one -- and, seeded, they give the same numbers every time.
"""

import contextlib
from typing import Callable, List, Optional

import torch


@contextlib.contextmanager
def seeded(seed: Optional[int], device: torch.device):
    """A forked RNG (the caller's stream is untouched), seeded with ``seed`` unless it is ``None``."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def on_same_draws(device: torch.device, *computations: Callable[[], object], seed: int = 0) -> List[object]:
    """Run each computation from the same RNG state (``seed``) in a forked stream: e.g. a fast path and the
    reference it must equal, compared on identical random draws."""
    results = []
    with seeded(None, device):
        for compute in computations:
            torch.manual_seed(seed)
            results.append(compute())
    return results
