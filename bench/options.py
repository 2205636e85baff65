"""What ``edgefuse bench`` was asked to do: the suite's options, one flat dataclass (the CLI fills it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from edgefuse.bench.records import LatencyBudgets
from edgefuse.bench.timing import PRESETS, TimingConfig


@dataclass
class SuiteOptions:
    artifacts: list[Path] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    data: Path | None = None
    calib: Path | None = None
    pairs: int = 8
    size: tuple[int, int] | None = None
    threads: int | None = None
    device: str = "cpu"
    timing: str = "default"
    rounds: int | None = None
    exports: Path = Path("exports")
    latency_budgets: LatencyBudgets = LatencyBudgets.AUTO
    max_ratio: float | None = None
    allow_synthetic: bool = False  # --check accepts drift measured on synthetic frames
    label: str | None = None
    variants: bool = True
    # a torch.compile mode, or "off" (CUDA only); max-autotune measured slower at batch 1
    torch_compile: str = "reduce-overhead"
    batches: tuple[int, ...] = (16, 64)  # batched throughput (CUDA only)
    triton: bool = True  # edgefuse.gpu_fused's kernels as a variant (CUDA only; not run without triton)
    command: str = ""

    def timing_config(self) -> TimingConfig:
        cfg = PRESETS[self.timing]
        return dataclasses.replace(cfg, rounds=self.rounds) if self.rounds else cfg
