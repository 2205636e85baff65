"""Frozen feature extractors for the distillation's routing maps and feature alignment.

A backbone maps RGB N×3×H×W in [0, 1] (H, W multiples of 16) to a list of 2–3 feature maps at decreasing
resolution. Specs accepted by :func:`load_backbone`:

- ``prior`` (default): the encoder of the diffusion prior (its down blocks, run at a fixed small timestep
  on the luminance in [-1, 1]); features before each of the last three down-samplings (1/2, 1/4, 1/8 for the
  default four-level UNet).
- ``timm:NAME:WEIGHTS``: a timm architecture in ``features_only`` mode (stages 1–3), weights from a local file
  (needs ``timm``; nothing is downloaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgefuse._optional import require
from edgefuse.color import BT601
from edgefuse.errors import CheckpointError, DataError
from edgefuse.io import sha256_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PriorEncoder(nn.Module):
    """The prior UNet's ``conv_in`` + down blocks at timestep ``t``, frozen; returns 2–3 feature maps."""

    def __init__(self, unet: Any, timestep: int = 50, name: str = "prior", sha256: str = "") -> None:
        super().__init__()
        blocks = list(unet.down_blocks)
        if any(hasattr(b, "skip_conv") for b in blocks):
            raise CheckpointError("prior backbone: UNets with skip down blocks are not supported")
        self.time_proj, self.time_embedding, self.conv_in = unet.time_proj, unet.time_embedding, unet.conv_in
        self.blocks = nn.ModuleList(blocks)
        self.taps = list(range(max(0, len(blocks) - 3), len(blocks)))
        self.in_channels = int(unet.config.in_channels)
        self.timestep = int(timestep)
        self.name, self.sha256 = name, sha256
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> PriorEncoder:
        return super().train(False)  # frozen: never leaves eval mode

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        w = torch.tensor(BT601, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
        x = (rgb * w).sum(dim=1, keepdim=True) * 2.0 - 1.0
        if self.in_channels == 3:
            x = x.repeat(1, 3, 1, 1)
        t = torch.full((x.shape[0],), self.timestep, device=x.device, dtype=torch.long)
        emb = self.time_embedding(self.time_proj(t).to(dtype=x.dtype))
        h = self.conv_in(x)
        feats = []
        for i, block in enumerate(self.blocks):
            h, res = block(hidden_states=h, temb=emb)
            if i in self.taps:
                # the block's last features before its down-sampling
                feats.append(res[len(block.resnets) - 1])  # type: ignore[arg-type]
        return feats


class TimmBackbone(nn.Module):
    """A timm model in ``features_only`` mode (stages 1–3) with ImageNet normalisation, frozen."""

    def __init__(self, arch: str, weights: Path) -> None:
        super().__init__()
        timm = require("timm")
        if not weights.is_file():
            raise CheckpointError(f"{weights}: backbone weights file not found")
        try:
            self.model = timm.create_model(
                arch,
                pretrained=True,
                features_only=True,
                out_indices=(1, 2, 3),
                pretrained_cfg_overlay={"file": str(weights)},
            )
        except Exception as exc:  # timm raises several types for unknown names or mismatched weights
            raise CheckpointError(f"{weights}: cannot build timm backbone {arch!r} ({exc})") from None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.name = f"timm:{arch}"
        self.sha256 = sha256_file(weights)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> TimmBackbone:
        return super().train(False)

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        return list(self.model((rgb - mean) / std))


def load_backbone(spec: str, prior_dir: str | Path | None = None, device: str = "cpu") -> nn.Module:
    """Build the frozen backbone named by ``spec`` (see the module docstring) on ``device``."""
    kind, _, rest = spec.partition(":")
    if kind == "prior":
        from edgefuse.teacher.prior import Prior

        path = rest or prior_dir
        if not path:
            raise DataError(
                "backbone 'prior' needs the prior directory (--prior, or a cache sampled by edgefuse)"
            )
        prior = Prior.load(path, device=device)
        return PriorEncoder(prior.unet, name=f"prior:{Path(path).name}", sha256=prior.sha256).to(device)
    if kind == "timm":
        arch, _, weights = rest.partition(":")
        if not arch or not weights:
            raise DataError(f"backbone {spec!r}: expected timm:ARCH:WEIGHTS_FILE")
        return TimmBackbone(arch, Path(weights).expanduser()).to(device)
    raise DataError(f"unknown backbone {spec!r}: use 'prior', 'prior:DIR' or 'timm:ARCH:WEIGHTS_FILE'")
