"""Validating a build against its profile's drift budget, in three modes, with results cached per file.

- ``FULL``: the verdict that is recorded: every held-out pair, every fusion metric.
- ``SEARCH``: a mixed-precision search step: the fusion metrics are scored only once the per-pixel drift
  holds (a drift miss fails whatever the metrics say, so the verdict is the same; a failed step skips
  ~1 s of scoring). Such a failure is *incomplete*; the pipeline re-validates a final one in full.
- ``PROBE``: a mixed-precision probe: the first two pairs, per-pixel drift, the inexpensive fusion
  metrics and Qabf (:data:`PROBE_METRICS`).

An identical file (same bytes, same runtime and knobs, same frames) is measured once per session and its
numbers re-checked against each profile's budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgefuse.drift import FAILED, METRICS, PASSED, budget_dict, check, not_run, validate_artifact
from edgefuse.errors import ExportError
from edgefuse.exporters.base import Build, Exporter, Job, quiet
from edgefuse.io import sha256_path

if TYPE_CHECKING:
    from edgefuse.drift import DriftResult, Reference

Report = Callable[[str], None]  # progress: the stage a profile's export is in

FULL, SEARCH, PROBE = "full", "search", "probe"
# a probe scores the drift, the inexpensive fusion metrics and Qabf; VIF and SSIM (most of the scoring time)
# are left to the full validation of the build a search step keeps. Qabf is scored because SF and AG do not
# stand in for it: a dark-thermal student's TensorRT int8 search, ranking without it, kept 8 groups in float
# and still missed the budget on Qabf (-4.0 %); with it, 5 groups and a pass
PROBE_METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "CC", "PSNR", "Qabf")


def validate(job: Job, build: Build, report: Report, mode: str = FULL) -> DriftResult:
    """Run ``build`` with its runtime on the session's held-out frames and check the profile's budget."""

    budget = job.profile.drift
    if build.validate is None:
        return not_run(build.not_validated or "no runtime for this artifact here", budget)
    report("measuring sensitivity" if mode == PROBE else "validating")
    session = job.session
    try:
        ref: Reference = session.reference(job.profile, probe=mode == PROBE)
    except Exception as exc:  # no frames is an environment problem, not a budget miss
        raise ExportError(f"{job.profile.name}: cannot prepare validation frames ({exc})") from exc
    v = build.validate
    # the knobs of the runtime that runs it (a TensorRT profile emulated in ONNX Runtime: ORT's defaults)
    key = ("drift", v.backend, sha256_path(v.path), repr(getattr(job.profile, v.backend, None)), id(ref))
    cached = session.measured(key)
    if cached is not None:  # identical file already measured (another profile, an earlier search step)
        again = rebudget(cached, budget)
        if mode == PROBE or not incomplete(again) or (mode == SEARCH and again.status is FAILED):
            return again
    with quiet():
        result = validate_artifact(
            v.path, ref, budget, backend=v.backend, profile=job.profile, threads=session.threads,
            emulation=v.emulation, metrics_if_drift_passes=mode == SEARCH,
            metric_names=PROBE_METRICS if mode == PROBE else METRICS,
        )  # fmt: skip
    session.remember_measured(key, result)
    return result


def incomplete(result: DriftResult) -> bool:
    """A search step's verdict from the drift alone: it ran on the frames, but no fusion metric was scored
    (every other result that ran on frames has some: the references always carry them)."""
    return result.ran and bool(result.per_pair) and not result.metric_change_pct


def groups_of(job: Job, exporter: Exporter) -> dict[str, list[str]]:
    with quiet():
        return exporter.groups(job)


def rebudget(result: DriftResult, budget: Any) -> DriftResult:
    """A measured result re-checked against another budget (an identical file for another profile).
    An incomplete result can only be trusted here when it still fails: :func:`validate` sees to that."""

    bud = budget_dict(budget)
    if not result.ran or not result.drift.get("psnr_min"):
        return dataclasses.replace(result, budget=bud)
    misses = check(result.drift, result.metric_change_pct, bud)
    return dataclasses.replace(result, budget=bud, misses=misses, status=FAILED if misses else PASSED)
