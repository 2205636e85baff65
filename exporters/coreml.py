"""CoreML: an ML Program (``model.mlpackage``) converted from the traced model by coremltools.

- fp16 (the default for the Neural Engine) and fp32: ``compute_precision`` of the ML Program.
- int8: weights int8 per channel (``linear_quantize_weights``); with a deployment target of macOS 14 /
  iOS 17 or newer also int8 activations (W8A8), their ranges calibrated on the real frames in PyTorch with
  ``coremltools.optimize.torch``'s LinearQuantizer (observers only, no training): coremltools' own
  activation calibration runs predictions, which only macOS can do.

IO stays float32 and keeps the names ``visible``, ``thermal`` and ``fused``. Conversion runs anywhere;
validation needs macOS (the runtime says so and the export reports "not validated here").
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgefuse._optional import require
from edgefuse.calibration import torch_samples
from edgefuse.errors import ExportError
from edgefuse.exporters.base import Build, Exporter, Job, Validation
from edgefuse.profiles import Precision
from edgefuse.spec import INPUT_NAMES, OUTPUT_NAMES

MODEL = "model.mlpackage"
_A8_TARGETS = ("macOS14", "iOS17")  # activation quantization ops need these opsets or newer


def _target(ct: Any, name: str) -> Any:
    try:
        return getattr(ct.target, name)
    except AttributeError:
        known = ", ".join(t.name for t in ct.target)
        raise ExportError(
            f"coreml.minimum_deployment_target {name!r} is not a coremltools target ({known})"
        ) from None


def _supports_a8(ct: Any, target: Any) -> bool:
    return bool(target >= ct.target.iOS17)  # macOS14 is the same opset version as iOS17


def _calibrated_w8a8(job: Job) -> Any:
    """FusionProxy with int8 fake-quant observers calibrated on the real frames (no training steps)."""
    from coremltools.optimize.torch.quantization import (
        LinearQuantizer,
        LinearQuantizerConfig,
        ModuleLinearQuantizerConfig,
    )

    # milestones: observers on from step 0, fake-quant only from step 10**6, i.e. pure observation
    config = ModuleLinearQuantizerConfig(quantization_scheme="symmetric", milestones=[0, 10**6, 10**6, 0])
    quantizer = LinearQuantizer(copy.deepcopy(job.model), LinearQuantizerConfig(global_config=config))
    prepared = quantizer.prepare(example_inputs=job.sample(), inplace=True)
    quantizer.step()
    import torch

    with torch.no_grad():
        for visible, thermal in torch_samples(job.session.calibration(job.profile)):
            prepared(visible, thermal)
    return quantizer.finalize(inplace=True).eval()


def convert(job: Job) -> tuple[Any, str]:
    import numpy as np
    import torch

    ct = require("coremltools")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    target = _target(ct, job.profile.coreml.minimum_deployment_target)
    model, line = job.model, ""
    if job.precision is Precision.INT8:
        if _supports_a8(ct, target):
            model, line = (
                _calibrated_w8a8(job),
                "int8 weights and activations (W8A8; ranges calibrated in PyTorch)",
            )
        else:
            line = f"int8 weights, fp16 activations (W8A16: int8 activations need {'/'.join(_A8_TARGETS)}+)"
    io = job.profile.io
    inputs = [ct.TensorType(name=n, shape=io.inputs[n], dtype=np.float32) for n in INPUT_NAMES]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, job.sample(), check_trace=False)  # the export is validated anyway
        mlmodel = ct.convert(
            traced,
            inputs=inputs,
            outputs=[ct.TensorType(name=OUTPUT_NAMES[0], dtype=np.float32)],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32
            if job.precision is Precision.FP32
            else ct.precision.FLOAT16,
            minimum_deployment_target=target,
        )
    if job.precision is Precision.INT8:
        opt = require("coremltools.optimize.coreml")
        weights = opt.OptimizationConfig(
            global_config=opt.OpLinearQuantizerConfig(mode="linear_symmetric", granularity="per_channel")
        )
        mlmodel = opt.linear_quantize_weights(mlmodel, weights)
    else:
        line = f"{job.precision} weights and activations"
    return mlmodel, line + "; IO float32"


class CoreMLExporter(Exporter):
    backend = "coreml"
    modules = ("coremltools",)
    tools = ("torch", "coremltools")

    def build(self, job: Job, out: Path, exclude: Sequence[str] = (), quick: bool = False) -> Build:
        mlmodel, line = convert(job)
        mlmodel.save(str(out / MODEL))
        spec = mlmodel.get_spec()
        details = {
            "format": "mlprogram",
            "minimum_deployment_target": job.profile.coreml.minimum_deployment_target,
            "compute_units": job.profile.coreml.compute_units,
            "inputs": [i.name for i in spec.description.input],
            "outputs": [o.name for o in spec.description.output],
        }
        return Build(
            MODEL, line, Validation("coreml", out / MODEL), calibrated="W8A8" in line, details=details
        )
