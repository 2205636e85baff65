"""The benchmark report's records as dataclasses: :class:`Report` (one run) and :class:`TargetRecord` (one
target in it). Their fields are the JSON schema of docs/bench.md ("JSON schema"), which a test checks
against them; the JSON keeps this field order.

A record is built typed and written as a plain JSON object. Readers take the checked dict that
:func:`~edgefuse.bench.report.load_report` returns (or one a run just built) and read it through
:meth:`Report.from_dict` / :meth:`TargetRecord.from_dict`, which check it as the loader does: whatever the
loader accepts, they build. Read this way: :mod:`.gate`, :mod:`.markdown`, :mod:`.html`, :mod:`.merge`;
:mod:`.report`'s row helpers (``summary``, ``headline``, ``grouped_skips``) still take the dicts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from edgefuse._enum import TextEnum
from edgefuse.errors import DataError

SCHEMA = "edgefuse.bench.report"
MERGED_SCHEMA = "edgefuse.bench.merged"
SCHEMA_VERSION = 1


class LatencyBudgets(TextEnum):
    """Where a profile's latency budget gates (``--latency-budgets``; ``settings.latency_budgets``)."""

    AUTO = "auto"  # only on the profile's own device, at the budget's size
    ON = "on"
    OFF = "off"


class Status(TextEnum):
    """A target's ``status``."""

    OK = "ok"
    NOT_RUN = "not_run"
    ERROR = "error"


@dataclass
class TargetRecord:
    """One target: the fp32 reference, a torch variant or an exported artifact."""

    id: str
    kind: str  # reference | artifact | variant
    backend: str
    precision: str
    device: str
    batch: int
    threads: int | None  # None on a GPU: the CPU thread count does not apply
    runtime: str
    status: str  # ok | not_run | error
    reason: str
    profile: dict[str, Any] | None  # name, device, arch, size, budget_size
    artifact: dict[str, Any] | None  # path, file, bytes, artifact_bytes, sha256, profile, created, export
    load_seconds: float
    warmup: dict[str, Any] | None
    latency: dict[str, Any] | None
    ratio_to_reference: dict[str, Any] | None
    memory: dict[str, Any] | None
    drift: dict[str, Any] | None  # DriftResult.to_dict() without its frames
    metrics: dict[str, Any] | None
    budgets: dict[str, Any]  # latency, drift
    notes: list[str]
    check: dict[str, Any] | None = None  # status, misses, notes: set by the gate (bench.gate.apply_checks)

    @classmethod
    def from_dict(cls, t: Any) -> TargetRecord:
        """A target read back from a report, checked as :func:`~edgefuse.bench.report.load_report` checks
        it; a field the report leaves out takes the value its readers assumed (``budgets`` ``{}``, no
        tables, batch 1). :class:`~edgefuse.errors.DataError` in one line on a malformed target."""
        problem = _target_problem(0, t)
        if problem:
            raise DataError(f"malformed report target: {problem.removeprefix('targets[0].')}")
        return cls(
            id=t["id"],
            kind=t["kind"],
            backend=t.get("backend", ""),
            precision=t.get("precision", ""),
            device=t.get("device", ""),
            batch=t.get("batch", 1),
            threads=t.get("threads", 1),
            runtime=t.get("runtime", ""),
            status=t["status"],
            reason=t.get("reason", ""),
            profile=t.get("profile"),
            artifact=t.get("artifact"),
            load_seconds=_float(t.get("load_seconds", math.nan)),
            warmup=t.get("warmup"),
            latency=t.get("latency"),
            ratio_to_reference=t.get("ratio_to_reference"),
            memory=t.get("memory"),
            drift=t.get("drift"),
            metrics=t.get("metrics"),
            budgets=t.get("budgets") or {},
            notes=t.get("notes", []),
            check=t.get("check"),
        )

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if d["check"] is None:  # not gated yet: the gate adds it
            del d["check"]
        return d


@dataclass
class Report:
    """One ``edgefuse bench`` run. ``check``, ``wall_seconds`` and ``regression`` are added as the run
    finishes (gate, wall clock, ``--baseline``)."""

    schema_version: int
    created: str
    edgefuse_version: str
    command: str
    environment: dict[str, Any]
    settings: dict[str, Any]
    checkpoint: dict[str, Any]
    data: dict[str, Any]
    reference: str | None
    pipeline: dict[str, Any]
    targets: list[dict[str, Any]]  # TargetRecord.to_dict() each
    skipped: list[dict[str, Any]]
    phase_seconds: dict[str, float]
    notes: list[str]
    schema: str = SCHEMA
    check: dict[str, Any] | None = None
    wall_seconds: float | None = None
    regression: dict[str, Any] | None = None

    LATE = ("check", "wall_seconds", "regression")  # added after the run, in this order

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        """A report body read back, checked as :func:`~edgefuse.bench.report.load_report` checks it (schema
        and version are the loader's); ``targets`` stay JSON objects, :meth:`target_records` types them.
        A field the report leaves out takes the value its readers assumed. :class:`~edgefuse.errors.DataError`
        in one line on a malformed report."""
        if not isinstance(data, dict):
            raise DataError(f"malformed report: not an object but {type(data).__name__}")
        if not isinstance(data.get("targets"), list):
            raise DataError("malformed report: 'targets' must be a list")
        problem = body_problem(data)
        if problem:
            raise DataError(f"malformed report: {problem}")
        version = data.get("schema_version", 0)
        wall = data.get("wall_seconds")
        return cls(
            schema=data.get("schema", SCHEMA),
            schema_version=version if isinstance(version, int) and not isinstance(version, bool) else 0,
            created=data.get("created", ""),
            edgefuse_version=data.get("edgefuse_version", ""),
            command=data.get("command", ""),
            environment=data["environment"],
            settings=data["settings"],
            checkpoint=data.get("checkpoint") or {},
            data=data.get("data") or {},
            reference=data.get("reference"),
            pipeline=data.get("pipeline") or {},
            targets=data["targets"],
            skipped=data.get("skipped", []),
            phase_seconds=data.get("phase_seconds") or {},
            notes=data.get("notes", []),
            check=data.get("check"),
            wall_seconds=None if wall is None else _float(wall),
            regression=data.get("regression"),
        )

    def target_records(self) -> list[TargetRecord]:
        return [TargetRecord.from_dict(t) for t in self.targets]

    def to_dict(self) -> dict[str, Any]:
        d = {"schema": self.schema}
        d.update((f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "schema")
        for key in self.LATE:
            if d[key] is None:
                del d[key]
        return d


def _float(x: Any) -> float:
    """A checked number as read: JSON numbers as they are (written back unchanged), "inf"/"nan" strings
    as floats; None (unmeasured) as NaN."""
    return math.nan if x is None else x if isinstance(x, int | float) else float(x)


# --- reading a report back: what report.load_report refuses, and what from_dict builds on ----------


_TABLES = ("latency", "ratio_to_reference", "drift", "artifact", "memory", "check", "profile", "budgets",
           "warmup", "metrics")  # fmt: skip
_NUMBERS = ("p50", "p99", "p90", "mean", "min", "max", "fps", "n", "std", "median", "noise_pct")


def _is_number(x: Any) -> bool:
    return (
        x is None or (isinstance(x, int | float) and not isinstance(x, bool)) or x in ("inf", "-inf", "nan")
    )


def _target_problem(i: int, t: Any) -> str:
    if not isinstance(t, dict):
        return f"targets[{i}] is not an object"
    for key in ("id", "kind", "status"):
        if not isinstance(t.get(key), str) or not t.get(key):
            return f"targets[{i}].{key} must be a non-empty string"
    for key in _TABLES:
        if t.get(key) is not None and not isinstance(t[key], dict):
            return f"targets[{i}].{key} must be an object"
    for table in ("latency", "ratio_to_reference"):
        values = t.get(table) or {}
        for key in _NUMBERS:
            if key in values and not _is_number(values[key]):
                return f"targets[{i}].{table}.{key} must be a number"
        for key in ("round_p50", "samples", "rounds"):
            if key in values and not (
                isinstance(values[key], list)
                and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                    for v in values[key]
                )
            ):
                return f"targets[{i}].{table}.{key} must be a list of finite numbers >= 0"
    drift = t.get("drift") or {}
    for key in ("drift", "metric_change_pct", "budget"):
        if drift.get(key) is not None and not isinstance(drift[key], dict):
            return f"targets[{i}].drift.{key} must be an object"
        if any(not _is_number(v) for v in (drift.get(key) or {}).values()):
            return f"targets[{i}].drift.{key} must hold numbers"
    if drift.get("misses") is not None and not _strings(drift["misses"]):
        return f"targets[{i}].drift.misses must be a list of strings"
    for name, row in (t.get("metrics") or {}).items():
        if not isinstance(row, dict) or any(
            not _is_number(row.get(k)) for k in ("reference", "artifact", "change_pct")
        ):
            return f"targets[{i}].metrics.{name} must hold numbers"
    check = t.get("check") or {}
    for key in ("misses", "notes"):
        if key in check and not _strings(check[key]):
            return f"targets[{i}].check.{key} must be a list of strings"
    if "notes" in t and not _strings(t["notes"]):
        return f"targets[{i}].notes must be a list of strings"
    for key in ("batch", "threads"):
        v = t.get(key, 1)
        if v is None and key == "threads":  # a GPU target: no CPU thread count
            continue
        if not isinstance(v, int) or isinstance(v, bool):
            return f"targets[{i}].{key} must be an integer"
    for key in ("backend", "precision", "device", "runtime", "reason"):
        if key in t and not isinstance(t[key], str):
            return f"targets[{i}].{key} must be a string"
    if not _is_number(t.get("load_seconds")):
        return f"targets[{i}].load_seconds must be a number"
    return ""


def _strings(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


def _environment_problem(env: dict[str, Any]) -> str:
    for key in ("cpu", "packages", "backends"):
        if env.get(key) is not None and not isinstance(env[key], dict):
            return f"environment.{key} must be an object"
    for key in ("label", "board", "platform", "python"):
        if env.get(key) is not None and not isinstance(env[key], str):
            return f"environment.{key} must be a string"
    if env.get("gpus") is not None and not (
        isinstance(env["gpus"], list) and all(isinstance(g, dict) for g in env["gpus"])
    ):
        return "environment.gpus must be a list of objects"
    if "flags" in (env.get("cpu") or {}) and not _strings(env["cpu"]["flags"]):
        return "environment.cpu.flags must be a list of strings"
    if any(not isinstance(v, dict) for v in (env.get("backends") or {}).values()):
        return "environment.backends must map names to objects"
    return ""


def body_problem(data: dict[str, Any]) -> str:
    """What is wrong with a bench report's body ("" when nothing): every field the gates and renderers
    read has the type they expect."""
    for key in ("environment", "settings"):
        if not isinstance(data.get(key), dict):
            return f"{key} must be an object"
    problem = _environment_problem(data["environment"])
    if problem:
        return problem
    for key in ("data", "checkpoint", "pipeline", "check", "regression", "phase_seconds"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key} must be an object"
    if "notes" in data and not _strings(data["notes"]):
        return "notes must be a list of strings"
    for key in ("created", "edgefuse_version", "command"):
        if key in data and not isinstance(data[key], str):
            return f"{key} must be a string"
    if data.get("reference") is not None and not isinstance(data["reference"], str):
        return "reference must be a string"
    if not _is_number(data.get("wall_seconds")):
        return "wall_seconds must be a number"
    skipped = data.get("skipped", [])
    if not isinstance(skipped, list) or not all(
        isinstance(s, dict) and isinstance(s.get("id"), str) and isinstance(s.get("reason"), str)
        for s in skipped
    ):
        return "skipped must be a list of {id, reason} strings"
    settings = data["settings"]
    if "requested" in settings and not _strings(settings["requested"]):
        return "settings.requested must be a list of strings"
    for i, t in enumerate(data["targets"]):
        problem = _target_problem(i, t)
        if problem:
            return problem
    ids = [t["id"] for t in data["targets"]]
    if len(set(ids)) != len(ids):
        return "target ids repeat"
    return ""


__all__ = ["MERGED_SCHEMA", "SCHEMA", "SCHEMA_VERSION", "LatencyBudgets", "Report", "Status", "TargetRecord"]
