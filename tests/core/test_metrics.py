"""Fusion metrics (convention A, ../shared/docs/metrics.md) and drift metrics: hand cases and cross-checks."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import convolve2d

from edgefuse import metrics
from edgefuse.metrics import (
    HIGHER_IS_BETTER,
    METRIC_NAMES,
    drift_metrics,
    fusion_metrics,
    mean_metrics,
    relative_change,
    to_gray,
)


def _smooth(seed: int, shape: tuple[int, ...] = (64, 80), sigma: float = 2.0) -> np.ndarray:
    """A textured uint8 image with the full 0..255 range (noise blurred, then stretched)."""
    x = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), sigma)
    return np.round((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)


def _one(name: str, f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return fusion_metrics(f, a, b, names=[name])[name]


# --- references: literal translations of metrics.md, loops and convolve2d, to check the vectorised code --


def _vif_reference(ref: np.ndarray, dist: np.ndarray) -> float:
    ref, dist = ref.astype(np.float64), dist.astype(np.float64)
    eps, num, den = 1e-10, 0.0, 0.0
    for s in range(1, 5):
        n = 2 ** (5 - s) + 1
        sd = n / 5.0
        m = (n - 1) / 2.0
        y, x = np.ogrid[-m : m + 1, -m : m + 1]
        win = np.exp(-(x * x + y * y) / (2.0 * sd * sd))
        win[win < np.finfo(win.dtype).eps * win.max()] = 0
        win = win / win.sum()

        def filt(img: np.ndarray, win: np.ndarray = win) -> np.ndarray:
            return convolve2d(img, np.rot90(win, 2), mode="valid")

        if s > 1:
            ref, dist = filt(ref)[::2, ::2], filt(dist)[::2, ::2]
        mu1, mu2 = filt(ref), filt(dist)
        s1, s2 = filt(ref * ref) - mu1 * mu1, filt(dist * dist) - mu2 * mu2
        s12 = filt(ref * dist) - mu1 * mu2
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        low1 = s1 < eps
        g[low1], sv[low1], s1[low1] = 0, s2[low1], 0
        low2 = s2 < eps
        g[low2], sv[low2] = 0, 0
        neg = g < 0
        sv[neg], g[neg] = s2[neg], 0
        sv[sv <= eps] = eps
        num += np.sum(np.log10(1 + g * g * s1 / (sv + 2.0)))
        den += np.sum(np.log10(1 + s1 / 2.0))
    return 1.0 if np.isnan(num / den) else float(num / den)


def _qabf_reference(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    def edges(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sx = convolve2d(img, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]), mode="same")
        sy = convolve2d(img, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]), mode="same")
        alpha = np.full(img.shape, math.pi / 2)
        alpha[sx != 0] = np.arctan(sy[sx != 0] / sx[sx != 0])
        return np.sqrt(sx * sx + sy * sy), alpha

    def q(gx: np.ndarray, ax: np.ndarray, gf: np.ndarray, af: np.ndarray) -> np.ndarray:
        big = np.zeros_like(gx)
        big[gx > gf] = gf[gx > gf] / gx[gx > gf]
        big[gx == gf] = gf[gx == gf]
        big[gx < gf] = gx[gx < gf] / gf[gx < gf]
        angle = 1 - np.abs(ax - af) / (math.pi / 2)
        return 0.9994 / (1 + np.exp(-15 * (big - 0.5))) * 0.9879 / (1 + np.exp(-22 * (angle - 0.8)))

    (ga, aa), (gb, ab), (gf, af) = edges(a), edges(b), edges(f)
    return float(np.sum(q(ga, aa, gf, af) * ga + q(gb, ab, gf, af) * gb) / np.sum(ga + gb))


def _nabf_reference(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Loop-for-loop port of Shreyamsha Kumar's objective_fusion_perform_fn.m (NABF), sobel_fn.m and
    per_extn_im_fn.m, with MATLAB's 1-based indices shifted to 0-based."""

    def sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, q = x.shape
        ext = np.zeros((p + 2, q + 2))
        ext[1 : p + 1, 1 : q + 1] = x
        ext[0, :] = ext[2, :]
        ext[p + 1, :] = ext[p - 1, :]
        ext[:, 0] = ext[:, 2]
        ext[:, q + 1] = ext[:, q - 1]
        vt = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
        ht = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]) / 8
        gv, gh = np.zeros((p, q)), np.zeros((p, q))
        for i in range(1, p + 1):
            for j in range(1, q + 1):
                gv[i - 1, j - 1] = np.sum(ext[i - 1 : i + 2, j - 1 : j + 2] * vt)
                gh[i - 1, j - 1] = np.sum(ext[i - 1 : i + 2, j - 1 : j + 2] * ht)
        return gv, gh

    def atan(v: float, h: float) -> float:
        if v == 0 and h == 0:
            return 0.0
        return math.atan(v / h) if h != 0 else math.copysign(math.pi / 2, v)

    def ratio(gx: float, gf: float) -> float:
        if gx == 0 or gf == 0:
            return 0.0
        return gf / gx if gx > gf else gx / gf

    (gva, gha), (gvb, ghb), (gvf, ghf) = sobel(a), sobel(b), sobel(f)
    ga, gb, gf = (np.sqrt(gh**2 + gv**2) for gv, gh in ((gva, gha), (gvb, ghb), (gvf, ghf)))
    num = den = 0.0
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            af = atan(gvf[i, j], ghf[i, j])
            total = 0.0
            for g, gv, gh in ((ga, gva, gha), (gb, gvb, ghb)):
                angle = abs(abs(atan(gv[i, j], gh[i, j]) - af) - math.pi / 2) * 2 / math.pi
                qg = 0.9999 / (1 + math.exp(-19 * (ratio(g[i, j], gf[i, j]) - 0.5)))
                qa = 0.9995 / (1 + math.exp(-22 * (angle - 0.5)))
                wt = g[i, j] ** 1.5 if g[i, j] >= 2 else 0.001
                total += (1 - math.sqrt(qg * qa)) * wt
                den += wt
            if gf[i, j] > ga[i, j] and gf[i, j] > gb[i, j]:
                num += total
    return num / den


# --- input handling --------------------------------------------------------------------------------------


def test_names_and_directions() -> None:
    assert METRIC_NAMES[:11] == ("EN", "SD", "SF", "AG", "MI", "SCD", "CC", "PSNR", "VIF", "Qabf", "SSIM")
    assert set(HIGHER_IS_BETTER) == set(METRIC_NAMES)
    assert HIGHER_IS_BETTER["Nabf"] is False
    assert all(HIGHER_IS_BETTER[n] for n in METRIC_NAMES if n != "Nabf")
    f, a, b = _smooth(1), _smooth(2), _smooth(3)
    assert list(fusion_metrics(f, a, b)) == list(METRIC_NAMES)
    assert list(fusion_metrics(f, a, b, names=["SSIM", "EN"])) == ["SSIM", "EN"]


def test_to_gray_bt601_like_opencv() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    gray = to_gray(rgb)
    assert gray.dtype == np.float64 and gray.shape == (50, 60)
    assert np.array_equal(gray, np.round(gray))
    exact = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray - exact).max() <= 0.5 + 0.01  # nearest integer (OpenCV's 15-bit fixed-point weights)
    assert to_gray(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)).tolist() == [[76, 150, 29]]
    cv2 = pytest.importorskip("cv2")
    many = np.random.default_rng(1).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)  # ~6% of all colours
    assert np.array_equal(to_gray(many), cv2.cvtColor(many[..., ::-1].copy(), cv2.COLOR_BGR2GRAY))


def test_to_gray_float_and_gray_inputs() -> None:
    u8 = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(to_gray(u8.astype(np.float32) / 255), to_gray(u8))
    assert np.array_equal(to_gray(u8[..., 0]), u8[..., 0].astype(np.float64))
    assert np.array_equal(to_gray(u8[..., :1]), u8[..., 0].astype(np.float64))
    assert np.array_equal(to_gray(np.stack([u8[..., 0]] * 3, axis=2)), u8[..., 0].astype(np.float64))
    assert to_gray(np.array([[0.5, 1.0005, -0.001]])).tolist() == [[128.0, 255.0, 0.0]]  # clipped, half up


@pytest.mark.parametrize(
    ("img", "match"),
    [
        (np.zeros((4, 4, 4), np.uint8), "H×W or H×W×3"),
        (np.zeros((3, 8, 8), np.uint8), "H×W or H×W×3"),
        (np.full((4, 4), 200.0), r"float images must be in \[0, 1\]"),
        (np.full((4, 4), np.nan), "NaN or Inf"),
        (np.full((4, 4), 300, np.int32), "0..255"),
        (np.full((4, 4), "a"), "dtype"),
    ],
)
def test_bad_inputs(img: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        to_gray(img)


def test_mismatched_sizes() -> None:
    a, b = _smooth(1, (32, 40)), _smooth(2, (32, 40))
    with pytest.raises(ValueError, match=r"same height and width: fused is 32×41, ir is 32×40, vis is 32×40"):
        fusion_metrics(_smooth(3, (32, 41)), a, b)
    rgb = np.repeat(_smooth(3, (32, 40))[..., None], 3, axis=2)
    assert fusion_metrics(rgb, a, b, names=["EN"])["EN"] > 0  # RGB vs gray of the same size is fine
    with pytest.raises(ValueError, match="unknown metric"):
        fusion_metrics(a, a, b, names=["EN", "QABF"])


# --- single-image metrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 97, 255])
def test_constant_image(level: int) -> None:
    f = np.full((24, 24), level, np.uint8)
    got = fusion_metrics(f, _smooth(1, (24, 24)), _smooth(2, (24, 24)), names=["EN", "SD", "SF", "AG"])
    assert got == {"EN": 0.0, "SD": 0.0, "SF": 0.0, "AG": 0.0}


def test_entropy_two_levels() -> None:
    f = np.zeros((8, 8), np.uint8)
    f[:, 4:] = 255
    assert _one("EN", f, f, f) == pytest.approx(1.0, abs=1e-12)
    f[:, 2:] = 40  # 1/4 at 0, 3/4 at 40
    assert _one("EN", f, f, f) == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)), abs=1e-12)
    f = np.arange(256, dtype=np.uint8).reshape(16, 16)  # uniform over 256 levels
    assert _one("EN", f, f, f) == pytest.approx(8.0, abs=1e-12)


def test_sf_ag_ramps_and_step() -> None:
    i, j = np.mgrid[0:10, 0:12]
    ramp = (3 * j).astype(np.uint8)  # +3 per column
    assert _one("SF", ramp, ramp, ramp) == pytest.approx(3.0)
    assert _one("AG", ramp, ramp, ramp) == pytest.approx(3.0 / math.sqrt(2))
    ramp2 = (3 * j + 4 * i).astype(np.uint8)
    assert _one("SF", ramp2, ramp2, ramp2) == pytest.approx(5.0)
    assert _one("AG", ramp2, ramp2, ramp2) == pytest.approx(5.0 / math.sqrt(2))
    step = np.zeros((4, 10), np.uint8)
    step[:, 5:] = 100  # one jump of 100 per row among 9 horizontal differences
    assert _one("SF", step, step, step) == pytest.approx(100.0 / 3.0)
    # central differences at columns 4 and 5 are 50, everything else 0
    assert _one("AG", step, step, step) == pytest.approx(2 / 10 * 50 / math.sqrt(2))


def test_sd_is_population_std() -> None:
    f = np.array([[0, 0], [100, 100]], np.uint8)
    assert _one("SD", f, f, f) == pytest.approx(50.0)


# --- pair metrics -----------------------------------------------------------------------------------------


def test_mi_of_identical_images_is_entropy_in_nats() -> None:
    f = _smooth(4)
    en_bits = _one("EN", f, f, f)
    assert _one("MI", f, f, f) == pytest.approx(2 * en_bits * math.log(2), rel=1e-12)
    assert _one("MI", f, f, np.full_like(f, 9)) == pytest.approx(en_bits * math.log(2), rel=1e-12)


def test_mi_matches_sklearn() -> None:
    skm = pytest.importorskip("sklearn.metrics")
    f, a, b = _smooth(5), _smooth(6), (_smooth(5).astype(int) // 2 + _smooth(7) // 2).astype(np.uint8)
    expected = skm.mutual_info_score(f.ravel(), a.ravel()) + skm.mutual_info_score(f.ravel(), b.ravel())
    assert _one("MI", f, a, b) == pytest.approx(expected, rel=1e-10)


def test_cc_scd_orthogonal_sources() -> None:
    # A = 2X, B = 2Y with X, Y zero-mean ±20 patterns that are orthogonal; F = X + Y = (A + B) / 2 exactly
    i, j = np.mgrid[0:8, 0:8]
    x, y = 100 + 20 * (-1) ** j, 100 + 20 * (-1) ** i
    a, b, f = (2 * x).astype(np.uint8), (2 * y).astype(np.uint8), (x + y).astype(np.uint8)
    got = fusion_metrics(f, a, b, names=["CC", "SCD"])
    assert got["CC"] == pytest.approx(1 / math.sqrt(2), rel=1e-12)
    assert got["SCD"] == pytest.approx(math.sqrt(2), rel=1e-12)
    assert fusion_metrics(f, b, a, names=["CC", "SCD"]) == pytest.approx(got, rel=1e-12)  # symmetric in A, B


def test_cc_of_anticorrelated_sources() -> None:
    a = _smooth(8)
    b = 255 - a
    assert _one("CC", a, a, b) == pytest.approx(0.0, abs=1e-12)  # (1 + (-1)) / 2
    assert _one("CC", a, a, a) == pytest.approx(1.0, rel=1e-12)
    assert math.isnan(_one("CC", a, np.full_like(a, 3), a))  # Pearson with a flat image is undefined


def test_psnr_by_hand() -> None:
    f = np.array([[10, 20], [30, 40]], np.uint8)
    a = f + np.array([[1, 0], [0, 0]], np.uint8)  # mean squared error 1/4
    b = f + np.array([[0, 2], [0, 0]], np.uint8)  # mean squared error 4/4
    assert _one("PSNR", f, a, b) == pytest.approx(10 * math.log10(40**2 / ((0.25 + 1.0) / 2)), rel=1e-12)
    assert _one("PSNR", f, f, f) == math.inf


def test_vif_self_is_one_and_matches_reference() -> None:
    a, b, f = _smooth(10, (64, 80)), _smooth(11, (64, 80), sigma=3), _smooth(12, (64, 80))
    ga, gb, gf = to_gray(a), to_gray(b), to_gray(f)
    assert metrics.vif(ga, ga) == pytest.approx(1.0, rel=1e-9)  # g = σ²/(σ² + eps), not exactly 1
    assert _one("VIF", a, a, a) == pytest.approx(2.0, rel=1e-9)
    assert metrics.vif(ga, gf) == pytest.approx(_vif_reference(ga, gf), rel=1e-9)
    expected = _vif_reference(ga, gf) + _vif_reference(gb, gf)
    assert _one("VIF", f, a, b) == pytest.approx(expected, rel=1e-9)
    blurred = np.round(ndimage.uniform_filter(ga, 5))
    assert 0 < metrics.vif(ga, blurred) < 1  # losing detail loses information


def test_vif_flat_reference_is_one_and_small_images_fail() -> None:
    flat = np.full((40, 40), 50.0)
    assert metrics.vif(flat, flat) == 1.0  # 0/0 -> NaN -> 1.0, as specified
    small = np.zeros((16, 40), np.uint8)
    with pytest.raises(ValueError, match="VIF needs images of at least 17×17"):
        _one("VIF", small, small, small)


def test_qabf_fused_equals_one_source_other_zero() -> None:
    a = np.zeros((20, 24), np.uint8)
    a[5:15, 6:18] = 120
    a[8:12, 9:13] = 200  # every non-zero Sobel magnitude is >= 80
    expected = 0.9994 * 0.9879 / (1 + math.exp(-22 * 0.2))  # G = gF >= 1 saturates Qg; angle term at 1
    assert _one("Qabf", a, a, np.zeros_like(a)) == pytest.approx(expected, rel=1e-12)
    assert _one("Qabf", a, np.zeros_like(a), a) == pytest.approx(expected, rel=1e-12)


def test_qabf_matches_reference() -> None:
    a, b, f = _smooth(13), _smooth(14), _smooth(15, sigma=1)
    ga, gb, gf = to_gray(a), to_gray(b), to_gray(f)
    assert _one("Qabf", f, a, b) == pytest.approx(_qabf_reference(gf, ga, gb), rel=1e-12)
    assert 0 < _one("Qabf", f, a, b) < _one("Qabf", a, a, b) < 1


def test_ssim_self_is_one_per_term() -> None:
    f = _smooth(16)
    assert metrics.ssim(to_gray(f), to_gray(f), data_range=2.0, gaussian=False) == pytest.approx(
        1.0, abs=1e-12
    )
    assert _one("SSIM", f, f, f) == pytest.approx(2.0, abs=1e-12)
    assert _one("SSIM", f, f, 255 - f) < 1.0


def test_ssim_matches_skimage() -> None:
    skm = pytest.importorskip("skimage.metrics")
    a, f = to_gray(_smooth(17)), to_gray(_smooth(18, sigma=1))
    ours = metrics.ssim(f, a, data_range=2.0, gaussian=False)
    theirs = skm.structural_similarity(
        f, a, win_size=7, data_range=2.0, use_sample_covariance=True, gaussian_weights=False
    )
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert _one("SSIM", f.astype(np.uint8), a.astype(np.uint8), f.astype(np.uint8)) == pytest.approx(
        1 + theirs
    )
    gauss = skm.structural_similarity(
        f, a, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert metrics.ssim(f, a, data_range=255.0, gaussian=True) == pytest.approx(gauss, rel=1e-12)


def test_entropy_matches_skimage() -> None:
    skmeasure = pytest.importorskip("skimage.measure")
    f = _smooth(19)
    assert _one("EN", f, f, f) == pytest.approx(skmeasure.shannon_entropy(f, base=2), rel=1e-12)


def test_nabf_matches_shreyamsha_kumar_reference() -> None:
    a, b = _smooth(20, (12, 15), sigma=1), _smooth(21, (12, 15), sigma=1)
    f = np.clip(a.astype(int) // 2 + b // 2 + np.random.default_rng(0).integers(-30, 30, a.shape), 0, 255)
    f = f.astype(np.uint8)
    ga, gb, gf = to_gray(a), to_gray(b), to_gray(f)
    got = _one("Nabf", f, a, b)
    assert got == pytest.approx(_nabf_reference(gf, ga, gb), rel=1e-12)
    assert got > 1e-3  # added noise creates edges stronger than both sources
    assert _one("Nabf", a, a, a) == 0.0  # no edge of F is stronger than the sources'


def test_float_and_uint8_inputs_agree() -> None:
    f, a = _smooth(22), _smooth(23)
    b = np.stack([_smooth(24), _smooth(25), _smooth(26)], axis=2)
    as_float = fusion_metrics(
        f.astype(np.float32) / 255, a.astype(np.float64) / 255, b.astype(np.float32) / 255
    )
    assert as_float == fusion_metrics(f, a, b)


# --- drift and relative change ----------------------------------------------------------------------------


def test_drift_identical() -> None:
    ref = np.random.default_rng(2).random((32, 40, 3)).astype(np.float32)
    got = drift_metrics(ref, ref.copy())
    assert got == {
        "max_abs": 0.0,
        "mean_abs": 0.0,
        "p99_abs": 0.0,
        "psnr": math.inf,
        "ssim": 1.0,
        "nonfinite": 0,
    }


def test_drift_known_offset_and_uint8() -> None:
    ref = np.full((20, 20, 3), 100, np.uint8)
    out = ref.copy()
    out[0, 0, 0] = 110  # one value off by 10 out of 1200
    got = drift_metrics(ref, out)
    assert got["max_abs"] == 10.0
    assert got["mean_abs"] == pytest.approx(10 / 1200)
    assert got["p99_abs"] == 0.0
    assert got["psnr"] == pytest.approx(10 * math.log10(255**2 / (100 / 1200)))
    shifted = drift_metrics(ref.astype(np.float32) / 255, ref.astype(np.float32) / 255 + 0.5 / 255)
    assert shifted["max_abs"] == pytest.approx(0.5, rel=1e-5)  # unrounded: half a grey level shows
    assert shifted["psnr"] == pytest.approx(10 * math.log10(255**2 / 0.25), rel=1e-5)


def test_drift_psnr_matches_skimage() -> None:
    skm = pytest.importorskip("skimage.metrics")
    ref, out = _smooth(27, (40, 48, 3)), _smooth(28, (40, 48, 3))
    got = drift_metrics(ref, out)
    assert got["psnr"] == pytest.approx(skm.peak_signal_noise_ratio(ref, out, data_range=255), rel=1e-12)
    expected_ssim = skm.structural_similarity(
        to_gray(ref),
        to_gray(out),
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert got["ssim"] == pytest.approx(expected_ssim, rel=1e-12)


def test_drift_counts_nonfinite() -> None:
    ref = np.random.default_rng(3).random((16, 16, 3)).astype(np.float32)
    out = ref.copy()
    out[0, 0, 0], out[1, 2, 1], out[5, 5, 2] = np.nan, np.inf, -np.inf
    got = drift_metrics(ref, out)
    assert got["nonfinite"] == 3
    assert all(math.isnan(got[k]) for k in ("max_abs", "mean_abs", "p99_abs", "psnr", "ssim"))
    with pytest.raises(ValueError, match="ref: reference output has NaN"):
        drift_metrics(out, ref)
    with pytest.raises(ValueError, match="same shape"):
        drift_metrics(ref, ref[:8])


def test_relative_change() -> None:
    ref = {
        "EN": 7.0,
        "SD": 40.0,
        "SCD": -0.5,
        "Z": 0.0,
        "W": 0.0,
        "P": math.inf,
        "name": "x",
        "only_ref": 1.0,
    }
    out = {"EN": 6.93, "SD": 44.0, "SCD": -0.25, "Z": 0.0, "W": -1.0, "P": 30.0, "name": "y"}
    got = relative_change(ref, out)
    assert got["EN"] == pytest.approx(-1.0)
    assert got["SD"] == pytest.approx(10.0)
    assert got["SCD"] == pytest.approx(50.0)  # signed against |ref|: SCD went up
    assert got["Z"] == 0.0 and got["W"] == -math.inf and math.isnan(got["P"])
    assert "name" not in got and "ref" not in got


def test_mean_metrics() -> None:
    assert mean_metrics([{"EN": 1.0, "SD": 2.0}, {"EN": 3.0, "SD": 6.0}]) == {"EN": 2.0, "SD": 4.0}
    assert mean_metrics([]) == {}


# --- a real pair ------------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_pair_mean_fusion_is_plausible(roadscene: Path) -> None:
    from edgefuse.data import find_pairs

    folder = find_pairs(roadscene)
    stem = "FLIR_00060" if any(p.stem == "FLIR_00060" for p in folder.pairs) else folder.pairs[0].stem
    vis, ir = folder[[p.stem for p in folder.pairs].index(stem)]
    fused = (vis + ir[..., None]) / 2
    start = time.perf_counter()
    got = fusion_metrics(fused, ir, vis)
    print(
        f"{stem} {vis.shape[1]}×{vis.shape[0]}: all metrics in {time.perf_counter() - start:.3f} s"
    )  # not asserted
    assert 5 < got["EN"] < 8
    assert 10 < got["SD"] < 80
    assert 2 < got["SF"] < 30 and 1 < got["AG"] < 15
    assert 0.5 < got["MI"] < 6
    assert 0.0 < got["CC"] < 1.0 and 0.0 < got["SCD"] < 2.0
    assert 8 < got["PSNR"] < 30
    assert 0.2 < got["VIF"] < 1.5
    assert 0.2 < got["Qabf"] < 0.8
    assert 0.5 < got["SSIM"] < 2.0
    # averaging never makes an edge stronger than both sources (|∇(A+B)/2| <= max): only rounding remains
    assert 0.0 <= got["Nabf"] < 0.01
