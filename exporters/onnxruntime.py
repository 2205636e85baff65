"""ONNX: static-shape export, graph simplification, fp16 conversion and int8 QDQ quantization.

The pure functions here are reused by the TensorRT exporter (same ONNX, different consumer):
- :func:`torch_to_onnx` — TorchScript-based ``torch.onnx.export`` at the profile's opset (13 for TensorRT
  8.2 on the Jetson Nano, 17 otherwise): the dynamo exporter targets opset 18+ and reaches older opsets
  only through ONNX's version converter.
- :func:`simplify` — onnxslim when installed, else ONNX Runtime's *basic* graph optimizations (constant
  folding, redundant-node removal; standard ops only) saved offline; the manifest says which ran.
- :func:`to_fp16` — weights and activations fp16, IO kept float32 (casts inside the graph).
- :func:`to_int8` — ``quantize_static`` in QDQ format: per-channel symmetric int8 weights; symmetric int8
  activations (zero point 0, what TensorRT's explicit quantization requires) for TensorRT, asymmetric
  uint8 activations for ONNX Runtime's own CPU kernels; MinMax calibration on real frames, the ranges
  cached so mixed-precision rebuilds skip recalibration.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse._optional import available
from edgefuse.calibration import ort_reader
from edgefuse.errors import ExportError
from edgefuse.exporters.base import Build, Exporter, Job, Validation, group_nodes
from edgefuse.profiles import Precision
from edgefuse.spec import INPUT_NAMES, OUTPUT_NAMES

if TYPE_CHECKING:
    import onnx

MODEL = "model.onnx"
# the two kinds of ONNX probe (Job.probe): the excluded groups' weights float, as a real build leaves them,
# or int8 with only their activations float; neither ranks every student well (docs/export.md)
FLOAT_WEIGHTS, INT8_WEIGHTS = "float-weights", "int8-weights"


def torch_to_onnx(model: Any, sample: tuple[Any, Any], path: Path, opset: int) -> Path:
    import torch

    with warnings.catch_warnings():  # the TorchScript exporter warns that it is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            sample,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def simplify(src: Path, dst: Path) -> str:
    """Simplify ``src`` into ``dst``; returns what did it (for the manifest)."""
    import onnx

    has_slim, version = available("onnxslim")
    if has_slim:
        import onnxslim

        model = onnxslim.slim(onnx.load(str(src)))
        onnx.save(model, str(dst))
        how = f"onnxslim {version}"
    else:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(dst)
        ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
        model = onnx.load(str(dst))
        _drop_unused_opsets(model)  # ORT declares every domain it knows; other parsers may balk
        onnx.save(model, str(dst))
        how = f"onnxruntime {ort.__version__} basic graph optimization (offline; onnxslim not installed)"
    check(dst)
    return how


def check(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(
            f"{path.name}: onnx.checker rejected the graph ({str(exc).splitlines()[0]})"
        ) from None


def _drop_unused_opsets(model: onnx.ModelProto) -> None:
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def _toposort(graph: onnx.GraphProto) -> None:
    """The fp16 converter appends its input casts at the end; ONNX requires topological order."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not all(x in ready for x in n.input)]
        for n in pending:
            if n not in rest:
                ordered.append(n)
                ready.update(n.output)
        if len(rest) == len(pending):
            raise ExportError("fp16 conversion produced a graph with a cycle or a dangling input")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def to_fp16(src: Path, dst: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    _toposort(model.graph)
    onnx.save(model, str(dst))
    check(dst)
    return dst


def to_int8(job: Job, src: Path, dst: Path, exclude: Sequence[str] = (), symmetric: bool = True) -> Path:
    """QDQ int8; ``symmetric``: int8 activations with zero point 0 (TensorRT), else uint8 asymmetric
    activations (ONNX Runtime's u8s8 CPU kernels; a full 8 bits for non-negative [0, 1] tensors)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    frames = job.session.calibration(job.profile)
    unsigned = unsigned_weights(job, symmetric)
    key = abs(hash((str(src), frames.source, frames.stems)))
    cache = job.session.scratch_dir("ort-calibration") / f"{key}.json"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs a "please pre-process" warning on every call
    try:
        quantize_static(
            str(src),
            str(dst),
            ort_reader(frames) if not cache.is_file() else None,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QUInt8 if unsigned else QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            reduce_range=job.profile.onnxruntime.reduce_range,  # the defaults (False) for TensorRT
            nodes_to_exclude=list(exclude),
            calibration_cache_path=str(cache),
            # keep Relu explicit: asymmetric ranges would fold it away, and the probes strip Q/DQ pairs
            extra_options={
                "ActivationSymmetric": symmetric,
                "WeightSymmetric": not unsigned,
                "QDQKeepRemovableActivations": True,
            },
        )
    finally:
        root.setLevel(level)
    check(dst)
    return dst


def unsigned_weights(job: Job, symmetric: bool) -> bool:
    """uint8 weights (u8u8 kernels) when the profile asks; never for TensorRT's symmetric graph."""
    return not symmetric and job.profile.onnxruntime.weight_type == "uint8"


def strip_qdq(src: Path, dst: Path, exclude: Sequence[str], weights_from: Path | None = None) -> Path:
    """The QDQ model with the activation Q/DQ pairs feeding ``exclude`` bypassed: close to what
    ``nodes_to_exclude`` gives, in milliseconds (the sensitivity probes only need the ranking). With
    ``weights_from`` (the fp32 model), those nodes' dequantized weights and biases are replaced by their
    float values too, as a real build leaves them."""
    import onnx

    model = onnx.load(str(src))
    graph, names = model.graph, set(exclude)
    producer = {out: n for n in graph.node for out in n.output}
    initializers = {t.name for t in graph.initializer}
    floats = {}
    if weights_from is not None:
        floats = {t.name: t for t in onnx.load(str(weights_from)).graph.initializer}
    for node in graph.node:
        if node.name not in names:
            continue
        for i, x in enumerate(node.input):
            dq = producer.get(x)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":  # an activation
                node.input[i] = q.input[0]
                continue
            original = floats.get(dq.input[0].removesuffix("_quantized"))  # a weight (quantize_static's name)
            if dq.input[0] in initializers and original is not None:
                # a name of its own: the DQ may keep the original name, or feed nodes still int8
                node.input[i] = f"{original.name}_float"
                if node.input[i] not in initializers:
                    copy = onnx.TensorProto()
                    copy.CopyFrom(original)
                    copy.name = node.input[i]
                    graph.initializer.append(copy)
                    initializers.add(copy.name)
    used = {x for n in graph.node for x in n.input} | {o.name for o in graph.output}
    while True:  # drop the Q/DQ nodes nothing reads any more
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
        used = {x for n in graph.node for x in n.input} | {o.name for o in graph.output}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)
    onnx.save(model, str(dst))
    return dst


def full_int8(job: Job, symmetric: bool) -> Path:
    """The all-int8 QDQ model, quantized once per session (probes strip it, unchanged builds copy it)."""
    src, _ = fp32_onnx(job)

    weights = (unsigned_weights(job, symmetric), job.profile.onnxruntime.reduce_range)

    def make() -> Path:
        name = f"int8-{'sym' if symmetric else 'asym'}-{abs(hash((str(src), weights)))}"
        return to_int8(job, src, job.session.scratch_dir("onnx", name) / MODEL, (), symmetric)

    frames = job.session.calibration(job.profile)
    return job.session.cached(("qdq", str(src), symmetric, weights, frames.source, frames.stems), make)


def fp32_onnx(job: Job) -> tuple[Path, str]:
    """The simplified fp32 ONNX for this profile's opset and IO, built once per session."""
    opset, io = job.profile.constraints.onnx_opset, job.profile.io

    def make() -> tuple[Path, str]:
        d = job.session.scratch_dir("onnx", f"opset{opset}_{io.batch}x{io.height}x{io.width}")
        raw = torch_to_onnx(job.model, job.sample(), d / "raw.onnx", opset)
        how = simplify(raw, d / MODEL)
        return d / MODEL, how

    return job.session.cached(("fp32-onnx", opset, io), make)


def onnx_details(path: Path, simplifier: str, opset: int) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops: dict[str, int] = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return {
        "opset": opset,
        "simplifier": simplifier,
        "inputs": [i.name for i in model.graph.input],
        "outputs": [o.name for o in model.graph.output],
        "ops": dict(sorted(ops.items())),
    }


def onnx_groups(job: Job) -> dict[str, list[str]]:
    import onnx

    path, _ = fp32_onnx(job)
    names = [n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.name]
    return group_nodes(names, job.model)


def build_onnx(
    job: Job, out: Path, exclude: Sequence[str] = (), quick: bool = False, symmetric: bool = True
) -> tuple[Path, str]:
    """Write ``out/model.onnx`` at the profile's precision; returns it and a precision line."""
    import shutil

    src, _ = fp32_onnx(job)
    dst = out / MODEL
    precision = job.precision
    if precision is Precision.FP32:
        shutil.copyfile(src, dst)
        return dst, "fp32 weights and activations; IO float32"
    if precision is Precision.FP16:
        to_fp16(src, dst)
        return dst, "fp16 weights and activations; IO float32 (cast inside the graph)"
    if quick:  # the excluded groups' weights float (as built), or int8 (their activations alone float)
        float_from = None if job.probe == INT8_WEIGHTS else src
        return strip_qdq(full_int8(job, symmetric), dst, exclude, float_from), "int8 probe"
    if exclude:
        to_int8(job, src, dst, exclude, symmetric)
    else:
        shutil.copyfile(full_int8(job, symmetric), dst)
    acts = "symmetric int8 activations" if symmetric else "asymmetric uint8 activations"
    kept = " (excluded layers float32)" if exclude else ""
    weights = "asymmetric uint8" if unsigned_weights(job, symmetric) else "symmetric int8"
    weights += " (7-bit: reduce_range)" if job.profile.onnxruntime.reduce_range else ""
    return dst, f"int8 QDQ: per-channel {weights} weights, {acts}{kept}; IO float32"


class OnnxExporter(Exporter):
    backend = "onnxruntime"
    modules = ("onnx", "onnxruntime")
    tools = ("torch", "onnx", "onnxruntime", "onnxslim")
    probe_kinds = (FLOAT_WEIGHTS, INT8_WEIGHTS)

    def build(self, job: Job, out: Path, exclude: Sequence[str] = (), quick: bool = False) -> Build:
        path, precision = build_onnx(job, out, exclude, quick, symmetric=False)
        _, simplifier = fp32_onnx(job)
        details = onnx_details(path, simplifier, job.profile.constraints.onnx_opset)
        if job.precision is Precision.INT8:  # the runtime warns when u8s8 meets a CPU without VNNI
            details["int8_kernels"] = "u8u8" if unsigned_weights(job, symmetric=False) else "u8s8"
            details["reduce_range"] = job.profile.onnxruntime.reduce_range
        return Build(
            artifact=MODEL,
            precision_detail=precision,
            validate=Validation("onnxruntime", path),
            calibrated=job.precision is Precision.INT8,
            details=details,
        )

    def groups(self, job: Job) -> dict[str, list[str]]:
        return onnx_groups(job) if job.precision is Precision.INT8 else {}
