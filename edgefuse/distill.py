"""Distillation of the student from a K-sample teacher ensemble (see docs/distillation.md).

Per crop the loss is

    L = w_pix · mean_px( w ⊙ mean_c |F − M| ) + w_feat · L_feat + w_ssim · (1 − SSIM(Y_F, Y_M))
        + w_src · (1 − mean(SSIM(Y_F, Y_V), SSIM(Y_F, T))) + w_grad · ‖ |∇Y_F| − max(|∇Y_V|, |∇T|) ‖₁
        + w_int · ‖ Y_F − max(Y_V, T) ‖₁

with F the student output, M the ensemble mean (RGB); the last three terms are the teacher-free loss's
(``edgefuse.losses``), kept beside the teacher's as the "hard" loss of classic distillation, because the
ensemble mean is an L1 solution that carries no edge term of its own; and

- pixel weights ``w = exp(−var / τ) / mean(exp(−var / τ))`` (``variance``; ``uniform``: w = 1), var the
  per-pixel luminance variance of the K samples, τ the temperature (default: the mean variance of the
  training pairs), normalised to mean 1 over the batch so the loss scale does not depend on τ;
- routed feature alignment, per backbone scale s with features φ_s of the K samples and of F:
  σ_c = std of channel c over (K, h, w) of the samples, μ = mean_k φ_s(sample_k) / σ,
  V = mean_c var_k(φ_s(sample_k) / σ) (per pixel), routing R = exp(−V / τ_f) in (0, 1] (``feature``;
  ``all``: R = 1; τ_f default 0 = the batch mean of V at that scale),
  L_feat = mean_s Σ_px R · mean_c (φ_s(F)/σ − μ)² / Σ_px R.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from edgefuse.augment import augment_pair
from edgefuse.errors import DataError
from edgefuse.teacher.cache import TeacherCache
from edgefuse.teacher.ddfm import luma, with_visible_chroma

PIXEL_WEIGHTINGS = ("uniform", "variance")
ROUTINGS = ("none", "feature", "all")


@dataclass(frozen=True)
class DistillConfig:
    pixel_weighting: str = "variance"
    routing: str = "feature"
    tau: float = 0.0  # pixel-variance temperature; 0: the mean variance of the training pairs
    tau_feat: float = 0.0  # routing temperature on the normalised feature variance; 0: batch mean of V
    w_pixel: float = 1.0
    w_feat: float = 0.05
    w_ssim: float = 0.1
    # 1 − mean(SSIM(Y_F, Y_v), SSIM(Y_F, T)): the sources' structure term of the teacher-free loss, kept so
    # that following the teacher's intensities does not cost the local structure of either source
    w_source_ssim: float = 0.5
    # the teacher-free gradient and intensity terms (edgefuse.losses); chosen on a split of the training
    # pairs (docs/distillation.md): without the gradient term the student followed the teacher's softer
    # edges and lost Qabf
    w_gradient: float = 5.0
    w_intensity: float = 1.0
    w_base: float = 0.0  # block-mean brightness anchor (edgefuse.losses.base_term); 0: off

    def __post_init__(self) -> None:
        if self.pixel_weighting not in PIXEL_WEIGHTINGS:
            raise DataError(f"pixel weighting {self.pixel_weighting!r}: choose {', '.join(PIXEL_WEIGHTINGS)}")
        if self.routing not in ROUTINGS:
            raise DataError(f"routing {self.routing!r}: choose {', '.join(ROUTINGS)}")
        if min(v for k, v in asdict(self).items() if k.startswith("w_")) < 0:
            raise DataError("loss weights must be ≥ 0")
        if self.tau < 0 or self.tau_feat < 0:
            raise DataError("temperatures must be positive (or 0: automatic)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- statistics -------------------------------------------------------------------------------------------


def variance_weights(var: torch.Tensor, tau: float) -> torch.Tensor:
    """exp(−var/τ), normalised to mean 1 over the tensor; a decreasing function of the variance."""
    w = torch.exp(-var / tau)
    return w / w.mean().clamp_min(1e-12)


def feature_stats(feats: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For features of K samples (B×K×C×h×w): (normalised mean B×C×h×w, σ B×1×C×1×1, V B×1×h×w).

    σ_c is the channel's standard deviation over samples and positions; V the per-pixel across-sample variance
    of the σ-normalised features, averaged over channels (0 where all samples agree).
    """
    sigma = feats.std(dim=(1, 3, 4), keepdim=True) + eps
    z = feats / sigma
    return z.mean(dim=1), sigma, z.var(dim=1, unbiased=True).mean(dim=1, keepdim=True)


def routing_from_variance(v: torch.Tensor, tau_feat: float) -> torch.Tensor:
    """exp(−V/τ_f) in (0, 1]; τ_f = 0 means the mean of ``v`` (relative: the less stable half is damped)."""
    tau = float(v.mean().clamp_min(1e-8)) if tau_feat <= 0 else tau_feat
    return torch.exp(-v / tau)


def compose_samples(visible: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """(B·K)×3×h×w RGB from luminance samples B×K×h×w and the visible chroma."""
    b, k = samples.shape[:2]
    vis = visible.unsqueeze(1).expand(b, k, *visible.shape[1:]).reshape(b * k, *visible.shape[1:])
    return with_visible_chroma(samples.reshape(b * k, 1, *samples.shape[2:]), vis)


@torch.no_grad()
def routing_maps(
    backbone: nn.Module, visible: torch.Tensor, samples: torch.Tensor, tau_feat: float
) -> list[torch.Tensor]:
    """Routing map of every backbone scale, bilinearly upsampled to the image: B×1×H×W each, in [0, 1]."""
    b, k = samples.shape[:2]
    out = []
    for f in backbone(compose_samples(visible, samples)):
        _, _, v = feature_stats(f.reshape(b, k, *f.shape[1:]).float())
        r = routing_from_variance(v, tau_feat)
        out.append(
            F.interpolate(r, size=visible.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
        )
    return out


# --- the loss -----------------------------------------------------------------------------------------------


class DistillLoss:
    """``loss_fn(model, batch) -> (loss, logs)`` for :class:`edgefuse.training.Trainer`."""

    def __init__(self, cfg: DistillConfig, tau: float, backbone: nn.Module | None = None) -> None:
        if cfg.routing != "none" and backbone is None:
            raise DataError(f"routing {cfg.routing!r} needs a feature backbone")
        self.cfg, self.tau, self.backbone = cfg, float(tau), backbone

    def __call__(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        from edgefuse.losses import base_term, gradient_term, intensity_term, source_ssim_term, ssim

        cfg = self.cfg
        fused = model(batch["visible"], batch["thermal"])
        mean = batch["mean"]
        # per-item weight of the teacher's terms: 0 for an item --night or --thermal-level changed, whose
        # teacher sample is of the pair as it is; scaled so a batch without such items weighs as before
        day = batch.get("day")
        day = torch.ones(fused.shape[0], device=fused.device) if day is None else day.to(fused.device).float()
        keep = day / day.mean().clamp_min(1e-6) if bool(day.any()) else day
        err = (fused - mean).abs().mean(dim=1, keepdim=True)
        if cfg.pixel_weighting == "variance":
            err = err * variance_weights(batch["var"], self.tau)
        l_pix = (err.flatten(1).mean(dim=1) * keep).mean()
        yf = luma(fused)
        l_ssim = ((1.0 - ssim(yf, luma(mean))) * keep).mean()
        loss = cfg.w_pixel * l_pix + cfg.w_ssim * l_ssim
        logs = {"pix": float(l_pix.detach()), "ssim": float(l_ssim.detach())}
        yv, thermal = luma(batch["visible"]), batch["thermal"]
        for name, weight, term in (
            ("src_ssim", cfg.w_source_ssim, source_ssim_term),
            ("grad", cfg.w_gradient, gradient_term),
            ("int", cfg.w_intensity, intensity_term),
            ("base", cfg.w_base, base_term),
        ):
            if weight > 0:
                value = term(yf, yv, thermal)
                loss = loss + weight * value
                logs[name] = float(value.detach())
        if cfg.routing != "none" and cfg.w_feat > 0:
            l_feat, route = self._features(fused, batch, day)
            loss = loss + cfg.w_feat * l_feat
            logs.update(feat=float(l_feat.detach()), route=route)
        return loss, logs

    def _features(
        self, fused: torch.Tensor, batch: dict[str, Any], day: torch.Tensor
    ) -> tuple[torch.Tensor, float]:
        assert self.backbone is not None
        samples = batch["samples"]
        b, k = samples.shape[:2]
        with torch.no_grad():
            teacher = [
                f.reshape(b, k, *f.shape[1:]).float()
                for f in self.backbone(compose_samples(batch["visible"], samples))
            ]
        student = self.backbone(fused)
        terms, routes = [], []
        for ft, fs in zip(teacher, student, strict=True):
            mu, sigma, v = feature_stats(ft)
            r = (
                routing_from_variance(v, self.cfg.tau_feat)
                if self.cfg.routing == "feature"
                else torch.ones_like(v)
            )
            d = ((fs.float() / sigma.squeeze(1) - mu) ** 2).mean(dim=1, keepdim=True)
            rd = r * day.view(-1, 1, 1, 1)  # changed items: no alignment to a teacher of the unchanged pair
            terms.append((rd * d).sum() / rd.sum().clamp_min(1e-6))
            routes.append(float(r.mean()))
        return torch.stack(terms).mean(), float(np.mean(routes))


# --- data


class DistillDataset(Dataset):
    """Dicts {visible 3×h×w, thermal 1×h×w, mean 3×h×w, var 1×h×w, samples K×h×w (if asked), stem}.

    Pairs and their cache entries are decoded once; each pair appears ``repeat`` times per epoch, every
    appearance with its own crop/flip drawn from a generator seeded by (seed, epoch, item index), so runs are
    reproducible whatever the worker count; train=False gives centre crops.
    """

    def __init__(
        self,
        source: Any,
        cache: TeacherCache,
        indices: Sequence[int],
        crop: int | None = 256,
        train: bool = True,
        seed: int = 0,
        samples: bool = False,
        repeat: int = 1,
        night: float = 0.0,
        night_noise: float = 0.0,
        thermal_level: float = 0.0,
    ) -> None:
        self.source, self.cache = source, cache
        # synthetic night visible frames and dark thermal frames (edgefuse.augment); each item says whether
        # either changed it ("day" 0), and DistillLoss then drops the teacher's terms for it: the teacher saw
        # the pair as it is
        self.night, self.night_noise = float(night), float(night_noise)
        self.thermal_level = float(thermal_level)
        self.repeat = max(1, int(repeat))
        self.indices = [int(i) for i in indices]
        self.crop, self.train, self.seed, self.with_samples = crop, train, int(seed), samples
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._data = [self._decode(i) for i in self.indices]

    def _decode(self, i: int) -> dict[str, Any]:
        vis, ir = self.source[i]
        entry = self.cache.load(self.source.pairs[i].stem)
        if entry.var.shape != ir.shape:
            raise DataError(f"{self.cache.root}: pair {entry.stem!r} size differs from the cache entry")
        item = {
            "visible": vis,
            "thermal": ir[..., None],
            "mean": entry.mean.astype(np.float16),
            "var": entry.var[..., None],
        }
        if self.with_samples:
            if entry.samples is None:
                raise DataError(
                    f"{self.cache.root}: entry {entry.stem!r} holds no samples (needed for routing)"
                )
            item["samples"] = np.ascontiguousarray(entry.samples.transpose(1, 2, 0))  # H×W×K uint8
        return item

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.indices) * self.repeat

    def __getitem__(self, n: int) -> dict[str, Any]:
        j = n % len(self.indices)
        i, item = self.indices[j], self._data[j]
        h, w = item["var"].shape[:2]
        arrays = dict(item)
        flip = False
        if self.crop is not None:
            c = self.crop
            if h < c or w < c:
                arrays = {key: _pad_hwc(a, c) for key, a in arrays.items()}
                h, w = arrays["var"].shape[:2]
            if self.train:
                rng = np.random.default_rng([self.seed, int(self._epoch.item()), n])
                top, left = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
                flip = bool(rng.integers(0, 2))
            else:
                top, left = (h - c) // 2, (w - c) // 2
            arrays = {key: a[top : top + c, left : left + c] for key, a in arrays.items()}
        elif self.train:
            flip = bool(np.random.default_rng([self.seed, int(self._epoch.item()), n]).integers(0, 2))
        out: dict[str, Any] = {}
        for key, a in arrays.items():
            a = a[:, ::-1] if flip else a
            t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
            out[key] = t.float() / 255.0 if a.dtype == np.uint8 else t.float()
        changed = False
        if self.train:
            draw = (self.seed, int(self._epoch.item()), n)
            vis, ir, changed = augment_pair(
                out["visible"].numpy(),
                out["thermal"].numpy(),
                self.night,
                self.night_noise,
                self.thermal_level,
                draw,
            )
            out["visible"], out["thermal"] = torch.from_numpy(vis), torch.from_numpy(ir)
        out["day"] = torch.tensor(0.0 if changed else 1.0)
        out["stem"] = self.source.pairs[i].stem
        return out


def _pad_hwc(a: np.ndarray, c: int) -> np.ndarray:
    ph, pw = max(0, c - a.shape[0]), max(0, c - a.shape[1])
    widths = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))
    if max(ph - ph // 2, pw - pw // 2) < min(a.shape[:2]):
        return np.pad(a, widths, mode="reflect")
    return np.pad(a, widths, mode="edge")


def mean_variance(cache: TeacherCache, stems: Sequence[str]) -> float:
    """The default pixel temperature τ: mean per-pixel variance over the given pairs (> 0)."""
    total, count = 0.0, 0
    for stem in stems:
        var = cache.load(stem).var.astype(np.float64)
        total += float(var.sum())
        count += var.size
    return max(total / max(1, count), 1e-8)
