"""A conditional diffusion teacher (the Diff-IF route): a UNet that denoises the *fused* luminance given both
sources, trained on an existing teacher's samples, and sampled with stochastic DDIM.

The unconditional prior of the DDFM teacher only ever pulled the fused image towards a smoother one, which
the metrics score down (docs/distillation.md), so it does no work in the samples. Here the diffusion model
carries the fusion itself: its input is the noisy fused luminance concatenated with the visible luminance
and the thermal frame; its targets are the K samples of a teacher cache (any teacher: ascent, DDFM or
imported), so it learns their distribution, not only their mean. Its K samples per pair (different seeds,
η > 0) then differ where that distribution is wide and where the model is unsure; they go into the same
cache format.

What it denoises (``target``): the fused luminance itself (``fused``, in [-1, 1]), or its difference from
the visible luminance (``residual``: 2·(Y_f − Y_v), in [-2, 2], added back after sampling). With ``fused`` the
model must redraw the visible frame's fine texture, and what it draws is its own: on LLVIP its mean kept the
texture of a 0.5-px blur but scored the Qabf of a 1-px blur and lower SSIM (docs/distillation.md, sixteenth
session), and convention-A SSIM and Qabf score exactly the correlation with the sources' texture. With
``residual`` the visible texture passes through, as the student's form (visible + smooth terms) keeps it.

A third target, the student's own coefficient maps, is edgefuse.teacher.coefficient; ``DiffusionTeacher``
holds what the two teachers share and ``coefficient.load_conditional`` opens either.

Model directory: a diffusers ``DDPMPipeline`` layout (``unet/`` with 3 input channels and 1 output channel,
``scheduler/``) plus ``edgefuse_conditional.json`` (provenance: the training cache's teacher, steps, pairs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgefuse.color import BT601_F32
from edgefuse.errors import CheckpointError, DataError
from edgefuse.teacher.ddfm import luma, pad_to_multiple, with_visible_chroma
from edgefuse.teacher.denoiser import (
    DenoiserConfig,
    ddim_scheduler,
    fit_denoiser,
    load_unet,
    size_multiple,
    unet_hash,
)
from edgefuse.teacher.ensemble import write_ensemble

COND_META = "edgefuse_conditional.json"
KIND = "edgefuse-conditional-teacher"
TARGETS = ("residual", "fused")  # "coefficients": edgefuse.teacher.coefficient
# Y_f − Y_v has std 0.136 on the ascent teacher's RoadScene means, the fused luminance in [-1, 1] 0.372: at
# its own scale the residual would sit 7.5x lower in signal-to-noise at every timestep of the same schedule
RESIDUAL_SCALE = 2.0


def training_items(source: Any, cache: Any, indices: Sequence[int]) -> list[np.ndarray]:
    """Per pair a float16 (2 + K)×H×W array in [0, 1]: visible luminance, thermal, then the K targets
    (the cache's samples; its mean's luminance K times over if it kept none)."""
    cache.check(source, indices)
    items = []
    for i in indices:
        vis, ir = source[i]
        entry = cache.load(source.pairs[i].stem)
        targets = entry.samples_float()
        if targets is None:
            targets = np.repeat((entry.mean @ BT601_F32)[None], cache.k, axis=0)
        stack = np.concatenate([(vis @ BT601_F32)[None], ir[None], targets])
        items.append(np.clip(stack, 0.0, 1.0).astype(np.float16))
    return items


def conditional_crops(
    items: Sequence[np.ndarray], batch: int, crop: int, rng: np.random.Generator, target: str = "residual"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets B×1×c×c, conditioning B×2×c×c in [-1, 1]): random pair, position, flip and teacher sample.
    The target is 2·(Y_f − Y_v) in [-2, 2] (``residual``) or the fused luminance in [-1, 1] (``fused``)."""
    x0 = np.empty((batch, 1, crop, crop), dtype=np.float32)
    cond = np.empty((batch, 2, crop, crop), dtype=np.float32)
    for b, k in enumerate(rng.integers(0, len(items), size=batch)):
        arr = items[int(k)]
        ph, pw = max(0, crop - arr.shape[1]), max(0, crop - arr.shape[2])
        if ph or pw:
            arr = np.pad(arr, ((0, 0), (0, ph), (0, pw)), mode="reflect")
        top = int(rng.integers(0, arr.shape[1] - crop + 1))
        left = int(rng.integers(0, arr.shape[2] - crop + 1))
        patch = arr[:, top : top + crop, left : left + crop]
        patch = patch[:, :, ::-1] if rng.integers(0, 2) else patch
        j = int(rng.integers(2, arr.shape[0]))
        x0[b, 0], cond[b] = patch[j], patch[:2]
    x = torch.from_numpy(x0)
    x = (x - torch.from_numpy(cond[:, :1])) * RESIDUAL_SCALE if target == "residual" else x * 2.0 - 1.0
    return x, torch.from_numpy(cond) * 2.0 - 1.0


def train_conditional(
    items: Sequence[np.ndarray],
    out: str | os.PathLike[str],
    cfg: DenoiserConfig,
    provenance: dict[str, Any] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    resume: bool = False,
    target: str = "residual",
) -> dict[str, Any]:
    """Train the conditional teacher on ``training_items`` (the prior's loop: resumable, atomic output)."""
    if not items:
        raise DataError("train-cond: no pairs to train on")
    if target not in TARGETS:
        raise DataError(f"train-cond: target must be one of {', '.join(TARGETS)}, not {target!r}")
    return fit_denoiser(
        lambda rng: conditional_crops(items, cfg.batch_size, cfg.crop, rng, target),
        out,
        cfg,
        in_channels=3,
        kind=KIND,
        meta_name=COND_META,
        provenance={"pairs": len(items), "target": target, **(provenance or {})},
        on_step=on_step,
        resume=resume,
    )


class DiffusionTeacher:
    """What the conditional teachers share: the UNet, its schedule, its directory and what identifies it."""

    CHANNELS = (3, 1)  # the UNet's (in, out) channels
    LABEL = "conditional teacher"
    target = "fused"

    def __init__(self, unet: Any, scheduler_config: dict[str, Any], path: Path, precision: str) -> None:
        self.unet = unet.eval().requires_grad_(False)
        self.scheduler_config = dict(scheduler_config)
        self.path = path
        self.sha256 = unet_hash(path)
        self.precision = precision
        self.multiple = size_multiple(unet)
        self.meta: dict[str, Any] = json.loads((path / COND_META).read_text())

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @classmethod
    def _load_unet(cls, path: Path) -> tuple[Any, dict[str, Any]]:
        if not (path / COND_META).is_file():
            raise CheckpointError(
                f"{path}: not a conditional teacher (no {COND_META}; train one with train-cond)"
            )
        unet, where, sched_cfg = load_unet(path)
        if (unet.config.in_channels, unet.config.out_channels) != cls.CHANNELS:
            raise CheckpointError(
                f"{where}: a {cls.LABEL} maps {cls.CHANNELS[0]} channels to {cls.CHANNELS[1]} "
                "(config in/out channels)"
            )
        return unet, sched_cfg

    def record(self, steps: int, eta: float) -> dict[str, Any]:
        """What identifies this teacher in a cache manifest (and the student's provenance)."""
        return {
            "kind": "conditional",
            "model": str(self.path.resolve()),
            "model_sha256": self.sha256,
            "model_steps": self.meta.get("steps"),
            "trained_on": self.meta.get("cache_teacher"),
            "trained_pairs": self.meta.get("pairs"),
            "target": self.target,
            "sampler": {"steps": steps, "eta": eta},
            "precision": self.precision if self.device.type == "cuda" else "fp32",
        }


class ConditionalTeacher(DiffusionTeacher):
    """A loaded pixel-space conditional teacher: ``sample(visible, thermal, seeds)`` -> K fused luminance
    samples."""

    def __init__(self, unet: Any, scheduler_config: dict[str, Any], path: Path, precision: str) -> None:
        super().__init__(unet, scheduler_config, path, precision)
        self.target = str(self.meta.get("target", "fused"))  # models trained before the option: fused
        if self.target not in TARGETS:
            raise CheckpointError(f"{path / COND_META}: unknown target {self.target!r}")

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], device: str = "cpu", precision: str = "fp32"
    ) -> ConditionalTeacher:
        path = Path(path).expanduser()
        unet, sched_cfg = cls._load_unet(path)
        return cls(unet.to(device), sched_cfg, path, precision)

    @torch.no_grad()
    def sample(
        self,
        visible: torch.Tensor,
        thermal: torch.Tensor,
        seeds: Sequence[int],
        steps: int = 20,
        eta: float = 1.0,
    ) -> torch.Tensor:
        """K = len(seeds) samples K×1×H×W in [0, 1] of one pair (visible 3×H×W, thermal 1×H×W in [0, 1])."""
        device = self.device
        h, w = visible.shape[-2:]
        vis_y = luma(visible[None].to(device).float()) * 2.0 - 1.0
        ir = thermal[None].to(device).float() * 2.0 - 1.0
        cond = pad_to_multiple(torch.cat([vis_y, ir], dim=1), self.multiple)
        residual = self.target == "residual"
        limit = RESIDUAL_SCALE if residual else 1.0
        x0 = ddim_sample(self.unet, self.scheduler_config, cond, 1, seeds, steps, eta, limit, self.precision)
        x0 = x0[..., :h, :w]
        # residual: Y_f = Y_v + (Y_f − Y_v); fused: [-1, 1] back to [0, 1]
        y = (x0 / RESIDUAL_SCALE + (vis_y + 1.0) * 0.5 if residual else (x0 + 1.0) * 0.5).clamp(0.0, 1.0)
        if not torch.isfinite(y).all():
            raise DataError(f"{self.path}: the conditional teacher produced NaN/Inf")
        return y

    def fuse(
        self, visible: torch.Tensor, thermal: torch.Tensor, seeds: Sequence[int], steps: int, eta: float
    ) -> torch.Tensor:
        """K fused RGB frames K×3×H×W: the sampled luminance with the visible frame's chroma."""
        return with_visible_chroma(self.sample(visible, thermal, seeds, steps, eta), visible[None])


def ddim_sample(
    unet: Any,
    scheduler_config: dict[str, Any],
    cond: torch.Tensor,
    channels: int,
    seeds: Sequence[int],
    steps: int,
    eta: float,
    limit: float,
    precision: str,
    refine: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Stochastic DDIM of a conditional UNet: K = len(seeds) clean samples K×channels×H×W in ±``limit``
    given the conditioning 1×C×H×W (H, W a multiple of the UNet's); x0 is clipped to ±``limit`` at every
    step and the step taken from the clipped x0. ``refine`` (DDFM's likelihood step) maps every step's
    clipped x0 estimate to the one the step is taken from."""
    device = cond.device
    # one generator per seed on the device: on the CPU, 6 frames of noise a step took 68 ms at 1024x1280
    # (an H200, scripts/cond_speed.py), mostly hidden behind the UNet's 176 ms but a busy core per sampler
    gens = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    shape = (channels, *cond.shape[-2:])

    def draw() -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g, device=device) for g in gens])

    x = draw()
    cond = cond.expand(len(seeds), -1, -1, -1)
    prediction = str(scheduler_config.get("prediction_type", "epsilon"))
    sched = ddim_scheduler(scheduler_config, prediction, clip_sample=True, clip_range=limit)
    sched.set_timesteps(steps, device=device)
    amp = device.type == "cuda" and precision in ("bf16", "fp16")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    x0 = x
    for t in sched.timesteps:
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            out = unet(torch.cat([x, cond], dim=1), t).sample.float()
        if refine is not None:
            a = sched.alphas_cumprod[t].to(device)
            x0 = refine(clean_estimate(out, x, a, prediction).clamp(-limit, limit))
            out = model_output(x0, x, a, prediction)
        noise = None
        if eta > 0:  # per-seed noise: a sample does not depend on which others run beside it
            noise = draw()
        step = sched.step(out, t, x, eta=eta, use_clipped_model_output=True, variance_noise=noise)
        x, x0 = step.prev_sample, step.pred_original_sample
    return x0.clamp(-limit, limit)


def clean_estimate(out: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, prediction: str) -> torch.Tensor:
    """x0 from a UNet output at x_t, ᾱ_t = ``alpha`` (ε-, v- or sample-prediction)."""
    a, b = alpha.sqrt(), (1 - alpha).sqrt()
    if prediction == "v_prediction":
        return a * x - b * out
    if prediction == "epsilon":
        return (x - b * out) / a
    return out


def model_output(x0: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, prediction: str) -> torch.Tensor:
    """The UNet output that :func:`clean_estimate` maps to ``x0`` at x_t: the noise is the one x_t implies."""
    a, b = alpha.sqrt(), (1 - alpha).sqrt()
    eps = (x - a * x0) / b
    if prediction == "v_prediction":
        return a * eps - b * x0
    if prediction == "epsilon":
        return eps
    return x0


def sample_conditional_ensemble(
    teacher: Any,
    source: Any,
    out: str | Path,
    seeds: Sequence[int],
    *,
    steps: int = 20,
    eta: float = 1.0,
    limit: int = 0,
    save_samples: bool = True,
    resume: bool = False,
    on_pair: Callable[[], None] | None = None,
) -> tuple[Path, dict[str, Any]] | None:
    """K samples per pair into a teacher cache (``ensemble.write_ensemble``: resumable, torchrun-aware)."""

    return write_ensemble(
        source,
        out,
        teacher.record(steps, eta),
        seeds,
        lambda v, t: teacher.fuse(v, t, seeds, steps, eta),
        teacher.device,
        limit=limit,
        save_samples=save_samples,
        resume=resume,
        on_pair=on_pair,
    )
