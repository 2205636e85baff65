"""The metric ascent as DDFM's likelihood step inside the coefficient teacher's DDIM (``sample-cond
--guide-steps``).

DDFM samples an unconditional prior and, at every DDIM step, moves the step's clean estimate x̂0 towards the
pair's own likelihood before the step is taken from it. Here the prior is the conditional coefficient model
(coefficient.py), which learnt where the metric ascent goes on RoadScene's training pairs, and the
likelihood step is that ascent itself: a few Adam steps of its objective (ascent.py) on x̂0, decoded to
maps. The model proposes and spreads; the pair's own metrics, SSIM floor included, hold every sample to the
pair in front of it, whatever domain it comes from. The objective is the one the model's targets were climbed
with (the ascent settings in the model's provenance), so guiding adds one setting only: the Adam steps per
DDIM step. With the diffusion off (no model) it is the ascent teacher; with the guide off, the model alone.

``--polish-steps`` takes the likelihood step once instead, after sampling: each sample's maps climb the same
objective from where the model put them. With the model off that is the ascent teacher, so whether the
diffusion does work is whether its samples are better places to climb from than the start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from edgefuse.teacher.ascent import AscentConfig, AscentObjective, ascend_coefficients, full_float32


def ascent_settings(meta: dict[str, Any]) -> AscentConfig | None:
    """The ascent settings the model's training cache was written with (None: not an ascent cache)."""
    teacher = meta.get("cache_teacher") or {}
    if not isinstance(teacher, dict) or not isinstance(teacher.get("ascent"), dict):
        return None
    return AscentConfig.from_dict(teacher["ascent"])


def ascent_dtype(like: torch.Tensor) -> torch.dtype:
    # float32 on a GPU (TF32 off), float64 on a CPU, where it runs faster here (2.1 s against 3.3 s a step of
    # K = 6 at 500×329): the split scripts/ascent_ablation.py makes; the two agree to 5e-4 on VIF/Qabf/SSIM
    return torch.float32 if like.device.type == "cuda" else torch.float64


def ascent_polish(
    student: Any,
    cfg: AscentConfig,
    steps: int,
    visible: torch.Tensor,
    thermal: torch.Tensor,
    seeds: Sequence[int],
    maps: torch.Tensor,
) -> torch.Tensor:
    """The sampled K×3×h×w ``maps`` of one pair after ``steps`` Adam steps of the ascent ``cfg`` from each
    (``sample-cond --polish-steps``): the likelihood step once, at the end, from the sample rather than from
    the start. The objective is still relative to the start's own metrics, its SSIM floor included."""
    polish, dtype = replace(cfg, steps=steps), ascent_dtype(visible)
    return ascend_coefficients(student, visible, thermal, list(seeds), polish, dtype, init=maps)[1]


def ascent_refine(
    student: Any,
    scale: Any,
    cfg: AscentConfig,
    steps: int,
    visible: torch.Tensor,
    thermal: torch.Tensor,
    seeds: Sequence[int],
    start: torch.Tensor,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The ``refine`` of ddim_sample for one pair (visible 3×H×W, thermal 1×H×W; ``start`` the start
    student's 1×3×h×w maps, ``scale`` the model's CoefficientScale): ``steps`` Adam steps of the ascent
    ``cfg`` on each x0 estimate. Adam's moments carry over from step to step: it is the ascent's own
    optimiser, spread over the DDIM steps."""
    objective = AscentObjective(student, visible, thermal, list(seeds), cfg, ascent_dtype(visible))
    h, w = start.shape[-2:]
    coef = objective.start.expand(len(seeds), -1, -1, -1).clone().requires_grad_(True)
    opt = torch.optim.Adam([coef], lr=cfg.lr)

    def refine(x0: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad(), full_float32():
            coef.data.copy_(scale.decode(x0[..., :h, :w], start))
            objective.climb(coef, opt, steps)
        out = x0.clone()
        out[..., :h, :w] = scale.encode(coef.detach().float(), start)
        return out

    return refine
