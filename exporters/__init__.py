"""Exporters: one converter module per backend, named like its runtime (``exporters/openvino.py`` beside
``runtimes/openvino.py``) and found through the backend registry (:mod:`edgefuse.backends`).

``get_exporter("openvino")`` imports only that backend's module; a missing SDK surfaces as
:class:`~edgefuse.errors.MissingExtraError` when the exporter checks its modules, never at import time.
"""

from __future__ import annotations

from edgefuse import backends
from edgefuse.errors import ExportError
from edgefuse.exporters.base import Exporter

__all__ = ["Exporter", "get_exporter"]


def get_exporter(backend: str) -> Exporter:
    key = backends.canonical(backend)
    if key is None or not backends.get(key).exportable:
        raise ExportError(f"no exporter for backend {backend!r}{backends.suggest(backend, exportable=True)}")
    exporter: Exporter = backends.get(key).converter_class()()
    return exporter
