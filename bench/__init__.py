"""Benchmarks: latency in interleaved rounds (:mod:`.timing`), the suite behind ``edgefuse bench``
(:mod:`.suite`), gates (:mod:`.gate`) and reports (:mod:`.records`, :mod:`.report`, :mod:`.markdown`,
:mod:`.html`, :mod:`.merge`). Drift against the fp32 reference is :mod:`edgefuse.drift`, below both the
benchmark and ``edgefuse export``.

Attributes load lazily so importing one submodule never pays for the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SuiteOptions": "edgefuse.bench.suite",
    "SuiteResult": "edgefuse.bench.suite",
    "run_suite": "edgefuse.bench.suite",
    "TimingConfig": "edgefuse.bench.timing",
    "SCHEMA_VERSION": "edgefuse.bench.records",
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
