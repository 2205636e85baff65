"""TensorRT: a serialized engine (``model.engine``) run on a CUDA device, buffers held as torch CUDA tensors.

Engines are specific to the GPU and TensorRT version that built them: build on the target (the Jetson).
Both the TensorRT 10 tensor API (``execute_async_v3``) and the 8.x bindings API (JetPack 4.6's 8.2) work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgefuse._optional import available, require
from edgefuse.errors import ArtifactMismatchError, RuntimeUnavailableError
from edgefuse.runtimes.base import BaseRuntime


def _cuda_reason() -> str | None:
    """None when a CUDA device is usable through torch, else why not."""
    import torch

    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else " is a CPU-only build")
        return f"no CUDA device ({build})"
    return None


class TensorRTRuntime(BaseRuntime):
    """``device``: ``cuda`` or ``cuda:N``; ``threads`` has no effect (the GPU runs it)."""

    name: ClassVar[str] = "tensorrt"
    suffixes: ClassVar[tuple[str, ...]] = (".engine", ".plan")

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        ok, why = available("tensorrt")
        if not ok:
            return False, f'tensorrt not importable ({why}); pip install "edgefuse[tensorrt]" or use JetPack'
        reason = _cuda_reason()
        if reason:
            return False, f"{reason}; tensorrt {why} needs an NVIDIA GPU"
        return True, why

    def _model_path(self) -> Path:
        # an export directory made off-device holds model.onnx + trtexec.sh but no engine yet
        if (
            self.artifact.is_dir()
            and not any(self.artifact.glob("*.engine"))
            and not any(self.artifact.glob("*.plan"))
        ):
            raise ArtifactMismatchError(
                f"{self.artifact}: no TensorRT engine yet; build it on the device with: sh trtexec.sh"
            )
        return super()._model_path()

    def _load(self, path: Path) -> None:
        import torch

        trt = require("tensorrt")
        self.torch_device = torch.device("cuda" if self.device in ("cpu", "gpu") else self.device)
        torch.cuda.set_device(self.torch_device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ArtifactMismatchError(
                f"{path}: TensorRT {trt.__version__} could not deserialize this engine "
                "(built by another TensorRT version or for another GPU?)"
            )
        self.engine = engine
        self.context = engine.create_execution_context()
        self._v3 = hasattr(engine, "num_io_tensors")  # TensorRT >= 8.5 tensor API
        self._buffers: dict[str, torch.Tensor] = {}
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        for name, is_input, shape, dtype in self._io(trt):
            if any(d < 0 for d in shape):
                raise ArtifactMismatchError(f"{path}: {name!r} has a dynamic shape {shape}; build it static")
            self._buffers[name] = torch.empty(shape, dtype=_torch_dtype(trt, dtype), device=self.torch_device)
            (self._inputs if is_input else self._outputs).append(name)
            if self._v3:
                self.context.set_tensor_address(name, self._buffers[name].data_ptr())
        self.input_shapes = {n: tuple(self._buffers[n].shape) for n in self._inputs}
        self._stream = torch.cuda.Stream(self.torch_device)

    def _io(self, trt: Any) -> list[tuple[str, bool, tuple[int, ...], Any]]:
        e = self.engine
        if self._v3:
            names = [e.get_tensor_name(i) for i in range(e.num_io_tensors)]
            return [
                (
                    n,
                    e.get_tensor_mode(n) == trt.TensorIOMode.INPUT,
                    tuple(e.get_tensor_shape(n)),
                    e.get_tensor_dtype(n),
                )
                for n in names
            ]
        rows = []
        for i in range(e.num_bindings):
            shape = tuple(e.get_binding_shape(i))
            rows.append((e.get_binding_name(i), e.binding_is_input(i), shape, e.get_binding_dtype(i)))
        return rows

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.cuda.stream(self._stream):
            for name in self._inputs:
                buf = self._buffers[name]
                buf.copy_(torch.from_numpy(inputs[name]).to(buf.device, non_blocking=True))
            if self._v3:
                ok = self.context.execute_async_v3(self._stream.cuda_stream)
            else:
                ok = self.context.execute_v2([self._buffers[n].data_ptr() for n in self._all_names()])
            self._stream.synchronize()
        if not ok:
            raise RuntimeUnavailableError("tensorrt: engine execution failed (see the TensorRT log above)")
        return {n: self._buffers[n].float().cpu().numpy() for n in self._outputs}

    def _all_names(self) -> list[str]:
        return [self.engine.get_binding_name(i) for i in range(self.engine.num_bindings)]

    def close(self) -> None:
        self.context = self.engine = None
        self._buffers = {}


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int8: torch.int8,
        trt.int32: torch.int32,
    }
    if dtype not in table:
        raise RuntimeUnavailableError(f"tensorrt: IO dtype {dtype} is not supported by this runtime")
    return table[dtype]
