"""The metric-ascent teacher: torch metric twins, the per-pair ascent, its cache; night items in distill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from typer.testing import CliRunner

from edgefuse.cli import app
from edgefuse.data import find_pairs
from edgefuse.distill import DistillConfig, DistillDataset, DistillLoss
from edgefuse.metrics import fusion_metrics, to_gray
from edgefuse.model import create_model
from edgefuse.teacher.ascent import AscentConfig, ascend_pair
from edgefuse.teacher.cache import TeacherCache
from edgefuse.teacher.metric_torch import MetricScorer

runner = CliRunner()


def _scene(seed: int, h: int = 64, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random visible RGB frame and thermal frame (uint8), textured enough for every metric."""
    rng = np.random.default_rng(seed)
    vis = ndimage.gaussian_filter(rng.random((h, w, 3)), (2, 2, 0))
    ir = ndimage.gaussian_filter(rng.random((h, w)), 3)
    norm = lambda a: (255 * (a - a.min()) / (a.max() - a.min())).astype(np.uint8)  # noqa: E731
    return norm(vis), norm(ir)


@pytest.mark.parametrize("size", [(64, 80), (40, 56)])  # 40×56: VIF's last scale is empty, as in numpy
def test_torch_metrics_match_the_numpy_definitions(size: tuple[int, int]) -> None:
    vis, ir = _scene(0, *size)
    fused = ((vis.astype(np.float64) + ir[..., None]) / 2).astype(np.uint8)
    ref = fusion_metrics(fused, ir, vis, names=["VIF", "Qabf", "SSIM"])
    g = lambda a: torch.from_numpy(to_gray(a))[None, None]  # noqa: E731
    got = MetricScorer(g(ir), g(vis))(g(fused))
    for name in ("VIF", "Qabf", "SSIM"):
        assert float(got[name][0]) == pytest.approx(ref[name], abs=1e-4), name


def test_blend_of_coefficients_is_the_forward_pass() -> None:
    torch.manual_seed(0)
    model = create_model("n").eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.1)  # non-trivial maps
        v, t = torch.rand(1, 3, 32, 48), torch.rand(1, 1, 32, 48)
        assert torch.equal(model.blend(model.coefficients(v, t), v, t), model(v, t))


def test_ascent_raises_vif_and_qabf_and_holds_ssim() -> None:
    vis, ir = _scene(1)
    torch.manual_seed(0)
    model = create_model("n").eval().requires_grad_(False)  # untrained: starts at the mean of the sources
    v = torch.from_numpy(vis.transpose(2, 0, 1).copy()).float() / 255
    t = torch.from_numpy(ir[None].copy()).float() / 255
    cfg = AscentConfig(steps=40, lr=0.02, ssim_weight=50.0)
    out = ascend_pair(model, v, t, [0, 1], cfg)
    assert out.shape == (2, 3, 64, 80) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    start = fusion_metrics(model(v[None], t[None])[0].permute(1, 2, 0).numpy(), ir, vis)
    end = fusion_metrics(out[0].permute(1, 2, 0).numpy(), ir, vis)
    assert end["VIF"] > start["VIF"] + 0.02 and end["Qabf"] > start["Qabf"] + 0.02
    assert end["SSIM"] > start["SSIM"] - cfg.ssim_margin - 0.01  # a soft floor: the hinge, weighted
    assert float((out[0] - out[1]).abs().max()) > 0  # jittered weights: the samples differ
    assert torch.equal(ascend_pair(model, v, t, [0, 1], cfg), out)  # and are reproducible


def test_float32_ascent_follows_float64() -> None:
    vis, ir = _scene(3)
    torch.manual_seed(0)
    model = create_model("n").eval().requires_grad_(False)
    v = torch.from_numpy(vis.transpose(2, 0, 1).copy()).float() / 255
    t = torch.from_numpy(ir[None].copy()).float() / 255
    cfg = AscentConfig(steps=20, lr=0.02)
    scores = [
        fusion_metrics(ascend_pair(model, v, t, [0], cfg, dtype)[0].permute(1, 2, 0).numpy(), ir, vis)
        for dtype in (torch.float64, torch.float32)
    ]
    for name in ("VIF", "Qabf", "SSIM"):
        assert abs(scores[0][name] - scores[1][name]) < 5e-3, name


def test_ascent_turns_tf32_convolutions_off_and_restores_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # TF32 keeps 10 mantissa bits: the metrics' local variances of 0..255 levels would lose whole levels
    from edgefuse.teacher import ascent

    seen = []

    class Seen(Exception):
        pass

    def spy(*a: object) -> None:  # the objective is built, and the ascent run, inside the setting
        seen.append(torch.backends.cudnn.allow_tf32)
        raise Seen

    monkeypatch.setattr(ascent, "AscentObjective", spy)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    v, t = torch.rand(3, 16, 16), torch.rand(1, 16, 16)
    with pytest.raises(Seen):
        ascent.ascend_pair(create_model("n"), v, t, [0], AscentConfig())
    assert seen == [False] and torch.backends.cudnn.allow_tf32 is True


def test_holding_the_training_loss_keeps_flat_regions_closer_to_the_start() -> None:
    vis, ir = _scene(2)
    vis[:24], ir[:24] = 200, 60  # a flat band in both frames (a sky)
    torch.manual_seed(0)
    model = create_model("n").eval().requires_grad_(False)
    v = torch.from_numpy(vis.transpose(2, 0, 1).copy()).float() / 255
    t = torch.from_numpy(ir[None].copy()).float() / 255
    start = model(v[None], t[None])[0]
    drift = {}
    for w in (0.0, 20.0):
        out = ascend_pair(model, v, t, [0], AscentConfig(steps=30, lr=0.02, loss_weight=w))[0]
        drift[w] = float((out - start)[:, 4:20].abs().mean())
    assert drift[20.0] < drift[0.0]


def test_ascend_cli_writes_a_cache_distill_accepts(tiny_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "asc"
    res = runner.invoke(
        app, ["teacher", "ascend", "--data", str(tiny_pairs), "-o", str(out), "--k", "2", "--steps", "3"]
    )
    assert res.exit_code == 0, res.output
    cache = TeacherCache(out)
    source = find_pairs(tiny_pairs)
    cache.check(source, range(len(source)), need_samples=True)
    assert cache.manifest["teacher"]["kind"] == "ascent" and cache.manifest["teacher"]["ascent"]["steps"] == 3
    assert cache.manifest["teacher"]["dtype"] == "float64"
    bad = runner.invoke(
        app, ["teacher", "ascend", "--data", str(tiny_pairs), "-o", str(out), "--dtype", "half"]
    )
    assert bad.exit_code != 0 and "choose float64 or float32" in bad.output


def test_night_items_drop_the_teacher_terms(tiny_pairs: Path, tmp_path: Path) -> None:
    from edgefuse.teacher.cache import write_entry, write_manifest

    source = find_pairs(tiny_pairs)
    entries = {}
    for i, pair in enumerate(source.pairs):
        vis, _ = source[i]
        samples = np.stack([vis, vis]).astype(np.float32)
        y = samples @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        entries[pair.stem] = write_entry(tmp_path / "c", pair.stem, vis, y.var(0), y.astype(np.float16))
    write_manifest(tmp_path / "c", entries, {"teacher": {"kind": "external"}, "k": 2})
    cache = TeacherCache(tmp_path / "c")
    day = DistillDataset(source, cache, [0, 1], crop=32, night=0.0)
    night = DistillDataset(source, cache, [0, 1], crop=32, night=1.0)
    assert all(float(day[n]["day"]) == 1.0 for n in range(2))
    assert all(float(night[n]["day"]) == 0.0 for n in range(2))
    # a moved thermal frame: the teacher saw the pair as it is
    moved = DistillDataset(source, cache, [0, 1], crop=32, thermal_level=1.0)
    assert all(float(moved[n]["day"]) == 0.0 for n in range(2))
    assert not torch.equal(moved[0]["thermal"], day[0]["thermal"])
    batch = {
        k: torch.stack([night[n][k] for n in range(2)]) for k in ("visible", "thermal", "mean", "var", "day")
    }
    loss = DistillLoss(DistillConfig(pixel_weighting="uniform", routing="none"), tau=1.0)
    _, logs = loss(create_model("n"), batch)
    assert logs["pix"] == 0.0 and logs["ssim"] == 0.0 and logs["grad"] > 0  # teacher-free terms remain
    batch["day"] = torch.ones(2)
    _, logs = loss(create_model("n"), batch)
    assert logs["pix"] > 0
