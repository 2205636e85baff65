"""What every backend runtime shares: ``BaseRuntime``, lookup through the backend registry, IO checks.

A runtime takes and returns dicts keyed by tensor name (``visible``, ``thermal`` -> ``fused``), so the input
order can never drift between backends. Backend SDKs are imported only when a runtime is built.

An artifact is a directory holding ``edgefuse.json`` (the manifest) and the file it names under
``"artifact"`` (model.onnx, model.xml + model.bin, model.tflite, model.mlpackage, model.engine); a runtime
also accepts the model file itself (its directory's manifest is used when there is one), and the torch
runtime a checkpoint file. The manifest is :class:`edgefuse.manifest.ArtifactManifest`; a runtime reads its
``backend``, ``artifact``, ``io`` and checkpoint hashes.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgefuse import backends
from edgefuse.errors import (
    ArtifactMismatchError,
    DataError,
    EdgefuseError,
    NonFiniteOutputError,
    RuntimeUnavailableError,
)
from edgefuse.io import inside
from edgefuse.manifest import MANIFEST, ArtifactManifest, artifact_dir, read_manifest
from edgefuse.spec import IOSpec

if TYPE_CHECKING:
    from edgefuse.profiles import Profile


@dataclass(frozen=True)
class Expect:
    """What the caller expects an artifact to be; ``None`` fields are not checked."""

    checkpoint_sha256: str | None = None  # file or weights sha256 of the source checkpoint
    io: IOSpec | None = None
    backend: str | None = None


def canonical_name(name: str) -> str:
    key = backends.canonical(name)
    if key is None:
        raise RuntimeUnavailableError(f"unknown runtime {name!r}{backends.suggest(name)}")
    return key


def runtime_names() -> tuple[str, ...]:
    """Every registered runtime, in registration order (torch first)."""
    return backends.names_of()


def get_runtime(name: str) -> type[BaseRuntime]:
    """The runtime class for a name (or alias). Import errors in the runtime module itself propagate."""
    cls: type[BaseRuntime] = backends.get(canonical_name(name)).runtime_class()
    return cls


def runtime_for(artifact: str | Path) -> type[BaseRuntime]:
    """The runtime class an artifact needs, from its manifest's ``backend``."""
    return get_runtime(read_manifest(artifact).backend)


def open_artifact(artifact: str | Path, **kwargs: Any) -> BaseRuntime:
    """Build the right runtime for an artifact directory."""
    return runtime_for(artifact)(artifact, **kwargs)


class BaseRuntime:
    """Shared behaviour; a backend implements ``_load(path)`` (setting ``self.input_shapes``) and ``_run``.

    ``input_shapes`` maps input names to shapes with ``-1`` for dynamic dimensions, NCHW as the caller
    sees them (a backend that stores NHWC transposes inside ``_run``).
    """

    name: ClassVar[str] = "base"
    suffixes: ClassVar[tuple[str, ...]] = ()  # model file names/suffixes this backend reads

    def __init__(
        self,
        artifact: str | Path,
        *,
        threads: int | None = None,
        device: str = "cpu",
        profile: Profile | None = None,
        expect: Expect | None = None,
    ) -> None:
        ok, why = self.is_available()
        if not ok:
            raise RuntimeUnavailableError(f"{self.name} runtime unavailable: {why}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self.device = device
        self.profile = profile
        self.artifact = Path(artifact).expanduser()
        if not self.artifact.exists():
            raise ArtifactMismatchError(f"{self.artifact}: no such artifact")
        self.manifest: ArtifactManifest | None = self._find_manifest()
        # every file the manifest vouches for is checked (inside the folder, size, sha256) before loading
        self.verified: dict[str, str] = (
            self.manifest.verify(artifact_dir(self.artifact)) if self.manifest is not None else {}
        )
        self.model_path = self._model_path()
        if expect is not None:
            self._check_expect(expect)
        self.io: IOSpec | None = self.manifest.io if self.manifest else None
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        start = time.perf_counter()
        try:
            self._load(self.model_path)
        except EdgefuseError:
            raise
        except Exception as exc:  # the SDK's own parse error: one line naming the file, not its traceback
            text = str(exc).strip().splitlines()
            first = text[0][:200] if text else type(exc).__name__
            raise ArtifactMismatchError(f"{self.model_path}: {self.name} cannot load it ({first})") from None
        self.load_seconds = time.perf_counter() - start

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        raise NotImplementedError

    # --- to implement ------------------------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        raise NotImplementedError

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the backend objects (most backends free them on garbage collection)."""

    # --- shared ------------------------------------------------------------------------------------------
    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.validate_inputs(inputs)
        outputs = self._run(inputs)
        check_finite(outputs, self.name)
        return outputs

    def __enter__(self) -> BaseRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.model_path)!r}, device={self.device!r})"

    def validate_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        """Names, dtype float32 and shapes against what the loaded model declares."""
        expected = self.input_shapes
        if set(inputs) != set(expected):
            missing = sorted(set(expected) - set(inputs))
            extra = sorted(set(inputs) - set(expected))
            raise DataError(
                f"{self.name}: inputs must be named {sorted(expected)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unexpected {extra}" if extra else "")
            )
        for key, arr in inputs.items():
            if not isinstance(arr, np.ndarray):
                raise DataError(f"{self.name}: input {key!r} must be a numpy array, got {type(arr).__name__}")
            if arr.dtype != np.float32:
                raise DataError(f"{self.name}: input {key!r} must be float32, got {arr.dtype}")
            want = expected[key]
            if len(want) != arr.ndim or any(w not in (-1, g) for w, g in zip(want, arr.shape, strict=True)):
                shown = "x".join("?" if w < 0 else str(w) for w in want)
                raise DataError(f"{self.name}: input {key!r} has shape {tuple(arr.shape)}, expected {shown}")

    def _find_manifest(self) -> ArtifactManifest | None:
        if (artifact_dir(self.artifact) / MANIFEST).is_file():
            return read_manifest(self.artifact)
        return None

    def _model_path(self) -> Path:
        if not self.artifact.is_dir() or self.artifact.suffix == ".mlpackage":
            return self.artifact
        named = self.manifest.artifact if self.manifest else ""
        # the manifest's file, unless it is another backend's (onnxruntime on a TensorRT dir's model.onnx)
        if named and named.endswith(self.suffixes):
            assert self.manifest is not None
            path = self.manifest.file_path(self.artifact, named)
            if not path.exists():
                raise ArtifactMismatchError(f"{self.artifact}: manifest names {named}, which is missing")
            return path
        for suffix in self.suffixes:
            found = sorted(p for p in self.artifact.glob(f"*{suffix}") if inside(p, self.artifact))
            if found:
                return found[0]
        wanted = ", ".join(self.suffixes)
        raise ArtifactMismatchError(f"{self.artifact}: no {self.name} model ({wanted}) in this directory")

    def _check_expect(self, expect: Expect) -> None:
        if self.manifest is None:
            where = artifact_dir(self.artifact) / MANIFEST
            raise ArtifactMismatchError(f"{where}: no manifest to check the artifact against")
        self.manifest.check(expect.checkpoint_sha256, expect.io, expect.backend or self.name)


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX); None: unknown
    (no /proc/cpuinfo, e.g. macOS or Windows)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    lines = (line for line in text.splitlines() if line.startswith("flags"))
    flags = next((line.split(":", 1)[1].split() for line in lines), [])
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)) if flags else None


def warn_without_vnni(artifact: Path, built: str, remedy: str) -> None:
    """Warn when an int8 build made for VNNI CPUs (``built``) is opened on a CPU known to lack VNNI, where
    its u8×s8 products may saturate; ``remedy`` says how to export for this CPU."""
    if cpu_has_vnni() is False:
        warnings.warn(
            f"{artifact}: {built}, and this CPU has no VNNI: some int8 products may saturate; {remedy}",
            RuntimeWarning,
            stacklevel=3,
        )


def check_finite(outputs: dict[str, np.ndarray], where: str) -> None:
    for key, arr in outputs.items():
        if not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise NonFiniteOutputError(f"{where}: output {key!r} has {bad} NaN/Inf values of {arr.size}")


def make_inputs(io: IOSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 inputs in [0, 1] for an IO spec (warm-up, smoke tests)."""
    rng = np.random.default_rng(seed)
    return {k: rng.random(shape, dtype=np.float32) for k, shape in io.inputs.items()}
