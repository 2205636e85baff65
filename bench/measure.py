"""The measuring steps of the suite: open every target, run each over the drift frames (drift, fusion
metrics, memory), time them all together, and keep one sample pair's outputs for the report's panels."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefuse import drift
from edgefuse.bench.records import Status
from edgefuse.bench.targets import Target, artifact_target, torch_target, variant_target
from edgefuse.bench.timing import Timed, TimingConfig, ratio_to, round_medians, run_rounds, summarize
from edgefuse.bench.torch_variants import Variant, cuda_variants
from edgefuse.color import as_hwc

if TYPE_CHECKING:
    from edgefuse.bench.exports import Prepared
    from edgefuse.bench.options import SuiteOptions
    from edgefuse.bench.plan import Plan
    from edgefuse.checkpoint import CheckpointInfo
    from edgefuse.drift import Reference
    from edgefuse.model import FusionProxy

Progress = Callable[[str], None]


def _guarded(
    target_id: str, kind: str, backend: str, precision: str, build: Callable[[], Target], device: str = "cpu"
) -> Target:
    """Build a target; any failure becomes an ``error`` target instead of stopping the run."""
    try:
        t = build()
        if t.probe is not None:
            t.probe.loaded()
        return t
    except Exception as exc:
        t = Target(target_id, kind, backend, precision, device=device)
        t.fail(exc)
        return t


def build_targets(
    opts: SuiteOptions,
    plan: Plan,
    prepared: list[Prepared],
    model: FusionProxy,
    info: CheckpointInfo,
    device: str,
    threads: int,
    progress: Progress,
) -> list[Target]:

    h, w = plan.height, plan.width
    out: list[Target] = []
    progress("loading the torch reference")
    if device == "cpu":
        out.append(
            _guarded(
                "torch-cpu-fp32",
                "reference",
                "torch",
                "fp32",
                lambda: torch_target(info.path, "torch-cpu-fp32", threads=threads),
            )
        )
        if opts.variants:
            key = "torch-cpu-fp32-channels_last"
            out.append(
                _guarded(
                    key,
                    "variant",
                    "torch",
                    "fp32",
                    lambda: torch_target(info.path, key, threads=threads, channels_last=True),
                )
            )
    else:
        ref = Variant("fp32", "eager")
        key = f"torch-{device}-fp32"
        out.append(
            _guarded(
                key,
                "reference",
                "torch",
                "fp32",
                lambda: variant_target(model, ref, device, h, w, key, kind="reference"),
                device,
            )
        )
        compile_on = opts.torch_compile != "off"
        for v in cuda_variants(opts.batches, compile_on, opts.triton) if opts.variants else []:
            if v == ref:
                continue
            progress(f"preparing torch {v.dtype} {v.mode} batch {v.batch}")
            vkey = v.key(device)
            out.append(
                _guarded(
                    vkey,
                    "variant",
                    "torch",
                    v.dtype,
                    functools.partial(
                        variant_target, model, v, device, h, w, vkey, compile_mode=opts.torch_compile
                    ),
                    device,
                )
            )
    for p in prepared:
        name = p.profile.name
        tid = name if plan.budget_sizes.get(name) == p.profile.size else f"{name}@{p.profile.size}"
        if p.path is None:
            t = Target(tid, "artifact", p.profile.backend, p.profile.precision.value, profile=p.profile)
            t.status, t.reason = Status.ERROR, f"export failed: {p.message}"
            out.append(t)
            continue
        progress(f"loading {tid}")
        t = _guarded(
            tid,
            "artifact",
            p.profile.backend,
            p.profile.precision.value,
            functools.partial(artifact_target, p.path, p.profile, tid, threads=threads, device=device),
        )
        t.profile = p.profile
        t.artifact["export"] = {
            "status": p.status,
            "seconds": round(p.seconds, 2),
            "message": p.message,
            **p.info,
        }
        out.append(t)
    seen = {t.id for t in out}
    for path, profile, _ in plan.artifacts:
        tid = profile.name if profile is not None else path.name
        if profile is not None and plan.budget_sizes.get(profile.name) != profile.size:
            tid = f"{tid}@{profile.size}"
        while tid in seen:
            tid += "'"
        seen.add(tid)
        progress(f"loading {tid}")
        out.append(
            _guarded(
                tid,
                "artifact",
                "?",
                "?",
                functools.partial(artifact_target, path, profile, tid, threads=threads, device=device),
            )
        )
        out[-1].profile = profile
    return out


def reference_nabf(ref: Reference) -> list[float]:
    from edgefuse.metrics import fusion_metrics

    return [
        fusion_metrics(out, as_hwc(item["thermal"]), as_hwc(item["visible"]), ["Nabf"])["Nabf"]
        for out, item in zip(ref.outputs, ref.frames, strict=True)
    ]


def drift_pass(
    t: Target, ref: Reference, ref_nabf: list[float], budgets: dict[str, Any], progress: Progress
) -> None:
    """Run the target over every frame: drift vs the reference, fusion metrics, memory, first warm-up."""
    from edgefuse.metrics import fusion_metrics

    if not t.ready or t.predict is None:
        return
    progress(f"drift of {t.id}")
    if t.probe is not None:
        t.probe.start_drift()
    predict = t.predict
    try:
        if t.kind == "reference" and t.device == "cpu":  # the drift reference itself
            for item in ref.frames:
                predict(item)
        else:
            nabf: list[float] = []

            def run(item: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                out = predict(item)
                fused = out["fused"]
                if np.isfinite(fused).all():
                    args = (as_hwc(fused), as_hwc(item["thermal"]), as_hwc(item["visible"]))
                    nabf.append(fusion_metrics(*args, ["Nabf"])["Nabf"])
                return out

            budget = t.profile.drift if t.profile is not None else budgets.get(t.precision, budgets["fp32"])
            t.drift = drift.measure(run, ref, budget, runtime=t.runtime)
            t.metrics = metric_table(ref, t.drift, ref_nabf, nabf)
    except Exception as exc:
        t.fail(exc)
        return
    if t.probe is not None:
        t.memory, t.probe = t.probe.result(), None


def metric_table(ref: Reference, result: Any, ref_nabf: list[float], nabf: list[float]) -> dict[str, Any]:
    """Per fusion metric: reference mean, artifact mean (from the per-pair relative changes, which fix
    each artifact value exactly) and the gated change (mean of per-pair signed relative changes)."""
    table: dict[str, Any] = {}
    rows = [r for r in result.per_pair if "metric_change_pct" in r]
    if not rows or not ref.metrics:
        return table
    for name, change in result.metric_change_pct.items():
        r = np.array([m[name] for m in ref.metrics[: len(rows)]], dtype=np.float64)
        c = np.array([row["metric_change_pct"][name] for row in rows], dtype=np.float64)
        a = r + c * np.abs(r) / 100.0
        table[name] = {
            "reference": float(r.mean()),
            "artifact": float(a.mean()),
            "change_pct": change,
            "gated": True,
        }
    if ref_nabf and len(nabf) == len(ref_nabf):
        rn, an = float(np.mean(ref_nabf)), float(np.mean(nabf))
        pct = 100.0 * (an - rn) / abs(rn) if rn else (0.0 if an == rn else math.inf)
        table["Nabf"] = {"reference": rn, "artifact": an, "change_pct": pct, "gated": False}
    return table


def time_targets(
    targets: list[Target], inputs: list[dict[str, np.ndarray]], cfg: TimingConfig, progress: Progress
) -> dict[str, Timed]:
    """Time every ready target in interleaved rounds; fill latency, ratio to the reference, warm-up."""
    items: list[tuple[Target, Timed]] = []
    for t in targets:
        if t.ready and t.make_step is not None:
            try:
                items.append((t, Timed(t.id, t.make_step(inputs), clock=t.clock, batch=t.batch)))
            except Exception as exc:
                t.fail(exc)
    run_rounds([item for _, item in items], cfg, progress)
    ref = next((item for t, item in items if t.kind == "reference" and not item.error), None)
    for t, item in items:
        if item.error:
            t.fail(RuntimeError(f"while timing: {item.error}"))
            continue
        t.latency = summarize(item.samples, item.batch)
        t.latency["round_p50"] = round_medians(item)
        t.latency["samples"] = [round(s, 4) for s in item.samples]
        t.warmup = {
            "iters": item.warmup_iters,
            "seconds": item.warmup_seconds,
            "first_call_ms": item.first_ms,
        }
        if ref is not None:
            t.ratio = ratio_to(item, ref)
    return {item.key: item for _, item in items}


def sample_panels(targets: list[Target], ref: Reference) -> dict[str, Any]:
    """Outputs of every target on the pair with the worst drift (lowest PSNR over all targets)."""

    frames = list(ref.frames)
    worst = np.full(len(frames), np.inf)
    for t in targets:
        for i, row in enumerate(getattr(t.drift, "per_pair", None) or []):
            if i < len(worst) and math.isfinite(row.get("psnr", math.inf)):
                worst[i] = min(worst[i], row["psnr"])
    i = int(np.argmin(worst)) if np.isfinite(worst).any() else 0
    outputs = {}
    for t in targets:
        if t.ready and t.kind != "reference" and t.predict is not None:
            try:
                outputs[t.id] = as_hwc(t.predict(frames[i])["fused"])
            except Exception:  # already reported by its drift pass; no panel for it
                continue
    return {
        "stem": ref.frames.stems[i],
        "visible": as_hwc(frames[i]["visible"]),
        "thermal": as_hwc(frames[i]["thermal"]),
        "reference": ref.outputs[i],
        "outputs": outputs,
    }
