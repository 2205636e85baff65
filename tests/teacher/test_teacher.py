"""The DDFM teacher: FFT M-step, EM likelihood step, sampler, prior directory, ensemble cache, import, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgefuse.cli import app
from edgefuse.errors import DataError
from edgefuse.teacher.cache import CacheEntry, TeacherCache, ensemble_stats, write_entry, write_manifest
from edgefuse.teacher.objective import (
    EMConfig,
    em_likelihood,
    fusion_targets,
    grad,
    grad_adjoint,
    objective_value,
    solve_quadratic,
)


def fusion_objective(f: torch.Tensor, i: torch.Tensor, v: torch.Tensor, phi: float) -> torch.Tensor:
    """The DDFM objective |f − i| + φ|∇(f − v)| per image."""
    return objective_value(f, fusion_targets(i, v, EMConfig(objective="ddfm", phi=phi)))


runner = CliRunner()


def _dense_diff(h: int, w: int, axis: int) -> np.ndarray:
    """Periodic forward difference as a dense (h·w)×(h·w) matrix, row-major pixels."""
    m = np.zeros((h * w, h * w))
    for r in range(h):
        for c in range(w):
            i = r * w + c
            j = r * w + (c + 1) % w if axis == 1 else ((r + 1) % h) * w + c
            m[i, j] += 1.0
            m[i, i] -= 1.0
    return m


def test_fft_m_step_matches_dense_solve() -> None:
    h, w, a, b = 5, 7, 1.3, 2.5
    rhs = torch.randn(1, 1, h, w, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dh, dv = _dense_diff(h, w, 1), _dense_diff(h, w, 0)
    dense = np.linalg.solve(a * np.eye(h * w) + b * (dh.T @ dh + dv.T @ dv), rhs.numpy().ravel())
    np.testing.assert_allclose(solve_quadratic(rhs, a, b).numpy().ravel(), dense, atol=1e-5)
    # and the gradient operators are the ones in that matrix, with grad_adjoint their transpose
    gh, gv = grad(rhs)
    np.testing.assert_allclose(gh.numpy().ravel(), dh @ rhs.numpy().ravel(), atol=1e-12)
    np.testing.assert_allclose(
        grad_adjoint(gh, gv).numpy().ravel(), (dh.T @ dh + dv.T @ dv) @ rhs.numpy().ravel()
    )


def _lp_optimum(i: np.ndarray, v: np.ndarray, phi: float) -> float:
    """Exact minimum of mean(|f − i| + φ(|∂h(f − v)| + |∂v(f − v)|)) as a linear programme."""
    from scipy.optimize import linprog

    h, w = i.shape
    n = h * w
    d = np.vstack([_dense_diff(h, w, 1), _dense_diff(h, w, 0)])
    y = (i - v).ravel()
    eye, z = np.eye(n), np.zeros
    cost = np.concatenate([z(n), np.ones(n), phi * np.ones(2 * n)])
    a_ub = np.block(
        [
            [eye, -eye, z((n, 2 * n))],
            [-eye, -eye, z((n, 2 * n))],
            [d, z((2 * n, n)), -np.eye(2 * n)],
            [-d, z((2 * n, n)), -np.eye(2 * n)],
        ]
    )
    b_ub = np.concatenate([y, -y, np.zeros(4 * n)])
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * n + [(0, None)] * 3 * n, method="highs")
    assert res.success
    return float(res.fun) / n


def _toy(seed: int = 1, h: int = 8, w: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    i = rng.uniform(-0.9, 0.4, (h, w))
    i[2:6, 2:6] = 0.8  # a warm object
    v = rng.uniform(-0.9, 0.4, (h, w))
    v[:, : w // 2] += 0.5  # a visible edge
    return torch.tensor(i, dtype=torch.float32)[None, None], torch.tensor(v, dtype=torch.float32)[None, None]


def test_em_without_prior_minimises_the_fusion_objective() -> None:
    i, v = _toy()
    phi = 0.7
    j_opt = _lp_optimum(i[0, 0].double().numpy(), v[0, 0].double().numpy(), phi)
    start = (i + v) / 2
    cfg = EMConfig(objective="ddfm", phi=phi, prior_weight=0.0, split=20.0)
    f = em_likelihood(start, fusion_targets(i, v, cfg), cfg, iters=300)
    j = float(fusion_objective(f, i, v, phi))
    assert j < float(fusion_objective(start, i, v, phi))
    assert j <= 1.03 * j_opt  # the split with β=20 leaves a small bias; the LP is exact
    assert j >= j_opt - 1e-6


def test_em_without_prior_weight_returns_the_objective_whatever_the_prior_proposes() -> None:
    """μ = 0: the likelihood step ignores the prior's estimate (regression: the split variables once started
    at the estimate and 3 EM iterations left the prior's guess almost unchanged, VIF 0.03 on real pairs)."""
    i, v = _toy(seed=5)
    cfg = EMConfig(phi=0.0, prior_weight=0.0, iters=3)
    targets = fusion_targets(i, v, cfg)
    for seed in (0, 1):
        guess = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        f = em_likelihood(guess, targets, cfg)
        assert float((f - targets.intensity.clamp(-1, 1)).abs().max()) < 1e-4


def test_em_with_prior_pulls_towards_the_objective_and_the_prior() -> None:
    i, v = _toy(seed=2)
    x0 = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    phi = 1.0
    results = {}
    for mu in (0.5, 5.0, 50.0):
        cfg = EMConfig(objective="ddfm", phi=phi, prior_weight=mu, iters=10)
        results[mu] = em_likelihood(x0, fusion_targets(i, v, cfg), cfg)
    j0 = float(fusion_objective(x0, i, v, phi))
    objectives = [float(fusion_objective(results[mu], i, v, phi)) for mu in (0.5, 5.0, 50.0)]
    distances = [float((results[mu] - x0).abs().mean()) for mu in (0.5, 5.0, 50.0)]
    assert all(j < j0 for j in objectives)
    assert objectives == sorted(objectives)  # a weaker prior pull: a lower objective ...
    assert distances == sorted(distances, reverse=True)  # ... and further from the prior's estimate


def test_salience_targets_keep_the_brighter_source_and_the_stronger_edge() -> None:
    h, w = 16, 16
    v = torch.full((1, 1, h, w), -0.5)
    i = torch.full((1, 1, h, w), -0.5)
    i[..., :, :8] = 0.8  # a hot left half: brighter in the thermal frame
    v[..., 4, 12] = 0.9  # a small bright visible detail on the right, where the thermal frame is flat
    cfg = EMConfig(phi=1.0, softness=0.05, blur=0)
    t = fusion_targets(i, v, cfg)
    assert float((t.intensity[..., :, :6] - 0.8).abs().max()) < 1e-3  # thermal where it is brighter
    assert abs(float(t.intensity[..., 4, 12]) - 0.9) < 1e-3  # visible where it is brighter
    gi, gv_ = grad(i), grad(v)
    # at the thermal edge (column 7 -> 8) the thermal gradient wins; at the visible detail the visible one
    assert float(t.grad_h[..., 2, 7]) == pytest.approx(float(gi[0][..., 2, 7]))
    assert float(t.grad_h[..., 4, 11]) == pytest.approx(float(gv_[0][..., 4, 11]))
    ddfm = fusion_targets(i, v, EMConfig(objective="ddfm"))
    assert torch.equal(ddfm.intensity, i.expand_as(ddfm.intensity))  # the named DDFM option is unchanged


def test_solve_objective_without_gradient_term_returns_the_intensity_target() -> None:
    from edgefuse.teacher.objective import solve_objective

    i, v = _toy(seed=4)
    cfg = EMConfig(phi=0.0, softness=0.1)
    f = solve_objective(i, v, cfg, iters=40)
    assert float((f - fusion_targets(i, v, cfg).intensity).abs().max()) < 2e-3


def test_per_sample_jitter_spreads_where_salience_is_ambiguous() -> None:
    """Samples disagree where the sources' brightness is close, agree where one source clearly wins."""
    h, w = 8, 16
    v = torch.zeros(1, 1, h, w)
    i = torch.zeros(1, 1, h, w)
    i[..., :, 8:] = 0.9  # right: thermal clearly brighter; left: the sources agree (ambiguous salience)
    i[..., :, :8] = 0.05
    cfg = EMConfig(phi=0.0, softness=0.05, blur=0)
    offsets = torch.tensor([-0.1, -0.03, 0.03, 0.1])
    t = fusion_targets(i, v, cfg, offsets=offsets).intensity
    spread = t.std(dim=0)
    assert float(spread[..., :8].mean()) > 10 * float(spread[..., 8:].mean())


def test_cache_v2_keeps_sub_level_spread(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, (1, 6, 5, 1)).astype(np.float32)
    samples = np.repeat(base, 4, axis=0) + rng.normal(0, 0.2 / 255, (4, 6, 5, 1)).astype(np.float32)
    mean, var, ys = ensemble_stats(np.repeat(samples, 3, axis=3))
    entry = write_entry(tmp_path, "p", mean, var, ys)
    write_manifest(tmp_path, {"p": entry}, {"k": 4, "has_samples": True})
    got = TeacherCache(tmp_path).load("p")
    assert got.samples is not None and got.samples.dtype == np.float16
    std = np.sqrt(got.var) * 255
    assert (
        0.05 < float(np.median(std)) < 0.5
    )  # a 0.2-level spread survives (8-bit samples would round it away)


def test_cache_refuses_entries_outside_its_folder(tmp_path: Path) -> None:
    mean, var, ys = ensemble_stats(np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 3)).astype(np.float32))
    write_entry(tmp_path, "p", mean, var, ys)
    write_manifest(tmp_path, {"p": {"file": "../p.npz", "height": 4, "width": 4, "k": 2}}, {"k": 2})
    with pytest.raises(DataError, match="not a plain name"):
        TeacherCache(tmp_path).load("p")


# --- the sampler and the prior directory (diffusers) --------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    diffusers = pytest.importorskip("diffusers")
    from edgefuse.teacher.prior import PriorTrainConfig, build_unet

    torch.manual_seed(0)
    unet = build_unet(PriorTrainConfig(crop=16, channels=(8, 16), layers_per_block=1))
    path = tmp_path_factory.mktemp("prior") / "prior"
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler()).save_pretrained(path)
    return path


@pytest.mark.teacher
def test_sampler_untrained_unet_shapes_determinism_and_likelihood(tiny_prior: Path) -> None:
    from edgefuse.teacher.ddfm import SamplerConfig, luma, sample_fusion
    from edgefuse.teacher.prior import Prior

    prior = Prior.load(tiny_prior)
    assert prior.multiple == 2
    g = torch.Generator().manual_seed(0)
    vis, ir = torch.rand(3, 21, 30, generator=g), torch.rand(1, 21, 30, generator=g)
    cfg = SamplerConfig(steps=3, em=EMConfig(objective="ddfm", phi=1.0, prior_weight=0.5, iters=15))
    s = sample_fusion(prior, vis, ir, [0, 1, 2], cfg)
    assert s.shape == (3, 1, 21, 30) and torch.isfinite(s).all()
    assert float(s.min()) >= 0.0 and float(s.max()) <= 1.0
    again = sample_fusion(prior, vis, ir, [0, 1, 2], SamplerConfig(steps=3, em=cfg.em, max_batch=1))
    assert torch.allclose(s, again, atol=1e-4)  # the batch split does not change the samples
    assert float((s[0] - s[1]).abs().max()) > 1e-3  # different seeds, different samples
    # the likelihood step pulls the samples towards the fusion objective (vs the prior alone: μ huge)
    prior_only = sample_fusion(
        prior, vis, ir, [0, 1, 2], SamplerConfig(steps=3, em=EMConfig(objective="ddfm", prior_weight=1e6))
    )
    i, v = ir[None] * 2 - 1, luma(vis[None]) * 2 - 1
    j = fusion_objective(s * 2 - 1, i, v, 1.0).mean()
    j_prior = fusion_objective(prior_only * 2 - 1, i, v, 1.0).mean()
    assert float(j) < 0.8 * float(j_prior)


@pytest.mark.teacher
def test_sampler_without_prior_weight_skips_the_unet_and_returns_the_jittered_objective(
    tiny_prior: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgefuse.teacher.ddfm import SamplerConfig, luma, sample_fusion
    from edgefuse.teacher.prior import Prior

    prior = Prior.load(tiny_prior)
    g = torch.Generator().manual_seed(1)
    vis, ir = torch.rand(3, 20, 28, generator=g), torch.rand(1, 20, 28, generator=g)
    em = EMConfig(prior_weight=0.0, jitter=0.1)
    with_prior = sample_fusion(prior, vis, ir, [0, 1], SamplerConfig(steps=3, em=em.with_(prior_weight=2.0)))

    def no_unet(*args: object, **kwargs: object) -> None:
        raise AssertionError("the UNet ran although μ = 0")

    monkeypatch.setattr(Prior, "predict", no_unet)
    s = sample_fusion(prior, vis, ir, [0, 1], SamplerConfig(steps=3, em=em))
    # each sample is the objective with its own salience offset, drawn after its initial noise
    offsets = []
    for seed in (0, 1):
        gen = torch.Generator().manual_seed(seed)
        torch.randn((1, 20, 28), generator=gen)
        offsets.append(float(torch.randn(2, generator=gen)[0]) * 0.1)
    t = fusion_targets(ir[None] * 2 - 1, luma(vis[None]) * 2 - 1, em, offsets=torch.tensor(offsets))
    assert torch.allclose(s, ((t.intensity + 1) / 2).clamp(0, 1), atol=1e-5)
    assert float((s[0] - s[1]).abs().max()) > 1e-3  # the jitter spreads the samples
    assert float((s - with_prior).abs().max()) > 1e-3  # μ > 0: the prior changes the result


@pytest.mark.teacher
def test_train_prior_cli_writes_a_diffusers_directory(tiny_pairs: Path, tmp_path: Path) -> None:
    from diffusers import DDPMPipeline

    from edgefuse.teacher.prior import PRIOR_META, Prior, prior_hash

    out = tmp_path / "prior"
    args = ["teacher", "train-prior", "--data", str(tiny_pairs), "-o", str(out), "--crop", "16"]
    args += ["--channels", "8,16", "--layers-per-block", "1", "--steps", "3", "--batch-size", "2"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    meta = json.loads((out / PRIOR_META).read_text())
    assert meta["steps"] == 3 and meta["train_stems"] and meta["val_stems"]
    assert not set(meta["train_stems"]) & set(meta["val_stems"])  # the validation split is never seen
    assert isinstance(DDPMPipeline.from_pretrained(out), DDPMPipeline)
    assert Prior.load(out).sha256 == prior_hash(out)
    res = runner.invoke(
        app, ["teacher", "sample", "--prior", str(tmp_path), "--data", str(tiny_pairs), "-o", "x"]
    )
    assert res.exit_code == 2 and "not a diffusers UNet directory" in res.output


@pytest.mark.teacher
@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        # the state loads onto the training device; its RNG state must go back to the CPU (a CUDA-only bug)
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
        ),
    ],
)
def test_train_prior_resumes_where_a_time_limited_call_stopped(
    tiny_pairs: Path, tmp_path: Path, device: str
) -> None:
    """A call cut by --minutes leaves a state file; --resume finishes the same schedule, as one run would."""
    from diffusers import UNet2DModel

    from edgefuse.teacher.prior import PRIOR_META

    base = ["teacher", "train-prior", "--data", str(tiny_pairs), "--crop", "16", "--channels", "8,16"]
    base += ["--layers-per-block", "1", "--steps", "6", "--batch-size", "2", "--device", device]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert runner.invoke(app, [*base, "-o", str(whole)]).exit_code == 0
    res = runner.invoke(app, [*base, "-o", str(cut), "--minutes", "1e-6"])  # budget spent after one step
    assert res.exit_code == 0, res.output
    meta = json.loads((cut / PRIOR_META).read_text())
    assert meta["steps"] == 1 and not meta["complete"]
    assert Path(str(cut) + ".state.pt").is_file()
    res = runner.invoke(app, [*base, "-o", str(cut), "--resume"])
    assert res.exit_code == 0, res.output
    meta = json.loads((cut / PRIOR_META).read_text())
    assert meta["steps"] == 6 and meta["complete"]
    assert not Path(str(cut) + ".state.pt").exists()
    a = UNet2DModel.from_pretrained(whole / "unet").state_dict()
    b = UNet2DModel.from_pretrained(cut / "unet").state_dict()
    atol = 1e-6 if device == "cpu" else 1e-2  # cuDNN autotuning and bf16 are not bit-reproducible
    assert all(torch.allclose(a[k], b[k], atol=atol) for k in a)  # same data, noise, optimiser and EMA


def test_time_budget_is_sized_from_the_pace_after_warm_up() -> None:
    """Slow first steps (autotuning, loaders) must not shrink the schedule: on an H200 they cut a 12-minute
    budget to 139 s when the pace was taken from step 0."""
    from edgefuse.teacher.denoiser import SIZE_STEP, WARM_STEP, sized_total

    warm_s, per_step, budget = 10.0, 0.1, 720.0  # 10 s for the first steps, then 0.1 s a step
    elapsed = warm_s + (SIZE_STEP - WARM_STEP) * per_step
    total = sized_total(SIZE_STEP, elapsed, (WARM_STEP, warm_s), budget, 100_000)
    assert total == SIZE_STEP + round((budget - elapsed) / per_step)  # ends at the budget, not 5x early
    assert sized_total(SIZE_STEP, elapsed, (WARM_STEP, warm_s), budget, 1000) == 1000  # --steps caps it
    spent = sized_total(SIZE_STEP, budget + 5.0, (WARM_STEP, warm_s), budget, 1000)
    assert spent == SIZE_STEP + 1  # budget already spent


@pytest.mark.teacher
def test_a_schedule_whose_pace_drifts_still_ends_within_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps that slow down after the first sizing (an H200 run had 6 % of its schedule left at the end of
    its 12 minutes) are caught by sizing again. A fake clock that each drawn batch advances: no timing."""
    from types import SimpleNamespace

    from edgefuse.teacher import denoiser

    clock = [0.0]
    monkeypatch.setattr(denoiser, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    drawn = [0]

    def draw(rng: np.random.Generator) -> tuple[torch.Tensor, None]:
        # 0.5 s a step until the warm-up ends, 0.2 s until the first sizing, then 0.3 s
        clock[0] += 0.5 if drawn[0] < 10 else 0.2 if drawn[0] < 60 else 0.3
        drawn[0] += 1
        return torch.from_numpy(rng.random((1, 1, 8, 8), dtype=np.float32)), None

    cfg = denoiser.DenoiserConfig(crop=8, channels=(8, 16), layers_per_block=1, batch_size=1, minutes=1.0)
    info = denoiser.fit_denoiser(draw, tmp_path / "m", cfg, in_channels=1, kind="test", meta_name="m.json")
    # sized once at step 60 (15 s in, 5 steps a second) it would plan 285 steps and stop at 210, unfinished
    assert info["complete"] and info["seconds"] <= 60.0
    assert 205 <= info["steps"] <= 210 and not Path(str(tmp_path / "m") + ".state.pt").exists()


@pytest.mark.teacher
def test_sample_cli_writes_a_cache_that_matches_the_data(
    tiny_prior: Path, tiny_pairs: Path, tmp_path: Path
) -> None:
    from edgefuse.data import find_pairs

    out = tmp_path / "cache"
    args = ["teacher", "sample", "--prior", str(tiny_prior), "--data", str(tiny_pairs), "-o", str(out)]
    res = runner.invoke(app, [*args, "--k", "2", "--steps", "2", "--limit", "3"])
    assert res.exit_code == 0, res.output
    cache = TeacherCache(out)
    source = find_pairs(tiny_pairs)
    assert cache.k == 2 and cache.has_samples and cache.stems == [p.stem for p in source.pairs[:3]]
    assert cache.manifest["teacher"]["prior_sha256"]
    cache.check(source, range(3), need_samples=True)
    with pytest.raises(DataError, match="1 of 4 pairs"):
        cache.check(source, range(4))
    e = cache.load(cache.stems[0])
    assert e.mean.shape == (40, 56, 3) and e.var.shape == (40, 56) and e.samples.shape == (2, 40, 56)
    assert float(e.var.min()) >= 0.0 and 0.0 <= float(e.mean.min()) <= float(e.mean.max()) <= 1.0


# --- the cache without a teacher


def _write_cache(root: Path, sizes: dict[str, tuple[int, int]], k: int = 3, samples: bool = True) -> None:
    rng = np.random.default_rng(0)
    entries = {}
    for stem, (h, w) in sizes.items():
        mean, var, ys = ensemble_stats(rng.random((max(k, 2), h, w, 3), dtype=np.float32))
        entries[stem] = write_entry(root, stem, mean, var, ys[:k] if samples else None)
    write_manifest(root, entries, {"teacher": {"kind": "test"}, "k": k, "has_samples": samples})


def test_cache_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.random((4, 6, 5, 3), dtype=np.float32)
    mean, var, ys = ensemble_stats(rgb)
    np.testing.assert_allclose(mean, rgb.mean(0), atol=1e-6)
    np.testing.assert_allclose(
        var, (rgb @ np.array([0.299, 0.587, 0.114], np.float32)).var(0, ddof=1), atol=1e-6
    )
    write_manifest(tmp_path, {"a": write_entry(tmp_path, "a", mean, var, ys)}, {"k": 4, "has_samples": True})
    cache = TeacherCache(tmp_path)
    e = cache.load("a")
    np.testing.assert_allclose(e.mean, mean, atol=1e-3)  # float16 storage
    np.testing.assert_allclose(e.var, var, atol=1e-3, rtol=1e-3)
    np.testing.assert_array_equal(e.samples, ys)
    assert len(cache.sha256) == 64
    np.testing.assert_array_equal(e.samples_float(), ys.astype(np.float32))
    v1 = CacheEntry("a", mean, var, np.array([[[0, 51, 255]]], dtype=np.uint8))  # version-1 8-bit samples
    np.testing.assert_allclose(v1.samples_float(), [[[0.0, 0.2, 1.0]]], atol=1e-7)
    assert CacheEntry("a", mean, var, None).samples_float() is None


def test_cache_mismatch_errors_name_the_problem(tiny_pairs: Path, tmp_path: Path) -> None:
    from edgefuse.data import find_pairs

    source = find_pairs(tiny_pairs)
    stems = [p.stem for p in source.pairs]
    _write_cache(tmp_path / "missing", {s: (40, 56) for s in stems[:-1]})
    with pytest.raises(DataError, match=f"1 of 4 pairs .* {stems[-1]}"):
        TeacherCache(tmp_path / "missing").check(source, range(4))
    _write_cache(tmp_path / "size", {s: (40, 56) if s != stems[1] else (40, 50) for s in stems})
    with pytest.raises(DataError, match=f"{stems[1]}.*50×40 in the cache but 56×40"):
        TeacherCache(tmp_path / "size").check(source, range(4))
    _write_cache(tmp_path / "k1", {s: (40, 56) for s in stems}, k=1)
    with pytest.raises(DataError, match="K=1"):
        TeacherCache(tmp_path / "k1").check(source, range(4))
    _write_cache(tmp_path / "nosamples", {s: (40, 56) for s in stems}, samples=False)
    with pytest.raises(DataError, match="no samples"):
        TeacherCache(tmp_path / "nosamples").check(source, range(4), need_samples=True)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="malformed manifest"):
        TeacherCache(tmp_path / "bad")
    with pytest.raises(DataError, match="manifest not found"):
        TeacherCache(tmp_path / "nothing")


def test_import_external_samples_both_layouts(tiny_pairs: Path, tmp_path: Path) -> None:
    from PIL import Image

    from edgefuse.data import find_pairs

    stems = [p.stem for p in find_pairs(tiny_pairs).pairs]
    rng = np.random.default_rng(0)
    imgs = {s: [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(3)] for s in stems}
    for s in stems:
        for k, img in enumerate(imgs[s]):
            (tmp_path / "per_pair" / s).mkdir(parents=True, exist_ok=True)
            (tmp_path / "per_run" / f"run{k}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(tmp_path / "per_pair" / s / f"{k}.png")
            Image.fromarray(img).save(tmp_path / "per_run" / f"run{k}" / f"{s}.png")
    for layout in ("per_pair", "per_run"):
        out = tmp_path / f"cache_{layout}"
        args = [
            "teacher",
            "import",
            "--samples",
            str(tmp_path / layout),
            "--data",
            str(tiny_pairs),
            "-o",
            str(out),
        ]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        e = TeacherCache(out).load(stems[0])
        np.testing.assert_allclose(e.mean, np.mean(imgs[stems[0]], axis=0) / 255.0, atol=1e-3)
    Image.fromarray(imgs[stems[0]][0][:30]).save(tmp_path / "per_pair" / stems[0] / "0.png")
    args = [
        "teacher",
        "import",
        "--samples",
        str(tmp_path / "per_pair"),
        "--data",
        str(tiny_pairs),
        "-o",
        "x",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "is 56×30 but pair" in res.output


@pytest.mark.teacher
@pytest.mark.slow
def test_sample_two_process_gloo(tiny_prior: Path, tiny_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "edgefuse", "teacher", "sample", "--prior", str(tiny_prior), "--data", str(tiny_pairs)]
    cmd += ["-o", str(out), "--k", "2", "--steps", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cache = TeacherCache(out)
    assert cache.manifest["world_size"] == 2 and len(cache.stems) == 4  # both shards in one manifest
