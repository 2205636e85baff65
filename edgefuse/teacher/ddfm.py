"""DDFM-style fusion sampler: DDIM on an unconditional luminance prior, with an EM likelihood step.

Fusion objective (Zhao et al., ICCV 2023, after GTF): keep the thermal intensities and the visible gradients,

    min_f ‖f − i‖₁ + φ‖∇f − ∇v‖₁,   rewritten with x = f − v, y = i − v:   min_x ‖x − y‖₁ + φ‖∇x‖₁.

At every DDIM step the prior's predicted clean image f̂ (x̂ = f̂ − v) is corrected by the MAP estimate of

    J(x) = ‖x − y‖₁ + φ‖∇x‖₁ + (μ/2)‖x − x̂‖²                       (μ = ``prior_weight``; 0: likelihood only)

solved by EM on a half-quadratic split (u ≈ x for the data term, g ≈ ∇x for the gradient term, penalty β):

    L(x, u, g) = ‖u − y‖₁ + φ‖g‖₁ + (β/2)‖x − u‖² + (β/2)‖∇x − g‖² + (μ/2)‖x − x̂‖².

Each Laplacian is a Gaussian scale mixture; the E-step replaces it by the expected precision at the current
estimate (c = 1/|u − y|, d = φ/|g|, smoothed by ε), the M-step minimises the resulting quadratic: u and g are
pixel-wise closed forms, x solves ((β + μ)·I + β·∇ᵀ∇) x = β u + μ x̂ + β ∇ᵀg exactly with FFTs (periodic
boundary; the sampler reflect-pads). Everything works on luminance in [-1, 1], the prior's range; chroma comes
from the visible frame (BT.601) when the result is turned into RGB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from edgefuse.teacher.prior import Prior

BT601 = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class EMConfig:
    """Likelihood-step knobs (luminance scaled to [-1, 1])."""

    phi: float = 3.0  # weight of the visible-gradient term φ
    prior_weight: float = 1.0  # μ: pull towards the prior's x0; 0 = minimise the fusion objective alone
    split: float = 20.0  # β of the half-quadratic split (larger: closer to the exact L1 problem, slower)
    iters: int = 3  # EM iterations per diffusion step
    eps: float = 1e-3  # smoothing of |r| in the E-step (no infinite precisions)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- finite differences with periodic boundary (what the FFT diagonalises) -------------------------------


def grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences (horizontal, vertical), periodic."""
    return torch.roll(x, -1, dims=-1) - x, torch.roll(x, -1, dims=-2) - x


def grad_adjoint(gh: torch.Tensor, gv: torch.Tensor) -> torch.Tensor:
    """∇ᵀg, the adjoint of :func:`grad`."""
    return (torch.roll(gh, 1, dims=-1) - gh) + (torch.roll(gv, 1, dims=-2) - gv)


def laplacian_symbol(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Eigenvalues of ∇ᵀ∇ on the rfft2 grid: (2 − 2cos ωh) + (2 − 2cos ωv), shape H×(W//2+1)."""
    wy = 2.0 * torch.pi * torch.arange(height, device=device, dtype=torch.float64) / height
    wx = 2.0 * torch.pi * torch.arange(width // 2 + 1, device=device, dtype=torch.float64) / width
    return ((2.0 - 2.0 * torch.cos(wy))[:, None] + (2.0 - 2.0 * torch.cos(wx))[None, :]).float()


def solve_quadratic(rhs: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """x with (a·I + b·∇ᵀ∇) x = rhs over the last two dims (periodic), in closed form with FFTs. a > 0."""
    h, w = rhs.shape[-2:]
    denom = a + b * laplacian_symbol(h, w, rhs.device)
    return torch.fft.irfft2(torch.fft.rfft2(rhs.float()) / denom, s=(h, w)).to(rhs.dtype)


def fusion_objective(f: torch.Tensor, i: torch.Tensor, v: torch.Tensor, phi: float) -> torch.Tensor:
    """Per-image mean of |f − i| + φ(|∂h(f − v)| + |∂v(f − v)|) (periodic differences, as the solver)."""
    gh, gv = grad(f - v)
    per_px = (f - i).abs() + phi * (gh.abs() + gv.abs())
    return per_px.flatten(1).mean(dim=1)


EMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (u, g_h, g_v) of the split


def em_likelihood(
    x0: torch.Tensor,
    thermal: torch.Tensor,
    visible_y: torch.Tensor,
    cfg: EMConfig,
    state: EMState | None = None,
) -> tuple[torch.Tensor, EMState]:
    """Correct the prior's clean-image estimate ``x0`` (N×1×H×W luminance, [-1, 1]) by ``cfg.iters`` EM steps.

    ``thermal`` and ``visible_y`` are N×1×H×W (or broadcastable) in the same [-1, 1] scale. ``state`` carries
    the split variables from the previous diffusion step (as DDFM carries its EM state), so the likelihood
    estimate keeps improving along the trajectory; None starts them at the prior's estimate.
    Returns (corrected x0 in [-1, 1], new state).
    """
    x0, thermal, visible_y = x0.float(), thermal.float(), visible_y.float()
    y = thermal - visible_y
    x_prior = x0 - visible_y
    x = x_prior
    if state is None:
        u = x_prior
        gh, gv = grad(x_prior)
    else:
        u, gh, gv = state
    beta, mu, eps = float(cfg.split), float(cfg.prior_weight), float(cfg.eps)
    for _ in range(cfg.iters):
        # E-step: expected precisions of the Laplace scale mixtures at the current estimate
        c = 1.0 / torch.sqrt((u - y) ** 2 + eps**2)
        dh = cfg.phi / torch.sqrt(gh**2 + eps**2)
        dv = cfg.phi / torch.sqrt(gv**2 + eps**2)
        # M-step: one block-coordinate sweep of the quadratic (x exactly by FFT, then u and g pixel-wise)
        x = solve_quadratic(beta * u + mu * x_prior + beta * grad_adjoint(gh, gv), beta + mu, beta)
        u = (c * y + beta * x) / (c + beta)
        xh, xv = grad(x)
        gh, gv = beta * xh / (dh + beta), beta * xv / (dv + beta)
    return (x + visible_y).clamp(-1.0, 1.0), (u, gh, gv)


# --- colour -------------------------------------------------------------------------------------------------


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luminance of N×3×H×W (any range) -> N×1×H×W."""
    w = torch.tensor(BT601, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(dim=1, keepdim=True)


def with_visible_chroma(y: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """RGB from fused luminance ``y`` (…×1×H×W, [0, 1]) and the visible frame's BT.601 chroma.

    (Y_f, Cb_v, Cr_v) -> RGB equals RGB_v + (Y_f − Y_v) per channel; clipped to [0, 1].
    """
    return (visible + (y - luma(visible))).clamp(0.0, 1.0)


# --- the sampler


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 25  # DDIM steps
    eta: float = 0.0  # DDIM stochasticity (0: samples differ only by their initial noise)
    em: EMConfig = EMConfig()
    max_batch: int = 0  # samples per UNet call (0: all K at once)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "eta": self.eta, "em": self.em.to_dict(), "max_batch": self.max_batch}


def _pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not ph and not pw:
        return x
    mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


@torch.no_grad()
def sample_fusion(
    prior: Prior,
    visible: torch.Tensor,
    thermal: torch.Tensor,
    seeds: Sequence[int],
    cfg: SamplerConfig = SamplerConfig(),
) -> torch.Tensor:
    """K = len(seeds) fused luminance samples, K×1×H×W in [0, 1], for one pair of any size.

    ``visible`` 3×H×W and ``thermal`` 1×H×W in [0, 1] (on the prior's device). The K samples run as one batch
    (or chunks of ``cfg.max_batch``); the initial noise of sample k comes from a CPU generator seeded with
    ``seeds[k]``, so results do not depend on the device or the batch split.
    """
    device = prior.device
    h, w = visible.shape[-2:]
    vis_y = _pad(luma(visible[None].to(device)) * 2.0 - 1.0, prior.multiple)
    ir = _pad(thermal[None].to(device).float() * 2.0 - 1.0, prior.multiple)
    hp, wp = vis_y.shape[-2:]
    k = len(seeds)
    chunk = cfg.max_batch if cfg.max_batch > 0 else k
    outs = []
    for start in range(0, k, chunk):
        part = list(seeds[start : start + chunk])
        gens = [torch.Generator().manual_seed(int(s)) for s in part]
        noise = torch.stack([torch.randn((1, hp, wp), generator=g) for g in gens]).to(device)
        outs.append(_ddim_loop(prior, noise, ir, vis_y, gens, cfg))
    y = torch.cat(outs)[..., :h, :w]
    return ((y + 1.0) * 0.5).clamp(0.0, 1.0)


def _ddim_loop(
    prior: Prior,
    x: torch.Tensor,
    ir: torch.Tensor,
    vis_y: torch.Tensor,
    gens: list[torch.Generator],
    cfg: SamplerConfig,
) -> torch.Tensor:
    sched = prior.ddim_scheduler()
    sched.set_timesteps(cfg.steps, device=x.device)
    alphas = sched.alphas_cumprod.to(x.device)
    x0c, state = x, None
    for t in sched.timesteps:
        ab = alphas[int(t)]
        _, x0 = prior.predict(x, t)
        x0c, state = em_likelihood(x0.clamp(-1.0, 1.0), ir, vis_y, cfg.em, state)
        # the noise direction consistent with the corrected x0, then the library's DDIM update
        eps_c = (x - ab.sqrt() * x0c) / (1.0 - ab).sqrt()
        noise = None
        if cfg.eta > 0:
            noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens]).to(x.device)
        x = sched.step(eps_c, t, x, eta=cfg.eta, variance_noise=noise).prev_sample
    return x0c
