"""Lazy imports of optional backends, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgefuse.errors import MissingExtraError

# module name -> (pip package, edgefuse extra)
EXTRAS: dict[str, tuple[str, str]] = {
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "onnxscript": ("onnxscript", "onnx"),
    "onnxslim": ("onnxslim", "onnx"),
    "openvino": ("openvino", "openvino"),
    "nncf": ("nncf", "openvino"),
    "coremltools": ("coremltools", "coreml"),
    "litert_torch": ("litert-torch", "tflite"),
    "ai_edge_litert": ("ai-edge-litert", "tflite"),
    "tflite_runtime": ("tflite-runtime", "tflite"),
    "tensorrt": ("tensorrt", "tensorrt"),
    "cv2": ("opencv-python-headless", "video"),
    "diffusers": ("diffusers", "teacher"),
    "ai_edge_quantizer": ("ai-edge-quantizer", "tflite"),
    # not in an extra: timm pulls torchvision, which must match the installed torch exactly
    "timm": ("timm", ""),
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package, extra = EXTRAS.get(module.split(".")[0], (module, "all"))
        raise MissingExtraError(package, extra, reason=str(exc).splitlines()[0]) from exc


def available(module: str) -> tuple[bool, str]:
    """(importable, reason-or-version) without raising."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a broken install can raise more than ImportError; report it
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return True, str(getattr(mod, "__version__", "unknown version"))
