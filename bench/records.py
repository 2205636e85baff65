"""The benchmark report's records as dataclasses: :class:`Report` (one run) and :class:`TargetRecord` (one
target in it). Their fields are the JSON schema of docs/bench.md ("JSON schema"), which a test checks
against them; the JSON keeps this field order.

A record is built typed and written as a plain JSON object; readers (:mod:`.gate`, :mod:`.markdown`,
:mod:`.html`, :mod:`.merge`) still take the checked dict that :func:`~edgefuse.bench.report.load_report`
returns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

SCHEMA = "edgefuse.bench.report"
MERGED_SCHEMA = "edgefuse.bench.merged"
SCHEMA_VERSION = 1


class LatencyBudgets(str, Enum):
    """Where a profile's latency budget gates (``--latency-budgets``; ``settings.latency_budgets``)."""

    AUTO = "auto"  # only on the profile's own device, at the budget's size
    ON = "on"
    OFF = "off"

    def __str__(self) -> str:
        return self.value


class Status(str, Enum):
    """A target's ``status``."""

    OK = "ok"
    NOT_RUN = "not_run"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass
class TargetRecord:
    """One target: the fp32 reference, a torch variant or an exported artifact."""

    id: str
    kind: str  # reference | artifact | variant
    backend: str
    precision: str
    device: str
    batch: int
    threads: int
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

    def to_dict(self) -> dict[str, Any]:
        d = {"schema": self.schema}
        d.update((f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "schema")
        for key in self.LATE:
            if d[key] is None:
                del d[key]
        return d


__all__ = ["MERGED_SCHEMA", "SCHEMA", "SCHEMA_VERSION", "LatencyBudgets", "Report", "Status", "TargetRecord"]
