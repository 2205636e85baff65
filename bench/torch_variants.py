"""The PyTorch model itself in the forms that make it fast: fp32/fp16, channels-last, CUDA graphs,
``torch.compile``, the Triton kernels of ``edgefuse.gpu_fused`` (fp16, batch 1, in a CUDA graph), batch 1 and
batched.

Each variant keeps static input buffers on its device holding a real frame (replicated over the batch), so
a timed step launches the network and nothing else; the CUDA clock waits for the device. ``predict`` copies
a frame into the buffers and returns the first batch slot as float32, so every variant's drift is measured
against the CPU fp32 reference like any exported artifact. On CPU, eager and channels-last run (the CUDA
graph and ``torch.compile`` forms are CUDA-only here: the CPU inductor build needs a compiler and minutes).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefuse.bench.timing import capture_graph
from edgefuse.errors import RuntimeUnavailableError

if TYPE_CHECKING:
    import torch

MODES = ("eager", "channels_last", "cuda_graph", "compile", "triton")


@dataclass(frozen=True)
class Variant:
    dtype: str  # fp32 | fp16
    mode: str  # one of MODES
    batch: int = 1

    def key(self, device: str) -> str:
        return f"torch-{device}-{self.dtype}-{self.mode}-b{self.batch}"


def cuda_variants(
    batches: tuple[int, ...] = (16, 64), compile: bool = True, triton: bool = True
) -> list[Variant]:
    """Batch 1 in every mode and precision (compile: fp16 only); batched throughput with CUDA graphs in
    both precisions and, for the first batch size, compiled fp16. Compilation (autotuning) costs minutes
    per shape, so it is spent where it can pay most: the fp16 figures. ``triton``: also the Triton kernels
    at fp16 batch 1."""
    out = [Variant(dt, mode) for dt in ("fp32", "fp16") for mode in ("eager", "channels_last", "cuda_graph")]
    if compile:
        out.append(Variant("fp16", "compile"))
    if triton:  # batch 1, the target it was written for
        out.append(Variant("fp16", "triton"))
    # batch 1 is there in every mode already, and a size given twice adds nothing (a report's ids are unique)
    for i, b in enumerate(b for b in dict.fromkeys(batches) if b > 1):
        out += [Variant("fp32", "cuda_graph", b), Variant("fp16", "cuda_graph", b)]
        if compile and i == 0:
            out.append(Variant("fp16", "compile", b))
    return out


def _triton_net(
    model: torch.nn.Module, variant: Variant, device: torch.device, height: int, width: int
) -> torch.nn.Module:
    """FusedFusionProxy of ``model`` on ``device`` (fp16, batch 1, sizes divisible by 16)."""
    if variant.dtype != "fp16" or variant.batch != 1:
        raise RuntimeUnavailableError("the Triton kernels are benchmarked in fp16 at batch 1 only")
    if height % 16 or width % 16:
        raise RuntimeUnavailableError(
            f"the Triton kernels need H and W divisible by 16, got {height}x{width}"
        )
    try:
        from edgefuse.gpu_fused import FusedFusionProxy
    except ImportError as exc:  # triton ships with torch's CUDA wheels on Linux, not with the others
        raise RuntimeUnavailableError(f"the Triton kernels need triton ({exc})") from exc
    import torch

    from edgefuse.model import FusionProxy

    if not isinstance(model, FusionProxy):
        raise RuntimeUnavailableError(f"the Triton kernels pack a FusionProxy, not a {type(model).__name__}")
    # the looped dw taps: 0.145-0.149 ms against 0.164-0.168 unrolled on an H200 (480x640, fused_speed.py)
    return FusedFusionProxy(copy.deepcopy(model).float().to(device).eval(), torch.float16, unroll=False)


class TorchVariant:
    """One variant of ``model`` (a CPU fp32 FusionProxy, left untouched) at ``height``×``width``."""

    def __init__(
        self,
        model: torch.nn.Module,
        variant: Variant,
        device: str,
        height: int,
        width: int,
        compile_mode: str = "reduce-overhead",
    ) -> None:
        import torch

        self.variant, self.device = variant, torch.device(device)
        cuda = self.device.type == "cuda"
        if variant.mode in ("cuda_graph", "compile", "triton") and not cuda:
            raise RuntimeUnavailableError(f"torch {variant.mode} is benchmarked on CUDA only")
        if variant.dtype == "fp16" and not cuda:
            raise RuntimeUnavailableError("torch fp16 runs on CUDA only (CPU half kernels are slow)")
        self.dtype = torch.float16 if variant.dtype == "fp16" else torch.float32
        self.fmt = torch.contiguous_format if variant.mode in ("eager", "triton") else torch.channels_last
        start = time.perf_counter()
        if variant.mode == "triton":
            self.net: Any = _triton_net(model, variant, self.device, height, width)
        else:
            net = copy.deepcopy(model).to(self.device, self.dtype).eval()
            self.net = net.to(memory_format=self.fmt)  # type: ignore[call-overload]
        b = variant.batch
        self.visible = torch.zeros(b, 3, height, width, device=self.device, dtype=self.dtype)
        self.thermal = torch.zeros(b, 1, height, width, device=self.device, dtype=self.dtype)
        self.visible = self.visible.contiguous(memory_format=self.fmt)
        self.thermal = self.thermal.contiguous(memory_format=self.fmt)
        self.output: torch.Tensor | None = None
        self.graph: Any = None
        self.forward: Any = self.net
        if variant.mode == "compile":
            self.forward = torch.compile(self.net, mode=compile_mode, fullgraph=True)
        with torch.inference_mode():
            self.output = self.forward(self.visible, self.thermal)  # compiles, autotunes, allocates
            if variant.mode in ("cuda_graph", "triton"):
                self._capture()
        if cuda:
            torch.cuda.synchronize(self.device)
        self.load_seconds = time.perf_counter() - start

    def _capture(self) -> None:
        """Record one forward pass into a CUDA graph; replays reuse the static input/output buffers."""
        self.graph, self.output = capture_graph(self.net, self.visible, self.thermal, device=self.device)

    def step(self) -> None:
        """One timed call on the preloaded buffers (asynchronous on CUDA: the clock waits)."""
        import torch

        if self.graph is not None:
            self.graph.replay()
            return
        with torch.inference_mode():
            self.output = self.forward(self.visible, self.thermal)

    def load(self, inputs: dict[str, np.ndarray]) -> None:
        """Copy one 1×C×H×W frame into every batch slot of the static buffers."""
        import torch

        with torch.inference_mode():
            for key, buf in (("visible", self.visible), ("thermal", self.thermal)):
                src = torch.from_numpy(np.ascontiguousarray(inputs[key])).to(self.device, self.dtype)
                buf.copy_(src.expand_as(buf))

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named float32 arrays in, ``{"fused": 1×3×H×W float32}`` (batch slot 0) out."""
        self.load(inputs)
        self.step()
        assert self.output is not None
        return {"fused": self.output[:1].float().contiguous().cpu().numpy()}

    def describe(self) -> str:
        import torch

        v = self.variant
        text = f"torch {torch.__version__} {v.dtype} {v.mode.replace('_', '-')}, batch {v.batch}"
        if v.mode == "triton":
            text += f" (15 kernels, triton {__import__('triton').__version__}, CUDA graph)"
        if self.device.type == "cuda" and v.dtype == "fp32":
            text += f" (cuDNN TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'})"
        return text

    def close(self) -> None:
        self.graph = self.forward = self.net = self.output = None
