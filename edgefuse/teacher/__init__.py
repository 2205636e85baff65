"""The diffusion teacher: a luminance diffusion prior (``prior``), the DDFM-style fusion sampler (``ddfm``),
the ensemble cache (``cache``) and the frozen backbones the distillation uses (``backbone``)."""

from __future__ import annotations

# kept importable from here: the teacher commands and scripts use these names
from edgefuse.distributed import gather, init_distributed, rank_and_world, shutdown_distributed

__all__ = ["gather", "init_distributed", "rank_and_world", "shutdown_distributed"]
