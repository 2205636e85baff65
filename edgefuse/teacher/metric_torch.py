"""Differentiable torch twins of three fusion metrics of :mod:`edgefuse.metrics`: VIF (A→F + B→F), Qabf and
SSIM (SSIM(F, A) + SSIM(F, B), convention A), on gray images in 0..255 (N×1×H×W, float64 recommended).

They follow the numpy definitions step for step (the same windows, padding, thresholds and constants), so on
the same 8-bit input they agree to ~1e-4 (tested); the metric-ascent teacher (:mod:`edgefuse.teacher.ascent`)
climbs them. Qabf's orientation term uses arctan(sy/sx) as the reference does, so its gradient is defined
wherever sx ≠ 0; VIF's case analysis (flat reference, flat distortion, negative gain) becomes ``torch.where``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edgefuse.metrics import _EPS, _SIGMA_NSQ, _SOBEL_X, _SOBEL_Y, _VIF_WINDOWS

__all__ = ["MetricScorer"]


def _sep(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """'valid' correlation with the separable window k⊗k."""
    n = k.numel()
    return F.conv2d(F.conv2d(x, k.view(1, 1, n, 1)), k.view(1, 1, 1, n))


def _vif_scales(img: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    out = []
    for scale, win in enumerate(_VIF_WINDOWS, start=1):
        k = torch.as_tensor(win.sum(axis=1), dtype=img.dtype, device=img.device)
        if min(img.shape[-2:]) < k.numel():  # as the reference: an empty 'valid' scale adds nothing
            break
        if scale > 1:
            img = _sep(img, k)[..., ::2, ::2]
            if min(img.shape[-2:]) < k.numel():
                break
        mu = _sep(img, k)
        out.append((img, mu, _sep(img * img, k) - mu * mu))
    return out


def _vif(ref: list, dist: list) -> torch.Tensor:
    num = den = torch.zeros((), dtype=ref[0][0].dtype, device=ref[0][0].device)
    for (x, mu1, s1), (y, mu2, s2), win in zip(ref, dist, _VIF_WINDOWS, strict=False):
        k = torch.as_tensor(win.sum(axis=1), dtype=x.dtype, device=x.device)
        s12 = _sep(x * y, k) - mu1 * mu2
        g = s12 / (s1 + _EPS)
        sv = s2 - g * s12
        zero = torch.zeros_like(g)
        low1 = s1 < _EPS
        g, sv, s1 = torch.where(low1, zero, g), torch.where(low1, s2, sv), torch.where(low1, zero, s1)
        low2 = s2 < _EPS
        g, sv = torch.where(low2, zero, g), torch.where(low2, zero, sv)
        neg = g < 0
        g, sv = torch.where(neg, zero, g), torch.where(neg, s2, sv)
        sv = sv.clamp_min(_EPS)
        num = num + torch.log10(1.0 + g * g * s1 / (sv + _SIGMA_NSQ)).flatten(1).sum(1)
        den = den + torch.log10(1.0 + s1 / _SIGMA_NSQ).flatten(1).sum(1)
    return num / den


def _edges(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # the reference convolves (flipped kernel) with zero padding; conv2d correlates, so flip here
    kx = torch.as_tensor(_SOBEL_X[::-1, ::-1].copy(), dtype=img.dtype, device=img.device).view(1, 1, 3, 3)
    ky = torch.as_tensor(_SOBEL_Y[::-1, ::-1].copy(), dtype=img.dtype, device=img.device).view(1, 1, 3, 3)
    sx, sy = F.conv2d(img, kx, padding=1), F.conv2d(img, ky, padding=1)
    g = torch.sqrt(sx * sx + sy * sy + 1e-12)  # the epsilon keeps the gradient finite on flat pixels
    flat = sx == 0
    alpha = torch.where(flat, torch.full_like(sx, math.pi / 2), torch.atan(sy / torch.where(flat, 1.0, sx)))
    return g, alpha


def _q(g_x: torch.Tensor, a_x: torch.Tensor, g_f: torch.Tensor, a_f: torch.Tensor) -> torch.Tensor:
    ratio = torch.where(g_x > g_f, g_f / g_x.clamp_min(1e-12), g_x / g_f.clamp_min(1e-12))
    angle = 1.0 - (a_x - a_f).abs() / (math.pi / 2)
    q_g = 0.9994 / (1.0 + torch.exp(-15.0 * (ratio - 0.5)))
    q_a = 0.9879 / (1.0 + torch.exp(-22.0 * (angle - 0.8)))
    return q_g * q_a


def _box7(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (3, 3, 3, 3), mode="reflect"), 7, stride=1)


def _ssim_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu = _box7(x)
    return mu, 49.0 / 48.0 * (_box7(x * x) - mu * mu)


def _ssim(x: torch.Tensor, y: torch.Tensor, px: tuple, py: tuple) -> torch.Tensor:
    (ux, vx), (uy, vy) = px, py
    vxy = 49.0 / 48.0 * (_box7(x * y) - ux * uy)
    c1, c2 = (0.01 * 2.0) ** 2, (0.03 * 2.0) ** 2  # data_range 2, as metrics.md's convention A
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s[..., 3:-3, 3:-3].flatten(1).mean(1)


class MetricScorer:
    """Scores fused gray images against one fixed pair; the sources' statistics are computed once.

    ``scorer(f)`` with f N×1×H×W in 0..255 returns {"VIF", "Qabf", "SSIM"}, each a tensor of N values.
    """

    def __init__(self, ir: torch.Tensor, vis: torch.Tensor) -> None:
        self.a, self.b = ir, vis
        self.vif_a, self.vif_b = _vif_scales(ir), _vif_scales(vis)
        self.edge_a, self.edge_b = _edges(ir), _edges(vis)
        self.ssim_a, self.ssim_b = _ssim_stats(ir), _ssim_stats(vis)

    def __call__(self, f: torch.Tensor) -> dict[str, torch.Tensor]:
        n = f.shape[0]
        vf = _vif_scales(f)
        (ga, aa), (gb, ab) = self.edge_a, self.edge_b
        gf, af = _edges(f)
        num = (_q(ga, aa, gf, af) * ga + _q(gb, ab, gf, af) * gb).flatten(1).sum(1)
        sf = _ssim_stats(f)
        return {
            "VIF": _vif(self.vif_a, vf) + _vif(self.vif_b, vf),
            "Qabf": num / (ga + gb).sum(),
            "SSIM": _ssim(f, self.a.expand(n, -1, -1, -1), sf, self.ssim_a)
            + _ssim(f, self.b.expand(n, -1, -1, -1), sf, self.ssim_b),
        }
