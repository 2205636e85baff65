"""Losses for training the student without a teacher (and pieces the distillation loss reuses).

All images are float tensors in [0, 1]; luminance is BT.601.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgefuse.model import BT601

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luminance of N×3×H×W (any range) -> N×1×H×W."""
    w = torch.tensor(BT601, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(dim=1, keepdim=True)


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|∇x| with Sobel kernels and replicate padding (no false edges at the border)."""
    kx = _SOBEL_X.to(x)
    k = torch.stack([kx, kx.t()]).unsqueeze(1)  # 2×1×3×3
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k)
    return torch.sqrt(g.pow(2).sum(dim=1, keepdim=True) + 1e-12)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Gaussian window, data range 1) per batch element; differentiable."""
    coords = torch.arange(window, dtype=x.dtype, device=x.device) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1)
    c = x.shape[1]
    gh, gv = g.expand(c, 1, 1, window), g.transpose(-1, -2).expand(c, 1, window, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(dim=1)


def intensity_term(yf: torch.Tensor, yv: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
    """L1 of the fused luminance towards max(Y_v, T): keep whichever source is brighter (more salient)."""
    return F.l1_loss(yf, torch.maximum(yv, thermal))


def base_term(yf: torch.Tensor, yv: torch.Tensor, thermal: torch.Tensor, block: int = 8) -> torch.Tensor:
    """L1 of the fused luminance's 8×8 block means towards those of max(Y_v, T).

    A brightness anchor that leaves detail free. Without any intensity term an edge-heavy loss learned to
    shift the image down (measured, fused mean against visible / thermal: 0.47 against 0.60 / 0.49 on a
    daylight pair, 0.09 against 0.13 / 0.07 on a night pair), and the pixel-level term pulls every pixel
    towards the max image. Off by default: on the training split it lowered VIF, Qabf and SSIM
    (docs/results/bundled.md).
    """
    target = torch.maximum(yv, thermal)
    return F.l1_loss(F.avg_pool2d(yf, block, ceil_mode=True), F.avg_pool2d(target, block, ceil_mode=True))


def gradient_term(yf: torch.Tensor, yv: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
    """L1 of |∇Y_f| towards max(|∇Y_v|, |∇T|): keep the stronger edge of the two sources."""
    return F.l1_loss(sobel_magnitude(yf), torch.maximum(sobel_magnitude(yv), sobel_magnitude(thermal)))


def source_ssim_term(yf: torch.Tensor, yv: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
    """1 − mean(SSIM(Y_f, Y_v), SSIM(Y_f, T)): the local structure of both sources."""
    return 1.0 - 0.5 * (ssim(yf, yv) + ssim(yf, thermal)).mean()


def fusion_loss(
    fused: torch.Tensor,
    visible: torch.Tensor,
    thermal: torch.Tensor,
    w_intensity: float = 1.0,
    w_gradient: float = 5.0,
    w_ssim: float = 1.0,
    w_base: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The usual unsupervised fusion objective on luminance: the terms above, weighted."""
    yf, yv = luminance(fused), luminance(visible)
    l_int = intensity_term(yf, yv, thermal)
    l_grad = gradient_term(yf, yv, thermal)
    l_ssim = source_ssim_term(yf, yv, thermal)
    loss = w_intensity * l_int + w_gradient * l_grad + w_ssim * l_ssim
    logs = {"int": l_int.item(), "grad": l_grad.item(), "ssim": l_ssim.item()}
    if w_base:
        l_base = base_term(yf, yv, thermal)
        loss = loss + w_base * l_base
        logs["base"] = l_base.item()
    return loss, logs
