"""Teacher settings as plain dataclasses (no torch import, so the CLI can use them as option types)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any


class Objective(str, Enum):
    DDFM = "ddfm"
    SALIENCE = "salience"


@dataclass(frozen=True)
class EMConfig:
    """Likelihood-step knobs (luminance scaled to [-1, 1])."""

    objective: Objective = Objective.SALIENCE
    phi: float = 0.0  # weight of the gradient term φ (tuned on training pairs: 0; DDFM used 3)
    # μ: pull towards the prior's x0; 0 = minimise the fusion objective alone (tuned on training pairs with
    # the 150-s prior: every μ > 0 lowered VIF, Qabf and SSIM; the defaults here are `teacher sample`'s)
    prior_weight: float = 0.0
    split: float = 20.0  # β of the half-quadratic split (larger: closer to the exact L1 problem)
    iters: int = 3  # EM iterations per diffusion step
    eps: float = 1e-3  # smoothing of |r| in the E-step (no infinite precisions)
    softness: float = 0.06  # τ of the salience weight (luminance units of the [-1, 1] scale; tuned)
    blur: int = 9  # radius of the box blur before the salience comparison (0: none; tuned)
    grad_power: float = 0.0  # gradient target: 0 = the larger source gradient; p > 0 = |∇|^p-weighted blend
    grad_mix: float = 0.0  # γ: add γ × the weaker source's gradient to the target (keeps both structures)
    jitter: float = 0.1  # std of the per-sample salience offset δ_k (luminance units; 0: no ensemble spread)
    phi_jitter: float = 0.3  # std of the per-sample log-factor of φ

    def __post_init__(self) -> None:
        object.__setattr__(self, "objective", Objective(self.objective))
        if self.phi < 0 or self.prior_weight < 0 or self.split <= 0 or self.iters < 1 or self.eps <= 0:
            raise ValueError("EMConfig: φ, μ >= 0; β, ε > 0; iters >= 1")
        if (
            self.softness <= 0
            or min(self.blur, self.jitter, self.phi_jitter, self.grad_power, self.grad_mix) < 0
        ):
            raise ValueError("EMConfig: softness > 0; blur, jitter, phi_jitter, grad_power >= 0")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["objective"] = self.objective.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EMConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def with_(self, **changes: Any) -> EMConfig:
        return replace(self, **changes)
