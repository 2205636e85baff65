"""The metric-ascent teacher: the student's own form, fitted to each pair by gradient ascent on the fusion
metrics.

Why: every hand-made objective tried for the diffusion teacher (docs/distillation.md) traded VIF, Qabf and
SSIM against one another and none beat the teacher-free student on all three; a larger network (size m) and
the per-pixel selection form, trained with the same loss, scored the same as the student. What the student
lacks is not capacity but an objective. This teacher starts from a student's 1/4-resolution coefficient maps
for one pair and climbs

    VIF/VIF₀ + w_k·Qabf/Qabf₀   −   λ·relu(SSIM₀ − m − SSIM)/SSIM₀   [− ρ·relu(L − L₀)/L₀]

(₀: the start's values on this pair; the differentiable twins of edgefuse.metrics, metric_torch.py) with Adam,
so its output keeps the student's form (smooth coefficients over the sources themselves, no new edges) and
SSIM may fall at most ~m below the start. K samples per pair differ in the weight w_k = exp(s_k),
s_k ~ N(0, ``jitter``²), so they disagree exactly where raising VIF and keeping edges conflict.

It optimises the evaluation metrics themselves: its gains on them say as much about what the metrics reward
(VIF rises with local contrast gain) as about the image. Look at its output before trusting a number.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from edgefuse.errors import DataError
from edgefuse.losses import fusion_loss, luminance
from edgefuse.model import FusionProxy
from edgefuse.teacher.metric_torch import MetricScorer


@dataclass(frozen=True)
class AscentConfig:
    steps: int = 60
    lr: float = 0.01  # Adam step on the coefficient maps (their scale is ~0.1–1)
    ssim_margin: float = 0.015  # SSIM may drop this far below the start before the penalty acts
    ssim_weight: float = 5.0  # λ
    jitter: float = 0.3  # log-std of each sample's Qabf weight (ensemble diversity)
    # weight of relu(L − L₀)/L₀, L the teacher-free training loss (edgefuse.losses.fusion_loss, bundled
    # weights): holds what the student was trained for while the metrics climb (fewer flat blotches); 0: off
    loss_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0 or min(self.ssim_weight, self.jitter, self.loss_weight) < 0:
            raise DataError(f"invalid ascent settings {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AscentConfig:
        return cls(**{k: type(getattr(cls, k))(v) for k, v in d.items() if k in cls.__dataclass_fields__})


def _gray255(rgb: torch.Tensor) -> torch.Tensor:
    return luminance(rgb) * 255.0


def ascend_pair(
    model: FusionProxy,
    visible: torch.Tensor,
    thermal: torch.Tensor,
    seeds: list[int],
    cfg: AscentConfig,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """K = len(seeds) fused RGB frames (K×3×H×W float32 in [0, 1]) for one pair (3×H×W and 1×H×W, [0, 1])."""
    return ascend_coefficients(model, visible, thermal, seeds, cfg, dtype)[2]


def ascend_coefficients(
    model: FusionProxy,
    visible: torch.Tensor,
    thermal: torch.Tensor,
    seeds: list[int],
    cfg: AscentConfig,
    dtype: torch.dtype = torch.float64,
    init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(start 1×3×h×w, climbed K×3×h×w coefficient maps, float32, at 1/4 of the frame padded to a multiple
    of 16 as :func:`pad16` pads it; the fused frames K×3×H×W of :func:`ascend_pair`). ``init`` (K×3×h×w):
    climb from these maps instead of the start's; the objective stays relative to the start."""
    with full_float32(), torch.enable_grad():
        return _ascend(AscentObjective(model, visible, thermal, seeds, cfg, dtype), init)


@contextmanager
def full_float32() -> Iterator[None]:
    """cuDNN off TF32 for the ascent's metrics."""
    # cuDNN runs float32 convolutions in TF32 by default on Ampere and later (10 mantissa bits); the metrics'
    # local variances E[x²] − E[x]² of 0..255 levels would lose whole levels, and VIF and the samples' spread
    # with them, so the ascent keeps full float32 convolutions (docs/distillation.md, sixth session)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def pad16(visible: torch.Tensor, thermal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """1×3×H'×W' and 1×1×H'×W' float32: one pair padded at the bottom and right to multiples of 16 (the
    student's stride), reflected where the frame allows it."""
    if thermal.shape[-2:] != visible.shape[-2:]:
        raise DataError(f"visible {tuple(visible.shape[-2:])} and thermal {tuple(thermal.shape[-2:])} differ")
    h, w = visible.shape[-2:]
    ph, pw = (-h) % 16, (-w) % 16
    pad = "reflect" if max(ph, pw) < min(h, w) else "replicate"
    v = F.pad(visible[None].float(), (0, pw, 0, ph), mode=pad)
    t = F.pad(thermal[None].float(), (0, pw, 0, ph), mode=pad)
    return v, t


class AscentObjective:
    """The ascent's objective for one pair: ``loss(coef)`` (to minimise, summed over the K samples of
    K×3×h×w maps) and the start's own maps ``start`` (1×3×h×w). Built once per pair; the conditional
    coefficient teacher steps it inside DDIM too (coefficient.py, ``--guide-steps``)."""

    def __init__(
        self,
        model: FusionProxy,
        visible: torch.Tensor,
        thermal: torch.Tensor,
        seeds: list[int],
        cfg: AscentConfig,
        dtype: torch.dtype,
    ) -> None:
        self.model, self.cfg = model, cfg
        self.h, self.w = h, w = visible.shape[-2:]
        v, t = pad16(visible, thermal)
        with torch.no_grad():
            self.start = model.coefficients(v, t).to(dtype)
        logw = (
            torch.tensor(
                [float(torch.randn((), generator=torch.Generator().manual_seed(s))) for s in seeds],
                dtype=dtype,
            ).to(v.device)
            * cfg.jitter
        )
        self.weight = torch.exp(logw)
        self.vd, self.td = v.to(dtype), t.to(dtype)
        # the sources as edgefuse.metrics reads them: 8-bit levels (its BT.601 gray rounds to integers)
        self.scorer = MetricScorer(
            torch.round(self.td[..., :h, :w] * 255.0), torch.round(_gray255(self.vd[..., :h, :w]))
        )
        with torch.no_grad():
            f0 = self.fused(self.start)
            ref = self.scorer(_gray255(f0))
            ref["loss"] = self._own_loss(f0) if cfg.loss_weight > 0 else torch.ones(())
        self.ref = {name: value.clamp_min(1e-6) for name, value in ref.items()}

    def fused(self, coef: torch.Tensor) -> torch.Tensor:
        n = coef.shape[0]
        out = self.model.blend(coef, self.vd.expand(n, -1, -1, -1), self.td.expand(n, -1, -1, -1))
        return out[..., : self.h, : self.w]

    def _own_loss(self, f: torch.Tensor) -> torch.Tensor:  # per sample; the bundled recipe's weights
        v0, t0 = self.vd[..., : self.h, : self.w], self.td[..., : self.h, : self.w]
        return torch.stack([fusion_loss(f[j : j + 1], v0, t0, 0.5, 10.0, 1.0)[0] for j in range(f.shape[0])])

    def loss(self, coef: torch.Tensor) -> torch.Tensor:
        cfg, ref = self.cfg, self.ref
        f = self.fused(coef)
        s = self.scorer(_gray255(f))
        gain = s["VIF"] / ref["VIF"] + self.weight * s["Qabf"] / ref["Qabf"]
        short = torch.relu(ref["SSIM"] - cfg.ssim_margin - s["SSIM"]) / ref["SSIM"]
        loss = -gain + cfg.ssim_weight * short
        if cfg.loss_weight > 0:
            loss = loss + cfg.loss_weight * torch.relu(self._own_loss(f) - ref["loss"]) / ref["loss"]
        return loss.sum()

    def climb(self, coef: torch.Tensor, opt: torch.optim.Optimizer, steps: int) -> None:
        """``steps`` steps of ``opt`` (over ``coef``, K×3×h×w with grad) down :meth:`loss`."""
        for _ in range(steps):
            loss = self.loss(coef)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def _ascend(
    objective: AscentObjective, init: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    k = objective.weight.shape[0]
    first = objective.start.expand(k, -1, -1, -1) if init is None else init.to(objective.start)
    if first.shape != (k, *objective.start.shape[1:]):
        raise DataError(f"ascent start maps {tuple(first.shape)} do not fit {k} samples of the pair")
    coef = first.clone().requires_grad_(True)
    objective.climb(coef, torch.optim.Adam([coef], lr=objective.cfg.lr), objective.cfg.steps)
    with torch.no_grad():
        out = objective.fused(coef).float()
    if not torch.isfinite(out).all():
        raise DataError("metric ascent produced NaN or Inf values")
    return objective.start.float(), coef.detach().float(), out
