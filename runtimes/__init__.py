"""Runtimes: one module per backend behind one Protocol, looked up by name through a lazy registry.

``open_artifact(dir)`` picks the runtime an export's ``edgefuse.json`` names and loads it; every runtime takes
and returns dicts of named numpy arrays. Only ``base`` is imported here: backend SDKs load on first use.
"""

from __future__ import annotations

from edgefuse.runtimes.base import (
    RUNTIMES,
    BaseRuntime,
    Runtime,
    get_runtime,
    make_inputs,
    open_artifact,
    read_manifest,
    runtime_for,
)

__all__ = [
    "RUNTIMES",
    "BaseRuntime",
    "Runtime",
    "get_runtime",
    "make_inputs",
    "open_artifact",
    "read_manifest",
    "runtime_for",
]
