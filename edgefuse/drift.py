"""Drift of an exported artifact against the fp32 PyTorch reference on real pairs, checked against a budget.

Both run on the same frames; per pair we compute the drift metrics (max/mean/p99 |Δ| in 8-bit units, PSNR,
SSIM, non-finite count) and every fusion metric of both outputs, then the signed relative change of each
fusion metric averaged over the pairs (metrics.md, "Drift metrics"). A budget miss is a failure with the
reason spelled out; there is no "passed with warnings". The result is a plain dataclass with ``to_dict`` so
``edgefuse bench`` and ``edgefuse export`` report the same thing.

The model or runtime runs the frames one after another (it has the cores to itself); the metrics, pure
numpy/scipy that mostly release the GIL, are then scored in a small thread pool, one pair per task, so the
numbers are the same as a serial loop's.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefuse._enum import TextEnum
from edgefuse.color import as_hwc
from edgefuse.errors import NonFiniteOutputError, RuntimeUnavailableError
from edgefuse.runtimes.base import get_runtime, runtime_for

if TYPE_CHECKING:
    import torch

    from edgefuse.calibration import Frames
    from edgefuse.profiles import DriftBudget, Profile

Predict = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


class Verdict(TextEnum):
    """A validation's ``status`` (written to JSON as its value)."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_RUN = "not_run"


PASSED, FAILED, NOT_RUN = Verdict.PASSED, Verdict.FAILED, Verdict.NOT_RUN
# every fusion metric but Nabf: an artifact measure near zero, whose relative change is meaningless
METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "CC", "PSNR", "VIF", "Qabf", "SSIM")


@dataclass
class DriftResult:
    """What one artifact's validation found; ``status`` is passed, failed or not_run (with ``reason``)."""

    status: Verdict
    runtime: str = ""  # what executed the artifact here
    emulation: str = ""  # set when something other than the target runtime stood in, and what
    reason: str = ""  # why validation did not run
    frames: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)
    metric_change_pct: dict[str, float] = field(default_factory=dict)
    per_pair: list[dict[str, Any]] = field(default_factory=list)
    budget: dict[str, float] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.status = Verdict(self.status)  # from_dict hands the JSON string

    @property
    def passed(self) -> bool:
        return self.status is PASSED

    @property
    def ran(self) -> bool:
        return self.status is not NOT_RUN

    def summary(self) -> str:
        if not self.ran:
            return f"not run: {self.reason}"
        psnr, max_abs = self.drift.get("psnr_min", math.nan), self.drift.get("max_abs", math.nan)
        worst = max(self.metric_change_pct.items(), key=lambda kv: abs(kv[1]), default=("-", 0.0))
        text = f"PSNR {psnr:.1f} dB (min), max |Δ| {max_abs:.2f}, worst metric {worst[0]} {worst[1]:+.2f}%"
        return text if self.passed else f"{text}; " + "; ".join(self.misses)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DriftResult:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True, eq=False)
class Reference:
    """fp32 PyTorch outputs (H×W×3) and their fusion metrics for a set of frames: computed once, reused."""

    frames: Frames
    outputs: tuple[np.ndarray, ...]
    metrics: tuple[dict[str, float], ...]

    def head(self, n: int) -> Reference:
        """The first ``n`` frames with their outputs (and metrics): a cheaper subset, nothing recomputed."""
        return Reference(self.frames.head(n), self.outputs[:n], self.metrics[:n])


def _pool_map(fn: Callable[..., Any], args: Iterable[tuple[Any, ...]], workers: int | None) -> list[Any]:
    """``[fn(*a) for a in args]``, on up to ``workers`` threads (default: the CPU count)."""
    jobs = list(args)
    n = min(len(jobs), workers or os.cpu_count() or 1)
    if n <= 1:
        return [fn(*a) for a in jobs]
    with ThreadPoolExecutor(n, thread_name_prefix="edgefuse-metrics") as pool:
        return list(pool.map(lambda a: fn(*a), jobs))


def _scores(
    out: np.ndarray, item: dict[str, np.ndarray], names: tuple[str, ...] = METRICS
) -> dict[str, float]:
    from edgefuse.metrics import fusion_metrics

    return fusion_metrics(out, as_hwc(item["thermal"]), as_hwc(item["visible"]), names)


def _scores_unless_same(
    out: np.ndarray,
    item: dict[str, np.ndarray],
    ref_out: np.ndarray,
    ref_metrics: dict[str, float],
    names: tuple[str, ...],
) -> dict[str, float]:
    """The fusion metrics see an output only through its 8-bit grey image (metrics.md): when that image
    equals the reference's, so does every metric, exactly; scoring it again would only cost time."""
    from edgefuse.metrics import to_gray

    if set(names) <= set(ref_metrics) and np.array_equal(to_gray(out), to_gray(ref_out)):
        return {n: ref_metrics[n] for n in names}
    return _scores(out, item, names)


def reference(
    model: torch.nn.Module, frames: Frames, with_metrics: bool = True, *, workers: int | None = None
) -> Reference:
    """fp32 outputs of ``model`` on ``frames`` and (``with_metrics``) their fusion metrics."""
    import torch

    outs = []
    with torch.inference_mode():
        for item in frames:
            fused = (
                model(torch.from_numpy(item["visible"]), torch.from_numpy(item["thermal"])).float().numpy()
            )
            outs.append(np.ascontiguousarray(as_hwc(fused)))
    mets = _pool_map(_scores, zip(outs, frames, strict=True), workers) if with_metrics else []
    return Reference(frames, tuple(outs), tuple(mets))


def budget_dict(budget: DriftBudget | dict[str, float]) -> dict[str, float]:
    return dict(budget) if isinstance(budget, dict) else dataclasses.asdict(budget)


def check(drift: dict[str, float], changes: dict[str, float], budget: dict[str, float]) -> list[str]:
    """Every way the numbers miss the budget, one readable line each (empty: within budget)."""
    misses = []
    if drift.get("nonfinite", 0):
        misses.append(f"{int(drift['nonfinite'])} NaN/Inf output values")
    if drift["psnr_min"] < budget["min_psnr_db"]:
        misses.append(f"PSNR {drift['psnr_min']:.1f} dB < {budget['min_psnr_db']:g} dB (worst pair)")
    if drift["max_abs"] > budget["max_abs_8bit"]:
        misses.append(f"max |Δ| {drift['max_abs']:.2f} > {budget['max_abs_8bit']:g} (8-bit units)")
    limit = budget["max_metric_change_pct"]
    for name, pct in changes.items():
        if not np.isfinite(pct) or abs(pct) > limit:
            misses.append(f"{name} {pct:+.2f}% (budget ±{limit:g}%)")
    return misses


def _aggregate(per_pair: list[dict[str, float]]) -> dict[str, float]:
    col = {k: np.array([p[k] for p in per_pair], dtype=np.float64) for k in per_pair[0]}
    return {
        "psnr_min": float(col["psnr"].min()),
        "psnr_mean": float(col["psnr"].mean()),
        "ssim_min": float(col["ssim"].min()),
        "max_abs": float(col["max_abs"].max()),
        "mean_abs": float(col["mean_abs"].mean()),
        "p99_abs": float(col["p99_abs"].max()),
        "nonfinite": float(col["nonfinite"].sum()),
    }


def measure(
    predict: Predict,
    ref: Reference,
    budget: DriftBudget | dict[str, float],
    *,
    runtime: str = "",
    emulation: str = "",
    with_metrics: bool = True,
    metrics_if_drift_passes: bool = False,
    metric_names: tuple[str, ...] = METRICS,
    workers: int | None = None,
) -> DriftResult:
    """Run ``predict`` on the reference frames and compare (``with_metrics=False``: drift metrics only).

    ``metrics_if_drift_passes``: score the fusion metrics only when the per-pixel drift is within budget.
    A miss there fails whatever the metrics say, so the verdict is the same; the result then has no
    ``metric_change_pct`` (a search trying many builds uses it; a final verdict should not).
    ``metric_names``: the fusion metrics to compare (default: all of :data:`METRICS`).
    ``workers``: threads scoring the metrics (default: the CPU count).
    """
    from edgefuse.metrics import drift_metrics, relative_change

    start = time.perf_counter()
    bud = budget_dict(budget)
    outs = []
    for i, item in enumerate(ref.frames):
        stem = ref.frames.stems[i]
        try:
            out = predict(item)["fused"]
        except NonFiniteOutputError as exc:
            return _failed_nonfinite(str(exc), stem, ref, bud, runtime, emulation, start)
        if not np.isfinite(out).all():
            return _failed_nonfinite("output has NaN/Inf values", stem, ref, bud, runtime, emulation, start)
        # a copy: a runtime may hand out a view of a buffer its next call overwrites
        outs.append(np.array(as_hwc(np.asarray(out, dtype=np.float32)), order="C", copy=True))
    pairs = list(zip(ref.outputs, outs, strict=True))
    per_pair: list[dict[str, Any]] = [
        {"stem": stem, **{k: float(v) for k, v in d.items()}}
        for stem, d in zip(ref.frames.stems, _pool_map(drift_metrics, pairs, workers), strict=True)
    ]
    drift = _aggregate([{k: v for k, v in r.items() if k != "stem"} for r in per_pair])
    changes: list[dict[str, float]] = []
    score = with_metrics and bool(ref.metrics)
    if score and metrics_if_drift_passes and check(drift, {}, bud):
        score = False
    if score:
        each = zip(outs, ref.frames, ref.outputs, ref.metrics, strict=True)
        mets = _pool_map(_scores_unless_same, ((*e, metric_names) for e in each), workers)
        for row, before, after in zip(per_pair, ref.metrics, mets, strict=True):
            change = {k: float(v) for k, v in relative_change(before, after).items()}
            changes.append(change)
            row["metric_change_pct"] = change
    mean_change = {k: float(np.mean([c[k] for c in changes])) for k in changes[0]} if changes else {}
    misses = check(drift, mean_change, bud)
    return DriftResult(
        status=FAILED if misses else PASSED,
        runtime=runtime,
        emulation=emulation,
        frames=ref.frames.to_dict(),
        drift=drift,
        metric_change_pct=mean_change,
        per_pair=per_pair,
        budget=bud,
        misses=misses,
        seconds=round(time.perf_counter() - start, 3),
    )


def _failed_nonfinite(
    why: str, stem: str, ref: Reference, bud: dict[str, float], runtime: str, emulation: str, start: float
) -> DriftResult:
    return DriftResult(
        status=FAILED,
        runtime=runtime,
        emulation=emulation,
        frames=ref.frames.to_dict(),
        drift={"nonfinite": 1.0},
        budget=bud,
        misses=[f"non-finite output on {stem}: {why}"],
        seconds=round(time.perf_counter() - start, 3),
    )


def not_run(
    reason: str, budget: DriftBudget | dict[str, float] | None = None, runtime: str = ""
) -> DriftResult:
    return DriftResult(status=NOT_RUN, reason=reason, runtime=runtime, budget=budget_dict(budget or {}))


def validate_artifact(
    artifact: str | Path,
    ref: Reference,
    budget: DriftBudget | dict[str, float],
    *,
    backend: str | None = None,
    profile: Profile | None = None,
    threads: int | None = None,
    emulation: str = "",
    with_metrics: bool = True,
    metrics_if_drift_passes: bool = False,
    metric_names: tuple[str, ...] = METRICS,
) -> DriftResult:
    """Open ``artifact`` (a directory with edgefuse.json, or a model file) with its runtime and measure it.

    ``backend`` overrides the manifest's (e.g. ``onnxruntime`` running a TensorRT artifact's QDQ ONNX,
    which must then be named in ``emulation``). A runtime that cannot run on this host gives ``not_run``.
    ``threads`` is the runtime's and the metric scoring's. See :func:`measure` for the other options.
    """

    cls = get_runtime(backend) if backend else runtime_for(artifact)
    ok, why = cls.is_available()
    if not ok:
        return not_run(f"{cls.name} is not available here: {why}", budget, cls.name)
    try:
        runner = cls(Path(artifact), threads=threads, profile=profile)
    except RuntimeUnavailableError as exc:
        return not_run(str(exc), budget, cls.name)
    try:
        name = f"{cls.name} {why.split(' ')[0]}"
        precision = getattr(runner, "inference_precision", None)  # what OpenVINO really executes at
        if precision:
            name += f" (inference precision {precision})"
        return measure(
            runner, ref, budget, runtime=name, emulation=emulation, with_metrics=with_metrics,
            metrics_if_drift_passes=metrics_if_drift_passes, metric_names=metric_names, workers=threads,
        )  # fmt: skip
    finally:
        runner.close()
