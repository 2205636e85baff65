"""``edgefuse bench`` as a function: plan, export or reuse, load every target, measure drift on the same
frames, time all targets in interleaved rounds, time pre/post-processing, and assemble the report.

Order matters on a small machine: every target is loaded and run once over the drift frames first (which
also measures its memory and warms it), then all are timed together, so the rounds compare targets under
the same background load. PyTorch runs with flush-denormal on for the whole run: on x86 its CPU kernels
slow down by an order of magnitude on denormal activations, which the other backends flush themselves.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgefuse import __version__, drift
from edgefuse.bench.env import default_threads, environment
from edgefuse.bench.exports import prepare
from edgefuse.bench.gate import apply_checks
from edgefuse.bench.measure import build_targets, drift_pass, reference_nabf, sample_panels, time_targets
from edgefuse.bench.options import SuiteOptions
from edgefuse.bench.pipeline import time_pipeline
from edgefuse.bench.plan import frames_for, make_plan, pick_checkpoint
from edgefuse.bench.records import SCHEMA_VERSION, Report
from edgefuse.bench.report import target_record
from edgefuse.bench.targets import Target
from edgefuse.bench.timing import spread_pct
from edgefuse.errors import RuntimeUnavailableError
from edgefuse.exporters.base import ExportSession
from edgefuse.manifest import read_manifest
from edgefuse.profiles import resolve_target

Progress = Callable[[str], None]
# drift budgets of targets without a profile (torch variants): informational, never gated
VARIANT_BUDGETS = {
    "fp32": {"min_psnr_db": 60.0, "max_metric_change_pct": 0.5, "max_abs_8bit": 0.5},
    "fp16": {"min_psnr_db": 45.0, "max_metric_change_pct": 1.0, "max_abs_8bit": 4.0},
}


@dataclass
class SuiteResult:
    report: dict[str, Any]
    panels: dict[str, Any] | None = None  # sample images for the HTML report (not in the JSON)


def run_suite(opts: SuiteOptions, progress: Progress = lambda _: None) -> SuiteResult:
    import torch

    start = time.perf_counter()
    device = "cuda" if opts.device in ("cuda", "gpu") else opts.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeUnavailableError("--device cuda: torch sees no CUDA device here")
    if device != "cpu" and not device.startswith("cuda"):
        raise RuntimeUnavailableError(f"--device {opts.device!r}: use cpu or cuda")
    threads, threads_rule = (opts.threads, "given with --threads") if opts.threads else default_threads()
    plan = make_plan(
        opts.artifacts,
        opts.profiles,
        size=opts.size,
        device=device,
        data=opts.data,
        calib=opts.calib,
        exports=opts.exports,
    )
    progress("loading the checkpoint and frames")
    loaded = pick_checkpoint(opts.checkpoint, plan)
    model, info = loaded
    env = environment(opts.label)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    targets: list[Target] = []
    session = None
    phases: dict[str, float] = {}
    lap = _stopwatch(phases)
    try:
        frames = frames_for(opts.data, plan.height, plan.width, opts.pairs)
        progress(f"reference outputs on {len(frames)} pairs")
        ref = drift.reference(model, frames)
        lap("frames_and_reference")
        prepared = []
        if plan.profiles:
            session = ExportSession(
                loaded, calib_dir=opts.calib or opts.data, val_pairs=opts.pairs, threads=threads
            )
            prepared = prepare(session, plan.profiles, opts.exports, progress)
        lap("exports")

        targets = build_targets(opts, plan, prepared, model, info, device, threads, progress)
        lap("loading")
        ref_nabf = reference_nabf(ref)
        for t in targets:
            drift_pass(t, ref, ref_nabf, VARIANT_BUDGETS, progress)
        lap("drift")
        timing = opts.timing_config()
        time_targets(targets, list(frames), timing, progress)
        lap("timing")
        panels = sample_panels(targets, ref)

        progress("timing pre- and post-processing")
        pipeline = time_pipeline(frames, opts.data, ref.outputs[0])
        lap("panels_and_pipeline")
    finally:
        for t in targets:
            t.close()
        if session is not None:
            session.close()
        torch.set_flush_denormal(False)

    report = Report(
        schema_version=SCHEMA_VERSION,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        edgefuse_version=__version__,
        command=opts.command,
        environment=env,
        settings={
            "device": device,
            "threads": threads,
            "threads_rule": threads_rule,
            "size": f"{plan.height}x{plan.width}",
            "batch": 1,
            "pairs": len(frames),
            "timing_preset": opts.timing,
            "timing": timing.to_dict(),
            "torch_flush_denormal": True,
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if device != "cpu" else None,
            "latency_budgets": opts.latency_budgets,
            "max_ratio": opts.max_ratio,
            "requested": requested_ids(opts),
            "allow_synthetic": opts.allow_synthetic,
            "timed_call": "the backend call alone on preloaded inputs (no decode, resize or NaN scan); "
            "CUDA: CUDA events around the call, waited for",
        },
        checkpoint={k: v for k, v in info.to_dict().items() if k != "config"},
        data=frames.to_dict(),
        reference=next((t.id for t in targets if t.kind == "reference"), None),
        pipeline=pipeline,
        targets=[target_record(t, plan.budget_sizes) for t in targets],
        skipped=plan.skipped,
        phase_seconds=phases,
        notes=_notes(frames, device) + reference_stability(targets),
    ).to_dict()
    apply_checks(report, opts.latency_budgets, opts.max_ratio)
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    return SuiteResult(report, panels)


UNSTABLE_SPREAD_PCT = 25.0  # round medians of the reference further apart than this: ratios are unreliable


def reference_stability(targets: list[Target]) -> list[str]:
    """A warning when the torch reference's own timing moved during the run (its round medians spread more
    than 25 %, or its p99 is over twice its p50): every "vs torch" ratio then inherits that noise."""
    ref = next((t for t in targets if t.kind == "reference" and t.latency), None)
    if ref is None:
        return []
    spread = spread_pct([float(x) for x in ref.latency.get("round_p50") or []])
    p50, p99 = ref.latency.get("p50"), ref.latency.get("p99")
    tail = p99 / p50 if finite(p50) and finite(p99) and p50 > 0 else 1.0
    if spread <= UNSTABLE_SPREAD_PCT and tail <= 2.0:
        return []
    shown = f"{spread:.0f}%" if math.isfinite(spread) else "unknown"
    return [
        f"WARNING: the torch reference was unstable (round medians ±{shown}, p99/p50 {tail:.1f}): "
        "'vs torch' ratios are unreliable; rerun with --threads 1 or on a quieter machine"
    ]


def requested_ids(opts: SuiteOptions) -> list[str]:
    """The targets the user named: every profile of each ``-p`` and each artifact directory's profile."""
    ids: list[str] = []
    for name in opts.profiles:
        ids += [p.name for p in resolve_target(name) if p.name not in ids]
    for path in opts.artifacts:
        profile = read_manifest(path).profile
        ids.append(profile if isinstance(profile, str) and profile else path.name)
    return ids


def _stopwatch(phases: dict[str, float]) -> Callable[[str], None]:
    """``lap(name)`` records the seconds since the previous lap under ``name``."""
    last = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - last[0], 2)
        last[0] = now

    return lap


def _notes(frames: Any, device: str) -> list[str]:
    notes = [
        "PyTorch timed with torch.set_flush_denormal(True) (denormal floats flushed to zero).",
        "Latency: warm-up by count and time, then interleaved rounds of >= N calls and a minimum duration; "
        "batch 1 unless stated; p99 of fewer than 100 samples is close to the maximum.",
        "Drift: every target and the fp32 PyTorch reference on the same pairs; metric deltas are the mean "
        "of per-pair signed relative changes; Nabf is reported but not gated (its value is near zero).",
    ]
    if frames.synthetic:
        notes.insert(0, frames.note)
    if device.startswith("cuda"):
        notes.append("CUDA variants: static input buffers on the GPU; fp32 convolutions may use TF32.")
    return notes


def finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)
