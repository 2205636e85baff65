"""TensorRT: the ONNX route TensorRT wants, an engine when TensorRT is importable, and ``trtexec.sh``.

- fp16: the fp32 ONNX plus ``--fp16`` (TensorRT picks fp16 kernels itself; an fp16 ONNX would only
  add casts).
- int8: the QDQ ONNX (explicit quantization, symmetric, zero point 0); ``--fp16`` as well when the profile
  lets layers without an int8 kernel (and the ones mixed precision kept) run in fp16 rather than fp32.

Engines are tied to the GPU and TensorRT version that built them, so ``trtexec.sh`` (the exact command for
the device) is always written. Without TensorRT here the numerics are emulated in ONNX Runtime and the
manifest and validation say so.
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse._optional import version_tuple
from edgefuse.errors import ExportError
from edgefuse.exporters.base import Build, Exporter, Job, Validation
from edgefuse.exporters.onnxruntime import (
    FLOAT_WEIGHTS,
    INT8_WEIGHTS,
    MODEL,
    build_onnx,
    fp32_onnx,
    onnx_details,
    onnx_groups,
    to_fp16,
)
from edgefuse.profiles import Precision
from edgefuse.runtimes.tensorrt import TensorRTRuntime

if TYPE_CHECKING:
    from edgefuse.profiles import Profile

ENGINE = "model.engine"
SCRIPT = "trtexec.sh"
EMULATED_INT8 = "TensorRT int8 numerics emulated via QDQ in ONNX Runtime"
EMULATED_FP16 = "TensorRT fp16 numerics emulated via the fp16 ONNX in ONNX Runtime"


def trtexec_args(profile: Profile) -> list[str]:
    """The trtexec flags for this profile (the same settings the Python build uses)."""
    knobs, precision = profile.tensorrt, profile.precision
    args = [f"--onnx={MODEL}", f"--saveEngine={ENGINE}"]
    if precision is Precision.INT8:
        args.append("--int8")
    if precision is Precision.FP16 or (precision is Precision.INT8 and knobs.fp16_fallback):
        args.append("--fp16")
    newest = profile.constraints.max_backend_version
    if newest and version_tuple(newest) < (8, 4):  # memory pools arrived in 8.4; JetPack 4.6 ships 8.2
        args.append(f"--workspace={knobs.workspace_mb}")
    else:
        args.append(f"--memPoolSize=workspace:{knobs.workspace_mb}")
    if knobs.dla_core >= 0:
        args += [f"--useDLACore={knobs.dla_core}", "--allowGPUFallback"]
    if knobs.builder_optimization_level != 3:  # 3 is TensorRT's default; the flag needs TensorRT >= 8.6
        args.append(f"--builderOptimizationLevel={knobs.builder_optimization_level}")
    return args


def write_script(profile: Profile, out: Path) -> Path:
    lines = [
        "#!/bin/sh",
        f"# Build the TensorRT engine for {profile.name} on the target device ({profile.device.name}).",
        "# Engines are specific to the GPU and TensorRT version: run this where the engine will run.",
        'cd "$(dirname "$0")" || exit 1',
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
        'exec "$TRTEXEC" ' + " ".join(shlex.quote(a) for a in trtexec_args(profile)) + ' "$@"',
    ]
    path = out / SCRIPT
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def build_engine(profile: Profile, onnx_path: Path, engine: Path) -> str:
    """Serialize an engine with the TensorRT Python API (needs TensorRT and a CUDA GPU here)."""
    import tensorrt as trt

    knobs, precision = profile.tensorrt, profile.precision
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    pre10 = version_tuple(trt.__version__) < (10,)  # TensorRT 10 is explicit-batch only (the flag is gone)
    explicit = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if pre10 else 0
    network = builder.create_network(explicit)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path.name}: TensorRT's ONNX parser failed ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, knobs.workspace_mb << 20)
    if precision is Precision.INT8:
        config.set_flag(trt.BuilderFlag.INT8)
    if precision is Precision.FP16 or (precision is Precision.INT8 and knobs.fp16_fallback):
        config.set_flag(trt.BuilderFlag.FP16)
    if knobs.dla_core >= 0:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = knobs.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = knobs.builder_optimization_level
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"{onnx_path.name}: TensorRT {trt.__version__} failed to build an engine")
    engine.write_bytes(bytes(serialized))
    return str(trt.__version__)


def engine_possible() -> tuple[bool, str]:

    return TensorRTRuntime.is_available()


class TensorRTExporter(Exporter):
    backend = "tensorrt"
    modules = ("onnx", "onnxruntime")  # tensorrt itself is optional here: the engine is built on the device
    tools = ("torch", "onnx", "onnxruntime", "onnxslim", "tensorrt")
    probe_kinds = (FLOAT_WEIGHTS, INT8_WEIGHTS)

    def build(self, job: Job, out: Path, exclude: Sequence[str] = (), quick: bool = False) -> Build:
        profile = job.profile
        fp16_graph = profile.precision is Precision.FP16
        if fp16_graph:  # TensorRT wants the fp32 graph and the --fp16 flag
            src, _ = fp32_onnx(job)
            (out / MODEL).write_bytes(src.read_bytes())
            onnx_path, precision = out / MODEL, "fp16 (TensorRT --fp16 over the fp32 ONNX); IO float32"
        else:
            onnx_path, precision = build_onnx(job, out, exclude, quick, symmetric=True)
        if profile.precision is Precision.FP32:
            precision = "fp32 (TensorRT, no reduced-precision flags); IO float32"
        write_script(profile, out)
        _, simplifier = fp32_onnx(job)
        details: dict[str, Any] = onnx_details(onnx_path, simplifier, profile.constraints.onnx_opset)
        details["trtexec"] = "trtexec " + " ".join(trtexec_args(profile))
        details["build_script"] = SCRIPT
        ok, why = engine_possible()
        if ok and not quick:
            details["engine"] = {"file": ENGINE, "tensorrt": build_engine(profile, onnx_path, out / ENGINE)}
            return Build(ENGINE, precision, Validation("tensorrt", out / ENGINE), calibrated=not fp16_graph,
                         details=details)  # fmt: skip
        details["engine"] = {"file": None, "why_not_built_here": why, "build_on_device": f"sh {SCRIPT}"}
        if profile.precision is Precision.INT8:
            validation = Validation("onnxruntime", onnx_path, EMULATED_INT8)
        elif fp16_graph:
            validation = Validation("onnxruntime", self._fp16_twin(job), EMULATED_FP16)
        else:
            validation = Validation(
                "onnxruntime", onnx_path, "TensorRT fp32 numerics emulated in ONNX Runtime"
            )
        details["validated_with"] = validation.emulation
        return Build(
            MODEL, precision, validation, calibrated=profile.precision is Precision.INT8, details=details
        )

    def _fp16_twin(self, job: Job) -> Path:
        """An fp16 ONNX of the same graph, only for emulating TensorRT's fp16 numerics here (not shipped)."""
        src, _ = fp32_onnx(job)
        return job.session.cached(("fp16-twin", str(src)), lambda: to_fp16(src, src.with_name("fp16.onnx")))

    def groups(self, job: Job) -> dict[str, list[str]]:
        return onnx_groups(job) if job.precision is Precision.INT8 else {}


__all__ = ["EMULATED_FP16", "EMULATED_INT8", "TensorRTExporter", "build_engine", "trtexec_args"]
