"""The metric ascent inside the coefficient teacher's DDIM (guide.py): the step is taken from the refined
clean estimate, for every prediction type, and a guided sample climbs the ascent's own objective."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from edgefuse.errors import CheckpointError, DataError
from edgefuse.model import create_model
from edgefuse.teacher.ascent import AscentConfig, AscentObjective, ascend_coefficients, pad16
from edgefuse.teacher.coefficient import FOLD, CoefficientScale, CoefficientTeacher
from edgefuse.teacher.conditional import clean_estimate, ddim_sample, model_output

PREDICTIONS = ["epsilon", "v_prediction", "sample"]


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_model_output_inverts_clean_estimate(prediction: str) -> None:
    gen = torch.Generator().manual_seed(0)
    x, out = torch.randn(2, 3, 4, 5, generator=gen), torch.randn(2, 3, 4, 5, generator=gen)
    for alpha in (torch.tensor(0.02), torch.tensor(0.5), torch.tensor(0.98)):
        x0 = clean_estimate(out, x, alpha, prediction)
        torch.testing.assert_close(model_output(x0, x, alpha, prediction), out, atol=1e-5, rtol=1e-5)


class _Noise(torch.nn.Module):
    """A 'UNet' that outputs noise of its own: whatever it says, a refine that pins x0 must win."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inp: torch.Tensor, t: torch.Tensor) -> Any:
        gen = torch.Generator().manual_seed(int(t))
        return SimpleNamespace(sample=torch.randn(inp[:, :3].shape, generator=gen))


@pytest.mark.teacher
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_each_step_is_taken_from_the_refined_estimate(prediction: str, eta: float) -> None:
    import diffusers

    config = dict(diffusers.DDPMScheduler(beta_schedule="linear", prediction_type=prediction).config)
    cond = torch.zeros(1, 2, 8, 8)
    pinned = torch.linspace(-1, 1, 3 * 64).view(1, 3, 8, 8)
    seen: list[torch.Tensor] = []

    def refine(x0: torch.Tensor) -> torch.Tensor:
        seen.append(x0)
        return pinned.expand_as(x0)

    out = ddim_sample(_Noise(), config, cond, 3, [0, 1], 6, eta, 3.0, "fp32", refine)
    torch.testing.assert_close(out, pinned.expand(2, -1, -1, -1), atol=1e-4, rtol=0)
    assert len(seen) == 6 and all(float(x.abs().max()) <= 3.0 for x in seen)  # clipped before refining
    plain = ddim_sample(_Noise(), config, cond, 3, [0, 1], 6, eta, 3.0, "fp32")
    same = ddim_sample(_Noise(), config, cond, 3, [0, 1], 6, eta, 3.0, "fp32", lambda x0: x0)
    torch.testing.assert_close(same, plain, atol=1e-4, rtol=0)  # an identity refine changes nothing


class _Still(torch.nn.Module):
    """A 'UNet' that predicts no change from the start (x0 = 0): the model alone returns the start."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.down_blocks: list[torch.nn.Module] = []

    def forward(self, inp: torch.Tensor, t: torch.Tensor) -> Any:
        assert inp.shape[1] == 3 + 2 * FOLD * FOLD + 3
        return SimpleNamespace(sample=torch.zeros_like(inp[:, :3]))


def _teacher(student: Any, ascent: dict[str, Any] | None) -> CoefficientTeacher:
    import diffusers

    teacher = CoefficientTeacher.__new__(CoefficientTeacher)  # no directory: the sampler alone
    config = dict(diffusers.DDPMScheduler(beta_schedule="linear", prediction_type="sample").config)
    teacher.unet, teacher.scheduler_config, teacher.student = _Still(), config, student
    teacher.precision, teacher.multiple, teacher.path = "fp32", 8, Path("still")
    teacher.sha256, teacher.start_sha256 = "unet", "start"
    teacher.scale = CoefficientScale((0.0, 0.1, 0.0), (1.0, 0.5, 0.2), (0.05, 0.1, 0.02), 8.0)
    teacher.meta = {"cache_teacher": {"kind": "ascent", "ascent": ascent, "dtype": "float64"}}
    return teacher


def _pair(seed: int) -> tuple[Any, torch.Tensor, torch.Tensor, AscentConfig, CoefficientTeacher]:
    """A small student with a live head, a random pair, the ascent settings and a still teacher over them."""
    torch.manual_seed(0)
    student = create_model("n").eval().requires_grad_(False)
    with torch.no_grad():
        student.head.weight.normal_(0, 0.1)
    gen = torch.Generator().manual_seed(seed)
    v, t = torch.rand(3, 40, 56, generator=gen), torch.rand(1, 40, 56, generator=gen)
    cfg = AscentConfig(steps=60, lr=0.01, loss_weight=5.0)
    return student, v, t, cfg, _teacher(student, cfg.to_dict())


@pytest.mark.teacher
def test_a_guided_sample_climbs_the_ascents_objective() -> None:
    student, v, t, cfg, teacher = _pair(2)
    alone = teacher.coefficients(v, t, [0, 1], steps=8, eta=1.0)[2]
    vp, tp = pad16(v, t)
    torch.testing.assert_close(alone, student.coefficients(vp, tp).expand(2, -1, -1, -1))  # the start
    guided = teacher.guided(2).coefficients(v, t, [0, 1], steps=8, eta=1.0)[2]
    objective = AscentObjective(student, v, t, [0, 1], cfg, torch.float64)
    with torch.no_grad():
        before, after = (float(objective.loss(c.double())) for c in (alone, guided))
    assert after < before - 0.01  # 16 Adam steps of the objective, spread over 8 DDIM steps
    assert teacher.record(8, 1.0)["sampler"] == {"steps": 8, "eta": 1.0, "guide_steps": 2}
    with pytest.raises(DataError, match="must be 0 or more"):
        teacher.guided(-1)
    with pytest.raises(CheckpointError, match="no ascent settings"):
        _teacher(student, None).guided(1)


@pytest.mark.teacher
def test_polishing_climbs_from_each_sample_and_with_the_model_off_is_the_ascent() -> None:
    student, v, t, cfg, teacher = _pair(3)
    gen = torch.Generator().manual_seed(4)
    # the still 'UNet' proposes the start itself: polishing it is the ascent teacher, step for step
    polished = teacher.guided(0, polish=5).coefficients(v, t, [0, 1], steps=4, eta=1.0)[2]
    ascent = AscentConfig(**{**cfg.to_dict(), "steps": 5})
    climbed = ascend_coefficients(student, v, t, [0, 1], ascent, torch.float64)[1]
    torch.testing.assert_close(polished, climbed)
    assert teacher.record(4, 1.0)["sampler"] == {"steps": 4, "eta": 1.0, "polish_steps": 5}
    # from maps of its own it climbs from them, not from the start; the objective stays the start's
    objective = AscentObjective(student, v, t, [0, 1], ascent, torch.float64)
    init = objective.start.expand(2, -1, -1, -1) + 0.05 * torch.randn(2, 3, 12, 16, generator=gen).double()
    after = ascend_coefficients(student, v, t, [0, 1], ascent, torch.float64, init=init)[1]
    with torch.no_grad():
        assert float(objective.loss(after.double())) < float(objective.loss(init)) - 0.01
    assert not torch.allclose(after, climbed, atol=1e-3)
    with pytest.raises(DataError, match="do not fit 3 samples"):
        ascend_coefficients(student, v, t, [0, 1, 2], ascent, torch.float64, init=init)
    with pytest.raises(DataError, match="must be 0 or more"):
        teacher.guided(0, polish=-1)
