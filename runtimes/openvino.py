"""OpenVINO: an IR (model.xml + model.bin) or ONNX, compiled by ``ov.Core`` with the profile's knobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgefuse._optional import available, require
from edgefuse.runtimes.base import BaseRuntime, warn_without_vnni
from edgefuse.spec import INPUT_NAMES, OUTPUT_NAMES


class OpenVINORuntime(BaseRuntime):
    """``device``: an OpenVINO device name (``cpu`` -> CPU, ``gpu``, ``npu``, ``auto``).

    Inference precision is always pinned (the profile's ``openvino.inference_precision``, else f32): on CPUs
    with bf16 support OpenVINO would otherwise execute an fp32 model in bf16 and fail fp32 drift budgets.
    """

    name: ClassVar[str] = "openvino"
    suffixes: ClassVar[tuple[str, ...]] = (".xml", ".onnx")

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        ok, why = available("openvino")
        if not ok:
            return False, f'openvino not importable ({why}); pip install "edgefuse[openvino]"'
        return True, why

    def _load(self, path: Path) -> None:
        ov = require("openvino")
        own = self.profile is not None and self.profile.backend == "openvino"
        knobs = self.profile.openvino if own else None
        config: dict[str, str] = {
            "PERFORMANCE_HINT": knobs.performance_hint if knobs else "LATENCY",
            "INFERENCE_PRECISION_HINT": knobs.inference_precision if knobs else "f32",
        }
        if knobs and knobs.num_streams:
            config["NUM_STREAMS"] = str(knobs.num_streams)
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        self.core = ov.Core()
        self.ov_device = self.device.upper()
        model = self.core.read_model(str(path))
        fix = self.manifest.backend_details.get("overflow_fix") if self.manifest else None
        if fix == "disable" and self.ov_device == "CPU":
            warn_without_vnni(
                path.parent,
                "int8 built without NNCF's overflow fix (for VNNI CPUs)",
                "re-export with a profile whose openvino.overflow_fix is first_layer_only",
            )
        self.compiled = self.core.compile_model(model, self.ov_device, config)
        self.request = self.compiled.create_infer_request()
        self.input_shapes = {}
        for i, port in enumerate(self.compiled.inputs):
            dims = tuple(d.get_length() if d.is_static else -1 for d in port.partial_shape)
            self.input_shapes[_port_name(port, INPUT_NAMES, i)] = dims
        outs = self.compiled.outputs
        self._outputs = [(_port_name(port, OUTPUT_NAMES, i), port) for i, port in enumerate(outs)]

    @property
    def inference_precision(self) -> str:
        """What the compiled model really runs at (e.g. ``f32``), read back from OpenVINO."""
        return self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.request.infer({k: np.ascontiguousarray(v) for k, v in inputs.items()})
        # copy: the request reuses its output buffers on the next call
        return {name: np.array(results[port], dtype=np.float32) for name, port in self._outputs}

    def close(self) -> None:
        self.request = self.compiled = None  # type: ignore[assignment]


def _port_name(port: Any, names: tuple[str, ...], index: int) -> str:
    """A port's tensor name; ov.convert_model leaves outputs unnamed: those take the IO name by position."""
    found = port.get_names()
    for name in names:  # a port may carry several names (e.g. "fused" and an internal one)
        if name in found:
            return name
    if found:
        return sorted(found)[0]
    return names[index] if index < len(names) else f"output_{index}"
