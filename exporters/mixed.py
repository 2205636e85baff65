"""The mixed-precision fallback: when a full int8 build misses its budget, keep the most damaging layer
groups in float, found by measuring, until the budget holds (docs/export.md, "int8 and the
mixed-precision fallback")."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse.drift import FAILED, budget_dict, check
from edgefuse.exporters.base import Build, Exporter, Job, MixedSearch, quiet
from edgefuse.exporters.validate import PROBE, PROBE_METRICS, SEARCH, groups_of, validate
from edgefuse.io import sha256_path

if TYPE_CHECKING:
    from edgefuse.drift import DriftResult
    from edgefuse.exporters.validate import Report


def mixed_precision(
    job: Job, exporter: Exporter, work: Path, first_build: Build, first: DriftResult, report: Report
) -> tuple[Build, DriftResult, dict[str, Any]]:
    """Keep layer groups in float, one at a time, until the budget holds (at most half the groups: past
    that an int8 build is mostly float, and the miss is reported instead).

    Each step measures which group to add: for every group not yet kept, a probe with the kept groups and
    that one left unquantized (two held-out frames: per-pixel drift, the inexpensive fusion metrics and Qabf,
    scored against the budget by :func:`budget_use`), and the group whose probe uses the least of the
    budget is kept, rebuilt for real and validated on every held-out pair. Measuring on top of what is
    already kept matters: once the full-resolution tail is float, the quantized luminance at the input is
    what drives the remaining error, which a one-off ranking of "this group alone" does not show. The ONNX
    and OpenVINO probes remove the activation quantizers that feed those groups from the full int8 graph
    and put their float weights back (milliseconds; only the ranking comes from them); LiteRT probes are
    real builds. An exporter with several ``probe_kinds`` (ONNX: float weights, then int8 weights) gets a
    search per kind, the next only after a miss: no kind ranks every student well (docs/export.md).

    When an earlier search in this run kept some groups, that answer is tried first, shortest prefix
    first, and used only if this backend's own validation passes with it."""

    groups = groups_of(job, exporter)
    bud = budget_dict(job.profile.drift)
    # an identical int8 build under the same budget was searched already (e.g. two TensorRT int8 profiles)
    key = ("mixed", exporter.backend, sha256_path(work / first_build.artifact), tuple(sorted(bud.items())))
    known = job.session.search(key)
    hint = [g for g in job.session.mixed_hint if g in groups]
    failed: set[frozenset[str]] = set()  # kept sets whose build missed the budget here
    # an identical search is replayed whatever it found; an earlier one's groups are tried shortest first
    for answer in [known.kept] if known else [hint[: i + 1] for i in range(len(hint))]:
        build, result = _keep(job, exporter, work, groups, answer, report)
        failed.add(frozenset(answer))
        if known or result.status is not FAILED:
            prior = known.steps if known else []
            how = "the groups an identical search kept" if known else "the groups an earlier search kept"
            job.session.remember_search(key, MixedSearch(prior, answer))
            return build, result, _info(first, f"{how}, confirmed by this validation", prior, answer, result)
    build, result = first_build, first
    steps: list[dict[str, Any]] = []
    kept: list[str] = []
    for kind in exporter.probe_kinds:  # the next kind of probe only when a search by this one missed
        probe_job = replace(job, probe=kind)
        build, result, kind_steps, kept = _greedy(probe_job, exporter, work, groups, bud, failed, report)
        steps += [{"probe": kind, **step} if kind else step for step in kind_steps]
        if result.status is not FAILED:
            break
    job.session.remember_search(key, MixedSearch(steps, kept))
    if result.status is not FAILED:
        job.session.mixed_hint = kept
    method = (
        "greedy: per step, a probe per remaining group with it and the kept groups unquantized, scored "
        f"against the budget (drift and {', '.join(PROBE_METRICS)} vs fp32 on 2 held-out frames); the "
        "group whose probe uses the least of the budget is kept and the build validated on every pair"
    )
    if len(exporter.probe_kinds) > 1:
        method += f"; probes of kind {' then '.join(exporter.probe_kinds)}, the next only after a miss"
    return build, result, _info(first, method, steps, kept, result)


def _greedy(
    job: Job,
    exporter: Exporter,
    work: Path,
    groups: dict[str, list[str]],
    bud: dict[str, float],
    failed: set[frozenset[str]],
    report: Report,
) -> tuple[Build, DriftResult, list[dict[str, Any]], list[str]]:
    """One greedy search ranked by ``job.probe``'s kind of probe; ``failed``: kept sets already built and
    missed (not built again; this search adds its own)."""
    kept: list[str] = []
    steps: list[dict[str, Any]] = []
    built: list[str] | None = None  # the kept groups of the build in ``work``
    for _ in range(max(1, len(groups) // 2)):
        scores = _rank(job, exporter, groups, kept, bud, report)
        kept.append(next(iter(scores)))
        steps.append({"kept_before": kept[:-1], "probes": scores})
        if frozenset(kept) in failed:
            continue  # built and missed already: measure the next step
        build, result = _keep(job, exporter, work, groups, kept, report)
        built = list(kept)
        if result.status is not FAILED:
            return build, result, steps, kept
        failed.add(frozenset(kept))
    if built != kept:  # the last step was skipped: ``work`` holds another build
        build, result = _keep(job, exporter, work, groups, kept, report)
    return build, result, steps, kept


def _info(
    first: DriftResult, method: str, steps: list[dict[str, Any]], kept: list[str], result: DriftResult
) -> dict[str, Any]:
    """The manifest's ``mixed_precision`` record; ``sensitivity`` is the first step's probes (each group
    kept in float on its own, best first) of the search that gave ``kept`` (the last kind of probe)."""
    last = [s for s in steps if s.get("probe") == steps[-1].get("probe")] if steps else []
    return {
        "trigger": first.misses,
        "method": method,
        "sensitivity": last[0]["probes"] if last else {},
        "steps": steps,
        "kept": kept,
        "met_budget": result.status is not FAILED,
    }


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
    return build, validate(job, build, report, SEARCH)


def _rank(
    job: Job,
    exporter: Exporter,
    groups: dict[str, list[str]],
    kept: list[str],
    bud: dict[str, float],
    report: Report,
) -> dict[str, dict[str, Any]]:
    """Per group not in ``kept``: what a probe with it and ``kept`` unquantized uses of the budget; best
    first (fewest misses, then the smallest largest share, then the smallest total; graph order breaks
    ties)."""
    todo = [g for g in groups if g not in kept]
    base = [n for g in kept for n in groups[g]]
    scores: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(todo):
        report(f"mixed precision: step {len(kept) + 1}, probe {i + 1}/{len(todo)} ({name})")
        probe_dir = Path(tempfile.mkdtemp(prefix="probe-", dir=job.session.scratch))
        try:
            with quiet():
                probe = exporter.build(job, probe_dir, exclude=base + groups[name], quick=True)
            result = validate(job, probe, report, PROBE)
        finally:
            shutil.rmtree(probe_dir, ignore_errors=True)
        scores[name] = budget_use(result, bud)
    order = sorted(scores, key=lambda g: (scores[g]["misses"], scores[g]["budget_used"], scores[g]["total"]))
    return {g: scores[g] for g in order}


def budget_use(result: DriftResult, bud: dict[str, float]) -> dict[str, Any]:
    """How much of its budget a result uses. Per item, the share of its allowance: the MSE against the MSE
    the PSNR floor allows (worst pair), max |Δ| against its bound, each scored fusion metric's change
    against the limit; ``budget_used`` is the largest (> 1: a miss), ``total`` their sum."""

    drift = result.drift
    if not result.ran or drift.get("nonfinite") or "psnr_min" not in drift:
        none = dict.fromkeys(("psnr_min", "max_abs", "worst_metric"))
        return {**none, "misses": 99, "budget_used": math.inf, "total": math.inf}
    changes = result.metric_change_pct
    limit = bud["max_metric_change_pct"]
    share = {k: abs(v) / limit if math.isfinite(v) else math.inf for k, v in changes.items()}
    used = [10 ** ((bud["min_psnr_db"] - drift["psnr_min"]) / 10), drift["max_abs"] / bud["max_abs_8bit"]]
    worst = max(share, key=lambda k: share[k], default="")
    return {
        "psnr_min": round(drift["psnr_min"], 2),
        "max_abs": round(drift["max_abs"], 2),
        "worst_metric": f"{worst} {changes[worst]:+.2f}%" if worst else None,
        "misses": len(check(drift, changes, bud)),
        "budget_used": round(max(used + list(share.values())), 3),
        "total": round(sum(used + list(share.values())), 3),
    }
