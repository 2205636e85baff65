"""Runtimes: one module per backend (named like its converter in ``exporters/``) behind ``BaseRuntime``, found
through the backend registry (:mod:`edgefuse.backends`).

``open_artifact(dir)`` picks the runtime an export's ``edgefuse.json`` names and loads it; every runtime takes
and returns dicts of named numpy arrays. Only ``base`` is imported here: backend SDKs load on first use.
"""

from __future__ import annotations

from edgefuse.runtimes.base import (
    BaseRuntime,
    get_runtime,
    make_inputs,
    open_artifact,
    read_manifest,
    runtime_for,
    runtime_names,
)

__all__ = [
    "BaseRuntime",
    "get_runtime",
    "make_inputs",
    "open_artifact",
    "read_manifest",
    "runtime_for",
    "runtime_names",
]
