"""What a benchmark measures: the torch reference, torch variants, exported artifacts, each as a Target
with a public ``predict`` (named float32 arrays in and out, for drift) and a ``make_step`` that binds the
preloaded inputs into the one call that is timed.

For runtimes the timed call is the backend call of the runtime wrapper (``_run``: the backend itself plus
the IO conversion it needs, e.g. NHWC or int8 IO for LiteRT); the input-name/shape validation and the
NaN/Inf scan of the public call run on every drift frame instead, not inside the timed loop.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefuse import backends
from edgefuse.bench.records import Status
from edgefuse.bench.timing import Clock, cuda_clock, peak_rss_mb, reset_peak_rss, rss_mb, wall_clock
from edgefuse.bench.torch_variants import TorchVariant
from edgefuse.errors import EdgefuseError
from edgefuse.io import sha256_cached, size_bytes
from edgefuse.manifest import MANIFEST, ArtifactManifest, read_manifest
from edgefuse.runtimes.base import runtime_for
from edgefuse.runtimes.pytorch import TorchRuntime

if TYPE_CHECKING:
    import torch

    from edgefuse.bench.torch_variants import TorchVariant, Variant
    from edgefuse.profiles import Profile

Inputs = dict[str, np.ndarray]


@dataclass
class Target:
    id: str
    kind: str  # reference | artifact | variant
    backend: str
    precision: str
    device: str = "cpu"
    batch: int = 1
    threads: int | None = None
    profile: Profile | None = None
    artifact: dict[str, Any] = field(default_factory=dict)
    runtime: str = ""
    load_seconds: float = math.nan
    memory: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    status: Status = Status.OK
    reason: str = ""
    predict: Callable[[Inputs], dict[str, np.ndarray]] | None = None
    make_step: Callable[[list[Inputs]], Callable[[], object]] | None = None
    clock: Clock = wall_clock
    closer: Callable[[], None] | None = None
    probe: MemoryProbe | None = None  # until the drift pass has run
    # filled by the measurement (bench/measure.py)
    drift: Any = None  # DriftResult
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    ratio: dict[str, Any] = field(default_factory=dict)
    warmup: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status is Status.OK and self.predict is not None

    def fail(self, exc: BaseException) -> None:
        self.status = Status.ERROR
        text = str(exc) if isinstance(exc, EdgefuseError) else f"{type(exc).__name__}: {exc}"
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        self.reason = first[:300]  # compiler errors run to pages; the first line names the problem
        self.close()

    def close(self) -> None:
        if self.closer is not None:
            try:
                self.closer()
            finally:
                self.closer = None
        self.predict = self.make_step = None


class MemoryProbe:
    """Resident memory of one target (GPU memory too on CUDA): what loading it added, and its own peak.

    Targets are all loaded before any drift pass runs, so the kernel's high-water mark is reset twice per
    target, before its load and before its drift pass: the peak reported is this target's, not the running
    peak of the process (which only rises down the table)."""

    def __init__(self, cuda: bool = False) -> None:
        self.cuda = cuda
        self.reset_ok = reset_peak_rss()
        self.before = rss_mb()
        self.load_peak: float | None = None
        self.resident: float | None = None
        self.drift_before: float | None = None
        if cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()

    def loaded(self) -> None:
        now = rss_mb()
        if self.reset_ok and self.before is not None and now is not None:
            self.load_peak, self.resident = peak_rss_mb() - self.before, now - self.before

    def start_drift(self) -> None:
        self.drift_before = rss_mb() if reset_peak_rss() else None

    def result(self) -> dict[str, Any]:
        after, peak = rss_mb(), peak_rss_mb()
        own = None
        if self.load_peak is not None and self.resident is not None and self.drift_before is not None:
            own = round(max(self.load_peak, self.resident + peak - self.drift_before), 1)
        out: dict[str, Any] = {
            "peak_rss_mb": peak,
            "peak_scope": "drift pass" if self.drift_before is not None else "whole process",
            # this target's own peak above the process before it was loaded (load or drift pass)
            "peak_added_mb": own,
            "added_rss_mb": round(after - self.before, 1) if after is not None and self.before else None,
        }
        if self.cuda:
            import torch

            out["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return out


def _cycle_step(run: Callable[[Inputs], object]) -> Callable[[list[Inputs]], Callable[[], object]]:
    def make(inputs: list[Inputs]) -> Callable[[], object]:
        frames = itertools.cycle(inputs)
        return lambda: run(next(frames))

    return make


def artifact_target(
    path: Path, profile: Profile | None, target_id: str, *, threads: int, device: str
) -> Target:
    """Open an artifact directory with its runtime; ``not_run`` when that runtime cannot run here."""

    manifest = read_manifest(path)
    cls = runtime_for(path)
    t = Target(
        target_id,
        "artifact",
        cls.name,
        manifest.precision or "?",
        device=device,
        threads=threads,
        profile=profile,
        artifact={"path": str(path), "profile": manifest.profile or None},
    )
    try:  # the hashes a report records are the ones computed here, never the manifest's claims
        t.artifact = artifact_info(path, manifest)
    except EdgefuseError as exc:
        t.status, t.reason = Status.ERROR, str(exc)
        return t
    ok, why = cls.is_available()
    if not ok:
        t.status, t.reason = Status.NOT_RUN, f"{cls.name} cannot run here: {why}"
        return t
    if device != "cpu" and not backends.runs_on(cls.name, device):
        t.status, t.reason = Status.NOT_RUN, f"{cls.name} runs on the CPU; bench it with --device cpu"
        return t
    probe = MemoryProbe()
    try:
        runner = cls(path, threads=threads, profile=profile, device=device)
    except EdgefuseError as exc:
        t.status, t.reason = Status.NOT_RUN, str(exc)
        return t
    t.runtime = f"{cls.name} {why.split(' ')[0]}"
    precision = getattr(runner, "inference_precision", None)  # what OpenVINO really executes at
    if precision:
        t.runtime += f" (inference precision {precision})"
    t.load_seconds, t.predict, t.make_step = runner.load_seconds, runner, _cycle_step(runner._run)
    t.closer, t.probe = runner.close, probe
    return t


def torch_target(
    checkpoint: str | Path, target_id: str, *, threads: int, channels_last: bool = False
) -> Target:
    """The CPU PyTorch runtime: the fp32 reference (or its channels-last variant)."""
    import torch

    kind = "variant" if channels_last else "reference"
    t = Target(target_id, kind, "torch", "fp32", threads=threads)
    probe = MemoryProbe()
    runner = TorchRuntime(checkpoint, threads=threads, channels_last=channels_last)
    layout = "channels-last" if channels_last else "contiguous"
    t.runtime = f"torch {torch.__version__} fp32 {layout}, flush-denormal on"

    # Re-assert flush-denormal before every call: creating an ONNX Runtime session clears the
    # flush-to-zero flags of the calling thread (seen here), and torch would then run unflushed.
    def run(inputs: Inputs) -> object:
        torch.set_flush_denormal(True)  # ~1 µs
        return runner._run(inputs)

    def predict(inputs: Inputs) -> dict[str, np.ndarray]:
        torch.set_flush_denormal(True)
        return runner(inputs)

    t.load_seconds, t.predict, t.make_step = runner.load_seconds, predict, _cycle_step(run)
    t.closer, t.probe = runner.close, probe
    return t


def variant_target(
    model: torch.nn.Module,
    variant: Variant,
    device: str,
    height: int,
    width: int,
    target_id: str,
    kind: str = "variant",
    compile_mode: str = "reduce-overhead",
) -> Target:
    """A torch variant (CUDA graphs, compile, fp16, batched) on ``device``."""

    cuda = device.startswith("cuda")
    t = Target(target_id, kind, "torch", variant.dtype, device=device, batch=variant.batch)
    probe = MemoryProbe(cuda=cuda)
    runner: TorchVariant = TorchVariant(model, variant, device, height, width, compile_mode)
    t.runtime = runner.describe()

    def make_step(inputs: list[Inputs]) -> Callable[[], object]:
        runner.load(inputs[0])  # static buffers hold a real frame; timing launches the network only
        return runner.step

    t.load_seconds, t.predict, t.make_step = runner.load_seconds, runner, make_step
    t.closer, t.probe = runner.close, probe
    if cuda:
        t.clock = cuda_clock()
    return t


def artifact_info(path: Path, manifest: ArtifactManifest) -> dict[str, Any]:
    """Path, size and sha256 of an artifact directory as measured here, after every file its manifest
    names was verified against the manifest (:class:`ArtifactMismatchError` otherwise)."""
    computed = manifest.verify(path)
    files = [p for p in sorted(path.iterdir()) if p.name != MANIFEST and not p.name.startswith(".")]
    model = manifest.file_path(path, manifest.artifact) if manifest.artifact else None
    return {
        "path": str(path),
        "file": manifest.artifact or None,  # fields a hand-written manifest leaves out are null
        "bytes": sum(size_bytes(p, within=path) for p in files),
        "artifact_bytes": size_bytes(model, within=path) if model is not None else None,
        "sha256": sha256_cached(model, within=path) if model is not None else None,
        "verified": bool(computed),  # every file matched the manifest's sha256 (False: it records none)
        "profile": manifest.profile or None,
        "created": manifest.created or None,
    }
