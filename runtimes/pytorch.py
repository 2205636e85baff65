"""The reference runtime: the PyTorch model itself, from a checkpoint (cpu or cuda, optional fp16 on cuda)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgefuse.errors import ArtifactMismatchError, DataError, RuntimeUnavailableError
from edgefuse.runtimes.base import BaseRuntime, Expect
from edgefuse.spec import MULTIPLE


class TorchRuntime(BaseRuntime):
    """``artifact``: a checkpoint file, a bundled name (``fusionproxy-s``) or an artifact dir naming one.

    ``threads`` sets ``torch.set_num_threads``, which is process-wide.
    """

    name: ClassVar[str] = "torch"
    suffixes: ClassVar[tuple[str, ...]] = (".safetensors", ".pt", ".pth")

    def __init__(
        self,
        artifact: str | Path,
        *,
        fp16: bool = False,
        channels_last: bool = False,
        **kwargs: Any,
    ) -> None:
        from edgefuse.checkpoint import BUNDLED, resolve

        if str(artifact) in BUNDLED:
            artifact = resolve(str(artifact))
        self.fp16 = fp16
        self.channels_last = channels_last
        self._expect: Expect | None = None
        super().__init__(artifact, **kwargs)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        import torch

        return True, torch.__version__

    def _check_expect(self, expect: Expect) -> None:
        # the checkpoint is its own record: its hashes are compared once it is loaded; the backend is moot
        self._expect = expect
        if expect.io is not None and self.manifest is not None:
            self.manifest.check(io=expect.io)

    def _load(self, path: Path) -> None:
        import torch

        from edgefuse.checkpoint import load_model

        device = "cuda" if self.device == "gpu" else self.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeUnavailableError(f"torch runtime: device {self.device!r} but CUDA is not available")
        if self.fp16 and not device.startswith("cuda"):
            raise RuntimeUnavailableError("torch runtime: fp16 runs on cuda only (CPU half kernels are slow)")
        if self.threads:
            torch.set_num_threads(self.threads)
        model, info = load_model(path, map_location=device)
        want = self._expect.checkpoint_sha256 if self._expect is not None else None
        if want and want not in (info.file_sha256, info.weights_sha256):
            raise ArtifactMismatchError(f"{path}: sha256 {info.file_sha256[:12]}… is not {want[:12]}…")
        if self.fp16:
            model = model.half()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model = model
        self.torch_device = torch.device(device)
        self.checkpoint_info = info
        # the network takes any size that is a multiple of 16; a fixed IO spec (from a manifest) narrows it
        if self.io is not None:
            self.input_shapes = dict(self.io.inputs)
        else:
            self.input_shapes = {"visible": (-1, 3, -1, -1), "thermal": (-1, 1, -1, -1)}

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        h, w = inputs["visible"].shape[-2:]
        if h % MULTIPLE or w % MULTIPLE:
            raise DataError(f"torch runtime: input size {h}x{w} must be a multiple of {MULTIPLE} (pad first)")
        vis, th = inputs["visible"].shape, inputs["thermal"].shape
        if th[0] != vis[0] or th[-2:] != (h, w):
            raise DataError(f"torch runtime: thermal {th} does not match visible {vis}")
        dtype = torch.float16 if self.fp16 else torch.float32
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        with torch.inference_mode():
            v, t = (
                torch.from_numpy(inputs[k]).to(self.torch_device, dtype).contiguous(memory_format=fmt)
                for k in ("visible", "thermal")
            )
            out = self.model(v, t)
            fused = out.float().contiguous().cpu().numpy()
        return {"fused": fused}

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
