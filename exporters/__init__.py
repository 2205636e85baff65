"""Exporters: one module per target backend, looked up by name through a lazy string-keyed registry.

``get_exporter("openvino")`` imports only that backend's module; a missing SDK surfaces as
:class:`~edgefuse.errors.MissingExtraError` when the exporter checks its modules, never at import time.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from edgefuse.errors import ExportError

if TYPE_CHECKING:
    from edgefuse.exporters.base import Exporter

# profile backend -> "module:Class"
EXPORTERS: dict[str, str] = {
    "onnxruntime": "edgefuse.exporters.onnx:OnnxExporter",
    "tensorrt": "edgefuse.exporters.tensorrt:TensorRTExporter",
    "openvino": "edgefuse.exporters.openvino:OpenVINOExporter",
    "coreml": "edgefuse.exporters.coreml:CoreMLExporter",
    "litert": "edgefuse.exporters.tflite:LiteRTExporter",
}
ALIASES = {"onnx": "onnxruntime", "ort": "onnxruntime", "trt": "tensorrt", "tflite": "litert"}

__all__ = ["ALIASES", "EXPORTERS", "get_exporter"]


def get_exporter(backend: str) -> Exporter:
    key = ALIASES.get(backend.lower(), backend.lower())
    if key not in EXPORTERS:
        close = difflib.get_close_matches(key, [*EXPORTERS, *ALIASES], n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(EXPORTERS)}"
        raise ExportError(f"no exporter for backend {backend!r}{hint}")
    module, _, cls = EXPORTERS[key].partition(":")
    return getattr(importlib.import_module(module), cls)()
