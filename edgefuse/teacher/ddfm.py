"""DDFM-style fusion sampler: DDIM on an unconditional luminance prior, with an EM likelihood step.

At every DDIM step the prior's predicted clean image f̂ is corrected by EM on the fusion objective of
:mod:`edgefuse.teacher.objective` (``ddfm``: thermal intensities + visible gradients; ``salience``: a soft
salience-weighted intensity target + the larger source gradient), pulled towards f̂ with weight μ; the
corrected estimate then sets the noise direction of the library's DDIM update (η > 0: stochastic DDIM).
Sample k draws its initial noise, its DDIM noise and its likelihood jitter (salience offset, φ factor) from
one CPU generator seeded with ``seeds[k]``, so results do not depend on the device or the batch split.
Everything works on luminance in [-1, 1], the prior's range; chroma comes from the visible frame (BT.601)
when the result is turned into RGB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from edgefuse.losses import luminance
from edgefuse.teacher.objective import EMConfig, Objective, em_likelihood, fusion_targets

if TYPE_CHECKING:
    from edgefuse.teacher.prior import Prior

__all__ = ["EMConfig", "Objective", "SamplerConfig", "luma", "sample_fusion", "with_visible_chroma"]


# --- colour -------------------------------------------------------------------------------------------------


luma = luminance  # BT.601 luminance of N×3×H×W (any range) -> N×1×H×W, the losses' own


def with_visible_chroma(y: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """RGB from fused luminance ``y`` (…×1×H×W, [0, 1]) and the visible frame's BT.601 chroma.

    (Y_f, Cb_v, Cr_v) -> RGB equals RGB_v + (Y_f − Y_v) per channel; clipped to [0, 1].
    """
    return (visible + (y - luma(visible))).clamp(0.0, 1.0)


# --- the sampler


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 10  # DDIM steps (`teacher sample`'s default, the tuned setting)
    eta: float = 0.5  # DDIM stochasticity (0: samples differ only by their initial noise and jitter)
    em: EMConfig = field(default_factory=EMConfig)
    max_batch: int = 0  # samples per UNet call (0: all K at once)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "eta": self.eta, "em": self.em.to_dict(), "max_batch": self.max_batch}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplerConfig:
        return cls(
            steps=int(d["steps"]),
            eta=float(d.get("eta", 0.0)),
            em=EMConfig.from_dict(d.get("em", {})),
            max_batch=int(d.get("max_batch", 0)),
        )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
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
    (or chunks of ``cfg.max_batch``).
    """
    device = prior.device
    h, w = visible.shape[-2:]
    vis_y = pad_to_multiple(luma(visible[None].to(device)) * 2.0 - 1.0, prior.multiple)
    ir = pad_to_multiple(thermal[None].to(device).float() * 2.0 - 1.0, prior.multiple)
    hp, wp = vis_y.shape[-2:]
    k = len(seeds)
    chunk = cfg.max_batch if cfg.max_batch > 0 else k
    outs = []
    for start in range(0, k, chunk):
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[start : start + chunk]]
        noise = torch.stack([torch.randn((1, hp, wp), generator=g) for g in gens]).to(device)
        # per-sample likelihood jitter (drawn after the noise, from the same generator)
        z = torch.stack([torch.randn(2, generator=g) for g in gens])
        targets = fusion_targets(
            ir, vis_y, cfg.em, offsets=z[:, 0] * cfg.em.jitter, phi_logs=z[:, 1] * cfg.em.phi_jitter
        )
        outs.append(_ddim_loop(prior, noise, targets, gens, cfg))
    y = torch.cat(outs)[..., :h, :w]
    return ((y + 1.0) * 0.5).clamp(0.0, 1.0)


def _ddim_loop(
    prior: Prior,
    x: torch.Tensor,
    targets: Any,
    gens: list[torch.Generator],
    cfg: SamplerConfig,
) -> torch.Tensor:
    if cfg.em.prior_weight == 0:
        # μ = 0: the likelihood step ignores the prior's estimate (objective.em_likelihood), so no DDIM step
        # can change x0c: skip the UNet. Same samples (the jitter is drawn before this), ~100x less time.
        return em_likelihood(x, targets, cfg.em)
    sched = prior.ddim_scheduler()
    sched.set_timesteps(cfg.steps, device=x.device)
    alphas = sched.alphas_cumprod.to(x.device)
    x0c = x
    for t in sched.timesteps:
        ab = alphas[int(t)]
        _, x0 = prior.predict(x, t)
        x0c = em_likelihood(x0.clamp(-1.0, 1.0), targets, cfg.em)
        # the noise direction consistent with the corrected x0, then the library's DDIM update
        eps_c = (x - ab.sqrt() * x0c) / (1.0 - ab).sqrt()
        noise = None
        if cfg.eta > 0:
            noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens]).to(x.device)
        x = sched.step(eps_c, t, x, eta=cfg.eta, variance_noise=noise).prev_sample
    return x0c
