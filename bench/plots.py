"""Report figures as hand-written inline SVG (no plotting library: nothing to install, byte-stable output):
latency distributions with p50/p99, drift vs latency, per-metric deltas; and the colour maps the panels use.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from edgefuse.bench.report import METRIC_ORDER, num

FONT = 'font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif"'
CHAR_W = 6.3  # average glyph width at 11 px, for laying out labels
# inferno (matplotlib's, sampled at 9 points): perceptually uniform, dark = small
INFERNO = (
    np.array(
        [
            [0, 0, 4],
            [31, 12, 72],
            [85, 15, 109],
            [136, 34, 106],
            [186, 54, 85],
            [227, 89, 51],
            [249, 140, 10],
            [249, 201, 50],
            [252, 255, 164],
        ],
        dtype=np.float64,
    )
    / 255.0
)


def colormap(values: np.ndarray, anchors: np.ndarray = INFERNO) -> np.ndarray:
    """Values in [0, 1] -> RGB in [0, 1] by linear interpolation between ``anchors``."""
    x = np.clip(values, 0.0, 1.0) * (len(anchors) - 1)
    lo = np.minimum(np.floor(x).astype(int), len(anchors) - 2)
    t = (x - lo)[..., None]
    return anchors[lo] * (1 - t) + anchors[lo + 1] * t


def diverging(v: float, lim: float) -> str:
    """Blue (negative) - white - red (positive) as an SVG colour."""
    if not math.isfinite(v):
        return "#dddddd"
    t = max(-1.0, min(1.0, v / lim)) if lim > 0 else 0.0
    end = (178, 24, 43) if t > 0 else (33, 102, 172)
    rgb = [round(255 + (e - 255) * abs(t)) for e in end]
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _text(
    x: float, y: float, s: str, size: float = 11, anchor: str = "start", fill: str = "#222", **kw: str
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in kw.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{extra}>'
        f"{_esc(s)}</text>"
    )


def _nice_ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        ticks = []
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
            ticks += [m * 10.0**e for m in (1, 2, 5) if lo <= m * 10.0**e <= hi]
        return ticks
    step = 10 ** math.floor(math.log10((hi - lo) / 4 or 1))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (m * step) <= 6:
            step *= m
            break
    return [t for t in np.arange(math.ceil(lo / step) * step, hi + step / 2, step) if lo <= t <= hi]


def ms(x: float) -> str:
    """Milliseconds for a label: 3 significant digits, never an exponent (2750, not 2.75e+03)."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _scale(lo: float, hi: float, a: float, b: float, log: bool) -> Callable[[float], float]:
    if log:
        llo, lhi = math.log10(lo), math.log10(hi)
        return lambda v: a + (math.log10(max(v, lo)) - llo) / (lhi - llo or 1) * (b - a)
    return lambda v: a + (v - lo) / ((hi - lo) or 1) * (b - a)


def _fmt_tick(v: float) -> str:
    return f"{v:g}" if v == 0 or abs(v) >= 0.01 else f"{v:.1e}"


def _svg(width: float, height: float, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" {FONT}><title>{_esc(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _x_axis(
    body: list[str], ticks: list[float], sx: Callable[[float], float], y0: float, y1: float, label: str
) -> None:
    for t in ticks:
        x = sx(t)
        body.append(f'<line x1="{x:.1f}" y1="{y0:.1f}" x2="{x:.1f}" y2="{y1:.1f}" stroke="#e3e6ea"/>')
        body.append(_text(x, y1 + 14, _fmt_tick(t), 10, "middle", "#555"))
    body.append(
        _text((sx(ticks[0]) + sx(ticks[-1])) / 2 if ticks else 0, y1 + 30, label, 11, "middle", "#333")
    )


def latency_distribution(rows: list[tuple[str, list[float], dict[str, Any]]]) -> str:
    """One line per (label, samples ms, summary): every sample (jittered dots), the quartile box,
    p50 (black bar) and p99 (red diamond), with the values written at the right."""
    rows = [r for r in rows if r[1]]
    if not rows:
        return ""
    left = 16 + CHAR_W * max(len(r[0]) for r in rows)
    width, plot_w, row_h, top = left + 700, 520.0, 30.0, 10.0
    lo = min(min(s) for _, s, _ in rows)
    hi = max(max(s) for _, s, _ in rows)
    log = hi / max(lo, 1e-9) > 20
    lo = max(lo, 1e-6) if log else lo  # a zero sample has no logarithm
    lo, hi = (
        (lo / 1.15, hi * 1.15) if log else (max(0.0, lo - 0.05 * (hi - lo)), hi + 0.05 * (hi - lo) + 1e-9)
    )
    sx = _scale(lo, hi, left, left + plot_w, log)
    height = top + row_h * len(rows) + 42
    body: list[str] = []
    _x_axis(
        body,
        _nice_ticks(lo, hi, log),
        sx,
        top,
        top + row_h * len(rows),
        "latency per call (ms)" + (", log scale" if log else "") + "; box: quartiles, bar: p50, diamond: p99",
    )
    rng = np.random.default_rng(0)
    for i, (label, samples, stats) in enumerate(rows):
        y = top + row_h * (i + 0.5)
        body.append(_text(left - 8, y + 4, label, 11, "end"))
        s = np.asarray(samples, dtype=np.float64)
        for v, j in zip(s, rng.uniform(-6, 6, s.size), strict=True):
            body.append(
                f'<circle cx="{sx(v):.1f}" cy="{y + j:.1f}" r="1.6" fill="#1f77b4" fill-opacity="0.35"/>'
            )
        q1, q3 = np.percentile(s, [25, 75])
        body.append(
            f'<rect x="{sx(q1):.1f}" y="{y - 8:.1f}" width="{max(sx(q3) - sx(q1), 1):.1f}" height="16" '
            'fill="none" stroke="#555" stroke-width="0.9"/>'
        )
        p50, p99 = num(stats.get("p50")), num(stats.get("p99"))
        body.append(
            f'<line x1="{sx(p50):.1f}" y1="{y - 11:.1f}" x2="{sx(p50):.1f}" y2="{y + 11:.1f}" '
            'stroke="#000" stroke-width="2.4"/>'
        )
        x99 = sx(p99)
        body.append(f'<path d="M{x99:.1f} {y - 5:.1f}l5 5l-5 5l-5 -5z" fill="#d62728"/>')
        body.append(_text(left + plot_w + 10, y + 4, f"p50 {ms(p50)} · p99 {ms(p99)} ms", 10.5, fill="#444"))
    return _svg(width, height, body, "latency distribution per platform")


def drift_vs_latency(points: list[tuple[str, float, float]]) -> str:
    """(label, p50 ms, worst-pair PSNR dB); identical outputs (PSNR ∞) sit on a marked line at the top."""
    points = [p for p in points if math.isfinite(p[1]) and p[1] > 0 and not math.isnan(p[2])]
    if not points:
        return ""
    finite = [p[2] for p in points if math.isfinite(p[2])]
    y_top = (max(finite) if finite else 60.0) + 12.0
    y_lo = min(finite) - 5.0 if finite else 0.0
    xs = [p[1] for p in points]
    log = max(xs) / min(xs) > 8  # an outlier (a slow reference) would squash the rest into one corner
    x_lo, x_hi = (min(xs) / 1.3, max(xs) * 1.3) if log else (0.0, max(xs) * 1.12)
    left, width, top = 60.0, 980.0, 30.0
    plot_h = max(330.0, 34.0 * len(points))  # room for every label
    plot_w = width - left - 240
    sx = _scale(x_lo, x_hi, left, left + plot_w, log)
    sy = _scale(y_lo, y_top + 4, top + plot_h, top, False)
    body: list[str] = []
    _x_axis(
        body,
        _nice_ticks(x_lo, x_hi, log),
        sx,
        top,
        top + plot_h,
        "p50 latency (ms), faster to the left" + (", log scale" if log else ""),
    )
    for t in _nice_ticks(y_lo, y_top, False):
        body.append(
            f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + plot_w}" y2="{sy(t):.1f}" stroke="#e3e6ea"/>'
        )
        body.append(_text(left - 6, sy(t) + 4, _fmt_tick(t), 10, "end", "#555"))
    body.append(
        _text(
            14,
            top + plot_h / 2,
            "worst-pair PSNR vs reference (dB)",
            11,
            "middle",
            "#333",
            transform=f"rotate(-90 14 {top + plot_h / 2:.1f})",
        )
    )
    if len(finite) < len(points):
        body.append(
            f'<line x1="{left}" y1="{sy(y_top):.1f}" x2="{left + plot_w}" y2="{sy(y_top):.1f}" '
            'stroke="#2ca02c" stroke-dasharray="3 3"/>'
        )
    placed: list[tuple[float, float, float, float]] = []  # label boxes already drawn
    if len(finite) < len(points):
        legend = "identical outputs (PSNR ∞)"
        body.append(_text(left + 4, sy(y_top) - 6, legend, 10.5, fill="#2ca02c"))
        placed.append((left + 4, sy(y_top) - 16, left + 4 + len(legend) * 6.0, sy(y_top) - 4))
    for label, ms, psnr in sorted(points, key=lambda p: (-p[2], p[1])):
        x, y = sx(ms), sy(psnr if math.isfinite(psnr) else y_top)
        color = "#ff7f0e" if math.isfinite(psnr) else "#2ca02c"
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{color}" stroke="#fff"/>')
        lx, ly = _place(x + 8, y, len(label) * 5.6, placed, top + 10, top + plot_h)
        body.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{lx - 1:.1f}" y2="{ly - 3:.1f}" stroke="#bbb"/>')
        body.append(_text(lx, ly, label, 10))
    return _svg(width, top + plot_h + 42, body, "drift vs latency")


def _place(
    x: float, y: float, w: float, placed: list[tuple[float, float, float, float]], lo: float, hi: float
) -> tuple[float, float]:
    """A label position near (x, y) whose box overlaps no placed one: try offsets above and below."""
    for dy in (-6, 14, -18, 26, -30, 38, -42, 50, -54, 62, -66, 74, -78, 86, -90):
        ly = min(max(y + dy, lo), hi)
        box = (x, ly - 10, x + w, ly + 2)
        if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            placed.append(box)
            return x, ly
    placed.append((x, y - 16, x + w, y - 4))
    return x, y - 6


def metric_deltas(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Heat map: targets × fusion metrics, signed relative change (%) written in each cell."""
    rows = [r for r in rows if r[1]]
    if not rows:
        return ""
    names = [m for m in METRIC_ORDER if any(m in metrics for _, metrics in rows)]
    grid = np.array([[num(metrics.get(m, {}).get("change_pct")) for m in names] for _, metrics in rows])
    gated = grid[:, [n != "Nabf" for n in names]]  # Nabf swings widely and is not gated: not the scale
    finite = np.abs(gated[np.isfinite(gated)])
    lim = max(float(finite.max()) if finite.size else 0.0, 0.05)
    left, cw, ch, top = 16 + CHAR_W * max(len(r[0]) for r in rows), 62.0, 24.0, 22.0
    body = [
        _text(left + cw * (j + 0.5), top - 7, n + ("*" if n == "Nabf" else ""), 10.5, "middle")
        for j, n in enumerate(names)
    ]
    for i, (label, _) in enumerate(rows):
        y = top + ch * i
        body.append(_text(left - 8, y + ch / 2 + 4, label, 11, "end"))
        for j in range(len(names)):
            v = grid[i, j]
            body.append(
                f'<rect x="{left + cw * j:.1f}" y="{y:.1f}" width="{cw - 1:.1f}" height="{ch - 1:.1f}" '
                f'fill="{diverging(v, lim)}"/>'
            )
            dark = math.isfinite(v) and abs(v) > 0.6 * lim
            body.append(
                _text(
                    left + cw * (j + 0.5),
                    y + ch / 2 + 4,
                    "-" if not math.isfinite(v) else f"{v:+.2f}",
                    10,
                    "middle",
                    "#fff" if dark else "#222",
                )
            )
    y = top + ch * len(rows) + 16
    body.append(
        _text(
            left,
            y,
            f"% change vs reference; colour scale ±{lim:.3g}%, blue = lower, red = higher; "
            "* Nabf reported, not gated (its value is near zero)",
            10.5,
            fill="#555",
        )
    )
    return _svg(left + cw * len(names) + 20, y + 10, body, "fusion metric deltas")
