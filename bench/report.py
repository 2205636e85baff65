"""The benchmark report: a versioned JSON document (schema in docs/bench.md), read back with validation,
and rendered as Markdown; several reports from different machines merge into one comparison.

JSON is strict: non-finite floats (the PSNR of identical outputs is inf) are written as the strings
"inf", "-inf", "nan", as in artifact manifests; readers convert numbers with ``float()``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse.bench.records import _NUMBERS, SCHEMA, SCHEMA_VERSION, TargetRecord, _is_number, body_problem
from edgefuse.errors import DataError
from edgefuse.io import atomic_write_text, dumps_strict

if TYPE_CHECKING:
    from edgefuse.bench.targets import Target

METRIC_ORDER = ("EN", "SD", "SF", "AG", "MI", "SCD", "CC", "PSNR", "VIF", "Qabf", "SSIM", "Nabf")


def target_record(t: Target, budget_sizes: dict[str, str]) -> dict[str, Any]:
    p = t.profile
    drift = None
    if t.drift is not None:
        drift = {k: v for k, v in t.drift.to_dict().items() if k != "frames"}
    return TargetRecord(
        id=t.id,
        kind=t.kind,
        backend=t.backend,
        precision=t.precision,
        device=t.device,
        batch=t.batch,
        threads=t.threads,
        runtime=t.runtime,
        status=t.status,
        reason=t.reason,
        profile=None
        if p is None
        else {
            "name": p.name,
            "device": p.device.name,
            "arch": p.device.arch,
            "size": p.size,
            "budget_size": budget_sizes.get(p.name, p.size),
        },
        artifact=t.artifact or None,
        load_seconds=t.load_seconds,
        warmup=t.warmup or None,
        latency=t.latency or None,
        ratio_to_reference=t.ratio or None,
        memory=t.memory or None,
        drift=drift,
        metrics=t.metrics or None,
        budgets={
            "latency": dataclasses.asdict(p.latency) if p is not None else None,
            "drift": drift["budget"] if drift else (dataclasses.asdict(p.drift) if p is not None else None),
        },
        notes=t.notes,
    ).to_dict()


def save_json(report: dict[str, Any], path: Path) -> None:
    atomic_write_text(path, dumps_strict(report, indent=1))


def load_report(path: str | Path, schema: str = SCHEMA) -> dict[str, Any]:
    """A report written by ``edgefuse bench --json`` (or a merged one), checked for schema and version."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such report file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    except ValueError as exc:
        raise DataError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != schema:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{path}: not an {schema} document (schema is {got!r})")
    version = data.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise DataError(f"{path}: schema_version must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise DataError(
            f"{path}: schema_version {version} is newer than this edgefuse reads ({SCHEMA_VERSION})"
        )
    keys = ("environment", "settings", "targets") if schema == SCHEMA else ("hosts", "rows", "reports")
    for key in keys:
        if key not in data:
            raise DataError(f"{path}: missing {key!r}")
    if not isinstance(data.get("targets", data.get("rows")), list):
        raise DataError(f"{path}: 'targets' must be a list")
    problem = body_problem(data) if schema == SCHEMA else merged_problem(data)
    if problem:  # found now, not after a whole benchmark run that then cannot compare against it
        raise DataError(f"{path}: malformed report: {problem}")
    return data


def merged_problem(data: dict[str, Any]) -> str:
    """What is wrong with a merged report's body ("" when nothing)."""
    hosts, rows = data.get("hosts"), data.get("rows")
    if not isinstance(hosts, list) or not all(
        isinstance(h, dict) and isinstance(h.get("label"), str) for h in hosts
    ):
        return "hosts must be a list of objects with a label"
    labels = {h["label"] for h in hosts}
    if not isinstance(rows, list):
        return "rows must be a list"
    for i, row in enumerate(rows):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("id"), str)
            or not isinstance(row.get("cells"), dict)
        ):
            return f"rows[{i}] must be an object with an id and cells"
        for label, cell in row["cells"].items():
            if label not in labels or not (cell is None or isinstance(cell, dict)):
                return f"rows[{i}].cells.{label} is not a host's cell"
            if cell and any(not _is_number(v) for k, v in cell.items() if k in _NUMBERS):
                return f"rows[{i}].cells.{label} must hold numbers"
    return ""


# --- reading numbers back -------------------------------------------------------------------------------


def num(x: Any) -> float:
    """A number from a report field (strings "inf"/"nan" included); NaN when absent."""
    if isinstance(x, bool) or x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def fmt(x: Any, digits: int = 2, inf: str = "∞") -> str:
    v = num(x)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return inf if v > 0 else f"-{inf}"
    return f"{v:.{digits}f}"


def summary(t: dict[str, Any]) -> dict[str, str]:
    """The cells of one target's row, as the console, Markdown and HTML tables show them."""
    lat = t.get("latency") or {}
    drift = (t.get("drift") or {}).get("drift") or {}
    changes = (t.get("drift") or {}).get("metric_change_pct") or {}
    worst = max(
        changes.items(),
        key=lambda kv: abs(num(kv[1])) if not math.isnan(num(kv[1])) else math.inf,
        default=None,
    )
    rr = t.get("ratio_to_reference") or {}
    ratio, noise = num(rr.get("median")), num(rr.get("noise_pct"))
    art = t.get("artifact") or {}
    mem = t.get("memory") or {}
    check = t.get("check") or {}
    status = t.get("status", "ok")
    return {
        "target": t["id"],
        "runtime": f"{t.get('backend', '?')} {t.get('precision', '?')}"
        + (f" b{t['batch']}" if t.get("batch", 1) > 1 else ""),
        "p50": fmt(lat.get("p50")),
        "p99": fmt(lat.get("p99")),
        "fps": fmt(lat.get("fps"), 1),
        "speedup": "ref" if t.get("kind") == "reference" else speedup(ratio, noise),
        "load": fmt(t.get("load_seconds")),
        "size_mb": fmt(num(art.get("bytes")) / 2**20, 1) if art.get("bytes") else "-",
        "rss_mb": fmt(mem.get("peak_added_mb"), 0),
        "psnr": "ref" if t.get("kind") == "reference" and not drift else fmt(drift.get("psnr_min"), 1),
        "max_abs": fmt(drift.get("max_abs")),
        "worst": f"{worst[0]} {num(worst[1]):+.2f}%" if worst else "-",
        "check": SHOWN_CHECK.get(s := (status if status != "ok" else check.get("status", "-")), s),
    }


SHOWN_CHECK = {"passed": "pass", "failed": "FAIL", "not_checked": "not checked", "not_run": "not run"}


def grouped_skips(report: dict[str, Any]) -> list[str]:
    """Profiles left out and targets that did not run, one line per reason: "reason: id, id, ..."."""
    by_reason: dict[str, list[str]] = {}
    for s in report.get("skipped") or []:
        by_reason.setdefault(str(s.get("reason", "")), []).append(str(s.get("id", "?")))
    for t in report.get("targets") or []:
        if t.get("status") != "ok":
            reason = f"{t.get('status')}: {t.get('reason', '')}"
            by_reason.setdefault(reason, []).append(str(t.get("id", "?")))
    return [f"{reason} ({len(ids)}): {', '.join(ids)}" for reason, ids in by_reason.items()]


def speedup(ratio: float, noise_pct: float) -> str:
    """The reference's p50 over this target's, with the round-to-round noise of that ratio beside it."""
    if not ratio > 0:
        return "-"
    shown = f"×{1 / ratio:.2f}"
    if math.isfinite(noise_pct):
        shown += f" ±{noise_pct:.0f}%"
    return shown


COLUMNS = (
    ("target", "target"),
    ("runtime", "backend precision"),
    ("p50", "p50 ms"),
    ("p99", "p99 ms"),
    ("fps", "FPS"),
    ("speedup", "vs torch"),
    ("load", "load s"),
    ("size_mb", "size MB"),
    ("rss_mb", "RSS +MB"),
    ("psnr", "PSNR dB"),
    ("max_abs", "max |Δ|"),
    ("worst", "worst metric Δ"),
    ("check", "check"),
)


def headline(report: dict[str, Any]) -> str:
    env, s, data = report["environment"], report["settings"], report.get("data") or {}
    kind = "SYNTHETIC" if data.get("synthetic") else "real"
    created = str(report.get("created", ""))[:16].replace("T", " ")
    return (
        f"{env.get('label', '?')} · {created} UTC · {s.get('size')} · {s.get('device')} · "
        f"{s.get('threads')} threads · {data.get('pairs', '?')} {kind} pairs ({data.get('source', '?')}) · "
        f"wall {fmt(report.get('wall_seconds'), 0)} s"
    )


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [_md_row(head), _md_row(["---"] * len(head)), *(_md_row(r) for r in rows)]


def created_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
