"""LiteRT (.tflite): ``litert_torch.convert`` for the float graph, ``ai_edge_quantizer`` for fp16 and int8.

- The graph is converted once per IO size from keyword inputs, so the signature's inputs are named
  ``visible``/``thermal`` and its output ``fused`` (a tiny wrapper returns ``{"fused": ...}``). IO stays
  NCHW float32; litert-torch transposes to NHWC inside the graph (recorded as ``layout``).
- fp16: weights stored as fp16 (float casting), dequantized at load; XNNPACK runs fp16 where the CPU can.
- int8: full-integer static quantization (int8 weights per channel, int8 activations calibrated on real
  frames) with float32 IO: the INPUT/OUTPUT boundary is left unquantized, so callers never see scales.
  The calibration result (per-tensor min/max) is kept, so mixed-precision rebuilds only re-quantize.

litert-torch's PT2E route was tried first: it folds the thermal input's quantize into the signature
(int8 ``thermal`` next to float ``visible``), which breaks the float IO contract.
"""

from __future__ import annotations

import copy
import platform
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse._optional import require
from edgefuse.exporters import litert_worker
from edgefuse.exporters.base import Build, Exporter, Job, Validation, group_nodes
from edgefuse.exporters.litert_worker import MODEL, calibrate, convert_float, quiet_loggers
from edgefuse.profiles import Precision

if TYPE_CHECKING:
    pass

# litert-torch names a tensor by the module classes and attribute names on its call stack; ModuleLists
# vanish from it, so FusionProxy's lists are told apart by what they hold
_PATHS = [
    (re.compile(r"Sequential_stem"), "stem"),
    (re.compile(r"Sequential_(\d+)/torch\.nn\.modules\.\w+\.\w+_\d"), r"downs.\1"),
    (re.compile(r"Sequential_(\d+)/edgefuse\.model\.Block_(\d+)"), r"enc.\1.\2"),
    (re.compile(r"FusionProxy_\w+?/edgefuse\.model\.Block_(\d+)"), r"dec.\1"),
    (re.compile(r"FusionProxy_\w+?/torch\.nn\.modules\.conv\.Conv2d_(\d+)"), r"lateral.\1"),
    (re.compile(r"Conv2d_head"), "head"),
]


def fp32_tflite(job: Job) -> Path:
    """The float .tflite for this IO size, once per session: from the background worker when one was
    started for it (:meth:`LiteRTExporter.prefetch`), else converted here."""
    io = job.profile.io

    def make() -> Path:
        done = litert_worker.result(job.session, io)
        if done is not None:
            return done.model
        path = job.session.scratch_dir("litert", f"{io.batch}x{io.height}x{io.width}") / MODEL
        return convert_float(job.model, job.sample(), path)

    return job.session.cached(("fp32-tflite", io), make)


def op_scopes(path: Path) -> list[str]:
    """Each operator's scope as ai_edge_quantizer matches it (output tensor names + ';'), in graph order."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    model = tfl.read_model(str(path))
    graph = model.subgraphs[0]
    return [tfl.get_op_scope(op, graph.tensors) for op in graph.operators]


def module_path(scope: str) -> str:
    """``…Sequential_1/edgefuse.model.Block_0/…;`` -> ``enc.1.0``; "" when the name carries no module."""
    first = scope.split(";")[0]
    for pattern, repl in _PATHS:
        m = pattern.search(first)
        if m:
            return m.expand(repl)
    return ""


def _calibrated(job: Job, src: Path) -> Any:
    """The calibration result on the profile's frames, computed once (or taken from the worker, when it
    calibrated this very model on these very frames)."""
    frames = job.session.calibration(job.profile)

    def make() -> Any:
        done = litert_worker.result(job.session, job.profile.io)
        if done is not None and done.model == src and done.calibrated_on == (frames.source, frames.stems):
            return done.qsvs()
        return calibrate(src, frames, job.session.threads)

    return job.session.cached(("aeq-calibration", str(src), frames.source, frames.stems), make)


def quantize(job: Job, src: Path, dst: Path, exclude: Sequence[str]) -> None:
    require("ai_edge_quantizer")
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName as Op

    quiet_loggers()
    qt = quantizer.Quantizer(str(src))
    if job.precision is Precision.FP16:
        qt.add_weight_only_config(".*", Op.ALL_SUPPORTED, 16, algorithm_key=AlgorithmName.FLOAT_CASTING)
        result = qt.quantize()
    else:
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        for boundary in (Op.INPUT, Op.OUTPUT):  # float32 IO: quantize/dequantize inside the graph
            qt.update_quantization_recipe(".*", boundary, algorithm_key=AlgorithmName.NO_QUANTIZE)
        for scope in exclude:
            qt.update_quantization_recipe(
                f"^{re.escape(scope)}$", Op.ALL_SUPPORTED, algorithm_key=AlgorithmName.NO_QUANTIZE
            )
        # a copy: quantize() widens the ranges it must share (concat operands...) in place, and a
        # mixed-precision rebuild with other ops excluded must start from the calibrated ranges
        result = qt.quantize(copy.deepcopy(_calibrated(job, src)))
    result.export_model(str(dst), overwrite=True)


class LiteRTExporter(Exporter):
    backend = "litert"
    modules = ("litert_torch", "ai_edge_litert", "ai_edge_quantizer")
    tools = ("torch", "litert_torch", "ai_edge_litert", "ai_edge_quantizer")

    def build(self, job: Job, out: Path, exclude: Sequence[str] = (), quick: bool = False) -> Build:
        src, dst = fp32_tflite(job), out / MODEL
        if job.precision is Precision.FP32:
            shutil.copyfile(src, dst)
            line = "fp32"
        else:
            quantize(job, src, dst, exclude)
            line = (
                "fp16 weights (dequantized at load), float activations"
                if job.precision is Precision.FP16
                else "int8 weights (per channel) and activations, full-integer kernels"
                + (" (excluded ops float)" if exclude else "")
            )
        details = {
            "layout": "IO NCHW float32 (litert-torch transposes to NHWC inside the graph)",
            "signature": "serving_default",
            "inputs": ["visible", "thermal"],
            "outputs": ["fused"],
            "quantizer": "ai_edge_quantizer static_wi8_ai8, INPUT/OUTPUT unquantized"
            if job.precision is Precision.INT8
            else (
                "ai_edge_quantizer float_casting (fp16 weights)" if job.precision is Precision.FP16 else None
            ),
            "delegate": job.profile.litert.delegate,
        }
        # fp16 arithmetic is XNNPACK's on ARMv8.2 cores; an x86 host dequantizes the weights and computes fp32
        on_arm = platform.machine() in ("aarch64", "arm64")
        note = "fp16 weights validated; fp16 arithmetic not emulated on this x86 host" if not on_arm else ""
        validation = Validation("litert", dst, note if job.precision is Precision.FP16 else "")
        return Build(
            MODEL,
            line + "; IO float32",
            validation,
            calibrated=job.precision is Precision.INT8,
            details=details,
        )

    def prefetch(self, jobs: Sequence[Job]) -> None:
        """Convert (and calibrate, for the first int8 job) in a worker process while other targets export."""
        for job in jobs:
            int8 = [j for j in jobs if j.profile.io == job.profile.io and j.precision is Precision.INT8]
            litert_worker.start(job.session, job.profile.io, int8[0] if int8 else None)

    def groups(self, job: Job) -> dict[str, list[str]]:
        if job.precision is not Precision.INT8:
            return {}
        scopes = [s for s in op_scopes(fp32_tflite(job)) if s]
        # label each op by its module path (when the name carries one) so the shared grouping applies
        labels = {f"{module_path(s)} #{i}".strip(): s for i, s in enumerate(scopes)}
        grouped = group_nodes(list(labels), job.model)
        return {g: [labels[label] for label in members] for g, members in grouped.items()}
