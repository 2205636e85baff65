"""``torchrun`` helpers shared by ``train``, ``distill`` and ``teacher sample`` (one process per GPU)."""

from __future__ import annotations

import os
from typing import Any


def init_distributed(device: str) -> str:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1); returns this rank's device.

    CUDA ranks use NCCL and ``cuda:LOCAL_RANK``; CPU ranks use gloo.
    """
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return f"cuda:{local}"
    dist.init_process_group("gloo")
    return device


def rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (a list of one item without a process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def shutdown_distributed() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
