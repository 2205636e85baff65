"""Pre- and post-processing, timed apart from inference (the same for every backend, so measured once).

Pre-processing of one pair: *decode* (PNG/JPEG -> float32 arrays, visible and thermal), *resize*
(:func:`edgefuse.calibration.fit`: cover-resize, centre crop, output 1×C×H×W float32: this includes the
layout change) and, separately, *layout* alone (H×W×C float32 -> 1×C×H×W contiguous, for frames that
arrive at the network's size). Post-processing: the fused 1×3×H×W float32 -> H×W×3 uint8 (transpose,
clip, scale, round) that a display or a downstream RGB model takes.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefuse.bench.timing import summarize
from edgefuse.calibration import fit
from edgefuse.synthetic import write_synthetic

if TYPE_CHECKING:
    from edgefuse.calibration import Frames

STAGES = ("decode", "resize", "layout", "postprocess")


def _ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def _decode(visible: Path, thermal: Path) -> tuple[np.ndarray, np.ndarray]:
    from edgefuse.data import read_thermal, read_visible

    return read_visible(visible), read_thermal(thermal)


def _to_nchw(visible: np.ndarray, thermal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H×W×3 and H×W float32 -> 1×3×H×W and 1×1×H×W contiguous."""
    return np.ascontiguousarray(visible.transpose(2, 0, 1)[None]), np.ascontiguousarray(thermal[None, None])


def _sources(frames: Frames, data: Path | None, scratch: Path, count: int) -> list[tuple[Path, Path]]:
    """Image files behind the frames (real pairs), or a few synthetic pairs written as PNG to decode."""
    from edgefuse.data import find_pairs

    if data is not None:
        folder = find_pairs(data, resize_ir=True)
        by_stem = {p.stem: p for p in folder.pairs}
        pairs = [by_stem[s] for s in frames.stems if s in by_stem][:count]
        return [(p.visible, p.thermal) for p in pairs]
    root = write_synthetic(scratch / "pairs", n=min(count, 2), height=frames.height, width=frames.width)
    return [(v, root / "ir" / v.name) for v in sorted((root / "vi").glob("*.png"))]


def time_pipeline(
    frames: Frames, data: Path | None, reference_output: np.ndarray, passes: int = 5, count: int = 4
) -> dict[str, Any]:
    """Per-stage latency summaries (ms) over ``passes`` passes of up to ``count`` pairs."""
    from edgefuse.data import read_thermal, read_visible, resize_to
    from edgefuse.inference import to_uint8

    h, w = frames.height, frames.width
    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    with tempfile.TemporaryDirectory(prefix="edgefuse-bench-") as scratch:
        sources = _sources(frames, data, Path(scratch), count)
        decoded = [(read_visible(v), read_thermal(t)) for v, t in sources]
        # IR stored at another resolution is resized to the visible frame first, as the data loader does
        decoded = [(v, t if t.shape == v.shape[:2] else resize_to(t, *v.shape[:2])) for v, t in decoded]
        source_sizes = sorted({f"{v.shape[0]}x{v.shape[1]}" for v, _ in decoded})
        for _ in range(passes):
            for (vpath, tpath), (vis, ir) in zip(sources, decoded, strict=True):
                samples["decode"].append(_ms(functools.partial(_decode, vpath, tpath)))
                samples["resize"].append(_ms(functools.partial(fit, vis, ir, h, w)))
    hwc = [np.ascontiguousarray(item["visible"][0].transpose(1, 2, 0)) for item in frames][:count]
    ir_hw = [np.ascontiguousarray(item["thermal"][0, 0]) for item in frames][:count]
    fused = np.ascontiguousarray(reference_output[None].transpose(0, 3, 1, 2), dtype=np.float32)
    for _ in range(passes):
        for vis, ir in zip(hwc, ir_hw, strict=True):
            samples["layout"].append(_ms(functools.partial(_to_nchw, vis, ir)))
            samples["postprocess"].append(_ms(lambda: to_uint8(fused[0].transpose(1, 2, 0))))
    out: dict[str, Any] = {stage: summarize(values) for stage, values in samples.items()}
    out["source"] = "real pairs" if data is not None else "synthetic PNGs written for this measurement"
    out["source_sizes"] = source_sizes
    out["size"] = f"{h}x{w}"
    pre = out["decode"].get("p50", 0.0) + out["resize"].get("p50", 0.0)
    out["preprocess_p50_ms"] = pre
    return out
