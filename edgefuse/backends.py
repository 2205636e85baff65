"""The built-in backends: one :func:`~edgefuse.registry.register` entry each, with its profile knobs.

Each entry names the backend's converter (``edgefuse.exporters.<module>``) and runtime
(``edgefuse.runtimes.<module>``), which share one module name. Importing this module imports no SDK: the
converter and runtime are imported on first use. Import :mod:`edgefuse.backends` (not the bare registry)
to look a backend up, so the built-in entries are always registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgefuse.registry import (
    BackendSpec,
    aliases,
    canonical,
    distribution,
    get,
    names_of,
    register,
    runs_on,
    specs,
    suggest,
    unregister,
)

__all__ = [
    "BackendSpec",
    "CoreMLKnobs",
    "LiteRTKnobs",
    "ONNXRuntimeKnobs",
    "OpenVINOKnobs",
    "TensorRTKnobs",
    "aliases",
    "canonical",
    "distribution",
    "get",
    "names_of",
    "register",
    "runs_on",
    "specs",
    "suggest",
    "unregister",
]


def _choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


def _at_least(low: float) -> dict[str, Any]:
    return {"min": low}


# --- profile knobs (the [<backend>] table of a profile; field metadata is checked by profiles.schema) ----


@dataclass(frozen=True)
class TensorRTKnobs:
    workspace_mb: int = field(default=1024, metadata=_at_least(16))
    dla_core: int = field(default=-1, metadata=_at_least(-1))  # -1: GPU only
    builder_optimization_level: int = field(default=3, metadata={"min": 0, "max": 5})
    fp16_fallback: bool = True  # int8 builds: let layers without an int8 kernel run in fp16, not fp32


@dataclass(frozen=True)
class OpenVINOKnobs:
    performance_hint: str = field(default="LATENCY", metadata=_choices("LATENCY", "THROUGHPUT"))
    num_streams: int = field(default=1, metadata=_at_least(0))  # 0: let the plugin choose
    # CPUs with bf16 (AMX, AVX512_BF16) execute in bf16 unless this is pinned: fp32 profiles must say f32
    inference_precision: str = field(default="f32", metadata=_choices("f32", "f16", "bf16"))
    # NNCF's overflow fix (int8): u8×s8 products can saturate on CPUs without VNNI, so by default NNCF gives
    # the first convolution's weights half the int8 range (7 bits, −63…63); a VNNI device does not need it
    overflow_fix: str = field(
        default="first_layer_only", metadata=_choices("first_layer_only", "disable", "enable")
    )


@dataclass(frozen=True)
class CoreMLKnobs:
    compute_units: str = field(
        default="ALL", metadata=_choices("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
    )
    # a coremltools.target name
    minimum_deployment_target: str = field(
        default="macOS13", metadata={"pattern": r"(iOS|macOS|watchOS|tvOS)\d+(_\d+)?"}
    )


@dataclass(frozen=True)
class LiteRTKnobs:
    threads: int = field(default=4, metadata=_at_least(1))
    delegate: str = field(default="xnnpack", metadata=_choices("xnnpack", "gpu", "none"))


@dataclass(frozen=True)
class ONNXRuntimeKnobs:
    intra_op_threads: int = field(default=0, metadata=_at_least(0))  # 0: onnxruntime's default
    graph_optimization_level: str = field(
        default="all", metadata=_choices("disable", "basic", "extended", "all")
    )
    # int8 weights on CPUs without VNNI: ONNX Runtime's u8s8 kernels there add pairs of products in int16
    # (vpmaddubsw), which can saturate. Two ways out, as ONNX Runtime documents: uint8 weights (u8u8 kernels,
    # widened to 16 bits first: no saturation) or 7-bit int8 weights (reduce_range)
    weight_type: str = field(default="int8", metadata=_choices("int8", "uint8"))
    reduce_range: bool = False


# --- the entries (registration order is the order doctor, bench and error messages list them) ----------

register(
    BackendSpec(
        name="torch",
        runtime="edgefuse.runtimes.pytorch:TorchRuntime",
        aliases=("pytorch",),
        modules={"torch": "torch"},
        devices=("cpu", "cuda"),
    )
)
register(
    BackendSpec(
        name="onnxruntime",
        deploy="run model.onnx with onnxruntime on the target; `edgefuse bench DIR` there checks it",
        converter="edgefuse.exporters.onnxruntime:OnnxExporter",
        runtime="edgefuse.runtimes.onnxruntime:OnnxRuntime",
        aliases=("onnx", "ort"),
        extra="onnx",
        modules={
            "onnx": "onnx",
            "onnxruntime": "onnxruntime",
            "onnxscript": "onnxscript",
            "onnxslim": "onnxslim",
        },
        converter_tools=("onnx", "onnxscript", "onnxslim"),
        report_packages=("onnx", "onnxruntime", "onnxruntime-gpu"),
        knobs=ONNXRuntimeKnobs,
        devices=("cpu", "cuda"),
    )
)
register(
    BackendSpec(
        name="openvino",
        deploy="copy the folder (model.xml + model.bin) to the Intel machine; `edgefuse bench DIR` there",
        converter="edgefuse.exporters.openvino:OpenVINOExporter",
        runtime="edgefuse.runtimes.openvino:OpenVINORuntime",
        extra="openvino",
        modules={"openvino": "openvino", "nncf": "nncf"},
        converter_tools=("nncf",),
        report_packages=("openvino", "nncf"),
        knobs=OpenVINOKnobs,
    )
)
register(
    BackendSpec(
        name="litert",
        deploy="copy model.tflite to the Pi (pip install ai-edge-litert there); `edgefuse bench DIR` on it",
        converter="edgefuse.exporters.litert:LiteRTExporter",
        runtime="edgefuse.runtimes.litert:LiteRTRuntime",
        aliases=("tflite",),
        extra="tflite",
        modules={
            "litert_torch": "litert-torch",
            "ai_edge_litert": "ai-edge-litert",
            "ai_edge_quantizer": "ai-edge-quantizer",
            "tflite_runtime": "tflite-runtime",
        },
        converter_tools=("litert-torch",),
        report_packages=("litert-torch", "ai-edge-litert", "tflite-runtime"),
        knobs=LiteRTKnobs,
    )
)
register(
    BackendSpec(
        name="coreml",
        deploy="open model.mlpackage on a Mac (Xcode or coremltools); predictions need macOS",
        converter="edgefuse.exporters.coreml:CoreMLExporter",
        runtime="edgefuse.runtimes.coreml:CoreMLRuntime",
        extra="coreml",
        modules={"coremltools": "coremltools"},
        converter_tools=("coremltools",),
        report_packages=("coremltools",),
        knobs=CoreMLKnobs,
    )
)
register(
    BackendSpec(
        name="tensorrt",
        deploy=(
            "copy the folder (model.onnx + trtexec.sh) to the Jetson/GPU, run `sh trtexec.sh` there to "
            "build the engine, then `edgefuse bench DIR` there"
        ),
        converter="edgefuse.exporters.tensorrt:TensorRTExporter",
        runtime="edgefuse.runtimes.tensorrt:TensorRTRuntime",
        aliases=("trt",),
        extra="tensorrt",
        modules={"tensorrt": "tensorrt"},
        converter_tools=("tensorrt",),
        report_packages=("tensorrt",),
        knobs=TensorRTKnobs,
        devices=("cuda",),
    )
)
