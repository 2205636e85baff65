"""Snap a student's convolution weights onto the int8 grid its int8 exports use.

Every int8 backend here quantizes convolution weights symmetrically per output channel with the scale
max|w|/127 (TensorRT's QDQ graph, ONNX Runtime's full-range u8s8, OpenVINO with ``overflow_fix = "disable"``).
A snapped student's weights are exactly representable on that grid, so those exports round nothing in them:
what is left of int8 drift is the activations'. The first convolutions of a student decide, at some
bright-visible / cold-thermal pixels, steeply between the sources, and their ~0.4 % weight rounding alone
moved such pixels by up to 50 levels (docs/export.md). Snapping is a change of the model: score it before
shipping (``edgefuse eval``); grids it does not match (OpenVINO's default 7-bit first layer, ONNX Runtime's
``reduce_range`` or uint8 weights) round it again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

LEVELS = 127  # symmetric int8, narrow range: q in [-127, 127]


@dataclass(frozen=True)
class SnapReport:
    layers: int
    max_relative_change: float  # largest |Δw| / max|w| of its channel: at most half a step, 0.5/127


def channel_max(weight: torch.Tensor) -> torch.Tensor:
    """max|w| per output channel, shaped to broadcast against ``weight``."""
    return weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True)


def int8_grid(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` rounded to the symmetric per-output-channel int8 grid (scale max|w|/127 per channel)."""
    scale = channel_max(weight) / LEVELS
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero channel stays zero
    return (weight / safe).round().clamp(-LEVELS, LEVELS) * safe


@torch.no_grad()
def snap_to_int8_grid(model: nn.Module) -> SnapReport:
    """Snap every convolution's weights in place (biases stay float: backends keep them in int32/float)."""
    worst, count = 0.0, 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            w = module.weight
            snapped = int8_grid(w)
            per_channel = channel_max(w).clamp_min(1e-30)
            worst = max(worst, float(((snapped - w).abs() / per_channel).max()))
            w.copy_(snapped)
            count += 1
    return SnapReport(layers=count, max_relative_change=worst)
