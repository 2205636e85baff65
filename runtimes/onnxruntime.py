"""ONNX Runtime: CPUExecutionProvider, or the CUDA / TensorRT execution providers when the build has them."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from edgefuse._optional import available, require
from edgefuse.errors import RuntimeUnavailableError
from edgefuse.runtimes.base import BaseRuntime, warn_without_vnni

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED"}
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
# device -> providers, first choice first; CPU always last so unsupported nodes still run
_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


class OnnxRuntime(BaseRuntime):
    """``device``: ``cpu``, ``cuda`` (or ``cuda:N``) or ``tensorrt`` (ORT's TensorRT EP)."""

    name: ClassVar[str] = "onnxruntime"
    suffixes: ClassVar[tuple[str, ...]] = (".onnx",)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        ok, why = available("onnxruntime")
        if not ok:
            return False, f'onnxruntime not importable ({why}); pip install "edgefuse[onnx]"'
        import onnxruntime as ort

        return True, f"{why} ({', '.join(ort.get_available_providers())})"

    def _load(self, path: Path) -> None:
        ort = require("onnxruntime")
        kind, _, index = self.device.partition(":")
        if kind == "gpu":
            kind = "cuda"
        if kind not in _PROVIDERS:
            raise RuntimeUnavailableError(f"onnxruntime: unknown device {self.device!r} (cpu/cuda/tensorrt)")
        have = set(ort.get_available_providers())
        wanted = _PROVIDERS[kind]
        if wanted[0] not in have:
            raise RuntimeUnavailableError(
                f"onnxruntime: {wanted[0]} is not in this build (has {', '.join(sorted(have))}); "
                "install onnxruntime-gpu for cuda/tensorrt"
            )
        providers: list[str | tuple[str, dict[str, str]]] = [
            (p, {"device_id": index}) if index and p != "CPUExecutionProvider" else p
            for p in wanted
            if p in have
        ]
        opts = ort.SessionOptions()
        knobs = self.profile.onnxruntime if self.profile is not None else None
        threads = self.threads or (knobs.intra_op_threads if knobs else 0)
        if threads:
            opts.intra_op_num_threads = threads
        level = knobs.graph_optimization_level if knobs else "all"
        level_name = _LEVELS.get(level, "ORT_ENABLE_ALL")
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level_name)
        details = self.manifest.backend_details if self.manifest else {}
        full_range = details.get("int8_kernels") == "u8s8" and not details.get("reduce_range")
        if full_range and kind == "cpu":
            warn_without_vnni(
                path.parent,
                "int8 with full-range int8 weights (u8s8 kernels, int16 pair sums)",
                "re-export with a profile whose onnxruntime.weight_type is uint8 (or reduce_range = true)",
            )
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        self.providers = self.session.get_providers()
        inputs = self.session.get_inputs()
        self.input_shapes = {i.name: tuple(d if isinstance(d, int) else -1 for d in i.shape) for i in inputs}
        # an fp16 graph may keep fp16 IO: callers still pass float32, converted here
        self._in_dtypes = {i.name: _DTYPES.get(i.type, np.float32) for i in inputs}
        self._out_names = [o.name for o in self.session.get_outputs()]

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {k: np.ascontiguousarray(v, dtype=self._in_dtypes[k]) for k, v in inputs.items()}
        outs = self.session.run(self._out_names, feed)
        return {k: np.asarray(v, dtype=np.float32) for k, v in zip(self._out_names, outs, strict=True)}

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
