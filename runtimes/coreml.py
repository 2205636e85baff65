"""CoreML: an ML Program (``model.mlpackage``) run by coremltools; predictions need macOS."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgefuse._optional import available, require
from edgefuse.runtimes.base import BaseRuntime
from edgefuse.spec import OUTPUT_NAMES


class CoreMLRuntime(BaseRuntime):
    """``device`` is ignored: the profile's ``coreml.compute_units`` (default ALL) picks CPU / GPU / ANE."""

    name: ClassVar[str] = "coreml"
    suffixes: ClassVar[tuple[str, ...]] = (".mlpackage", ".mlmodel")

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if sys.platform != "darwin":
            # coremltools converts anywhere, but predict() is backed by the macOS Core ML framework; the
            # version comes from the package metadata so this check never imports coremltools off macOS
            try:
                installed = f"coremltools {metadata.version('coremltools')} installed, converting works"
            except metadata.PackageNotFoundError:
                installed = "coremltools not installed"
            return False, f"CoreML predictions need macOS (this is {platform.system()}; {installed})"
        ok, why = available("coremltools")
        if not ok:
            return False, f'coremltools not importable ({why}); pip install "edgefuse[coreml]"'
        return True, why

    def _model_path(self) -> Path:
        # a .mlpackage is a directory: it is the model itself, not an artifact dir
        if self.artifact.suffix in self.suffixes:
            return self.artifact
        return super()._model_path()

    def _load(self, path: Path) -> None:
        ct = require("coremltools")
        own = self.profile is not None and self.profile.backend == "coreml"
        units = self.profile.coreml.compute_units if own else "ALL"
        self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit[units])
        spec = self.model.get_spec()
        self.input_shapes = {
            i.name: tuple(int(d) for d in i.type.multiArrayType.shape) for i in spec.description.input
        }
        names = [o.name for o in spec.description.output]
        # a converter may name the output var_123: a single output is "fused"
        self._outputs = {n: n for n in names} if set(OUTPUT_NAMES) <= set(names) else {"fused": names[0]}

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.model.predict({k: np.ascontiguousarray(v) for k, v in inputs.items()})
        return {k: np.asarray(result[name], dtype=np.float32) for k, name in self._outputs.items()}

    def close(self) -> None:
        self.model = None
