"""What every exporter shares: the build record, the per-command session (model, frames, caches), the
exporter base class, layer groups for mixed precision, hashing and tool versions.

An exporter turns the checkpoint into one artifact directory for one profile. It only *builds*; installing
atomically, validating, the mixed-precision fallback and the manifest live in :mod:`.pipeline`, so every
backend gets them the same way.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from edgefuse import backends
from edgefuse._optional import require
from edgefuse.calibration import calibration_frames, validation_frames
from edgefuse.drift import reference
from edgefuse.profiles import Precision

if TYPE_CHECKING:
    from edgefuse.calibration import Frames
    from edgefuse.checkpoint import CheckpointInfo, LoadedModel
    from edgefuse.drift import DriftResult, Reference
    from edgefuse.model import FusionProxy
    from edgefuse.profiles import Profile

T = TypeVar("T")

SCRATCH_PREFIX = "edgefuse-export-"  # + "<pid>-": a later session can tell a killed session's leftovers


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


@dataclass
class MixedSearch:
    """A mixed-precision search's record: its steps (probes per step) and the groups it kept."""

    steps: list[dict[str, Any]]
    kept: list[str]


class Background(Protocol):
    """A preparation running beside the session (the LiteRT conversion worker)."""

    def stop(self) -> None: ...


class ExportSession:
    """Everything the exports of one command share: the fp32 model, its hashes, frames and caches.

    Intermediate files (the fp32 ONNX, the fp32 .tflite, ...) go in a private scratch directory that
    :meth:`close` removes; artifacts never live there.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        calib_dir: str | Path | None = None,
        val_pairs: int = 8,
        threads: int | None = None,
    ) -> None:
        if not (isinstance(loaded, tuple) and len(loaded) == 2):
            raise TypeError(
                "pass edgefuse.checkpoint.load_model(...): the session records the checkpoint's hashes"
            )
        model, info = loaded
        self.model = model.eval()
        self.info: CheckpointInfo = info
        self.calib_dir = calib_dir
        self.val_pairs = val_pairs
        self.threads = threads or os.cpu_count() or 1
        _clean_stale_scratch()
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        # what the session remembers, one typed store per kind (see the methods that read them)
        self._files: dict[tuple[Hashable, ...], Any] = {}  # converters' intermediates (fp32 ONNX, ...)
        self._frames: dict[tuple[Hashable, ...], Frames] = {}
        self._references: dict[int, Reference] = {}
        self._measured: dict[tuple[Hashable, ...], DriftResult] = {}
        self._searches: dict[tuple[Hashable, ...], MixedSearch] = {}
        self._workers: dict[Hashable, Background] = {}
        self.mixed_hint: list[str] = []  # the groups the last passing mixed-precision search kept
        self._closers: list[Callable[[], None]] = []  # e.g. stop background workers

    def cached(self, key: tuple[Hashable, ...], make: Callable[[], T]) -> T:
        """A converter's intermediate (the fp32 ONNX of an IO size, a calibration result), made once per
        session; ``key`` starts with a name saying what it is."""
        if key not in self._files:
            self._files[key] = make()
        value: T = self._files[key]
        return value

    def measured(self, key: tuple[Hashable, ...]) -> DriftResult | None:
        """The validation of an identical file (same bytes, runtime, knobs and reference), if any."""
        return self._measured.get(key)

    def remember_measured(self, key: tuple[Hashable, ...], result: DriftResult) -> None:
        self._measured[key] = result

    def search(self, key: tuple[Hashable, ...]) -> MixedSearch | None:
        """A mixed-precision search already run on an identical int8 build under the same budget."""
        return self._searches.get(key)

    def remember_search(self, key: tuple[Hashable, ...], search: MixedSearch) -> None:
        self._searches[key] = search

    def worker(self, key: Hashable) -> Background | None:
        return self._workers.get(key)

    def add_worker(self, key: Hashable, worker: Background) -> None:
        """A background preparation (stopped when the session closes)."""
        self._workers[key] = worker
        self.on_close(worker.stop)

    def scratch_dir(self, *parts: str) -> Path:
        path = self.scratch.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def calibration(self, profile: Profile) -> Frames:

        key = (
            "calib",
            str(self.calib_dir or profile.calibration.path()),
            profile.calibration.count,
            profile.io,
        )
        if key not in self._frames:
            self._frames[key] = calibration_frames(profile, self.calib_dir)
        return self._frames[key]

    def reference(self, profile: Profile, probe: bool = False) -> Reference:
        """fp32 PyTorch outputs on the validation frames, computed once per session and shared by every
        profile of the same input size (``probe``: the first two, sliced from the same reference)."""

        key = ("val", str(self.calib_dir or profile.calibration.path()), self.val_pairs, profile.io)
        if key not in self._frames:
            self._frames[key] = validation_frames(profile, self.calib_dir, self.val_pairs)
        frames = self._frames[key]
        if id(frames) not in self._references:
            self._references[id(frames)] = reference(self.model, frames, workers=self.threads)
        full = self._references[id(frames)]
        if not probe:
            return full
        if id(full) not in self._references:  # keyed by the full reference it is sliced from
            self._references[id(full)] = full.head(2)
        return self._references[id(full)]

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
    probe: str = ""  # the kind of quick probe a mixed-precision search asks for (Exporter.probe_kinds)

    @property
    def model(self) -> FusionProxy:
        return self.session.model

    @property
    def precision(self) -> Precision:
        return self.profile.precision

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
    # the kinds of quick probe a mixed-precision search can rank groups by, searched in this order until a
    # build passes (``Job.probe`` tells ``build(quick=True)`` which one)
    probe_kinds: ClassVar[tuple[str, ...]] = ("",)

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


def tool_versions(modules: Sequence[str]) -> dict[str, str]:
    out = {}
    for module in modules:
        dist = (backends.distribution(module) or (module, ""))[0]  # import name -> pip distribution
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
