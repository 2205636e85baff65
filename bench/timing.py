"""Latency measurement in the manner of MLPerf's single-stream scenario, made robust for noisy machines.

Every target is warmed up until both a count and a duration are reached, then measured in *rounds*: in each
round every target runs one block of at least ``min_iters`` calls lasting at least ``min_seconds``, after a
short discarded block warm-up (another backend's thread pool may still be spinning). Rounds interleave the
targets and rotate their order, so a slow drift of the machine's load hits every target alike; per-round
medians then give ratios between targets measured side by side, and the spread of those ratios is the
noise a regression gate must exceed before calling anything a regression.

Inputs are preloaded by the caller: a timed call is the backend call alone, never decoding or resizing.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Clock = Callable[[Callable[[], object]], float]  # runs fn once, returns milliseconds


@dataclass(frozen=True)
class TimingConfig:
    warmup_iters: int = 5
    warmup_seconds: float = 0.5
    rounds: int = 3
    min_iters: int = 15  # per round
    min_seconds: float = 0.8  # per round
    max_seconds: float = 6.0  # per round: a very slow target stops here once it has 3 samples
    block_warmup_iters: int = 2  # discarded at the start of each round

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.min_iters < 1 or self.warmup_iters < 0:
            raise ValueError("timing needs rounds >= 1, min_iters >= 1 and warmup_iters >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# named presets for --timing: "quick" for tests and the CI gate, "default" fits the 3-minute default run
PRESETS: dict[str, TimingConfig] = {
    "quick": TimingConfig(
        warmup_iters=3,
        warmup_seconds=0.2,
        rounds=3,
        min_iters=5,
        min_seconds=0.15,
        max_seconds=3.0,
        block_warmup_iters=1,
    ),
    "default": TimingConfig(),
    "thorough": TimingConfig(
        warmup_iters=20, warmup_seconds=3.0, rounds=7, min_iters=50, min_seconds=3.0, max_seconds=30.0
    ),
}


def wall_clock(fn: Callable[[], object]) -> float:
    """Milliseconds of one call by ``time.perf_counter_ns`` (the call must return with its result ready)."""
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def cuda_clock() -> Clock:
    """Milliseconds of one call between CUDA events recorded around it on the current stream, waited for:
    device time including launch gaps, as a caller of a batch-1 stream sees it."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def clock(fn: Callable[[], object]) -> float:
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return clock


def capture_graph(fn: Callable[..., Any], *args: Any, device: Any = None, warmup: int = 3) -> tuple[Any, Any]:
    """(CUDA graph, its static output) of ``fn(*args)``. The warm-up calls run on a side stream first, so
    cuDNN autotuning and Triton compilation happen outside the capture. Replays read ``args`` by address:
    they must outlive the graph."""
    import torch

    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn(*args)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(*args)
    return graph, out


@dataclass
class Timed:
    """One target under measurement: what to call, how to clock it, and what was measured."""

    key: str
    fn: Callable[[], object]
    clock: Clock = wall_clock
    batch: int = 1
    first_ms: float = math.nan  # the very first call (lazy compilation shows here)
    warmup_iters: int = 0
    warmup_seconds: float = 0.0
    rounds: list[list[float]] = field(default_factory=list)
    error: str = ""  # set when a call raised: the item is dropped from later rounds

    @property
    def samples(self) -> list[float]:
        return [s for r in self.rounds for s in r]


def warm_up(item: Timed, cfg: TimingConfig) -> None:
    """Call until both ``warmup_iters`` calls and ``warmup_seconds`` have passed (at least one call)."""
    start = time.perf_counter()
    n = 0
    while True:
        ms = item.clock(item.fn)
        if n == 0:
            item.first_ms = ms
        n += 1
        elapsed = time.perf_counter() - start
        if (n >= cfg.warmup_iters and elapsed >= cfg.warmup_seconds) or elapsed >= 4 * cfg.max_seconds:
            break
    item.warmup_iters, item.warmup_seconds = n, round(time.perf_counter() - start, 3)


def measure_block(item: Timed, cfg: TimingConfig) -> list[float]:
    for _ in range(cfg.block_warmup_iters):
        item.clock(item.fn)
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        samples.append(item.clock(item.fn))
        elapsed = time.perf_counter() - start
        enough = len(samples) >= cfg.min_iters and elapsed >= cfg.min_seconds
        if enough or (elapsed >= cfg.max_seconds and len(samples) >= 3):
            return samples


def run_rounds(items: list[Timed], cfg: TimingConfig, progress: Callable[[str], None] | None = None) -> None:
    """Warm every item up, then ``cfg.rounds`` interleaved rounds, rotating the order each round."""
    for item in items:
        if progress:
            progress(f"warming up {item.key}")
        _guard(item, functools.partial(warm_up, item, cfg))
    for r in range(cfg.rounds):
        shift = r % len(items) if items else 0
        for item in items[shift:] + items[:shift]:
            if item.error:
                continue
            if progress:
                progress(f"round {r + 1}/{cfg.rounds}: {item.key}")
            _guard(item, functools.partial(_one_round, item, cfg))


def _one_round(item: Timed, cfg: TimingConfig) -> None:
    item.rounds.append(measure_block(item, cfg))


def _guard(item: Timed, work: Callable[[], None]) -> None:
    """Run ``work``; a backend that raises mid-measurement is recorded and skipped, the others go on."""
    try:
        work()
    except Exception as exc:
        item.error = f"{type(exc).__name__}: {exc}"


def summarize(samples: list[float], batch: int = 1) -> dict[str, Any]:
    """Percentiles (linear interpolation), mean, std, FPS = batch·1000/p50 and throughput =
    batch·1000/mean (frames per second of back-to-back calls)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p50, p90, p99 = (float(np.percentile(a, q)) for q in (50, 90, 99))
    mean = float(a.mean())
    return {
        "n": int(a.size),
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "mean": mean,
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
        "fps": batch * 1000.0 / p50 if p50 > 0 else math.inf,
        "throughput_fps": batch * 1000.0 / mean if mean > 0 else math.inf,
    }


def round_medians(item: Timed) -> list[float]:
    return [float(np.median(r)) for r in item.rounds]


def spread_pct(values: list[float]) -> float:
    """Half the range of ``values`` in percent of their median: how far one round can sit from the middle."""
    if len(values) < 2:
        return math.inf
    med = float(np.median(values))
    return 100.0 * (max(values) - min(values)) / (2.0 * med) if med > 0 else math.inf


def ratio_to(item: Timed, ref: Timed) -> dict[str, Any]:
    """Per round, this item's median time per frame over the reference's in the same round; their median
    and spread. Lower is faster; rounds are paired, so machine-wide slowdowns cancel."""
    pairs = zip(round_medians(item), round_medians(ref), strict=False)
    ratios = [(a / item.batch) / (b / ref.batch) for a, b in pairs if b > 0]
    if not ratios:
        return {"median": math.nan, "rounds": [], "noise_pct": math.inf}
    return {"median": float(np.median(ratios)), "rounds": ratios, "noise_pct": spread_pct(ratios)}


# --- memory -----------------------------------------------------------------------------------------------


def _status_kb(key: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float | None:
    """Resident memory of this process now."""
    kb = _status_kb("VmRSS")
    return round(kb / 1024, 1) if kb is not None else None


def reset_peak_rss() -> bool:
    """Reset the kernel's resident high-water mark (Linux ``clear_refs`` 5); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory: since the last :func:`reset_peak_rss` on Linux, else of the whole process."""
    kb = _status_kb("VmHWM")
    if kb is None:
        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = ru / 1024 if sys.platform == "darwin" else ru  # macOS reports bytes
    return round(kb / 1024, 1)
