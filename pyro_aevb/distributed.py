"""Data-parallel training with ``torch.distributed`` (see :class:`pyro_aevb.trainer.Trainer`).

Launch K processes with ``torchrun``; each joins the process group here
(gloo on CPU, nccl on CUDA with one GPU per local rank)::

    torchrun --nproc_per_node=2 -m pyro_aevb train --distributed --batch-size 100 ... --out runs/ddp

Several machines: run the same command on each with ``--nnodes=H --node_rank=i
--rdzv_backend=c10d --rdzv_endpoint=HOST0:29500`` (all ranks must see the data
and the run directory path; rank 0 writes it).
"""

import os

import torch

from .config import RunConfig
from .errors import AevbInputError


def init_distributed(config: RunConfig) -> None:
    """Join the process group torchrun described in the environment (RANK, WORLD_SIZE, MASTER_ADDR...)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise AevbInputError("--distributed needs the torchrun environment (RANK, WORLD_SIZE); "
                             "launch with torchrun --nproc_per_node=K -m pyro_aevb train ...")
    if torch.distributed.is_initialized():
        return
    device = config.resolved_device()
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        config.device = f"cuda:{local_rank}"
        torch.distributed.init_process_group("nccl")
    else:
        torch.distributed.init_process_group("gloo")
