"""Distillation: variance weights, routing maps, the dataset, the loss on the Trainer, the CLI, DDP (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import distill_args
from typer.testing import CliRunner

from edgefuse.cli import app
from edgefuse.data import find_pairs
from edgefuse.distill import (
    DistillConfig,
    DistillDataset,
    DistillLoss,
    feature_stats,
    routing_from_variance,
    routing_maps,
    variance_weights,
)
from edgefuse.errors import DataError
from edgefuse.teacher.cache import TeacherCache, write_entry, write_manifest

runner = CliRunner()
BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def test_variance_weights_decrease_and_average_one() -> None:
    var = torch.linspace(0.0, 0.05, 101).view(1, 1, 1, -1)
    w = variance_weights(var, tau=0.01)
    assert torch.all(w[..., 1:] < w[..., :-1])
    assert abs(float(w.mean()) - 1.0) < 1e-6
    assert torch.allclose(w[..., 0] / w[..., 50], torch.tensor(np.exp(0.025 / 0.01), dtype=torch.float32))


def test_routing_is_one_where_samples_agree_and_within_unit_interval() -> None:
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 4, 5, 6, 7, generator=g)
    feats[0] = feats[0, :1].expand(4, -1, -1, -1)  # item 0: the K samples agree everywhere
    mu, sigma, v = feature_stats(feats)
    assert mu.shape == (2, 5, 6, 7) and sigma.shape == (2, 1, 5, 1, 1) and v.shape == (2, 1, 6, 7)
    r = routing_from_variance(v, 0.1)
    assert torch.allclose(r[0], torch.ones_like(r[0]))
    assert float(r[1].max()) < 1.0 and float(r.min()) >= 0.0


# --- a tiny teacher cache whose ensemble is a known function of the inputs


def _make_cache(source, root: Path, k: int = 3, seed: int = 0) -> TeacherCache:
    """Ensemble of a 'teacher' = max(Y_v, T) luminance with visible chroma, plus noise on the right half."""
    rng = np.random.default_rng(seed)
    entries = {}
    for i, pair in enumerate(source.pairs):
        vis, ir = source[i]
        y = np.maximum(vis @ BT601, ir)
        noise = np.zeros((k, *y.shape), np.float32)
        noise[:, :, y.shape[1] // 2 :] = rng.normal(0, 0.1, (k, y.shape[0], y.shape[1] - y.shape[1] // 2))
        ys = np.clip(y[None] + noise, 0, 1)
        rgb = np.clip(vis[None] + (ys - (vis @ BT601)[None])[..., None], 0, 1)
        y8 = np.rint(ys * 255).astype(np.uint8)
        entries[pair.stem] = write_entry(root, pair.stem, rgb.mean(0), ys.var(0, ddof=1), y8)
    write_manifest(root, entries, {"teacher": {"kind": "test"}, "k": k, "has_samples": True})
    return TeacherCache(root)


def test_source_ssim_term_is_added_to_the_loss() -> None:
    """w_src adds 1 − mean SSIM to the two sources: lower for an output that keeps both sources' structure."""
    from edgefuse.model import create_model

    g = torch.Generator().manual_seed(0)
    vis, ir = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g)
    batch = {"visible": vis, "thermal": ir, "mean": vis.clone(), "var": torch.zeros(2, 1, 32, 32)}
    model = create_model("n").eval()
    on = DistillLoss(DistillConfig(pixel_weighting="uniform", routing="none", w_source_ssim=1.0), tau=1.0)
    off = DistillLoss(DistillConfig(pixel_weighting="uniform", routing="none", w_source_ssim=0.0), tau=1.0)
    with torch.no_grad():
        l_on, logs_on = on(model, batch)
        l_off, logs_off = off(model, batch)
    assert "src_ssim" in logs_on and "src_ssim" not in logs_off
    assert float(l_on - l_off) == pytest.approx(logs_on["src_ssim"], rel=1e-5)
    assert 0.0 < logs_on["src_ssim"] < 1.0


def test_teacher_free_terms_make_the_train_loss_a_special_case() -> None:
    """With the teacher's terms off, the distillation loss is exactly `edgefuse train`'s fusion loss; each
    teacher-free term adds its weight times its own value."""
    from edgefuse.losses import fusion_loss
    from edgefuse.model import create_model

    g = torch.Generator().manual_seed(1)
    vis, ir = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g)
    batch = {"visible": vis, "thermal": ir, "mean": vis.clone(), "var": torch.zeros(2, 1, 32, 32)}
    model = create_model("n").eval()
    base = dict(pixel_weighting="uniform", routing="none", w_pixel=0.0, w_ssim=0.0, w_source_ssim=1.0)
    with torch.no_grad():
        ref, _ = fusion_loss(model(vis, ir), vis, ir, w_intensity=1.0, w_gradient=5.0, w_ssim=1.0)
        full, logs = DistillLoss(DistillConfig(**base, w_gradient=5.0, w_intensity=1.0), tau=1.0)(
            model, batch
        )
        no_grad, logs_ng = DistillLoss(DistillConfig(**base, w_gradient=0.0, w_intensity=1.0), tau=1.0)(
            model, batch
        )
    assert float(full) == pytest.approx(float(ref), rel=1e-5)
    assert "grad" in logs and "int" in logs and "grad" not in logs_ng
    assert float(full - no_grad) == pytest.approx(5.0 * logs["grad"], rel=1e-5)
    assert logs["grad"] > 0.0
    with pytest.raises(DataError, match="≥ 0"):
        DistillConfig(w_gradient=-1.0)


def test_dataset_crops_are_aligned_and_reproducible(tiny_pairs: Path, tmp_path: Path) -> None:
    source = find_pairs(tiny_pairs)
    cache = _make_cache(source, tmp_path / "cache")
    ds = DistillDataset(source, cache, [0, 1], crop=32, train=True, seed=0, samples=True, repeat=3)
    assert len(ds) == 6
    item = ds[0]
    assert item["visible"].shape == (3, 32, 32) and item["mean"].shape == (3, 32, 32)
    assert item["var"].shape == (1, 32, 32) and item["samples"].shape == (3, 32, 32)
    assert torch.equal(ds[0]["visible"], item["visible"])  # same epoch, same crop
    assert not torch.equal(ds[0]["visible"], ds[2]["visible"])  # another appearance of pair 0, another crop
    full = DistillDataset(source, cache, [0], crop=None, train=False, samples=True)[0]
    # find the crop window in the full image (random content: unique), then every array must match there
    hits = []
    for flip in (False, True):
        vis = full["visible"].flip(-1) if flip else full["visible"]
        for top in range(vis.shape[1] - 31):
            for left in range(vis.shape[2] - 31):
                if torch.equal(vis[:, top : top + 32, left : left + 32], item["visible"]):
                    hits.append((flip, top, left))
    assert len(hits) == 1
    flip, top, left = hits[0]
    for key in ("thermal", "mean", "var", "samples"):
        ref = full[key].flip(-1) if flip else full[key]
        assert torch.equal(ref[:, top : top + 32, left : left + 32], item[key]), key
    assert float(full["var"][0, :, :20].max()) < 1e-6 < float(full["var"][0, :, 40:].mean())


@pytest.fixture(scope="module")
def tiny_backbone_prior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    diffusers = pytest.importorskip("diffusers")
    from edgefuse.teacher.prior import PriorTrainConfig, build_unet

    torch.manual_seed(0)
    unet = build_unet(PriorTrainConfig(crop=16, channels=(8, 16, 16), layers_per_block=1))
    path = tmp_path_factory.mktemp("prior") / "prior"
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler()).save_pretrained(path)
    return path


@pytest.mark.teacher
def test_prior_routing_maps_in_unit_interval(tiny_backbone_prior: Path) -> None:
    from edgefuse.teacher.backbone import load_backbone

    net = load_backbone("prior", tiny_backbone_prior)
    g = torch.Generator().manual_seed(0)
    vis, samples = torch.rand(2, 3, 32, 48, generator=g), torch.rand(2, 4, 32, 48, generator=g)
    maps = routing_maps(net, vis, samples, tau_feat=0.1)
    assert len(maps) == 3 and all(m.shape == (2, 1, 32, 48) for m in maps)
    assert all(float(m.min()) >= 0.0 and float(m.max()) <= 1.0 for m in maps)
    same = routing_maps(net, vis, samples[:, :1].expand(2, 4, 32, 48), tau_feat=0.1)
    assert all(torch.allclose(m, torch.ones_like(m)) for m in same)
    assert all(not p.requires_grad for p in net.parameters())


@pytest.mark.teacher
@pytest.mark.slow
def test_distill_loss_decreases_on_the_trainer(
    tiny_pairs: Path, tiny_backbone_prior: Path, tmp_path: Path
) -> None:
    from edgefuse.model import create_model
    from edgefuse.teacher.backbone import load_backbone
    from edgefuse.training import TrainConfig, Trainer

    source = find_pairs(tiny_pairs)
    cache = _make_cache(source, tmp_path / "cache")
    ds = DistillDataset(source, cache, range(4), crop=32, train=True, seed=0, samples=True, repeat=2)
    # the teacher terms: the source-SSIM term pulls elsewhere on this random toy teacher
    dcfg = DistillConfig(w_source_ssim=0.0)
    loss = DistillLoss(dcfg, tau=0.01, backbone=load_backbone("prior", tiny_backbone_prior))
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=6, batch_size=4, lr=5e-3, warmup_steps=2, seed=0)
    trainer = Trainer(create_model("n"), loss, ds, tmp_path / "s.safetensors", cfg)
    trainer.fit(progress=False)
    first, last = trainer.history[0]["loss"], trainer.history[-1]["loss"]
    assert last < 0.8 * first, trainer.history


# --- the command


def test_distill_cli_refuses_a_mismatched_cache_before_training(tiny_pairs: Path, tmp_path: Path) -> None:
    source = find_pairs(tiny_pairs)
    cache = _make_cache(source, tmp_path / "cache")
    (tmp_path / "cache" / f"{source.pairs[0].stem}.npz").unlink()
    out = tmp_path / "s.safetensors"
    res = runner.invoke(app, distill_args(tmp_path / "cache", tiny_pairs, out, "--routing", "none"))
    assert res.exit_code == 2 and "cache entry file missing" in res.output and not out.exists()
    manifest = cache.manifest
    del manifest["pairs"][source.pairs[1].stem]
    write_manifest(tmp_path / "cache", manifest["pairs"], {"k": 3, "has_samples": True})
    res = runner.invoke(app, distill_args(tmp_path / "cache", tiny_pairs, out, "--routing", "none"))
    assert res.exit_code == 2 and "have no teacher ensemble" in res.output and not out.exists()
    assert len(res.output.strip().splitlines()) <= 3  # one message (wrapped by the terminal width at most)
    with pytest.raises(DataError, match="routing 'sideways'"):
        DistillConfig(routing="sideways")


def test_distill_cli_uniform_no_routing_records_provenance(tiny_pairs: Path, tmp_path: Path) -> None:
    from edgefuse.checkpoint import load_checkpoint

    source = find_pairs(tiny_pairs)
    cache = _make_cache(source, tmp_path / "cache")
    out = tmp_path / "s.safetensors"
    args = distill_args(
        tmp_path / "cache",
        tiny_pairs,
        out,
        "--pixel-weighting",
        "uniform",
        "--routing",
        "none",
        "--w-pixel",
        "4",
    )
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    prov = load_checkpoint(out)[1].provenance
    assert prov["teacher_cache"]["manifest_sha256"] == cache.sha256
    assert prov["distill"]["pixel_weighting"] == "uniform" and prov["distill"]["routing"] == "none"
    assert prov["distill"]["w_pixel"] == 4.0
    assert prov["distill"]["tau_used"] > 0 and prov["backbone"] is None
    # feature routing on an external cache needs a backbone it can find
    res = runner.invoke(app, distill_args(tmp_path / "cache", tiny_pairs, out))
    assert res.exit_code == 2 and "give --prior DIR" in res.output


def test_distill_init_starts_from_a_checkpoint(tiny_pairs: Path, tmp_path: Path) -> None:
    from edgefuse.checkpoint import load_model

    _make_cache(find_pairs(tiny_pairs), tmp_path / "cache")
    first, tuned = tmp_path / "first.safetensors", tmp_path / "tuned.safetensors"
    assert (
        runner.invoke(app, distill_args(tmp_path / "cache", tiny_pairs, first, "--routing", "none")).exit_code
        == 0
    )
    start = load_model(first)
    # lr 0: the fine-tune keeps the start's weights exactly, so they did come from --init
    args = distill_args(tmp_path / "cache", tiny_pairs, tuned, "--routing", "none", "--init", str(first))
    res = runner.invoke(app, [*args, "--lr", "0"])
    assert res.exit_code == 0, res.output
    after = load_model(tuned)
    assert after.info.provenance["init"]["weights_sha256"] == start.info.weights_sha256
    assert after.info.weights_sha256 == start.info.weights_sha256
    res = runner.invoke(
        app, [*args[:-2], "--init", str(first), "--size", "s", "-o", str(tmp_path / "s.safetensors")]
    )
    assert res.exit_code != 0 and "--init is not a size s student" in res.output
    assert not (tmp_path / "s.safetensors").exists()


@pytest.mark.teacher
@pytest.mark.slow
def test_distill_two_process_gloo(tiny_pairs: Path, tiny_backbone_prior: Path, tmp_path: Path) -> None:
    from edgefuse.checkpoint import load_checkpoint

    _make_cache(find_pairs(tiny_pairs), tmp_path / "cache")
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [
        "-m",
        "edgefuse",
        *distill_args(tmp_path / "cache", tiny_pairs, out, "--prior", str(tiny_backbone_prior)),
    ]
    cmd += ["--val-fraction", "0.25", "--epochs", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = load_checkpoint(out)[1]
    assert info.provenance["world_size"] == 2 and info.provenance["distill"]["routing"] == "feature"
    assert info.provenance["epochs"] == 2


def test_base_term_anchors_block_brightness_and_leaves_detail_free() -> None:
    """The block-mean anchor is 0 for any image with the target's 8×8 means (however its detail differs),
    grows with a brightness shift, and reaches fusion_loss and DistillLoss only through its weight."""
    from edgefuse.losses import base_term, fusion_loss

    g = torch.Generator().manual_seed(0)
    yv, t = torch.rand(2, 1, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g)
    target = torch.maximum(yv, t)
    checker = (torch.arange(32).view(1, 32) + torch.arange(32).view(32, 1)) % 2 * 0.2 - 0.1  # zero block mean
    assert base_term(target + checker, yv, t).item() < 1e-6
    assert base_term(target - 0.1, yv, t).item() == pytest.approx(0.1, abs=1e-6)
    fused = torch.rand(2, 3, 32, 32, generator=g)
    vis = torch.rand(2, 3, 32, 32, generator=g)
    off, logs_off = fusion_loss(fused, vis, t)
    on, logs_on = fusion_loss(fused, vis, t, w_base=2.0)
    assert "base" not in logs_off
    assert on.item() == pytest.approx(off.item() + 2.0 * logs_on["base"], rel=1e-6)
    from edgefuse.model import create_model

    model = create_model("n").eval()
    batch = {"visible": vis, "thermal": t, "mean": vis.clone(), "var": torch.zeros(2, 1, 32, 32)}
    base = dict(pixel_weighting="uniform", routing="none")
    with torch.no_grad():
        d_off, dl_off = DistillLoss(DistillConfig(**base), tau=1.0)(model, batch)
        d_on, dl_on = DistillLoss(DistillConfig(**base, w_base=2.0), tau=1.0)(model, batch)
    assert "base" not in dl_off and dl_on["base"] > 0
    assert float(d_on) == pytest.approx(float(d_off) + 2.0 * dl_on["base"], rel=1e-5)
    with pytest.raises(DataError):
        DistillConfig(w_base=-1.0)
