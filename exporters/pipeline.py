"""Export one profile: build in a temporary directory beside the target, validate, fall back to mixed
precision when int8 misses its budget, write ``edgefuse.json``, then swap the directory into place.

A killed or failed export leaves no half-written artifact: the target is either the previous complete
artifact or the new one. A build that ran and missed its budget is not installed; it is kept, complete
with its manifest, as ``<name>.rejected`` beside the target so it can be inspected.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse.errors import ExportError
from edgefuse.exporters.base import (
    Build,
    Exporter,
    ExportSession,
    Job,
    quiet,
    sha256_path,
    size_bytes,
    tool_versions,
)

if TYPE_CHECKING:
    from edgefuse.bench.drift import DriftResult, Reference
    from edgefuse.profiles import Profile

SCHEMA_VERSION = 1
MANIFEST = "edgefuse.json"
Report = Callable[[str], None]


@dataclass
class Outcome:
    """The result of exporting one profile, as the CLI reports it."""

    profile: str
    status: str  # passed | failed | not_validated | up_to_date
    path: Path
    seconds: float = 0.0
    validation: dict[str, Any] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "not_validated", "up_to_date")


def existing_status(profile: Profile, target: Path, session: ExportSession) -> str | None:
    """``None`` when nothing is at ``target``; "up_to_date" when it was built from this checkpoint for this
    profile; otherwise :class:`ExportError` (a different build is there: ``--force`` replaces it)."""
    if not target.exists():
        return None
    try:
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ExportError(
            f"{target}: exists without a readable {MANIFEST}; pass --force to replace it"
        ) from None
    calibrated = profile.precision.value == "int8"
    want = {
        "schema_version": SCHEMA_VERSION,
        "weights_sha256": session.info.weights_sha256,
        "profile": _spec(profile.to_dict()),
        "calibration source": str(session.calib_dir or profile.calibration.path()) if calibrated else None,
    }
    got = {
        "schema_version": manifest.get("schema_version"),
        "weights_sha256": (manifest.get("checkpoint") or {}).get("weights_sha256"),
        "profile": _spec(manifest.get("profile_spec") or {}),
        "calibration source": (manifest.get("calibration") or {}).get("source") if calibrated else None,
    }
    diff = [k for k in want if want[k] != got[k]]
    if diff:
        raise ExportError(
            f"{target}: an artifact with a different {', '.join(diff)} exists; pass --force to replace it"
        )
    return "up_to_date"


def _spec(d: dict[str, Any]) -> dict[str, Any]:
    """A profile as it reads back from JSON, without the file it was loaded from."""
    return {k: v for k, v in json.loads(json.dumps(d)).items() if k != "source"}


def export_profile(
    session: ExportSession,
    profile: Profile,
    exporter: Exporter,
    out_root: Path,
    *,
    force: bool = False,
    report: Report = lambda _: None,
) -> Outcome:
    target = out_root / profile.name
    if not force and existing_status(profile, target, session) == "up_to_date":
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
        val = manifest.get("validation") or {}
        kept = manifest.get("kept_in_higher_precision", [])
        note = "already built from this checkpoint (--force rebuilds)"
        return Outcome(profile.name, "up_to_date", target, 0.0, val, kept, note)
    out_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{profile.name}.tmp-", dir=out_root))
    try:
        start = time.perf_counter()
        job = Job(session, profile)
        report("building")
        with quiet():
            build = exporter.build(job, work)
        result = _validate(job, build, report)
        mixed: dict[str, Any] | None = None
        if result.status == "failed" and profile.precision.value == "int8" and _groups(job, exporter):
            build, result, mixed = _mixed_precision(job, exporter, work, build, result, report)
        seconds = time.perf_counter() - start
        _write_manifest(job, exporter, build, result, mixed, work, seconds)
        if result.status == "failed":
            rejected = out_root / f"{profile.name}.rejected"
            _install(work, rejected)
            return Outcome(profile.name, "failed", rejected, seconds, result.to_dict(), build.kept,
                           "; ".join(result.misses))  # fmt: skip
        _install(work, target)
        shutil.rmtree(out_root / f"{profile.name}.rejected", ignore_errors=True)  # superseded
        status = "passed" if result.status == "passed" else "not_validated"
        msg = result.summary() if result.ran else f"not validated here: {result.reason}"
        return Outcome(profile.name, status, target, seconds, result.to_dict(), build.kept, msg)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already when installed


def _install(work: Path, target: Path) -> None:
    """Swap ``work`` into ``target``: the old directory moves aside first and is deleted last."""
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.rename(target, old)
    try:
        os.rename(work, target)
    except BaseException:
        if old.exists() and not target.exists():
            os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _validate(job: Job, build: Build, report: Report, probe: bool = False) -> DriftResult:
    from edgefuse.bench.drift import not_run, validate_artifact

    budget = job.profile.drift
    if build.validate is None:
        return not_run(build.not_validated or "no runtime for this artifact here", budget)
    report("validating" if not probe else "measuring sensitivity")
    session = job.session
    try:
        ref: Reference = session.reference(job.profile, probe=probe)
    except Exception as exc:  # no frames is an environment problem, not a budget miss
        raise ExportError(f"{job.profile.name}: cannot prepare validation frames ({exc})") from exc
    v = build.validate
    # the knobs of the runtime that runs it (a TensorRT profile emulated in ONNX Runtime: ORT's defaults)
    key = ("drift", v.backend, sha256_path(v.path), repr(getattr(job.profile, v.backend, None)), id(ref))
    cached = session._cache.get(key)
    if cached is not None:  # identical file already measured for another profile: re-check its budget only
        return _rebudget(cached, budget)
    with quiet():
        result = validate_artifact(
            v.path, ref, budget, backend=v.backend, profile=job.profile, threads=session.threads,
            emulation=v.emulation, with_metrics=not probe,
        )  # fmt: skip
    session._cache[key] = result
    return result


def _groups(job: Job, exporter: Exporter) -> dict[str, list[str]]:
    with quiet():
        return exporter.groups(job)


def _rebudget(result: DriftResult, budget: Any) -> DriftResult:
    import dataclasses

    from edgefuse.bench.drift import budget_dict, check

    bud = budget_dict(budget)
    if not result.ran or not result.drift.get("psnr_min"):
        return dataclasses.replace(result, budget=bud)
    misses = check(result.drift, result.metric_change_pct, bud)
    return dataclasses.replace(result, budget=bud, misses=misses, status="failed" if misses else "passed")


def _mixed_precision(
    job: Job, exporter: Exporter, work: Path, first_build: Build, first: DriftResult, report: Report
) -> tuple[Build, DriftResult, dict[str, Any]]:
    """Measure each layer group's sensitivity (only that group int8, the rest float; drift on two held-out
    frames), then keep the most sensitive groups in float, one at a time, until the budget holds (at most
    half the groups: past that an int8 build is mostly float, and the miss is reported instead).

    "Only this group in int8" ranks by the damage each group does on its own; the opposite probe ("all but
    this group") hides a damaging group behind a worse one (the full-resolution tail masks the input).
    When an earlier search in this run kept some groups, that answer is tried first and used only if this
    backend's own validation passes with it; otherwise this backend is measured from scratch."""
    from edgefuse.bench.drift import budget_dict

    groups = _groups(job, exporter)
    bud = budget_dict(job.profile.drift)
    # an identical int8 build under the same budget was searched already (e.g. two TensorRT int8 profiles)
    key = ("mixed", exporter.backend, sha256_path(work / first_build.artifact), tuple(sorted(bud.items())))
    known: dict[str, Any] | None = job.session._cache.get(key)
    hint = [g for g in job.session._cache.get(("mixed-hint",), []) if g in groups]
    # an identical search is replayed whatever it found; an earlier one's groups are tried shortest first
    for answer in [known["kept"]] if known else [hint[: i + 1] for i in range(len(hint))]:
        build, result = _keep(job, exporter, work, groups, answer, report)
        if known or result.status != "failed":
            scores = known["sensitivity"] if known else {}
            how = "the groups an identical search kept" if known else "the groups an earlier search kept"
            job.session._cache[key] = {"sensitivity": scores, "kept": answer}
            return (
                build,
                result,
                {
                    "trigger": first.misses,
                    "method": f"{how}, confirmed by this validation",
                    "sensitivity": scores,
                    "kept": answer,
                    "met_budget": result.status != "failed",
                },
            )
    scores = _sensitivity(job, exporter, groups, bud, report)
    kept: list[str] = []
    build, result = first_build, first
    for name in list(scores)[: max(1, len(scores) // 2)]:
        kept.append(name)
        build, result = _keep(job, exporter, work, groups, kept, report)
        if result.status != "failed":
            break
    job.session._cache[key] = {"sensitivity": scores, "kept": kept}
    if result.status != "failed":
        job.session._cache[("mixed-hint",)] = kept
    info = {
        "trigger": first.misses,
        "method": "only one group int8, drift vs fp32 on 2 held-out frames; groups with the most budget "
        "misses, then the lowest PSNR, are kept in float first",
        "sensitivity": scores,
        "kept": kept,
        "met_budget": result.status != "failed",
    }
    return build, result, info


def _keep(
    job: Job, exporter: Exporter, work: Path, groups: dict[str, list[str]], kept: list[str], report: Report
) -> tuple[Build, DriftResult]:
    """Rebuild into ``work`` with ``kept`` groups in float and validate."""
    report(f"mixed precision: int8 with {', '.join(kept)} in float")
    for child in work.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    with quiet():
        build = exporter.build(job, work, exclude=[n for g in kept for n in groups[g]])
    build.kept = list(kept)
    return build, _validate(job, build, report)


def _sensitivity(
    job: Job, exporter: Exporter, groups: dict[str, list[str]], bud: dict[str, float], report: Report
) -> dict[str, dict[str, Any]]:
    """Per group, the drift with only that group in int8; most sensitive first."""
    from edgefuse.bench.drift import check

    scores: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(groups):
        report(f"mixed precision: sensitivity {i + 1}/{len(groups)} ({name})")
        probe_dir = Path(tempfile.mkdtemp(prefix="probe-", dir=job.session.scratch))
        try:
            with quiet():
                others = [n for g, members in groups.items() if g != name for n in members]
                probe = exporter.build(job, probe_dir, exclude=others, quick=True)
            result = _validate(job, probe, report, probe=True)
        finally:
            shutil.rmtree(probe_dir, ignore_errors=True)
        ran = bool(result.drift.get("psnr_min"))
        scores[name] = {
            "psnr_min": round(result.drift["psnr_min"], 2) if ran else None,
            "max_abs": round(result.drift["max_abs"], 2) if ran else None,
            "misses": len(check(result.drift, {}, bud)) if ran else 99,
        }
    order = sorted(scores, key=lambda g: (-scores[g]["misses"], scores[g]["psnr_min"] or 0.0))
    return {g: scores[g] for g in order}


def _write_manifest(
    job: Job,
    exporter: Exporter,
    build: Build,
    result: DriftResult,
    mixed: dict[str, Any] | None,
    work: Path,
    seconds: float,
) -> None:
    from edgefuse import __version__

    profile, info = job.profile, job.session.info
    artifact = work / build.artifact
    files = {
        p.name: {"sha256": sha256_path(p), "bytes": size_bytes(p)}
        for p in sorted(work.iterdir())
        if p.name != MANIFEST
    }
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "edgefuse_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "profile": profile.name,
        "profile_spec": profile.to_dict(),
        "backend": profile.backend,
        "precision": profile.precision.value,
        "precision_detail": build.precision_detail,
        "io": profile.io.to_dict(),
        "checkpoint": {
            "path": info.path,
            "file_sha256": info.file_sha256,
            "weights_sha256": info.weights_sha256,
            "size": info.config.name,
        },
        "artifact": build.artifact,
        "artifact_sha256": sha256_path(artifact),
        "artifact_bytes": size_bytes(artifact),
        "files": files,
        "total_bytes": sum(f["bytes"] for f in files.values()),
        "tools": tool_versions(exporter.tools),
        "export_seconds": round(seconds, 2),
        "kept_in_higher_precision": build.kept,
        "mixed_precision": mixed,
        "calibration": job.session.calibration(profile).to_dict() if build.calibrated else None,
        "validation": result.to_dict(),
        "backend_details": build.details,
    }
    tmp = work / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(_jsonable(manifest), indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, work / MANIFEST)


def _jsonable(x: Any) -> Any:
    """Strict JSON: non-finite floats (PSNR of identical outputs is inf) become the strings "inf"/"nan"."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x
