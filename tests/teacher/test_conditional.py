"""The conditional diffusion teacher: its training crops, its data, the train-cond / sample-cond commands."""

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
from edgefuse.color import BT601_F32
from edgefuse.errors import CheckpointError, DataError
from edgefuse.teacher.cache import TeacherCache, ensemble_stats, write_entry, write_manifest
from edgefuse.teacher.conditional import conditional_crops, training_items

runner = CliRunner()


def _planes(h: int, w: int, values: list[float]) -> np.ndarray:
    return np.stack([np.full((h, w), v, dtype=np.float16) for v in values])


def test_crops_pair_the_sources_with_one_teacher_sample_each() -> None:
    items = [_planes(20, 24, [0.1, 0.2, 0.3, 0.4, 0.5]), _planes(8, 10, [0.1, 0.2, 0.3, 0.4, 0.5])]
    x0, cond = conditional_crops(items, 64, 16, np.random.default_rng(0), target="fused")
    assert x0.shape == (64, 1, 16, 16) and cond.shape == (64, 2, 16, 16)  # the 8×10 pair is padded
    np.testing.assert_allclose(cond[:, 0].numpy(), 0.1 * 2 - 1, atol=1e-3)
    np.testing.assert_allclose(cond[:, 1].numpy(), 0.2 * 2 - 1, atol=1e-3)
    drawn = {round((float(x.mean()) + 1) / 2, 2) for x in x0}
    assert drawn == {0.3, 0.4, 0.5}  # every teacher sample is a target, never a source plane
    again, _ = conditional_crops(items, 64, 16, np.random.default_rng(0), target="fused")
    assert torch.equal(x0, again)
    residual, cond_r = conditional_crops(items, 64, 16, np.random.default_rng(0))  # the default
    torch.testing.assert_close(residual, 2 * ((x0 + 1) / 2 - 0.1), atol=2e-3, rtol=0)  # 2(Y_f − Y_v)
    assert torch.equal(cond_r, cond)


def _cache(root: Path, pairs: Path, k: int, samples: bool) -> TeacherCache:
    """A cache of the per-pixel max of the sources (± noise per sample) for every pair of ``pairs``."""
    from edgefuse.data import find_pairs

    source = find_pairs(pairs)
    rng = np.random.default_rng(0)
    entries = {}
    for i, pair in enumerate(source.pairs):
        vis, ir = source[i]
        fused = np.maximum(vis, ir[..., None])
        rgb = np.clip(fused[None] + rng.normal(0, 0.02, (k, *fused.shape)), 0, 1).astype(np.float32)
        mean, var, ys = ensemble_stats(rgb)
        entries[pair.stem] = write_entry(root, pair.stem, mean, var, ys if samples else None)
    write_manifest(root, entries, {"teacher": {"kind": "test"}, "k": k, "has_samples": samples})
    return TeacherCache(root)


@pytest.mark.parametrize("samples", [True, False])
def test_training_items_hold_the_sources_and_the_targets(
    tiny_pairs: Path, tmp_path: Path, samples: bool
) -> None:
    from edgefuse.data import find_pairs

    source = find_pairs(tiny_pairs)
    cache = _cache(tmp_path / "cache", tiny_pairs, 3, samples)
    items = training_items(source, cache, [0, 2])
    vis, ir = source[2]
    assert len(items) == 2 and items[1].shape == (5, 40, 56) and items[1].dtype == np.float16
    np.testing.assert_allclose(items[1][0], vis @ BT601_F32, atol=1e-3)
    np.testing.assert_allclose(items[1][1], ir, atol=1e-3)
    entry = cache.load(source.pairs[2].stem)
    if samples:
        np.testing.assert_allclose(items[1][2:], entry.samples.astype(np.float32), atol=1e-3)
    else:  # no samples kept: the mean's luminance stands for each of the K
        assert np.allclose(items[1][2], items[1][4]) and not np.allclose(items[1][2], items[1][0], atol=0.05)
    (cache.root / "manifest.json").write_text(
        json.dumps({**cache.manifest, "pairs": {source.pairs[0].stem: cache.pairs[source.pairs[0].stem]}})
    )
    with pytest.raises(DataError, match="1 of 2 pairs"):
        training_items(source, TeacherCache(cache.root), [0, 1])


@pytest.mark.teacher
def test_train_cond_then_sample_cond_write_a_spread_ensemble(tiny_pairs: Path, tmp_path: Path) -> None:
    from edgefuse.teacher.conditional import COND_META, ConditionalTeacher
    from edgefuse.teacher.prior import Prior

    cache = _cache(tmp_path / "cache", tiny_pairs, 3, True)
    model = tmp_path / "cond"
    args = ["teacher", "train-cond", "--data", str(tiny_pairs), "--cache", str(cache.root), "-o", str(model)]
    args += ["--crop", "16", "--channels", "8,16", "--layers-per-block", "1", "--steps", "3"]
    res = runner.invoke(app, [*args, "--batch-size", "2", "--val-fraction", "0"])
    assert res.exit_code == 0, res.output
    meta = json.loads((model / COND_META).read_text())
    assert meta["kind"] == "edgefuse-conditional-teacher" and meta["steps"] == 3 and meta["pairs"] == 4
    assert meta["target"] == "residual"  # the default
    assert meta["cache_sha256"] == cache.sha256 and meta["cache_teacher"] == {"kind": "test"}
    with pytest.raises(CheckpointError, match="1 or 3 channels to as many"):
        Prior.load(model)  # a conditional teacher is not a prior ...
    with pytest.raises(CheckpointError, match="not a conditional teacher"):
        ConditionalTeacher.load(tmp_path / "cache")  # ... nor is anything else a conditional teacher

    out = tmp_path / "ens"
    sample = ["teacher", "sample-cond", "--model", str(model), "--data", str(tiny_pairs), "-o", str(out)]
    res = runner.invoke(app, [*sample, "--k", "2", "--steps", "3", "--limit", "2"])
    assert res.exit_code == 0, res.output
    ens = TeacherCache(out)
    assert ens.k == 2 and ens.has_samples and len(ens.pairs) == 2
    teacher = ens.manifest["teacher"]
    assert (
        teacher["kind"] == "conditional" and teacher["model_sha256"] == ConditionalTeacher.load(model).sha256
    )
    assert teacher["sampler"] == {"steps": 3, "eta": 1.0} and teacher["target"] == "residual"
    entry = ens.load(ens.stems[0])
    assert entry.mean.shape == (40, 56, 3) and float(entry.var.max()) > 0  # η = 1: the samples differ
    res = runner.invoke(
        app, [*sample, "--k", "2", "--steps", "3", "--limit", "2", "-o", str(tmp_path / "again")]
    )
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(TeacherCache(tmp_path / "again").load(ens.stems[0]).samples, entry.samples)
    res = runner.invoke(app, [*sample, "--k", "2", "--guide-steps", "1", "-o", str(tmp_path / "guided")])
    assert res.exit_code == 2 and "for coefficient teachers only" in res.output
    assert not (tmp_path / "guided" / "manifest.json").exists()
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "bad"), "--target", "pixels"])
    assert res.exit_code != 0 and "--target must be one of residual, fused" in res.output
    # a model from before the option denoised the fused luminance
    (model / COND_META).write_text(json.dumps({k: v for k, v in meta.items() if k != "target"}))
    assert ConditionalTeacher.load(model).target == "fused"


@pytest.mark.teacher
def test_a_sample_does_not_depend_on_the_others_in_its_batch(tiny_pairs: Path, tmp_path: Path) -> None:
    from edgefuse.data import find_pairs
    from edgefuse.teacher.conditional import ConditionalTeacher, train_conditional
    from edgefuse.teacher.denoiser import DenoiserConfig

    source = find_pairs(tiny_pairs)
    items = training_items(source, _cache(tmp_path / "cache", tiny_pairs, 2, True), [0, 1])
    cfg = DenoiserConfig(crop=16, channels=(8, 16), layers_per_block=1, batch_size=2, max_steps=2)
    train_conditional(items, tmp_path / "cond", cfg)
    teacher = ConditionalTeacher.load(tmp_path / "cond")
    vis, ir = source[3]
    v = torch.from_numpy(np.ascontiguousarray(vis.transpose(2, 0, 1)))
    t = torch.from_numpy(ir[None].copy())
    both = teacher.sample(v, t, [0, 1], steps=3, eta=1.0)
    alone = teacher.sample(v, t, [1], steps=3, eta=1.0)
    assert both.shape == (2, 1, 40, 56) and 0 <= float(both.min()) <= float(both.max()) <= 1
    torch.testing.assert_close(both[1:], alone, atol=2e-4, rtol=0)  # batched convolutions round apart
    assert not torch.allclose(both[0], both[1])


class _Oracle(torch.nn.Module):
    """A 'UNet' that knows the clean image: it returns the exact ε, v or x0 of any noisy input."""

    def __init__(self, target: torch.Tensor, alphas: torch.Tensor, prediction: str) -> None:
        super().__init__()
        self.target, self.alphas, self.prediction = target, alphas, prediction
        self.weight = torch.nn.Parameter(torch.zeros(1))  # a parameter, for the device
        self.down_blocks: list[torch.nn.Module] = []

    def forward(self, inp: torch.Tensor, t: torch.Tensor) -> Any:
        x, ab = inp[:, :1], self.alphas[int(t)]
        x0 = self.target.expand_as(x)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        out = {"epsilon": eps, "v_prediction": ab.sqrt() * eps - (1 - ab).sqrt() * x0, "sample": x0}
        return SimpleNamespace(sample=out[self.prediction])


@pytest.mark.teacher
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("space", ["fused", "residual"])
def test_the_sampler_lands_on_what_a_perfect_model_predicts(prediction: str, eta: float, space: str) -> None:
    import diffusers

    from edgefuse.teacher.conditional import ConditionalTeacher
    from edgefuse.teacher.ddfm import luma

    config = dict(diffusers.DDPMScheduler(beta_schedule="linear", prediction_type=prediction).config)
    alphas = diffusers.DDPMScheduler.from_config(config).alphas_cumprod
    gen = torch.Generator().manual_seed(0)
    visible = torch.rand(3, 8, 12, generator=gen) * 0.5 + 0.25
    want = torch.rand(1, 1, 8, 12, generator=gen) * 0.8 + 0.1  # the fused luminance, in [0, 1]
    # what the model denoises (the residual's 2× scale takes it past ±1: the clip must follow the scale)
    target = 2 * (want - luma(visible[None])) if space == "residual" else want * 2 - 1
    assert space == "fused" or float(target.abs().max()) > 1
    teacher = ConditionalTeacher.__new__(ConditionalTeacher)  # no directory: the sampler alone
    teacher.unet, teacher.scheduler_config = _Oracle(target, alphas, prediction), config
    teacher.precision, teacher.multiple, teacher.path = "fp32", 1, Path("oracle")
    teacher.target = space
    y = teacher.sample(visible, torch.rand(1, 8, 12), [0, 1], steps=10, eta=eta)
    torch.testing.assert_close(y, want.expand(2, -1, -1, -1), atol=1e-5, rtol=0)


def test_a_denoiser_predicts_one_of_three_things() -> None:
    from edgefuse.teacher.denoiser import DenoiserConfig

    assert DenoiserConfig(prediction="sample").prediction == "sample"
    with pytest.raises(ValueError, match="prediction must be one of"):
        DenoiserConfig(prediction="x0")
