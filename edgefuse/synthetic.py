"""Project-made synthetic *registered* visible/thermal night-street pairs, deterministic by seed (numpy only).

Not real data: everything built on these pairs must say "synthetic". The scene is drawn once in shared
geometry (so the two frames are pixel-registered) and rendered twice:

- visible: reflectance × (dim ambient + street-light pools) + emitters (lamps, lit windows, tail lights),
  halo, optional fog (depth-dependent airlight), shot + read noise, a colour cast, sRGB-like gamma;
- thermal: temperatures (cold sky, warm asphalt and facades, hot people and engines; lamps and lit windows
  are *not* warm), a smooth background gradient, optics blur, noise, and a camera-style contrast stretch.

Warm objects are bright in thermal but have dark clothes / paint in the dark, so they are low-contrast in
the visible frame; street lights and lit windows are bright in visible but not in thermal.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAIR_SEED_STRIDE = 1_000_003  # pair i of SyntheticPairs(seed=s) is make_pair(s * stride + i)


@dataclass(frozen=True)
class Scene:
    visible: np.ndarray  # H×W×3 float32 [0, 1]
    thermal: np.ndarray  # H×W float32 [0, 1]
    warm: np.ndarray  # H×W bool: people and vehicles
    lights: np.ndarray  # H×W bool: lamp heads, lit windows, tail lights


# --- drawing helpers ------------------------------------------------------------------------------------


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize (align-corners) of an H×W or H×W×C array."""
    ys, xs = np.linspace(0, img.shape[0] - 1, h), np.linspace(0, img.shape[1] - 1, w)
    y0, x0 = np.minimum(ys.astype(int), img.shape[0] - 2), np.minimum(xs.astype(int), img.shape[1] - 2)
    y0, x0 = np.maximum(y0, 0), np.maximum(x0, 0)
    y1, x1 = np.minimum(y0 + 1, img.shape[0] - 1), np.minimum(x0 + 1, img.shape[1] - 1)
    extra = (None,) * (img.ndim - 2)
    fy, fx = (ys - y0)[(slice(None), None, *extra)], (xs - x0)[(None, slice(None), *extra)]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _box(img: np.ndarray, r: int) -> np.ndarray:
    """Box filter of radius r along axis 0 (cumulative sums, edge padded)."""
    pad = [(r + 1, r)] + [(0, 0)] * (img.ndim - 1)
    c = np.cumsum(np.pad(img, pad, mode="edge"), axis=0, dtype=np.float64)
    return ((c[2 * r + 1 :] - c[: -2 * r - 1]) / (2 * r + 1)).astype(np.float32)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-like blur: three box passes per axis; large sigmas run on a downsampled copy."""
    h, w = img.shape[:2]
    f = max(1, min(int(sigma / 3), h // 4, w // 4))
    small = img if f == 1 else _resize(img, max(2, h // f), max(2, w // f))
    r = round((np.sqrt(4 * (sigma / f) ** 2 + 1) - 1) / 2)
    if r < 1:
        return img
    out = small.astype(np.float32)
    for _ in range(3):
        out = _box(out, r)
    out = np.swapaxes(out, 0, 1)
    for _ in range(3):
        out = _box(out, r)
    out = np.swapaxes(out, 0, 1)
    return out if f == 1 else _resize(out, h, w)


def _noise(rng: np.random.Generator, h: int, w: int, octaves: int = 4, base: int = 4) -> np.ndarray:
    """Fractal value noise in about [-1, 1] (bilinearly upsampled random grids)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        grid = rng.standard_normal((base * 2**o + 1, int(base * 2**o * w / h) + 2)).astype(np.float32)
        out += amp * _resize(grid, h, w)
        total += amp
        amp *= 0.5
    return out / total


Window = tuple[tuple[slice, slice], np.ndarray]  # where a soft mask lives, and the mask there


class _Canvas:
    """Shared geometry: every shape is painted into all layers with the same soft mask."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.albedo = np.zeros((h, w, 3), np.float32)
        self.emit = np.zeros((h, w, 3), np.float32)
        self.temp = np.zeros((h, w), np.float32)
        self.depth = np.ones((h, w), np.float32)  # 0 near .. 1 far, for fog
        self.warm = np.zeros((h, w), np.float32)
        self.lights = np.zeros((h, w), np.float32)

    def window(self, y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice]:
        ys = slice(int(np.clip(np.floor(y0), 0, self.h)), int(np.clip(np.ceil(y1) + 1, 0, self.h)))
        xs = slice(int(np.clip(np.floor(x0), 0, self.w)), int(np.clip(np.ceil(x1) + 1, 0, self.w)))
        return ys, xs

    def rect(
        self, y0: float, y1: float, x0: float, x1: float, radius: float = 0.0, soft: float = 1.0
    ) -> Window:
        y0, y1, x0, x1 = min(y0, y1), max(y0, y1), min(x0, x1), max(x0, x1)
        win = self.window(y0 - soft - 1, y1 + soft + 1, x0 - soft - 1, x1 + soft + 1)
        cy, cx, hy, hx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
        r = min(radius, hy, hx)
        qy, qx = np.abs(self.yy[win] - cy) - hy + r, np.abs(self.xx[win] - cx) - hx + r
        d = np.hypot(np.maximum(qy, 0), np.maximum(qx, 0)) + np.minimum(np.maximum(qy, qx), 0) - r
        return win, np.clip(0.5 - d / max(soft, 1e-3), 0.0, 1.0)

    def ellipse(self, cy: float, cx: float, ry: float, rx: float, soft: float = 1.0) -> Window:
        ry, rx = max(ry, 0.5), max(rx, 0.5)
        win = self.window(cy - ry - soft - 1, cy + ry + soft + 1, cx - rx - soft - 1, cx + rx + soft + 1)
        d = (np.hypot((self.yy[win] - cy) / ry, (self.xx[win] - cx) / rx) - 1.0) * min(ry, rx)
        return win, np.clip(0.5 - d / max(soft, 1e-3), 0.0, 1.0)

    def paint(self, shape: Window, albedo=None, temp=None, emit=None, depth=None, warm=False, light=False):
        """Blend values into every layer under the mask (values: scalars, colours or window-sized arrays)."""
        win, m = shape
        if m.size == 0:
            return
        m3 = m[..., None]
        if albedo is not None:
            self.albedo[win] += (np.asarray(albedo, np.float32) - self.albedo[win]) * m3
        if emit is not None:
            self.emit[win] += (np.asarray(emit, np.float32) - self.emit[win]) * m3
        elif albedo is not None:
            self.emit[win] *= 1 - m3  # an opaque object hides emitters behind it
        if temp is not None:
            self.temp[win] += (np.asarray(temp, np.float32) - self.temp[win]) * m
        if depth is not None:
            self.depth[win] += (np.float32(depth) - self.depth[win]) * m
        self.warm[win] = np.maximum(self.warm[win], m) if warm else self.warm[win] * (1 - m)
        self.lights[win] = np.maximum(self.lights[win], m) if light else self.lights[win] * (1 - m)


# --- the scene ------------------------------------------------------------------------------------------

FULL = (slice(None), slice(None))


def _background(c: _Canvas, rng: np.random.Generator, horizon: float, vx: float, s: float) -> float:
    """Sky, ground, road with markings, a skyline of buildings with windows; returns the road half-slope."""
    h, w, yy, xx = c.h, c.w, c.yy, c.xx
    t = np.clip(yy / max(horizon, 1), 0, 1)[..., None]
    c.emit[:] = (1 - t) * np.array([0.002, 0.003, 0.008]) + t * np.array([0.012, 0.009, 0.007])  # city glow
    c.temp[:] = 0.05 + 0.08 * t[..., 0]
    ground = np.clip(yy - horizon + 0.5, 0, 1)
    below = np.maximum(yy - horizon, 0) / max(h - horizon, 1)
    c.paint((FULL, ground), albedo=(0.09, 0.1, 0.08), temp=0.2 + 0.04 * below, emit=0.0)
    c.depth[:] = np.where(yy >= horizon, 1.0 - np.sqrt(below), 1.0)
    # road: a trapezoid to the vanishing point, asphalt warmer than the verges
    slope = rng.uniform(0.6, 1.1) * w / max(h - horizon, 1) / 2
    half = (yy - horizon) * slope
    road = np.clip(0.5 - (np.abs(xx - vx) - half) / 1.5, 0, 1) * ground
    c.paint((FULL, road), albedo=(0.07, 0.07, 0.07), temp=0.27 + 0.08 * below)
    curb = np.clip(1.2 - np.abs(np.abs(xx - vx) - half) / np.maximum(0.6, 0.02 * half), 0, 1) * ground
    c.paint((FULL, curb), albedo=(0.35, 0.35, 0.33), temp=0.24)
    # dashed centre line, dashes evenly spaced in depth; paint is a little cooler than asphalt
    phase = (h - horizon) / np.maximum(yy - horizon, 0.5) * rng.uniform(1.5, 2.5) + rng.uniform(0, 1)
    dash = (np.abs(xx - vx) < np.maximum(0.4, 0.012 * half)) & (phase % 1.0 < 0.5) & (yy > horizon + 2)
    c.paint((FULL, dash * ground), albedo=(0.55, 0.55, 0.5), temp=0.25)
    # skyline: facades standing on the horizon, with a grid of windows (lit ones emit, none are warm)
    x = -rng.uniform(0, 30) * s
    while x < w:
        bw, top = rng.uniform(40, 150) * s, horizon - rng.uniform(0.08, 0.42) * horizon
        win, m = c.rect(top, horizon + 0.5, x, x + bw, soft=1.0)
        grey = rng.uniform(0.08, 0.2)
        facade = grey * rng.uniform(0.85, 1.1, 3)
        c.paint((win, m), albedo=facade, temp=rng.uniform(0.24, 0.36), emit=0.0, depth=1.0)
        cw, ch = max(3.0, rng.uniform(9, 16) * s), max(3.0, rng.uniform(11, 18) * s)
        lit_table = rng.random((64, 64)) < rng.uniform(0.1, 0.35)
        warmth = rng.uniform(0.4, 1.0, (64, 64))
        wx, wy = xx[win] - x - cw * 0.3, yy[win] - top - ch * 0.4
        ix, iy = (wx // cw).astype(int) % 64, (wy // ch).astype(int) % 64
        pane = ((wx % cw) < cw * 0.55) & ((wy % ch) < ch * 0.55) & (wx > 0) & (wy > 0)
        pane &= (yy[win] < horizon - ch * 0.3) & (xx[win] < x + bw - cw * 0.3)
        c.paint((win, pane * m), albedo=(0.03, 0.03, 0.04), temp=c.temp[win] - 0.04)  # glass: cooler
        glow = np.array([1.0, 0.8, 0.5], np.float32) * (0.9 * warmth[iy, ix])[..., None]
        c.paint((win, pane * lit_table[iy, ix] * m), emit=glow, light=True)
        x += bw + rng.uniform(0, 12) * s
    return slope


def _lamps(c: _Canvas, rng: np.random.Generator, horizon: float, vx: float, slope: float, s: float) -> list:
    """Street lamps on both verges: a cold pole, a bright (not warm) head, and a pool of light below."""
    pools = []
    for side in (-1, 1):
        for depth in np.sort(rng.uniform(0.1, 0.9, rng.integers(1, 3))):
            yb = horizon + depth**1.6 * (c.h - horizon)
            k = (yb - horizon) / max(c.h - horizon, 1)  # perspective scale
            xb = vx + side * ((yb - horizon) * slope + 12 * s * k + 2)
            height, pole_w = max(6.0, 0.95 * c.h * k), max(0.8, 5 * s * k)
            c.paint(c.rect(yb - height, yb, xb - pole_w / 2, xb + pole_w / 2), albedo=0.05, temp=0.2)
            hx, hy = xb - side * 0.12 * height, yb - height
            head = c.ellipse(hy, hx, max(1.0, 0.02 * height), max(1.5, 0.05 * height))
            colour = (1.0, 0.7, 0.35) if rng.random() < 0.6 else (0.85, 0.92, 1.0)
            c.paint(head, albedo=0.1, temp=0.24, emit=np.array(colour) * 4.0, light=True)
            pools.append((yb, hx, 0.12 * height + 2, 0.3 * height + 3, rng.uniform(0.4, 0.9), colour))
    return pools


def _person(c: _Canvas, rng: np.random.Generator, yb: float, xb: float, k: float, depth: float) -> None:
    """Dark clothes (low visible contrast), warm body, warmest face."""
    height = max(6.0, 0.42 * c.h * k)
    clothes = rng.uniform(0.05, 0.12) * rng.uniform(0.8, 1.2, 3)
    body_t, gap = rng.uniform(0.72, 0.82), rng.uniform(0.0, 0.05) * height
    for sign in (-1, 1):
        leg = c.rect(yb - 0.48 * height, yb, xb + sign * gap - 0.07 * height, xb + sign * gap + 0.07 * height)
        c.paint(leg, albedo=clothes * 0.8, temp=body_t - 0.06, depth=depth, warm=True)
    torso = c.rect(
        yb - 0.82 * height, yb - 0.44 * height, xb - 0.13 * height, xb + 0.13 * height, 0.06 * height
    )
    c.paint(torso, albedo=clothes, temp=body_t, depth=depth, warm=True)
    head = c.ellipse(yb - 0.9 * height, xb, 0.075 * height, 0.06 * height, soft=max(0.7, 0.02 * height))
    c.paint(head, albedo=(0.2, 0.15, 0.12), temp=min(1.0, body_t + 0.12), depth=depth, warm=True)


def _car(c: _Canvas, rng: np.random.Generator, yb: float, xb: float, k: float, depth: float) -> None:
    """Seen from behind: warm body, cold glass, hot tyres and exhaust, red tail lights (bright, not hot)."""
    height = max(5.0, 0.3 * c.h * k)
    width, r = height * rng.uniform(1.5, 1.9), 0.12 * height
    paint = rng.uniform(0.03, 0.3) * rng.uniform(0.6, 1.2, 3)
    body = c.rect(yb - 0.62 * height, yb - 0.12 * height, xb - width / 2, xb + width / 2, r)
    c.paint(body, albedo=paint, temp=rng.uniform(0.55, 0.65), depth=depth, warm=True)
    cabin = c.rect(yb - height, yb - 0.55 * height, xb - 0.38 * width, xb + 0.38 * width, 2 * r)
    c.paint(cabin, albedo=paint, temp=0.52, depth=depth, warm=True)
    glass = c.rect(yb - 0.93 * height, yb - 0.62 * height, xb - 0.32 * width, xb + 0.32 * width, r)
    c.paint(glass, albedo=0.03, temp=0.3, depth=depth, warm=True)  # glass mirrors the cold sky
    exhaust = c.ellipse(yb - 0.2 * height, xb + 0.3 * width, 0.08 * height, 0.1 * height, soft=2.0)
    c.paint(exhaust, temp=0.95, warm=True)
    for sign in (-1, 1):
        wx = xb + sign * 0.32 * width
        wheel = c.rect(yb - 0.24 * height, yb, wx - 0.11 * width, wx + 0.11 * width, r)
        c.paint(wheel, albedo=0.02, temp=0.82, depth=depth, warm=True)  # tyres and brakes run hot
        lx = xb + sign * 0.42 * width
        lamp = c.rect(yb - 0.5 * height, yb - 0.4 * height, lx - 0.06 * width, lx + 0.06 * width, 0.3 * r)
        c.paint(lamp, albedo=0.3, emit=(2.5, 0.12, 0.06), temp=0.6, depth=depth, light=True)


def _visible(c: _Canvas, pools: list, ambient: float, gain: float, fog: float, rng: np.random.Generator):
    """Dim ambient + street-light pools on the reflectances, emitters with halo, fog, sensor noise, gamma."""
    illum = np.full((c.h, c.w, 3), ambient, np.float32)
    for yb, hx, sy, sx, power, colour in pools:
        win = c.window(yb - 3 * sy, yb + 3 * sy, hx - 3 * sx, hx + 3 * sx)
        g = np.exp(-((c.yy[win] - yb) ** 2 / (2 * sy**2) + (c.xx[win] - hx) ** 2 / (2 * sx**2)))
        illum[win] += power * 0.5 * g[..., None] * np.asarray(colour, np.float32)
    lin = c.albedo * illum + c.emit
    lin += 0.25 * _blur(c.emit, 0.012 * c.h) + 0.1 * _blur(c.emit, 0.04 * c.h)  # lens halo
    if fog > 0:  # depth-dependent transmission; the airlight glows with the city lights it scatters
        tr = np.exp(-fog * (1.0 + 3.0 * c.depth))[..., None]
        air = fog * np.array([0.05, 0.045, 0.04], np.float32) + 0.4 * fog * _blur(c.emit, 0.06 * c.h)
        lin = lin * tr + air * (1 - tr)
    full_well = rng.uniform(300, 900)  # fewer photons -> more shot noise
    lin = np.maximum(lin * gain, 0)
    lin = (
        lin
        + np.sqrt(lin / full_well) * rng.standard_normal(lin.shape)
        + 0.002 * rng.standard_normal(lin.shape)
    )
    lin = lin * rng.uniform(0.9, 1.1, 3)  # slight colour cast (white balance off at night)
    return (np.clip(lin, 0, 1) ** (1 / 2.2)).astype(np.float32)


def _thermal(c: _Canvas, texture: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Temperatures + smooth gradient, optics blur, noise, then a contrast stretch like a camera's AGC."""
    gy, gx = rng.uniform(-0.08, 0.08, 2)
    temp = c.temp + texture + gy * (c.yy / c.h - 0.5) + gx * (c.xx / c.w - 0.5)
    temp += 0.04 * _noise(rng, c.h, c.w, octaves=2, base=2)
    temp = _blur(temp, 1.3 * s)
    temp += 0.008 * rng.standard_normal(temp.shape) + 0.002 * rng.standard_normal((1, c.w))
    lo, hi = np.percentile(temp, [0.5, 99.8])
    return np.clip(0.04 + 0.92 * (temp - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def make_scene(seed: int, height: int = 480, width: int = 640, fog: float = 0.0) -> Scene:
    """One synthetic night pair with its warm-object and light masks (for tests and demos)."""
    if seed < 0 or height < 8 or width < 8 or not 0.0 <= fog <= 1.0:
        raise ValueError(f"synthetic pairs need seed >= 0, size >= 8×8, 0 <= fog <= 1 (got {seed}, {fog})")
    # separate streams so fog (visible only) never changes the geometry or the thermal frame
    scene_ss, vis_ss, ir_ss = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(scene_ss)
    c = _Canvas(height, width)
    s = float(np.sqrt(height / 480 * width / 640))  # pixel scale of the 640×480 design
    horizon, vx = height * rng.uniform(0.36, 0.5), width * rng.uniform(0.35, 0.65)
    slope = _background(c, rng, horizon, vx, s)
    pools = _lamps(c, rng, horizon, vx, slope, s)
    for d in rng.uniform(0.05, 0.9, rng.integers(2, 7)):  # puddles / manholes: shiny and cool
        yb = horizon + d * (height - horizon)
        r = (yb - horizon) * rng.uniform(0.03, 0.08) + 1
        patch = c.ellipse(yb, vx + rng.uniform(-1, 1) * (yb - horizon) * slope, 0.3 * r, r, soft=1.5)
        c.paint(patch, albedo=rng.uniform(0.02, 0.2), temp=c.temp[patch[0]] - 0.05)
    objects = [("person", d) for d in rng.uniform(0.08, 0.75, rng.integers(2, 6))]
    objects += [("car", d) for d in rng.uniform(0.1, 0.7, rng.integers(1, 4))]
    for kind, d in sorted(objects, key=lambda o: o[1]):  # far to near: nearer objects occlude
        yb = horizon + d**1.4 * (height - horizon)
        k = (yb - horizon) / max(height - horizon, 1)
        half = (yb - horizon) * slope
        if kind == "car":
            _car(c, rng, yb, vx + rng.uniform(-0.7, 0.7) * half, k, 1.0 - np.sqrt(k))
        else:
            xb = vx + rng.choice([-1, 1]) * rng.uniform(0.6, 1.4) * half + rng.uniform(-3, 3)
            _person(c, rng, yb, xb, k, 1.0 - np.sqrt(k))
    c.albedo *= 1 + 0.25 * _noise(rng, height, width, base=6)[..., None]
    texture = 0.04 * _noise(rng, height, width, base=8)
    ambient, gain = rng.uniform(0.015, 0.035), rng.uniform(0.9, 1.2)
    visible = _visible(c, pools, ambient, gain, fog, np.random.default_rng(vis_ss))
    thermal = _thermal(c, texture, s, np.random.default_rng(ir_ss))
    return Scene(visible, thermal, c.warm > 0.5, c.lights > 0.5)


def make_pair(
    seed: int, height: int = 480, width: int = 640, fog: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(visible H×W×3, thermal H×W) float32 in [0, 1]; fog (0..1) only changes the visible frame."""
    scene = make_scene(seed, height, width, fog)
    return scene.visible, scene.thermal


# --- sets -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticPair:
    stem: str
    seed: int

    @property
    def visible(self) -> Path:
        return Path("synthetic") / "vi" / f"{self.stem}.png"

    @property
    def thermal(self) -> Path:
        return Path("synthetic") / "ir" / f"{self.stem}.png"


class SyntheticPairs:
    """``n`` generated pairs with the PairedFolder interface (``.synthetic`` is True)."""

    synthetic = True
    resize_ir = False

    def __init__(
        self, n: int = 8, seed: int = 0, height: int = 480, width: int = 640, fog: float = 0.0
    ) -> None:
        if n < 1 or seed < 0:
            raise ValueError(f"SyntheticPairs needs n >= 1 and seed >= 0, got n={n}, seed={seed}")
        self.n, self.seed, self.height, self.width, self.fog = n, seed, height, width, fog
        self.pairs = [SyntheticPair(f"synthetic_{i:04d}", seed * PAIR_SEED_STRIDE + i) for i in range(n)]
        self.unmatched: dict[str, list[str]] = {"visible": [], "thermal": []}
        self.root = Path("synthetic")
        self.layout = (self.root / "vi", self.root / "ir")
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def name(self) -> str:
        extra = f",fog={self.fog:g}" if self.fog else ""
        return f"synthetic(seed={self.seed},n={self.n},{self.width}x{self.height}{extra})"

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        i = range(self.n)[i]  # IndexError past the end, negative indices allowed
        if i not in self._cache:
            self._cache[i] = make_pair(self.pairs[i].seed, self.height, self.width, self.fog)
        vis, ir = self._cache[i]
        return vis.copy(), ir.copy()  # callers may edit in place; the cache must not change

    def __repr__(self) -> str:
        return f"SyntheticPairs({self.name})"


def write_synthetic(
    directory: str | Path, n: int = 8, seed: int = 0, height: int = 480, width: int = 640, fog: float = 0.0
) -> Path:
    """Write ``n`` synthetic pairs as 8-bit PNGs in ``directory``/vi and /ir; returns ``directory``."""
    from PIL import Image

    root = Path(directory)
    pairs = SyntheticPairs(n=n, seed=seed, height=height, width=width, fog=fog)
    for sub in ("vi", "ir"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, pair in enumerate(pairs.pairs):
        vis, ir = pairs[i]
        for sub, arr in (("vi", vis), ("ir", ir)):
            target = root / sub / f"{pair.stem}.png"
            # hidden temp name: a crash never leaves a file that looks like an image
            fd, tmp = tempfile.mkstemp(prefix=f".{pair.stem}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)).save(tmp, format="PNG")
            os.replace(tmp, target)
    return root
