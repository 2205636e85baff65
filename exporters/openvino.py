"""OpenVINO: ``ov.convert_model`` from the traced PyTorch model to IR (``model.xml`` + ``model.bin``).

fp32 keeps fp32 weights; fp16 compresses the weights (``compress_to_fp16``; the device executes at the
profile's inference precision); int8 runs ``nncf.quantize`` on the real calibration frames. The NNCF
preset is MIXED: symmetric weights, asymmetric activations, which fits [0, 1] images and non-negative
ReLU outputs better than the symmetric PERFORMANCE preset on CPUs.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse._optional import require
from edgefuse.calibration import nncf_dataset
from edgefuse.exporters.base import Build, Exporter, Job, Validation, group_nodes
from edgefuse.profiles import Precision
from edgefuse.spec import OUTPUT_NAMES

if TYPE_CHECKING:
    from edgefuse.profiles import Profile

MODEL = "model.xml"
_SKIP = {"Constant", "Parameter", "Result", "Convert"}
_WEIGHTED = {"Convolution", "GroupConvolution", "MatMul"}


def fp32_ir(job: Job) -> Path:
    """The fp32 IR for this IO size, converted once per session."""
    io = job.profile.io

    def make() -> Path:
        ov = require("openvino")
        shapes = [(name, list(shape)) for name, shape in io.inputs.items()]
        model = ov.convert_model(job.model, example_input=job.sample(), input=shapes)
        model.outputs[0].get_tensor().set_names(set(OUTPUT_NAMES))
        path = job.session.scratch_dir("openvino", f"{io.batch}x{io.height}x{io.width}") / MODEL
        ov.save_model(model, str(path), compress_to_fp16=False)
        return path

    return job.session.cached(("fp32-ir", io), make)


def quantize(job: Job, src: Path, dst: Path, exclude: Sequence[str]) -> None:
    import rich

    ov, nncf = require("openvino"), require("nncf")

    nncf.set_log_level(logging.ERROR)
    frames = job.session.calibration(job.profile)
    console = rich.get_console()  # NNCF draws its progress bars there; ours run on another console
    quiet, console.quiet = console.quiet, True
    try:
        model = nncf.quantize(
            ov.Core().read_model(str(src)),
            nncf_dataset(frames),
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(frames),
            fast_bias_correction=True,
            advanced_parameters=nncf.AdvancedQuantizationParameters(
                overflow_fix=nncf.OverflowFix(job.profile.openvino.overflow_fix)
            ),
            ignored_scope=nncf.IgnoredScope(names=list(exclude), validate=False) if exclude else None,
        )
    finally:
        console.quiet = quiet
    ov.save_model(model, str(dst), compress_to_fp16=False)


def strip_quantizers(src: Path, dst: Path, exclude: Sequence[str], fp32: Path | None = None) -> None:
    """The int8 IR with the FakeQuantize ops feeding ``exclude`` removed and, given the ``fp32`` IR, the
    float weights of ``exclude``'s convolutions put back: what IgnoredScope would give, in milliseconds
    instead of a new NNCF run (the sensitivity probes only need the ranking). Why the weights: a layer whose
    damage is in its int8 weights looks harmless to a probe that only removes activation quantizers, and the
    search never keeps it (the stem of a student trained with dark thermal frames: 54 levels on its own)."""
    ov = require("openvino")
    core = ov.Core()
    model, names = core.read_model(str(src)), set(exclude)
    floats = {}
    for op in core.read_model(str(fp32)).get_ordered_ops() if fp32 is not None else []:
        name = op.get_friendly_name()
        weights = op.input_value(1).get_node() if op.get_type_name() in _WEIGHTED else None
        if name in names and weights is not None and weights.get_type_name() == "Constant":
            floats[name] = weights.get_data()
    for op in model.get_ordered_ops():
        if op.get_type_name() in _WEIGHTED and op.get_friendly_name() in floats:
            op.input(1).replace_source_output(ov.opset13.constant(floats[op.get_friendly_name()]).output(0))
        if op.get_type_name() != "FakeQuantize":
            continue
        consumers = {t.get_node().get_friendly_name() for t in op.output(0).get_target_inputs()}
        if consumers and consumers <= names:
            op.output(0).replace(op.input_value(0))
    ov.save_model(model, str(dst), compress_to_fp16=False)


def full_int8(job: Job) -> Path:
    """The all-int8 IR, quantized once per session and reused by the sensitivity probes."""

    key = (job.profile.name, job.profile.openvino.overflow_fix)  # everything the quantization reads

    def make() -> Path:
        d = job.session.scratch_dir("openvino", f"int8-{abs(hash(key))}")
        quantize(job, fp32_ir(job), d / MODEL, ())
        return d / MODEL

    return job.session.cached(("int8-ir", *key), make)


def _copy_ir(src: Path, dst: Path) -> None:
    for suffix in (".xml", ".bin"):
        shutil.copyfile(src.with_suffix(suffix), dst.with_suffix(suffix))


def ir_details(path: Path, profile: Profile) -> dict[str, Any]:
    ov = require("openvino")
    model = ov.Core().read_model(str(path))
    ops: dict[str, int] = {}
    for op in model.get_ordered_ops():
        ops[op.get_type_name()] = ops.get(op.get_type_name(), 0) + 1
    details = {
        "inputs": [p.get_any_name() for p in model.inputs],
        "outputs": [p.get_any_name() for p in model.outputs],
        "weights_file": path.with_suffix(".bin").name,
        "inference_precision": profile.openvino.inference_precision,
        "fake_quantize_ops": ops.get("FakeQuantize", 0),
    }
    if profile.precision is Precision.INT8:
        details["overflow_fix"] = profile.openvino.overflow_fix  # the runtime warns on a CPU without VNNI
    return details


class OpenVINOExporter(Exporter):
    backend = "openvino"
    modules = ("openvino",)
    tools = ("torch", "openvino", "nncf")

    def modules_for(self, profile: Profile) -> tuple[str, ...]:
        return ("openvino", "nncf") if profile.precision is Precision.INT8 else ("openvino",)

    def build(self, job: Job, out: Path, exclude: Sequence[str] = (), quick: bool = False) -> Build:
        ov = require("openvino")
        src, dst, precision = fp32_ir(job), out / MODEL, job.precision
        if precision is Precision.INT8 and quick:
            strip_quantizers(full_int8(job), dst, exclude, fp32=src)
            line = "int8 probe"
        elif precision is Precision.INT8:
            quantize(job, src, dst, exclude) if exclude else _copy_ir(full_int8(job), dst)
            kept = " (excluded layers float)" if exclude else ""
            fix = job.profile.openvino.overflow_fix
            line = f"int8 (NNCF MIXED preset: symmetric weights, asymmetric activations; overflow fix {fix})"
            line += f"{kept}; IO float32"
        else:
            ov.save_model(
                ov.Core().read_model(str(src)), str(dst), compress_to_fp16=precision is Precision.FP16
            )
            line = "fp32 weights" if precision is Precision.FP32 else "fp16 weights (compress_to_fp16)"
            line += f"; executes at {job.profile.openvino.inference_precision}; IO float32"
        return Build(
            artifact=MODEL,
            precision_detail=line,
            validate=Validation("openvino", dst),
            calibrated=precision is Precision.INT8,
            details=ir_details(dst, job.profile),
        )

    def groups(self, job: Job) -> dict[str, list[str]]:
        if job.precision is not Precision.INT8:
            return {}
        ov = require("openvino")
        model = ov.Core().read_model(str(fp32_ir(job)))
        names = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() not in _SKIP]
        return group_nodes(names, job.model)
