"""The teacher's unconditional diffusion prior: a diffusers ``UNet2DModel`` + scheduler on luminance.

``train_prior`` fits a small, fully convolutional UNet (no attention, so it runs at any image size) to random
luminance crops of visible and thermal frames and saves a standard diffusers directory
(``DDPMPipeline.save_pretrained``: ``unet/``, ``scheduler/``, ``model_index.json``) plus
``edgefuse_prior.json`` (provenance). ``Prior.load`` reads that layout or any bare diffusers UNet2DModel
directory (1- or 3-channel; a 3-channel prior sees the luminance repeated) offline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgefuse.color import BT601, BT601_F32
from edgefuse.errors import CheckpointError, DataError
from edgefuse.teacher.denoiser import (
    DenoiserConfig,
    ddim_scheduler,
    fit_denoiser,
    load_unet,
    size_multiple,
    unet_hash,
)
from edgefuse.teacher.denoiser import build_unet as _build_unet

PRIOR_META = "edgefuse_prior.json"


# the prior's training settings: the denoiser's (one loop for the prior and the conditional teacher)
PriorTrainConfig = DenoiserConfig
prior_hash = unet_hash


def build_unet(cfg: DenoiserConfig) -> Any:
    """The unconditional prior's UNet: luminance in, ε out."""
    return _build_unet(cfg, in_channels=1)


def luminance_frames(source: Any, indices: Sequence[int]) -> list[np.ndarray]:
    """uint8 luminance of the visible and the thermal frame of each pair (two frames per pair)."""
    frames = []
    for i in indices:
        vis, ir = source[i]
        for y in (vis @ BT601_F32, ir):
            frames.append(np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8))
    return frames


def random_crops(
    frames: Sequence[np.ndarray], batch: int, crop: int, rng: np.random.Generator
) -> torch.Tensor:
    """B×1×crop×crop in [-1, 1]: random frame, random position, random horizontal flip."""
    out = np.empty((batch, 1, crop, crop), dtype=np.uint8)
    for b, k in enumerate(rng.integers(0, len(frames), size=batch)):
        img = frames[int(k)]
        ph, pw = max(0, crop - img.shape[0]), max(0, crop - img.shape[1])
        if ph or pw:
            img = np.pad(img, ((0, ph), (0, pw)), mode="reflect")
        top = int(rng.integers(0, img.shape[0] - crop + 1))
        left = int(rng.integers(0, img.shape[1] - crop + 1))
        patch = img[top : top + crop, left : left + crop]
        out[b, 0] = patch[:, ::-1] if rng.integers(0, 2) else patch
    return torch.from_numpy(out).float() / 127.5 - 1.0


def train_prior(
    frames: Sequence[np.ndarray],
    out: str | os.PathLike[str],
    cfg: DenoiserConfig,
    provenance: dict[str, Any] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Denoising (ε-prediction) training on random luminance crops (``denoiser.fit_denoiser``: resumable,
    written atomically as a diffusers directory + ``edgefuse_prior.json``)."""
    if not frames:
        raise DataError("train-prior: no frames to train on")
    return fit_denoiser(
        lambda rng: (random_crops(frames, cfg.batch_size, cfg.crop, rng), None),
        out,
        cfg,
        in_channels=1,
        kind="edgefuse-luminance-prior",
        meta_name=PRIOR_META,
        provenance={"frames": len(frames), **(provenance or {})},
        on_step=on_step,
        resume=resume,
    )


class Prior:
    """A loaded UNet prior: ``predict(x_t, t) -> (eps, x0)`` on N×1×H×W luminance in [-1, 1]."""

    def __init__(
        self, unet: Any, scheduler_config: dict[str, Any], path: Path, precision: str = "fp32"
    ) -> None:
        self.unet = unet.eval().requires_grad_(False)
        self.scheduler_config = dict(scheduler_config)
        self.path = path
        self.sha256 = prior_hash(path)
        self.in_channels = int(unet.config.in_channels)
        self.prediction_type = str(self.scheduler_config.get("prediction_type", "epsilon"))
        self.multiple = size_multiple(unet)
        self.precision = precision
        meta = path / PRIOR_META
        self.meta: dict[str, Any] = json.loads(meta.read_text()) if meta.is_file() else {}

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu", precision: str = "fp32") -> Prior:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise CheckpointError(f"{path}: prior directory not found")
        unet, where, sched_cfg = load_unet(path)
        if unet.config.in_channels not in (1, 3) or unet.config.out_channels != unet.config.in_channels:
            raise CheckpointError(
                f"{where}: UNet must map 1 or 3 channels to as many (config in/out channels)"
            )
        # default (NCHW) weights: channels-last ran this UNet's bf16 forward 1.2-1.4x slower on an H200
        # (scripts/cond_speed.py --in-channels 1, eighteenth session)
        return cls(unet.to(device), sched_cfg, path, precision)

    def ddim_scheduler(self) -> Any:
        """A DDIM scheduler on the prior's noise schedule; it is fed ε, and lands on x0 at the last step."""
        return ddim_scheduler(self.scheduler_config)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε, x0) for x_t at timestep ``t`` under the prior's training parameterisation."""
        inp = x.repeat(1, 3, 1, 1) if self.in_channels == 3 else x
        amp = self.device.type == "cuda" and self.precision in ("bf16", "fp16")
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype, enabled=amp):
            out = self.unet(inp, t).sample.float()
        if self.in_channels == 3:
            out = (out * torch.tensor(BT601, device=out.device).view(1, 3, 1, 1)).sum(1, True)
        ab = self.ddim_alphas()[int(t)].to(x.device)
        a, s = ab.sqrt(), (1.0 - ab).sqrt()
        if self.prediction_type == "epsilon":
            eps = out
            x0 = (x - s * eps) / a
        elif self.prediction_type == "v_prediction":
            x0 = a * x - s * out
            eps = s * x + a * out
        elif self.prediction_type == "sample":
            x0 = out
            eps = (x - a * x0) / s
        else:
            raise CheckpointError(f"{self.path}: unsupported prediction_type {self.prediction_type!r}")
        return eps, x0

    def ddim_alphas(self) -> torch.Tensor:
        if not hasattr(self, "_alphas"):
            self._alphas = self.ddim_scheduler().alphas_cumprod
        return self._alphas
