"""A conditional diffusion teacher in the student's coefficient space (``train-cond --target coefficients``).

The pixel-space conditional teacher (conditional.py) draws the fused luminance, or its difference from the
visible one, at full resolution: whatever fine texture it draws is its own, and on LLVIP's night frames that
cost it Qabf and SSIM (docs/distillation.md, sixteenth and seventeenth sessions). This one samples the
student's own 1/4-resolution coefficient maps instead (``fused = visible + a·Y + b·T + c``, edgefuse.model):
every sample keeps the form, so texture comes only from the sources and the ensemble lies in the space the
student can represent; its spread is a spread the student can act on.

Targets: the metric-ascent teacher's climbed maps (``teacher ascend --keep-coefficients``), as their change
from the ascent's start (a student's own maps), per channel scaled to a standard deviation of 1/2.
Conditioning, all at 1/4 resolution: the visible luminance and the thermal frame folded by pixel-unshuffle
(16 channels each: nothing is lost to the downsampling) and the start's maps (standardised). Sampling runs
the start student (kept in the model directory), stochastic DDIM at 1/4 resolution and the start's blend.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgefuse.errors import CheckpointError, DataError
from edgefuse.teacher.ascent import AscentConfig, pad16
from edgefuse.teacher.conditional import COND_META, KIND, ConditionalTeacher, DiffusionTeacher, ddim_sample
from edgefuse.teacher.ddfm import luma, pad_to_multiple
from edgefuse.teacher.denoiser import DenoiserConfig, fit_denoiser
from edgefuse.teacher.guide import ascent_polish, ascent_refine, ascent_settings

TARGET = "coefficients"
START_FILE = "start.safetensors"  # the ascent's start student: its maps condition, its blend renders
FOLD = 4  # the coefficient maps' stride
COND_CHANNELS = 2 * FOLD * FOLD + 3
HINT = " (write the cache with `edgefuse teacher ascend --keep-coefficients`)"

# per pair: sources 2×H×W float16 in [0, 1] (padded as the ascent padded them), start 3×h×w, climbed K×3×h×w
Item = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CoefficientScale:
    """Per-channel standardisation of the start's maps (conditioning) and of the climbed change (target)."""

    start_mean: tuple[float, ...]
    start_std: tuple[float, ...]
    delta_std: tuple[float, ...]
    limit: float  # DDIM's clip of the scaled change: its largest magnitude in the training targets

    @classmethod
    def fit(cls, items: Sequence[Item]) -> CoefficientScale:
        # one pass of per-channel sums (float64): the targets of 268 pairs would take ~400 MB as one array
        moments = np.zeros((2, 3, 3))  # (start, change) × (count, sum, sum of squares) × channel
        peak = np.zeros(3)
        for _, start, coef in items:
            a = start.reshape(3, -1).astype(np.float64)
            d = (coef - start[None]).transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64)
            for m, x in zip(moments, (a, d), strict=True):
                m += (np.full(3, x.shape[1]), x.sum(axis=1), (x * x).sum(axis=1))
            peak = np.maximum(peak, np.abs(d).max(axis=1))
        (n_a, s_a, q_a), (n_d, s_d, q_d) = moments
        start_mean = s_a / n_a
        start_std = np.maximum(np.sqrt(np.maximum(q_a / n_a - start_mean**2, 0.0)), 1e-4)
        delta_std = np.maximum(np.sqrt(np.maximum(q_d / n_d - (s_d / n_d) ** 2, 0.0)), 1e-4)
        limit = float((peak / (2.0 * delta_std)).max())
        return cls(
            tuple(float(x) for x in start_mean),
            tuple(float(x) for x in start_std),
            tuple(float(x) for x in delta_std),
            max(1.0, math.ceil(limit * 2.0) / 2.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CoefficientScale:
        return cls(
            tuple(map(float, d["start_mean"])),
            tuple(map(float, d["start_std"])),
            tuple(map(float, d["delta_std"])),
            float(d["limit"]),
        )

    def _col(self, values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)

    def condition(self, start: torch.Tensor) -> torch.Tensor:
        return (start - self._col(self.start_mean, start)) / self._col(self.start_std, start)

    def encode(self, coef: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        return (coef - start) / (2.0 * self._col(self.delta_std, start))

    def decode(self, x0: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        return start + x0 * 2.0 * self._col(self.delta_std, start)


def start_checkpoint(cache: Any) -> Path:
    """The ascent's start checkpoint a coefficient cache was climbed from, checked against its weights."""
    from edgefuse.checkpoint import load_model

    where = cache.root / "manifest.json"
    teacher = cache.manifest.get("teacher") or {}
    if teacher.get("kind") != "ascent" or not teacher.get("coefficients"):
        raise DataError(f"{where}: not an ascent cache with coefficient maps{HINT}")
    path = Path(str(teacher.get("student", ""))).expanduser()
    if not path.is_file():
        raise DataError(f"{where}: the ascent's start checkpoint {path} is not there (run from where it is)")
    if load_model(path).info.weights_sha256 != teacher.get("student_weights_sha256"):
        raise DataError(f"{path}: not the weights the ascent started from (sha256 differs from {where})")
    return path


def coefficient_items(source: Any, cache: Any, indices: Sequence[int]) -> list[Item]:
    """The training pairs' sources, start maps and the ascent's K climbed maps."""
    cache.check(source, indices)
    items = []
    for i in indices:
        stem = source.pairs[i].stem
        arrays = cache.load_arrays(stem, ("start", "coefficients"), HINT)
        vis, ir = source[i]
        v, t = pad16(torch.from_numpy(vis.transpose(2, 0, 1).copy()), torch.from_numpy(ir[None].copy()))
        src = torch.cat([luma(v), t], dim=1)[0].clamp(0.0, 1.0).numpy().astype(np.float16)
        start, coef = arrays["start"].astype(np.float32), arrays["coefficients"].astype(np.float32)
        grid = (3, src.shape[1] // FOLD, src.shape[2] // FOLD)
        if start.shape != grid or coef.ndim != 4 or coef.shape[1:] != grid:
            raise DataError(
                f"{cache.root / stem}.npz: coefficient maps {coef.shape} / {start.shape} do not fit the "
                f"pair's 1/4-resolution grid {grid[1:]}"
            )
        items.append((src, start, coef))
    return items


def fold(src: torch.Tensor) -> torch.Tensor:
    """N×2×4h×4w sources in [0, 1] -> N×32×h×w in [-1, 1] (pixel-unshuffle: every pixel kept)."""
    return F.pixel_unshuffle(src * 2.0 - 1.0, FOLD)


def coefficient_crops(
    items: Sequence[Item], batch: int, crop: int, rng: np.random.Generator, scale: CoefficientScale
) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets B×3×c×c, conditioning B×35×c×c) at 1/4 resolution: random pair, position, flip, sample."""
    srcs = np.empty((batch, 2, crop * FOLD, crop * FOLD), dtype=np.float32)
    starts = np.empty((batch, 3, crop, crop), dtype=np.float32)
    coefs = np.empty((batch, 3, crop, crop), dtype=np.float32)
    for b, k in enumerate(rng.integers(0, len(items), size=batch)):
        src, start, coef = items[int(k)]
        ph, pw = max(0, crop - start.shape[1]), max(0, crop - start.shape[2])
        if ph or pw:  # a frame smaller than the crop: mirrored on both grids
            src = np.pad(src, ((0, 0), (0, ph * FOLD), (0, pw * FOLD)), mode="reflect")
            start = np.pad(start, ((0, 0), (0, ph), (0, pw)), mode="reflect")
            coef = np.pad(coef, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
        top = int(rng.integers(0, start.shape[1] - crop + 1))
        left = int(rng.integers(0, start.shape[2] - crop + 1))
        j = int(rng.integers(0, coef.shape[0]))
        s = src[:, top * FOLD : (top + crop) * FOLD, left * FOLD : (left + crop) * FOLD]
        a = start[:, top : top + crop, left : left + crop]
        c = coef[j, :, top : top + crop, left : left + crop]
        if rng.integers(0, 2):  # a mirrored frame is fused by the mirrored maps (bilinear ×4 is symmetric)
            s, a, c = s[..., ::-1], a[..., ::-1], c[..., ::-1]
        srcs[b], starts[b], coefs[b] = s, a, c
    start_t, coef_t = torch.from_numpy(starts), torch.from_numpy(coefs)
    cond = torch.cat([fold(torch.from_numpy(srcs)), scale.condition(start_t)], dim=1)
    return scale.encode(coef_t, start_t), cond


def train_coefficients(
    items: Sequence[Item],
    out: str | os.PathLike[str],
    cfg: DenoiserConfig,
    start: Path,
    provenance: dict[str, Any] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train the coefficient-space teacher (the prior's loop: resumable, atomic output)."""
    if not items:
        raise DataError("train-cond: no pairs to train on")
    scale = CoefficientScale.fit(items)
    return fit_denoiser(
        lambda rng: coefficient_crops(items, cfg.batch_size, cfg.crop, rng, scale),
        out,
        cfg,
        in_channels=3 + COND_CHANNELS,
        out_channels=3,
        kind=KIND,
        meta_name=COND_META,
        provenance={"pairs": len(items), "target": TARGET, "scale": scale.to_dict(), **(provenance or {})},
        files={START_FILE: start},
        on_step=on_step,
        resume=resume,
    )


class CoefficientTeacher(DiffusionTeacher):
    """A loaded coefficient-space teacher: ``fuse(visible, thermal, seeds, steps, eta)`` -> K fused frames."""

    CHANNELS = (3 + COND_CHANNELS, 3)
    LABEL = "coefficient teacher"
    target = TARGET
    guide_steps = 0  # Adam steps of the metric ascent per DDIM step (guided(); 0: the model alone)
    polish_steps = 0  # Adam steps of the metric ascent from each sample after DDIM (guided(); 0: off)
    guide: AscentConfig | None = None  # the ascent settings it guides and polishes with (from its provenance)

    def __init__(
        self,
        unet: Any,
        scheduler_config: dict[str, Any],
        path: Path,
        precision: str,
        student: Any,
        start_sha: str,
    ) -> None:
        super().__init__(unet, scheduler_config, path, precision)
        self.student = student.eval().requires_grad_(False)
        self.start_sha256 = start_sha
        try:
            self.scale = CoefficientScale.from_dict(self.meta["scale"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path / COND_META}: no valid coefficient scale") from None

    def guided(self, steps: int, polish: int = 0) -> CoefficientTeacher:
        """Guide every DDIM step with ``steps`` Adam steps of the metric ascent, and climb ``polish`` more
        from each sample after the last (0: off; guide.py)."""
        if min(steps, polish) < 0:
            raise DataError(f"guide steps {steps} / polish steps {polish}: must be 0 or more")
        guide = ascent_settings(self.meta) if steps or polish else None
        if (steps or polish) and guide is None:
            raise CheckpointError(
                f"{self.path / COND_META}: no ascent settings in its provenance to guide with"
            )
        self.guide_steps, self.polish_steps, self.guide = steps, polish, guide
        return self

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], device: str = "cpu", precision: str = "fp32"
    ) -> CoefficientTeacher:
        from edgefuse.checkpoint import load_model

        path = Path(path).expanduser()
        unet, sched_cfg = cls._load_unet(path)
        if not (path / START_FILE).is_file():
            raise CheckpointError(f"{path}: a coefficient teacher needs its start student {START_FILE}")
        start = load_model(path / START_FILE, map_location=device)
        return cls(unet.to(device), sched_cfg, path, precision, start.model, start.info.weights_sha256)

    def record(self, steps: int, eta: float) -> dict[str, Any]:
        rec = {**super().record(steps, eta), "start_weights_sha256": self.start_sha256}
        if self.guide_steps:
            rec["sampler"]["guide_steps"] = self.guide_steps
        if self.polish_steps:
            rec["sampler"]["polish_steps"] = self.polish_steps
        return rec

    @torch.no_grad()
    def coefficients(
        self, visible: torch.Tensor, thermal: torch.Tensor, seeds: Sequence[int], steps: int, eta: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(padded visible 1×3×H'×W', padded thermal, K×3×h×w sampled maps) of one pair in [0, 1]."""
        v, t = pad16(visible.to(self.device), thermal.to(self.device))
        start = self.student.coefficients(v, t).float()
        cond = torch.cat([fold(torch.cat([luma(v), t], dim=1)), self.scale.condition(start)], dim=1)
        h, w = start.shape[-2:]
        refine = None
        vis, ir = visible.to(self.device), thermal.to(self.device)
        if self.guide is not None and self.guide_steps:  # guided(): the ascent's steps on every x0 estimate
            refine = ascent_refine(
                self.student, self.scale, self.guide, self.guide_steps, vis, ir, seeds, start
            )
        x0 = ddim_sample(
            self.unet,
            self.scheduler_config,
            pad_to_multiple(cond, self.multiple),
            3,
            seeds,
            steps,
            eta,
            self.scale.limit,
            self.precision,
            refine,
        )
        maps = self.scale.decode(x0[..., :h, :w], start)
        if self.guide is not None and self.polish_steps:
            maps = ascent_polish(self.student, self.guide, self.polish_steps, vis, ir, seeds, maps)
        return v, t, maps

    def fuse(
        self, visible: torch.Tensor, thermal: torch.Tensor, seeds: Sequence[int], steps: int, eta: float
    ) -> torch.Tensor:
        """K fused RGB frames K×3×H×W in [0, 1]: the start student's blend of each sample's maps."""
        h, w = visible.shape[-2:]
        v, t, coef = self.coefficients(visible, thermal, seeds, steps, eta)
        with torch.no_grad():
            n = coef.shape[0]
            out = self.student.blend(coef, v.expand(n, -1, -1, -1), t.expand(n, -1, -1, -1))[..., :h, :w]
        if not torch.isfinite(out).all():
            raise DataError(f"{self.path}: the coefficient teacher produced NaN/Inf")
        return out.float()


def load_conditional(path: str | os.PathLike[str], device: str = "cpu", precision: str = "fp32") -> Any:
    """A trained conditional teacher of either kind: pixels or coefficients, as its metadata says."""
    where = Path(path).expanduser() / COND_META
    try:
        target = json.loads(where.read_text()).get("target", "fused")
    except (OSError, ValueError, AttributeError):
        target = None  # ConditionalTeacher.load says what is wrong
    if target == TARGET:
        return CoefficientTeacher.load(path, device, precision)
    return ConditionalTeacher.load(path, device, precision)
