"""Fusion-quality metrics (convention A of ../shared/docs/metrics.md) and drift metrics between two outputs.

Fusion metrics score a fused image F against its sources A (infrared) and B (visible); every image goes
through :func:`to_gray` first (8-bit, BT.601 as OpenCV's BGR2GRAY, float64 in [0, 255]); F is never min-max
stretched. Drift metrics compare two fused outputs of the same inputs (an exported model vs the fp32 torch
reference). Everything is vectorised numpy/scipy; a 480×640 pair scores all metrics in a fraction of a second.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage

from edgefuse.color import BT601_Q15

METRIC_NAMES = ("EN", "SD", "SF", "AG", "MI", "SCD", "CC", "PSNR", "VIF", "Qabf", "SSIM", "Nabf")
HIGHER_IS_BETTER: dict[str, bool] = {name: name != "Nabf" for name in METRIC_NAMES}
DRIFT_NAMES: tuple[str, ...] = ("max_abs", "mean_abs", "p99_abs", "psnr", "ssim", "nonfinite")
DRIFT_HIGHER_IS_BETTER: dict[str, bool] = {name: name in ("psnr", "ssim") for name in DRIFT_NAMES}

_EPS = 1e-10  # VIF eps
_SIGMA_NSQ = 2.0  # VIF noise variance
# BT.601 exactly as OpenCV (4.x/5.x) rounds BGR2GRAY for 8-bit: (R*9798 + G*19235 + B*3735 + 2**14) >> 15
_GRAY_WEIGHTS = np.array(BT601_Q15, dtype=np.int64)


# --- input handling -------------------------------------------------------------------------------------


def _to_uint8(img: np.ndarray, name: str, clip: bool = False) -> np.ndarray:
    """uint8 H×W or H×W×3; floats quantized as edgefuse.inference.to_uint8 does (clip, ×255, +0.5, floor)."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or arr.size == 0:
        raise ValueError(f"{name}: expected an H×W or H×W×3 image, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: image has NaN or Inf values")
        # a float image far outside [0, 1] is almost surely 0..255 data passed as float
        if not clip and (arr.min() < -0.5 or arr.max() > 1.5):
            raise ValueError(
                f"{name}: float images must be in [0, 1], got [{arr.min():.4g}, {arr.max():.4g}] "
                "(pass uint8 for 0..255 data)"
            )
        return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.dtype != np.uint8 and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"{name}: integer images must be in 0..255, got [{arr.min()}, {arr.max()}]")
        return arr.astype(np.uint8, copy=False)
    raise ValueError(f"{name}: unsupported dtype {arr.dtype} (use uint8 or float in [0, 1])")


def _gray(img: np.ndarray, name: str, clip: bool = False) -> np.ndarray:
    u8 = _to_uint8(img, name, clip)
    if u8.ndim == 2:
        return u8.astype(np.float64)
    gray = (u8.astype(np.int64) @ _GRAY_WEIGHTS + (1 << 14)) >> 15
    return gray.astype(np.float64)


def to_gray(img: np.ndarray) -> np.ndarray:
    """float64 H×W in [0, 255] with integer values: the image read as 8-bit, then BT.601 gray as OpenCV does.

    Accepts uint8 (or other integer arrays in 0..255) and float in [0, 1], RGB H×W×3 or gray H×W (H×W×1).
    """
    return _gray(img, "image")


def _same_size(**images: np.ndarray) -> None:
    shapes = {name: img.shape[:2] for name, img in images.items()}
    if len(set(shapes.values())) > 1:
        sizes = ", ".join(f"{name} is {h}×{w}" for name, (h, w) in shapes.items())
        raise ValueError(f"images must have the same height and width: {sizes} (H×W)")


def _min_size(img: np.ndarray, size: int, metric: str) -> None:
    if min(img.shape) < size:
        h, w = img.shape
        raise ValueError(f"{metric} needs images of at least {size}×{size}, got {h}×{w}")


# --- single-image metrics -------------------------------------------------------------------------------


def entropy(f: np.ndarray) -> float:
    hist = np.bincount(np.round(f).astype(np.uint8).ravel(), minlength=256) / f.size
    hist = hist[hist > 0]
    return 0.0 - float((hist * np.log2(hist)).sum())  # 0.0 - 0.0 avoids a -0.0 for flat images


def spatial_frequency(f: np.ndarray) -> float:
    _min_size(f, 2, "SF")
    return float(np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2)))


def average_gradient(f: np.ndarray) -> float:
    _min_size(f, 2, "AG")
    gy, gx = np.gradient(f)  # central differences inside, one-sided at the borders
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2.0)))


# --- pair metrics -------------------------------------------------------------------------------------


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    return float((dx * dy).sum()) / den if den > 0 else math.nan  # Pearson is undefined for a flat image


def mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """MI in nats from the joint histogram of integer grey levels, as sklearn.metrics.mutual_info_score."""
    joint = np.bincount((x.astype(np.int64) * 256 + y.astype(np.int64)).ravel(), minlength=256 * 256)
    p = joint.reshape(256, 256) / x.size
    px, py = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mi = (p[nz] * (np.log(p[nz]) - np.log(np.outer(px, py)[nz]))).sum()
    return float(max(mi, 0.0))  # sklearn clips tiny negative round-off at 0


def psnr_sources(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    mse = (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2.0
    if mse == 0:
        return math.inf
    with np.errstate(divide="ignore"):  # an all-black F gives -inf, as the formula says
        return float(10.0 * np.log10(f.max() ** 2 / mse))


# --- VIF (LIVE vifp, multi-scale, pixel domain) --------------------------------------------------------


def _vif_window(n: int) -> np.ndarray:
    sd = n / 5.0
    x = np.arange(n) - (n - 1) / 2.0
    h = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2.0 * sd * sd))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0.0
    return h / h.sum()


_VIF_WINDOWS = [_vif_window(2 ** (5 - s) + 1) for s in range(1, 5)]


def _valid_filter(img: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Correlation with ``win`` keeping only the 'valid' part (convolve2d(img, rot90(win, 2), 'valid'))."""
    n = win.shape[0]
    r = (n - 1) // 2
    h, w = img.shape
    if h < n or w < n:
        return np.empty((max(h - n + 1, 0), max(w - n + 1, 0)))
    if np.all(win > 0):  # nothing was zeroed: the normalised Gaussian is exactly separable
        k = win.sum(axis=1)
        out = ndimage.correlate1d(img, k, axis=0, mode="nearest")[r : h - r]
        return ndimage.correlate1d(out, k, axis=1, mode="nearest")[:, r : w - r]
    return ndimage.correlate(img, win, mode="nearest")[r : h - r, r : w - r]


def _vif_prepare(img: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(image, local mean, local variance) at each of the four scales; shared when F is scored twice."""
    scales = []
    for scale, win in enumerate(_VIF_WINDOWS, start=1):
        if scale > 1:  # cumulative: filter ('valid') and subsample the previous scale
            img = _valid_filter(img, win)[::2, ::2]
        mu = _valid_filter(img, win)
        scales.append((img, mu, _valid_filter(img * img, win) - mu * mu))
    return scales


def _vif_from(ref: list, dist: list) -> float:
    num = den = 0.0
    for (x, mu1, s1), (y, mu2, s2), win in zip(ref, dist, _VIF_WINDOWS, strict=True):
        if mu1.size == 0:  # image smaller than the window: 'valid' is empty and adds nothing
            continue
        s12 = _valid_filter(x * y, win) - mu1 * mu2
        g = s12 / (s1 + _EPS)
        sv = s2 - g * s12
        low1 = s1 < _EPS
        g, sv, s1 = np.where(low1, 0.0, g), np.where(low1, s2, sv), np.where(low1, 0.0, s1)
        low2 = s2 < _EPS
        g, sv = np.where(low2, 0.0, g), np.where(low2, 0.0, sv)
        neg = g < 0
        g, sv = np.where(neg, 0.0, g), np.where(neg, s2, sv)
        sv = np.maximum(sv, _EPS)
        num += float(np.log10(1.0 + g * g * s1 / (sv + _SIGMA_NSQ)).sum())
        den += float(np.log10(1.0 + s1 / _SIGMA_NSQ).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.float64(num) / np.float64(den)
    return 1.0 if math.isnan(value) else float(value)


def vif(ref: np.ndarray, dist: np.ndarray) -> float:
    """vifp_mscale(ref, dist) as specified in metrics.md (the LIVE/CDDFuse pixel-domain multi-scale VIF)."""
    _min_size(ref, 17, "VIF")
    return _vif_from(_vif_prepare(ref), _vif_prepare(dist))


def _vif_sum(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    _min_size(f, 17, "VIF")
    pf = _vif_prepare(f)
    return _vif_from(_vif_prepare(a), pf) + _vif_from(_vif_prepare(b), pf)


# --- Qabf (Xydeas-Petrović, CDDFuse form) --------------------------------------------------------------

_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
_SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64)


def _qabf_edges(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx = ndimage.convolve(img, _SOBEL_X, mode="constant", cval=0.0)  # true convolution, zero padding
    sy = ndimage.convolve(img, _SOBEL_Y, mode="constant", cval=0.0)
    g = np.sqrt(sx * sx + sy * sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(sx == 0, np.pi / 2, np.arctan(sy / sx))
    return g, alpha


def _qabf_q(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(g_x > g_f, g_f / g_x, g_x / g_f)
    strength = np.where(g_x == g_f, g_f, ratio)  # metrics.md (and CDDFuse): equal strengths -> gF
    angle = 1.0 - np.abs(a_x - a_f) / (np.pi / 2)
    q_g = 0.9994 / (1.0 + np.exp(-15.0 * (strength - 0.5)))
    q_a = 0.9879 / (1.0 + np.exp(-22.0 * (angle - 0.8)))
    return q_g * q_a


def qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    (g_a, a_a), (g_b, a_b), (g_f, a_f) = _qabf_edges(a), _qabf_edges(b), _qabf_edges(f)
    num = (_qabf_q(g_a, a_a, g_f, a_f) * g_a + _qabf_q(g_b, a_b, g_f, a_f) * g_b).sum()
    den = (g_a + g_b).sum()
    return float(num / den) if den > 0 else math.nan


# --- Nabf (Shreyamsha Kumar's modified fusion-artifact measure) ----------------------------------------
# Follows objective_fusion_perform_fn.m / sobel_fn.m / per_extn_im_fn.m by B. K. Shreyamsha Kumar (2011):
# Sobel/8 by correlation on a mirror-extended image, Petrović's sigmoid parameters, weights g^1.5 above 2.

_NABF_V = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64) / 8.0
_NABF_H = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64) / 8.0


def _nabf_edges(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ext = np.pad(img, 1, mode="reflect")  # per_extn_im_fn: mirror without repeating the edge
    gv = ndimage.correlate(ext, _NABF_V)[1:-1, 1:-1]
    gh = ndimage.correlate(ext, _NABF_H)[1:-1, 1:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.where(gh == 0, np.sign(gv) * (np.pi / 2), np.arctan(gv / gh))  # MATLAB atan(±Inf)
    return np.sqrt(gh * gh + gv * gv), angle


def _nabf_q(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = np.where(g_x > g_f, g_f / g_x, g_x / g_f)
    strength = np.where((g_x == 0) | (g_f == 0), 0.0, strength)
    angle = np.abs(np.abs(a_x - a_f) - np.pi / 2) * 2 / np.pi
    q_g = 0.9999 / (1.0 + np.exp(-19.0 * (strength - 0.5)))
    q_a = 0.9995 / (1.0 + np.exp(-22.0 * (angle - 0.5)))
    return np.sqrt(q_g * q_a)


def nabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    _min_size(f, 2, "Nabf")
    (g_a, a_a), (g_b, a_b), (g_f, a_f) = _nabf_edges(a), _nabf_edges(b), _nabf_edges(f)
    w_a = np.where(g_a >= 2.0, g_a**1.5, 0.001)
    w_b = np.where(g_b >= 2.0, g_b**1.5, 0.001)
    artifact = (g_f > g_a) & (g_f > g_b)
    loss = (1.0 - _nabf_q(g_a, a_a, g_f, a_f)) * w_a + (1.0 - _nabf_q(g_b, a_b, g_f, a_f)) * w_b
    return float((loss * artifact).sum() / (w_a + w_b).sum())


# --- SSIM -----------------------------------------------------------------------------------------------


def _ssim_window(gaussian: bool) -> tuple[Callable[[np.ndarray], np.ndarray], int, float]:
    """(filter, window size, covariance factor) of skimage.metrics.structural_similarity."""
    if gaussian:  # Wang et al. 2004: 11×11 Gaussian σ=1.5, population covariance
        return (lambda z: ndimage.gaussian_filter(z, sigma=1.5, truncate=3.5, mode="reflect")), 11, 1.0
    # convention A: 7×7 uniform window, sample covariance
    return (lambda z: ndimage.uniform_filter(z, size=7, mode="reflect")), 7, 49.0 / 48.0


def _ssim_prepare(x: np.ndarray, gaussian: bool) -> tuple[np.ndarray, np.ndarray]:
    filt, win, cov_norm = _ssim_window(gaussian)
    _min_size(x, win, "SSIM")
    mu = filt(x)
    return mu, cov_norm * (filt(x * x) - mu * mu)


def _ssim_from(
    x: np.ndarray, y: np.ndarray, px: tuple, py: tuple, data_range: float, gaussian: bool
) -> float:
    """Mean SSIM map with the border of half a window cropped, as skimage does."""
    filt, win, cov_norm = _ssim_window(gaussian)
    (ux, vx), (uy, vy) = px, py
    vxy = cov_norm * (filt(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(x: np.ndarray, y: np.ndarray, data_range: float, gaussian: bool) -> float:
    """Single SSIM; gaussian=False with data_range=2 is one convention-A term, True/255 the drift SSIM."""
    px, py = _ssim_prepare(x, gaussian), _ssim_prepare(y, gaussian)
    return _ssim_from(x, y, px, py, data_range, gaussian)


def _ssim_sum(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    pf = _ssim_prepare(f, gaussian=False)
    terms = (_ssim_from(f, x, pf, _ssim_prepare(x, False), 2.0, False) for x in (a, b))
    return float(sum(terms))


# --- public API -----------------------------------------------------------------------------------------

_Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]
_FUSION: dict[str, _Metric] = {
    "EN": lambda f, a, b: entropy(f),
    "SD": lambda f, a, b: float(np.std(f)),
    "SF": lambda f, a, b: spatial_frequency(f),
    "AG": lambda f, a, b: average_gradient(f),
    "MI": lambda f, a, b: mutual_information(f, a) + mutual_information(f, b),
    "SCD": lambda f, a, b: _corr(f - b, a) + _corr(f - a, b),
    "CC": lambda f, a, b: (_corr(a, f) + _corr(b, f)) / 2.0,
    "PSNR": psnr_sources,
    "VIF": _vif_sum,  # VIF(A→F) + VIF(B→F)
    "Qabf": qabf,
    "SSIM": _ssim_sum,  # SSIM(F, A) + SSIM(F, B)
    "Nabf": nabf,
}


def fusion_metrics(
    fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, names: Sequence[str] | None = None
) -> dict[str, float]:
    """Convention-A metrics of ``fused`` (F) against ``ir`` (A) and ``vis`` (B), keyed in ``names`` order."""
    wanted = tuple(METRIC_NAMES if names is None else names)
    unknown = [n for n in wanted if n not in _FUSION]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRIC_NAMES)}")
    f, a, b = _gray(fused, "fused"), _gray(ir, "ir"), _gray(vis, "vis")
    _same_size(fused=f, ir=a, vis=b)
    return {name: _FUSION[name](f, a, b) for name in wanted}


def _to_8bit_units(img: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64) * 255.0  # not rounded or clipped: drift below one grey level shows
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64)
    raise ValueError(f"{name}: unsupported dtype {arr.dtype} (use uint8 or float in [0, 1])")


def drift_metrics(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """Per-pixel drift of ``out`` from ``ref`` (both fused outputs of the same inputs).

    max/mean/p99 |Δ| in 8-bit units over all values (floats ×255, unrounded) and PSNR with peak 255 on the
    same values; SSIM (Wang et al.: 11×11 Gaussian σ=1.5, K=(0.01, 0.03), data_range 255, population
    covariance, 5-pixel border cropped) on the convention-A gray images; ``nonfinite`` counts NaN/Inf in
    ``out``. PSNR is inf when the outputs are identical. With any non-finite value the other metrics are
    NaN: a broken output has no meaningful drift.
    """
    r, o = _to_8bit_units(ref, "ref"), _to_8bit_units(out, "out")
    if r.shape != o.shape:
        raise ValueError(f"ref and out must have the same shape: ref is {r.shape}, out is {o.shape}")
    if not np.isfinite(r).all():
        raise ValueError("ref: reference output has NaN or Inf values")
    nonfinite = int(np.count_nonzero(~np.isfinite(o)))
    if nonfinite:
        return {**dict.fromkeys(DRIFT_NAMES[:-1], math.nan), "nonfinite": nonfinite}
    d = np.abs(o - r)
    mse = float(np.mean(d * d))
    return {
        "max_abs": float(d.max()),
        "mean_abs": float(d.mean()),
        "p99_abs": float(np.percentile(d, 99)),
        "psnr": 10.0 * math.log10(255.0**2 / mse) if mse > 0 else math.inf,
        "ssim": ssim(_gray(ref, "ref", clip=True), _gray(out, "out", clip=True), 255.0, gaussian=True),
        "nonfinite": 0,
    }


def relative_change(ref: Mapping[str, float], out: Mapping[str, float]) -> dict[str, float]:
    """Signed change of each metric present in both, in percent of |ref|: 100·(out − ref)/|ref|.

    ref == out == 0 gives 0; ref == 0 otherwise gives ±inf; a non-finite value on either side gives NaN.
    """
    change: dict[str, float] = {}
    for key, r in ref.items():
        if key not in out or isinstance(r, bool) or not isinstance(r, numbers.Real):
            continue
        r, o = float(r), float(out[key])
        if not (math.isfinite(r) and math.isfinite(o)):
            change[key] = math.nan
        elif r == 0:
            change[key] = 0.0 if o == 0 else math.copysign(math.inf, o)
        else:
            change[key] = 100.0 * (o - r) / abs(r)
    return change


def mean_metrics(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per-key mean over several metric dicts (keys of the first row, in its order)."""
    rows = list(rows)
    if not rows:
        return {}
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
