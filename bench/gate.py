"""Gates on a report: profile budgets (``--check``), a relative latency budget against the torch reference
of the same run (``--max-ratio``), a regression gate against an earlier report (``--baseline``), and
JUnit XML for CI systems.

Which budgets gate where:
- drift budgets always gate (numerics do not depend on the machine);
- a profile's latency budget gates only where it describes this machine: ``auto`` (default) when the
  profile's device is this host (:func:`edgefuse.bench.env.device_matches`) and the benchmark ran at the
  size the budget was derived for; ``on`` wherever the size matches (on the device itself, when it names
  itself differently); ``off`` never;
- ``--max-ratio R``: every exported artifact's p50 must be at most R × the torch reference's p50, as
  medians of per-round ratios; machine-independent, so it gates anywhere.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

from edgefuse.bench.env import device_matches
from edgefuse.bench.records import LatencyBudgets, Report, Status, TargetRecord
from edgefuse.bench.report import num
from edgefuse.bench.timing import spread_pct

LATENCY_RULES = {
    LatencyBudgets.AUTO: "gate only where the profile's device is this host and the size is the budget's",
    LatencyBudgets.ON: "gate wherever the size is the budget's (--latency-budgets on)",
    LatencyBudgets.OFF: "never gate (--latency-budgets off)",
}


def latency_applies(t: TargetRecord, env: dict[str, Any], mode: LatencyBudgets) -> tuple[bool, str]:
    prof = t.profile or {}
    if not prof or not t.budgets.get("latency"):
        return False, "no latency budget"
    if mode is LatencyBudgets.OFF:
        return False, "latency budgets off"
    if prof.get("size") != prof.get("budget_size"):
        return False, f"measured at {prof.get('size')}, budget is for {prof.get('budget_size')}"
    if mode is LatencyBudgets.ON or device_matches(str(prof.get("device", "")), env):
        return True, f"budget for {prof.get('device')}"
    return False, f"budget is for {prof.get('device')}, not this host"


def apply_checks(
    report: dict[str, Any], mode: LatencyBudgets | str = LatencyBudgets.AUTO, max_ratio: float | None = None
) -> list[str]:
    """Fill each target's ``check`` and the report's ``check``; returns every miss, one line each.
    :class:`~edgefuse.errors.DataError` when ``report`` is malformed (see :meth:`Report.from_dict`)."""
    if mode not in set(LatencyBudgets):
        raise ValueError(f"latency budget mode must be one of {', '.join(LATENCY_RULES)}, got {mode!r}")
    mode = LatencyBudgets(mode)
    rec = Report.from_dict(report)
    env, all_misses = rec.environment, []
    settings = rec.settings
    # what the user named (-p NAME, artifact directories): each must run, or --check fails
    requested = set(settings.get("requested") or [])
    applied, budgeted = 0, 0
    for raw, t in zip(rec.targets, rec.target_records(), strict=True):
        misses, notes = _check_target(t, env, mode, max_ratio)
        if t.status == Status.NOT_RUN and _named(t.id, requested):
            misses.append(f"requested but did not run: {t.reason}")
        if t.kind == "artifact" and t.status == Status.OK and t.budgets.get("latency"):
            budgeted += 1
            applied += latency_applies(t, env, mode)[0]
        status = (
            "failed"
            if misses
            else (
                "not_checked"
                if t.kind == "reference" or t.status == Status.NOT_RUN or t.kind == "variant"
                else "passed"
            )
        )
        raw["check"] = {"status": status, "misses": misses, "notes": notes}  # into the caller's report
        all_misses += [f"{t.id}: {m}" for m in misses]
    for s in rec.skipped:
        if _named(s["id"], requested):
            all_misses.append(f"{s['id']}: requested but not benchmarked: {s['reason']}")
    synthetic = bool(rec.data.get("synthetic"))
    if synthetic and not settings.get("allow_synthetic"):
        all_misses.append(
            "data: drift measured on SYNTHETIC frames, not real pairs (pass --data DIR, "
            "or --allow-synthetic to accept generated scenes)"
        )
    report["check"] = {
        "passed": not all_misses,
        "misses": all_misses,
        "latency_budgets": mode,
        "latency_rule": LATENCY_RULES[mode],
        "latency_applied": f"{applied} of {budgeted}",
        "max_ratio": max_ratio,
        "synthetic": synthetic,
    }
    return all_misses


def _named(target_id: str, requested: set[str]) -> bool:
    """Whether a target (``name`` or ``name@HxW``) is one the user named."""
    return target_id in requested or target_id.split("@")[0] in requested


def _check_target(
    t: TargetRecord, env: dict[str, Any], mode: LatencyBudgets, max_ratio: float | None
) -> tuple[list[str], list[str]]:
    if t.kind == "reference":
        return [], ["the reference"]
    if t.status == Status.ERROR:
        return [f"could not run: {t.reason}"], []
    if t.status == Status.NOT_RUN:
        return [], [t.reason or "not run"]
    if t.kind == "variant":
        return [], ["torch variant: informational, no budget"]
    misses, notes = [], []
    drift = t.drift or {}
    misses += [f"drift: {m}" for m in drift.get("misses") or []]
    applies, why = latency_applies(t, env, mode)
    lat, budget = t.latency or {}, t.budgets.get("latency") or {}
    if applies and lat:
        p50, p99, fps = num(lat.get("p50")), num(lat.get("p99")), num(lat.get("fps"))
        if p50 > budget["p50_ms"]:
            misses.append(f"latency: p50 {p50:.2f} ms > {budget['p50_ms']:g} ms")
        if p99 > budget["p99_ms"]:
            misses.append(f"latency: p99 {p99:.2f} ms > {budget['p99_ms']:g} ms")
        if fps < budget["min_fps"]:
            misses.append(f"latency: {fps:.1f} FPS < {budget['min_fps']:g} FPS")
    notes.append(f"latency budget {'applied' if applies else 'not applied'}: {why}")
    ratio = num((t.ratio_to_reference or {}).get("median"))
    if max_ratio is not None:
        if math.isnan(ratio):
            misses.append("latency: no ratio to the torch reference (reference not timed)")
        elif ratio > max_ratio:
            misses.append(f"latency: p50 is {ratio:.2f}× the torch reference's (budget {max_ratio:g}×)")
    return misses, notes


# --- regression against a baseline ----------------------------------------------------------------------


def compare(report: dict[str, Any], baseline: dict[str, Any], max_regression_pct: float) -> dict[str, Any]:
    """Each target's slowdown vs ``baseline`` as the change of its median ratio to the torch reference.

    ``noise`` combines the spread of the per-round ratios of both runs (root of the sum of squares of
    their half-ranges). regressed: change − noise > threshold; ok: change + noise ≤ threshold; anything
    between is inconclusive: the machine was too noisy to tell. Without a reference in either run the raw
    p50s are compared, with their round-to-round spread as the noise. :class:`~edgefuse.errors.DataError`
    when either report is malformed."""
    rec, base = Report.from_dict(report), Report.from_dict(baseline)
    now = {t.id: t for t in rec.target_records()}
    before = {t.id: t for t in base.target_records()}
    rows = []
    for tid in [*now, *(k for k in before if k not in now)]:
        a, b = now.get(tid), before.get(tid)
        row: dict[str, Any] = {"id": tid}
        if a is None or b is None or not a.latency or not b.latency:
            row["status"] = "new" if b is None else ("missing" if a is None else "not_timed")
            rows.append(row)
            continue
        raw = _change_pct(num(a.latency.get("p50")), num(b.latency.get("p50")))
        row["raw_change_pct"] = raw
        ra, rb = a.ratio_to_reference or {}, b.ratio_to_reference or {}
        if a.kind == "reference":
            row["status"] = "reference"
            rows.append(row)
            continue
        if ra and rb and math.isfinite(num(ra.get("median"))) and math.isfinite(num(rb.get("median"))):
            row["ratio_now"], row["ratio_before"] = num(ra["median"]), num(rb["median"])
            change = _change_pct(row["ratio_now"], row["ratio_before"])
            noise = math.hypot(num(ra.get("noise_pct")), num(rb.get("noise_pct")))
        else:
            change = raw
            noise = math.hypot(
                spread_pct(a.latency.get("round_p50", [])), spread_pct(b.latency.get("round_p50", []))
            )
        row["change_pct"], row["noise_pct"] = change, noise
        if change - noise > max_regression_pct:
            row["status"] = "regressed"
        elif change + noise <= max_regression_pct:
            row["status"] = "ok"
        else:
            row["status"] = "inconclusive"
        rows.append(row)
    env_now, env_before = rec.environment, base.environment
    same = (env_now.get("cpu") or {}).get("model") == (env_before.get("cpu") or {}).get("model")
    return {
        "baseline": {"label": env_before.get("label"), "created": base.created or None, "same_cpu": same},
        "max_regression_pct": max_regression_pct,
        "rows": rows,
        "regressed": [r["id"] for r in rows if r["status"] == "regressed"],
        "inconclusive": [r["id"] for r in rows if r["status"] == "inconclusive"],
        "passed": not any(r["status"] == "regressed" for r in rows),
        "method": "change of the median per-round ratio of p50 to the torch reference of the same run; "
        "regressed when change - noise > threshold, ok when change + noise <= threshold, else inconclusive"
        + ("" if same else "; NOTE: the baseline was taken on a different CPU"),
    }


# --- JUnit XML ------------------------------------------------------------------------------------------


def _change_pct(now: float, before: float) -> float:
    """Relative change in percent; NaN when the earlier value is zero or missing (nothing to compare)."""
    return 100.0 * (now / before - 1.0) if before and math.isfinite(before) else math.nan


def junit_xml(report: dict[str, Any]) -> str:
    """One testsuite; per target a ``budgets`` case (failure lists misses, skipped when not checked) and,
    with a baseline, a ``regression`` case (skipped when inconclusive). :class:`~edgefuse.errors.DataError`
    when ``report`` is malformed."""
    rec = Report.from_dict(report)
    suite = ET.Element("testsuite", name="edgefuse.bench")
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("host", rec.environment.get("label", "")),
        ("schema_version", str(rec.schema_version or "")),
        ("size", str(rec.settings.get("size", ""))),
    ):
        ET.SubElement(props, "property", name=key, value=str(value))
    regression = {r["id"]: r for r in (rec.regression or {}).get("rows", [])}
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    for t in rec.target_records():
        check = t.check or {}
        seconds = num((t.latency or {}).get("mean")) * num((t.latency or {}).get("n")) / 1000
        case = _case(suite, t.id, "budgets", seconds, counts)
        if check.get("misses"):
            _mark(case, "failure", "; ".join(check["misses"]), counts)
        elif check.get("status") != "passed":
            _mark(case, "skipped", "; ".join(check.get("notes", [])) or "not checked", counts)
        if t.id in regression:
            r = regression[t.id]
            case = _case(suite, t.id, "regression", 0.0, counts)
            text = f"change {num(r.get('change_pct')):+.1f}% ± {num(r.get('noise_pct')):.1f}%"
            if r["status"] in ("reference", "new", "missing", "not_timed"):
                text = f"raw p50 change {num(r.get('raw_change_pct')):+.1f}%" if "raw_change_pct" in r else ""
            if r["status"] == "regressed":
                _mark(case, "failure", f"regressed: {text}", counts)
            elif r["status"] != "ok":
                _mark(case, "skipped", f"{r['status']}: {text}", counts)
    requested = set(rec.settings.get("requested") or [])
    for skipped in rec.skipped:  # profiles left out: failed when named, else skipped
        case = _case(suite, skipped["id"], "budgets", 0.0, counts)
        kind = "failure" if _named(skipped["id"], requested) else "skipped"
        _mark(case, kind, f"not benchmarked: {skipped['reason']}", counts)
    synthetic = [m for m in (rec.check or {}).get("misses", []) if m.startswith("data: ")]
    if synthetic:
        _mark(_case(suite, "data", "real pairs", 0.0, counts), "failure", synthetic[0], counts)
    suite.set("tests", str(counts["tests"]))
    suite.set("failures", str(counts["failures"]))
    suite.set("errors", "0")
    suite.set("skipped", str(counts["skipped"]))
    suite.set("time", f"{num(rec.wall_seconds):.1f}")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _case(suite: ET.Element, target: str, name: str, seconds: float, counts: dict[str, int]) -> ET.Element:
    counts["tests"] += 1
    sec = seconds if math.isfinite(seconds) else 0.0
    return ET.SubElement(
        suite, "testcase", classname=f"edgefuse.bench.{target}", name=name, time=f"{sec:.3f}"
    )


def _mark(case: ET.Element, kind: str, message: str, counts: dict[str, int]) -> None:
    counts["failures" if kind == "failure" else "skipped"] += 1
    el = ET.SubElement(case, kind, message=message[:1000])
    el.text = message
