"""What every exporter shares: the build record, the per-command session (model, frames, caches), the
exporter base class, layer groups for mixed precision, hashing and tool versions.

An exporter turns the checkpoint into one artifact directory for one profile. It only *builds*; installing
atomically, validating, the mixed-precision fallback and the manifest live in :mod:`.pipeline`, so every
backend gets them the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from edgefuse._optional import require

if TYPE_CHECKING:
    from edgefuse.bench.drift import Reference
    from edgefuse.calibration import Frames
    from edgefuse.model import FusionProxy
    from edgefuse.profiles import Profile

SCRATCH_PREFIX = "edgefuse-export-"  # + "<pid>-": a later session can tell a killed session's leftovers
# pip distribution names of the tools a manifest records (module name -> distribution)
DISTRIBUTIONS = {
    "torch": "torch",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "onnxslim": "onnxslim",
    "openvino": "openvino",
    "nncf": "nncf",
    "coremltools": "coremltools",
    "litert_torch": "litert-torch",
    "ai_edge_litert": "ai-edge-litert",
    "ai_edge_quantizer": "ai-edge-quantizer",
    "tensorrt": "tensorrt",
}


@dataclass(frozen=True)
class Validation:
    """How to check a build here: run ``path`` with runtime ``backend``; ``emulation`` says what stands in."""

    backend: str
    path: Path
    emulation: str = ""


@dataclass
class Build:
    """What an exporter wrote into the artifact directory."""

    artifact: str  # the file (or .mlpackage directory) the runtime loads, relative to the artifact dir
    precision_detail: str  # one line: what runs at which precision, and the IO types
    validate: Validation | None = None
    not_validated: str = ""  # why validation cannot run here (when validate is None)
    calibrated: bool = False
    kept: list[str] = field(default_factory=list)  # layer groups kept in float (mixed precision)
    details: dict[str, Any] = field(default_factory=dict)  # backend specifics for the manifest


class ExportSession:
    """Everything the exports of one command share: the fp32 model, its hashes, frames and caches.

    Intermediate files (the fp32 ONNX, the fp32 .tflite, ...) go in a private scratch directory that
    :meth:`close` removes; artifacts never live there.
    """

    def __init__(
        self,
        model: FusionProxy,
        *,
        calib_dir: str | Path | None = None,
        val_pairs: int = 8,
        threads: int | None = None,
    ) -> None:
        from edgefuse.checkpoint import CheckpointInfo

        info = getattr(model, "checkpoint_info", None)
        if not isinstance(info, CheckpointInfo):
            raise TypeError("the model must come from edgefuse.checkpoint.load_model (it records its hashes)")
        self.model = model.eval()
        self.info = info
        self.calib_dir = calib_dir
        self.val_pairs = val_pairs
        self.threads = threads or os.cpu_count() or 1
        _clean_stale_scratch()
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._closers: list[Callable[[], None]] = []  # e.g. stop background workers

    def cached(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def scratch_dir(self, *parts: str) -> Path:
        path = self.scratch.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def calibration(self, profile: Profile) -> Frames:
        from edgefuse.calibration import calibration_frames

        key = (
            "calib",
            str(self.calib_dir or profile.calibration.path()),
            profile.calibration.count,
            profile.io,
        )
        return self.cached(key, lambda: calibration_frames(profile, self.calib_dir))

    def reference(self, profile: Profile, probe: bool = False) -> Reference:
        """fp32 PyTorch outputs on the validation frames, computed once per session and shared by every
        profile of the same input size (``probe``: the first two, sliced from the same reference)."""
        from edgefuse.bench.drift import reference
        from edgefuse.calibration import validation_frames

        source = str(self.calib_dir or profile.calibration.path())
        frames = self.cached(
            ("val", source, self.val_pairs, profile.io),
            lambda: validation_frames(profile, self.calib_dir, self.val_pairs),
        )
        full = self.cached(("ref", id(frames)), lambda: reference(self.model, frames, workers=self.threads))
        return self.cached(("probe", id(full)), lambda: full.head(2)) if probe else full

    def on_close(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> ExportSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _clean_stale_scratch() -> None:
    """Remove the scratch directories of sessions whose process was killed before :meth:`close` ran."""
    for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        if not owner_alive(path.name[len(SCRATCH_PREFIX) :]):
            shutil.rmtree(path, ignore_errors=True)


def owner_alive(rest: str) -> bool:
    """``rest`` is "<pid>-<random>" from a temporary name: False only when that process no longer runs
    (a name without a pid, or another user's process, counts as alive: leave it alone)."""
    pid = rest.split("-", 1)[0]
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Job:
    """One profile's export within a session."""

    session: ExportSession
    profile: Profile

    @property
    def model(self) -> FusionProxy:
        return self.session.model

    @property
    def precision(self) -> str:
        return self.profile.precision.value

    def sample(self) -> tuple[Any, Any]:
        """Zero tensors of the profile's static input shape (tracing needs only the shapes)."""
        import torch

        io = self.profile.io
        return torch.zeros(io.inputs["visible"]), torch.zeros(io.inputs["thermal"])


class Exporter:
    """Base class: ``build`` writes the artifact for ``job`` into ``out``; int8 exporters that support the
    mixed-precision fallback also return their layer ``groups`` and accept ``exclude`` (names to keep float).
    """

    backend: ClassVar[str] = ""
    modules: ClassVar[tuple[str, ...]] = ()  # imported before any work starts (MissingExtraError early)
    tools: ClassVar[tuple[str, ...]] = ("torch",)  # versions recorded in the manifest

    def check(self, profile: Profile) -> None:
        """Raise :class:`MissingExtraError` now rather than halfway through a multi-target export."""
        for module in self.modules_for(profile):
            require(module)

    def modules_for(self, profile: Profile) -> tuple[str, ...]:
        return self.modules

    def build(self, job: Job, out: Path, exclude: Sequence[str] = (), quick: bool = False) -> Build:
        raise NotImplementedError

    def prefetch(self, jobs: Sequence[Job]) -> None:
        """Optionally start slow, self-contained preparations for ``jobs`` in the background (the session
        waits for them when a build needs them, and stops them on close). Default: nothing."""

    def groups(self, job: Job) -> dict[str, list[str]]:
        """Quantizable layer groups, name -> backend node names (empty: no mixed-precision fallback)."""
        return {}


# --- layer groups --------------------------------------------------------------------------------------


def module_groups(model: FusionProxy) -> list[str]:
    """FusionProxy's quantization groups: one per module, encoder blocks grouped per resolution level."""
    names = ["stem", "head"]
    names += [f"downs.{i}" for i in range(len(model.downs))]
    names += [f"enc.{i}" for i in range(len(model.enc))]
    names += [f"lateral.{i}" for i in range(len(model.lateral))] + [f"dec.{i}" for i in range(len(model.dec))]
    return names


def group_nodes(names: Sequence[str], model: FusionProxy) -> dict[str, list[str]]:
    """Assign backend node names (in graph order) to groups by the module path they carry.

    Names carrying no module path are the network's own glue: before the first module they are the
    ``input`` (luminance, concat); after ``head`` the full-resolution ``tail`` (coefficient resizes and the
    blend); between, the decoder ``join`` that follows the last module seen.
    """
    known = module_groups(model)
    pattern = re.compile(r"(?<![\w.])(" + "|".join(re.escape(k) for k in known) + r")(?![\w])")
    groups: dict[str, list[str]] = {}
    last = ""
    for name in names:
        found = pattern.findall(name.replace("/", " ").replace("__module.", " "))
        if found:
            group = found[0]
            last = group
        elif not last:
            group = "input"
        elif last == "head":
            group = "tail"
        else:
            group = f"{last}:join"
        groups.setdefault(group, []).append(name)
    return groups


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence converters that print progress and banners (tqdm bars, "Model name: ..."): the CLI shows its
    own progress. Errors still surface as exceptions."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- files and versions --------------------------------------------------------------------------------


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and bytes, sorted) such as .mlpackage."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_bytes(path: Path) -> int:
    return (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )


def tool_versions(modules: Sequence[str]) -> dict[str, str]:
    out = {}
    for module in modules:
        dist = DISTRIBUTIONS.get(module, module)
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
