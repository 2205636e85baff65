"""LiteRT (TensorFlow Lite): ``ai_edge_litert`` interpreter, falling back to ``tflite_runtime``.

Converted models differ in three ways this runtime hides from the caller, who always passes and gets
float32 NCHW tensors named ``visible``/``thermal``/``fused``:
- names: ``visible``/``thermal`` when converted from keyword inputs, ``args_0``/``args_1`` otherwise; inputs
  are matched by name when the names say it, else by channel count (visible has 3, thermal 1);
- layout: NCHW (litert-torch's default) or NHWC (``litert_torch.to_channel_last_io``), found from the shapes;
- quantized IO (int8/uint8 with a scale and zero point): quantized on the way in, dequantized on the way out.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgefuse.errors import ArtifactMismatchError, RuntimeUnavailableError
from edgefuse.runtimes.base import BaseRuntime
from edgefuse.spec import INPUT_NAMES

_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
_CHANNELS = {"visible": 3, "thermal": 1, "fused": 3}


def _interpreter_module() -> tuple[Any, str]:
    errors = []
    for name in _MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name.split('.')[0]}: {str(exc).splitlines()[0]}")
            continue
        top = importlib.import_module(name.split(".")[0])
        return mod, f"{getattr(top, '__version__', 'unknown version')} ({name.split('.')[0]})"
    raise RuntimeUnavailableError(
        f'no LiteRT interpreter ({"; ".join(errors)}); pip install "edgefuse[tflite]" (or tflite-runtime)'
    )


@dataclass(frozen=True)
class TensorMap:
    """How one caller tensor maps to a model tensor."""

    model_name: str
    nhwc: bool
    dtype: Any
    scale: float
    zero_point: int

    def to_model(self, x: np.ndarray) -> np.ndarray:
        if self.nhwc:
            x = x.transpose(0, 2, 3, 1)
        if self.scale:  # quantized input: q = round(x / scale) + zero_point, saturated to the integer type
            info = np.iinfo(self.dtype)
            x = np.clip(np.round(x / self.scale) + self.zero_point, info.min, info.max)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def from_model(self, y: np.ndarray) -> np.ndarray:
        y = (y.astype(np.float32) - self.zero_point) * np.float32(self.scale) if self.scale else y
        if self.nhwc:
            y = y.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(y, dtype=np.float32)


def map_tensors(details: dict[str, dict[str, Any]], names: tuple[str, ...]) -> dict[str, TensorMap]:
    """Match caller names to model tensors (by name, else by channel count) and find each one's layout."""
    out: dict[str, TensorMap] = {}
    for want in names:
        pick = [k for k in details if want in k.lower()]
        if want == "fused" and len(details) == 1:
            pick = list(details)
        elif len(pick) != 1:
            pick = [k for k, d in details.items() if _channels(d["shape"]) == _CHANNELS[want]]
        if len(pick) != 1:
            raise ArtifactMismatchError(f"litert: which tensor is {want!r} among {sorted(details)}?")
        d = details[pick[0]]
        shape = tuple(int(s) for s in d["shape"])
        scale, zero = d.get("quantization", (0.0, 0))
        is_int = np.issubdtype(np.dtype(d["dtype"]), np.integer)
        out[want] = TensorMap(
            model_name=pick[0],
            nhwc=_is_nhwc(shape, _CHANNELS[want]),
            dtype=d["dtype"],
            scale=float(scale) if is_int else 0.0,
            zero_point=int(zero) if is_int else 0,
        )
    return out


def _channels(shape: Any) -> int:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        return -1
    return shape[3] if _is_nhwc(shape, shape[3]) else shape[1]


def _is_nhwc(shape: tuple[int, ...], channels: int) -> bool:
    # NCHW when dim 1 holds the channels; NHWC when only the last dim does
    return len(shape) == 4 and shape[1] not in (1, 3) and shape[3] == channels


class LiteRTRuntime(BaseRuntime):
    """``threads``: XNNPACK threads (else the profile's ``litert.threads``); uses the profile's delegate."""

    name: ClassVar[str] = "litert"
    suffixes: ClassVar[tuple[str, ...]] = (".tflite",)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            _, version = _interpreter_module()
        except RuntimeUnavailableError as exc:
            return False, str(exc)
        return True, version

    def _load(self, path: Path) -> None:
        mod, self.library = _interpreter_module()
        knobs = self.profile.litert if self.profile is not None and self.profile.backend == "litert" else None
        threads = self.threads or (knobs.threads if knobs else None)
        delegate = knobs.delegate if knobs else "xnnpack"
        kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": threads}
        if delegate == "none":  # the builtin kernels only, without the default XNNPACK delegate
            kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        elif delegate == "gpu":
            try:
                kwargs["experimental_delegates"] = [mod.load_delegate("libtensorflowlite_gpu_delegate.so")]
            except (ValueError, OSError) as exc:
                raise RuntimeUnavailableError(f"litert: GPU delegate not loadable here ({exc})") from None
        self.interpreter = mod.Interpreter(**kwargs)
        self.interpreter.allocate_tensors()
        signatures = self.interpreter.get_signature_list()
        if signatures:
            key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
            self.runner = self.interpreter.get_signature_runner(key)
            in_details = self.runner.get_input_details()
            out_details = self.runner.get_output_details()
        else:  # models without a signature: plain tensor indices
            self.runner = None
            in_details = {d["name"]: d for d in self.interpreter.get_input_details()}
            out_details = {d["name"]: d for d in self.interpreter.get_output_details()}
        self._in = map_tensors(in_details, INPUT_NAMES)
        self._out = map_tensors(out_details, ("fused",))
        self._index = {k: d.get("index") for k, d in {**in_details, **out_details}.items()}
        self.input_shapes = {}
        for want, m in self._in.items():
            shape = tuple(int(s) for s in in_details[m.model_name]["shape"])
            self.input_shapes[want] = (shape[0], shape[3], shape[1], shape[2]) if m.nhwc else shape

    @property
    def quantized_io(self) -> bool:
        return any(m.scale for m in (*self._in.values(), *self._out.values()))

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {m.model_name: m.to_model(inputs[k]) for k, m in self._in.items()}
        if self.runner is not None:
            result = self.runner(**feed)
        else:
            for name, arr in feed.items():
                self.interpreter.set_tensor(self._index[name], arr)
            self.interpreter.invoke()
            get = self.interpreter.get_tensor
            result = {m.model_name: get(self._index[m.model_name]) for m in self._out.values()}
        return {k: m.from_model(result[m.model_name]) for k, m in self._out.items()}

    def close(self) -> None:
        self.runner = self.interpreter = None  # type: ignore[assignment]
