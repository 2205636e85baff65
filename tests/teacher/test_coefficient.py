"""The coefficient-space conditional teacher: the ascent's maps in its cache, the training crops' alignment,
the sampler's decode, and ascend --keep-coefficients -> train-cond --target coefficients -> sample-cond."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgefuse.cli import app
from edgefuse.errors import DataError
from edgefuse.model import create_model
from edgefuse.teacher.ascent import AscentConfig, ascend_coefficients, ascend_pair, pad16
from edgefuse.teacher.cache import TeacherCache
from edgefuse.teacher.coefficient import (
    FOLD,
    CoefficientScale,
    CoefficientTeacher,
    coefficient_crops,
)

runner = CliRunner()


def test_the_ascent_returns_the_maps_its_frames_are_blended_from() -> None:
    torch.manual_seed(0)
    model = create_model("n").eval().requires_grad_(False)
    v, t = torch.rand(3, 40, 56), torch.rand(1, 40, 56)
    cfg = AscentConfig(steps=5, lr=0.02)
    start, coef, fused = ascend_coefficients(model, v, t, [0, 1], cfg)
    vp, tp = pad16(v, t)
    assert start.shape == (1, 3, 12, 16) and coef.shape == (2, 3, 12, 16) and fused.shape == (2, 3, 40, 56)
    torch.testing.assert_close(start, model.coefficients(vp, tp))
    blended = model.blend(coef, vp.expand(2, -1, -1, -1), tp.expand(2, -1, -1, -1))
    torch.testing.assert_close(blended[..., :40, :56], fused)
    assert torch.equal(ascend_pair(model, v, t, [0, 1], cfg), fused)
    assert float((coef - start).abs().max()) > 0  # it climbed


def _item(h4: int, w4: int, thermal: float, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sources whose luminance is the column's x position; a start map 'a' holding each cell's centre x, so
    a crop pairs the right sources with the right maps only if both grids were cut (and flipped) together."""
    w = w4 * FOLD
    x = np.broadcast_to(np.arange(w, dtype=np.float32) / w, (h4 * FOLD, w))
    src = np.stack([x, np.full_like(x, thermal)]).astype(np.float16)
    centre = (np.arange(w4, dtype=np.float32) * FOLD + (FOLD - 1) / 2) / w
    start = np.stack([np.broadcast_to(centre, (h4, w4))] * 3).astype(np.float32)
    coef = np.stack([start + 0.1 * (j + 1) for j in range(k)]).astype(np.float32)
    return src, start, coef


def test_crops_cut_sources_and_maps_at_the_same_place() -> None:
    items = [_item(12, 20, 0.0), _item(6, 7, 1.0)]  # the second, smaller than the crop, is mirrored
    scale = CoefficientScale.fit(items)
    starts = np.concatenate([s.reshape(3, -1) for _, s, _ in items], axis=1)
    deltas = np.concatenate([(c - s[None]).transpose(1, 0, 2, 3).reshape(3, -1) for _, s, c in items], axis=1)
    np.testing.assert_allclose(scale.start_mean, starts.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(scale.start_std, starts.std(axis=1), rtol=1e-5)
    np.testing.assert_allclose(scale.delta_std, np.maximum(deltas.std(axis=1), 1e-4), rtol=1e-5)
    x0, cond = coefficient_crops(items, 32, 8, np.random.default_rng(0), scale)
    assert x0.shape == (32, 3, 8, 8) and cond.shape == (32, 2 * FOLD * FOLD + 3, 8, 8)
    luma_mean = (cond[:, : FOLD * FOLD].mean(dim=1) + 1) / 2  # the folded visible luminance, per cell
    start = cond[:, -3] * scale.start_std[0] + scale.start_mean[0]
    big = [b for b in range(32) if float(cond[b, FOLD * FOLD : 2 * FOLD * FOLD].mean()) < 0]  # the 12×20
    assert 0 < len(big) < 32
    torch.testing.assert_close(luma_mean[big], start[big], atol=2e-3, rtol=0)
    delta = scale.decode(x0, torch.zeros(32, 3, 8, 8))
    drawn = {round(float(d.mean()), 3) for d in delta}
    assert drawn == {0.1, 0.2}  # each target is one of the K climbed maps
    again = coefficient_crops(items, 32, 8, np.random.default_rng(0), scale)
    assert torch.equal(again[0], x0) and torch.equal(again[1], cond)
    assert float(x0.abs().max()) <= scale.limit


class _Oracle(torch.nn.Module):
    """A 'UNet' that knows the clean maps: it returns their exact x0 whatever the noisy input."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target
        self.weight = torch.nn.Parameter(torch.zeros(1))  # a parameter, for the device
        self.down_blocks: list[torch.nn.Module] = []

    def forward(self, inp: torch.Tensor, t: torch.Tensor) -> Any:
        assert inp.shape[1] == 3 + 2 * FOLD * FOLD + 3
        return SimpleNamespace(sample=self.target.expand(inp.shape[0], -1, -1, -1))


@pytest.mark.teacher
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_the_sampler_renders_the_maps_a_perfect_model_predicts(eta: float) -> None:
    import diffusers

    torch.manual_seed(0)
    student = create_model("n").eval().requires_grad_(False)
    with torch.no_grad():
        student.head.weight.normal_(0, 0.1)
    v, t = torch.rand(3, 40, 56), torch.rand(1, 40, 56)
    scale = CoefficientScale((0.0, 0.1, 0.0), (1.0, 0.5, 0.2), (0.05, 0.1, 0.02), 3.0)
    target = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 4 - 2  # padded to 16
    teacher = CoefficientTeacher.__new__(CoefficientTeacher)  # no directory: the sampler alone
    config = dict(diffusers.DDPMScheduler(beta_schedule="linear", prediction_type="sample").config)
    teacher.unet, teacher.scheduler_config, teacher.student = _Oracle(target), config, student
    teacher.precision, teacher.multiple, teacher.path, teacher.scale = "fp32", 8, Path("oracle"), scale
    out = teacher.fuse(v, t, [0, 1], steps=5, eta=eta)
    vp, tp = pad16(v, t)
    want = student.blend(scale.decode(target[..., :12, :16], student.coefficients(vp, tp)), vp, tp)
    assert out.shape == (2, 3, 40, 56)
    torch.testing.assert_close(out, want[..., :40, :56].expand(2, -1, -1, -1), atol=1e-5, rtol=0)


@pytest.mark.teacher
def test_ascend_train_and_sample_in_coefficient_space(tiny_pairs: Path, tmp_path: Path) -> None:
    from edgefuse.checkpoint import save_checkpoint

    start = tmp_path / "start.safetensors"
    torch.manual_seed(0)
    save_checkpoint(create_model("n"), start)
    asc = tmp_path / "asc"
    base = ["teacher", "ascend", "--data", str(tiny_pairs), "--student", str(start), "--k", "2"]
    base += ["--steps", "3"]
    res = runner.invoke(app, [*base, "-o", str(asc), "--keep-coefficients"])
    assert res.exit_code == 0, res.output
    cache = TeacherCache(asc)
    assert cache.manifest["teacher"]["coefficients"] is True
    arrays = cache.load_arrays(cache.stems[0], ("start", "coefficients"))
    assert arrays["start"].shape == (3, 12, 16) and arrays["coefficients"].shape == (2, 3, 12, 16)

    model = tmp_path / "coef"
    train = ["teacher", "train-cond", "--data", str(tiny_pairs), "--cache", str(asc)]
    train += ["--target", "coefficients"]
    train += ["--crop", "8", "--channels", "8,16", "--layers-per-block", "1", "--batch-size", "2"]
    train += ["--steps", "2", "--val-fraction", "0"]
    res = runner.invoke(app, [*train, "-o", str(model)])
    assert res.exit_code == 0, res.output
    meta = json.loads((model / "edgefuse_conditional.json").read_text())
    assert meta["target"] == "coefficients" and meta["pairs"] == 4 and (model / "start.safetensors").is_file()
    ens = tmp_path / "ens"
    sample = ["teacher", "sample-cond", "--model", str(model), "--data", str(tiny_pairs), "-o", str(ens)]
    res = runner.invoke(app, [*sample, "--k", "2", "--steps", "3", "--limit", "2"])
    assert res.exit_code == 0, res.output
    out = TeacherCache(ens)
    teacher = out.manifest["teacher"]
    assert teacher["target"] == "coefficients" and teacher["start_weights_sha256"]
    entry = out.load(out.stems[0])
    assert entry.mean.shape == (40, 56, 3) and float(entry.var.max()) > 0  # η = 1: the samples differ
    guided = tmp_path / "guided"
    guide = ["--k", "2", "--steps", "2", "--limit", "1", "--guide-steps", "1"]
    res = runner.invoke(app, [*sample[:-2], "-o", str(guided), *guide])
    assert res.exit_code == 0, res.output
    assert TeacherCache(guided).manifest["teacher"]["sampler"]["guide_steps"] == 1
    polished = tmp_path / "polished"
    polish = ["--k", "2", "--steps", "2", "--limit", "1", "--polish-steps", "2"]
    res = runner.invoke(app, [*sample[:-2], "-o", str(polished), *polish])
    assert res.exit_code == 0, res.output
    sampler = TeacherCache(polished).manifest["teacher"]["sampler"]
    assert sampler == {"steps": 2, "eta": 1.0, "polish_steps": 2}

    # a cache without maps, and a start checkpoint that changed since, are one line each
    plain = tmp_path / "plain"
    assert runner.invoke(app, [*base, "-o", str(plain)]).exit_code == 0
    res = runner.invoke(app, [*train, "-o", str(tmp_path / "m2"), "--cache", str(plain)])
    assert res.exit_code == 2 and "--keep-coefficients" in res.output
    plain_cache = TeacherCache(plain)
    with pytest.raises(DataError, match="no coefficients in this cache entry"):
        plain_cache.load_arrays(plain_cache.stems[0], ("coefficients",))
    torch.manual_seed(1)
    save_checkpoint(create_model("n"), start)
    res = runner.invoke(app, [*train, "-o", str(tmp_path / "m3")])
    assert res.exit_code == 2 and "not the weights the ascent started from" in res.output
