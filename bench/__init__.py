"""Benchmarks: drift against the fp32 reference (:mod:`.drift`, also used by ``edgefuse export``), latency in
interleaved rounds (:mod:`.timing`), the suite behind ``edgefuse bench`` (:mod:`.suite`), gates
(:mod:`.gate`) and reports (:mod:`.report`, :mod:`.html`, :mod:`.merge`).

Attributes load lazily so importing ``edgefuse.drift`` never pays for the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SuiteOptions": "edgefuse.bench.suite",
    "SuiteResult": "edgefuse.bench.suite",
    "run_suite": "edgefuse.bench.suite",
    "TimingConfig": "edgefuse.bench.timing",
    "SCHEMA_VERSION": "edgefuse.bench.report",
    "load_report": "edgefuse.bench.report",
    "save_json": "edgefuse.bench.report",
    "to_markdown": "edgefuse.bench.markdown",
    "apply_checks": "edgefuse.bench.gate",
    "compare": "edgefuse.bench.gate",
    "junit_xml": "edgefuse.bench.gate",
    "report_html": "edgefuse.bench.html",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgefuse.bench' has no attribute {name!r}")
