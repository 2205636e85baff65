"""The artifacts a benchmark runs: bundled profiles exported (or reused from a cache), or directories given.

An export is reused when its ``edgefuse.json`` says it was built from these weights for this exact profile
(:func:`edgefuse.exporters.pipeline.existing_status`). ``exports/<profile>`` (where ``edgefuse export``
writes) is used when it matches or is empty; anything else there is someone's other build and is left
alone: the benchmark then builds into its own cache, ``exports/bench-cache/<weights>_<HxW>/``. An export
that misses its drift budget is benchmarked anyway from its ``.rejected`` directory, and says so; the next
run exports it again rather than replaying the failure.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse import backends
from edgefuse.errors import ArtifactMismatchError, EdgefuseError, ExportError
from edgefuse.exporters import get_exporter
from edgefuse.exporters.pipeline import existing_status, export_profile
from edgefuse.manifest import ArtifactManifest
from edgefuse.profiles import get_profile, parse_profile
from edgefuse.runtimes.base import get_runtime
from edgefuse.spec import IOSpec

if TYPE_CHECKING:
    from edgefuse.exporters.base import ExportSession
    from edgefuse.profiles import Profile
    from edgefuse.runtimes.base import BaseRuntime

CACHE = "bench-cache"


@dataclass
class Prepared:
    """One profile's artifact: where it is and how it got there (reused, exported, rejected, error)."""

    profile: Profile
    path: Path | None
    status: str
    message: str = ""
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def at_size(profile: Profile, height: int, width: int) -> Profile:
    """The profile at another input size (same budgets; latency budgets then no longer apply)."""

    if (profile.io.height, profile.io.width) == (height, width):
        return profile
    return dataclasses.replace(profile, io=IOSpec(height=height, width=width, batch=profile.io.batch))


def runtime_class(backend: str) -> type[BaseRuntime]:

    return get_runtime(backend)


def why_not_here(profile: Profile, device: str) -> str:
    """Empty when this profile's runtime (and exporter) can run here on ``device``; else the reason."""

    cls = runtime_class(profile.backend)
    ok, why = cls.is_available()
    if not ok:
        return f"{cls.name} cannot run here: {why}"
    if device != "cpu" and not backends.runs_on(profile.backend, device):
        return f"{cls.name} runs on the CPU here; bench it with --device cpu"
    if device != "cpu" and profile.backend == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu)"
    try:
        get_exporter(profile.backend).check(profile)
    except EdgefuseError as exc:
        return f"cannot export here: {exc}"
    return ""


def profile_from_manifest(manifest: ArtifactManifest) -> tuple[Profile | None, str]:
    """The profile an artifact was built for, rebuilt from the spec its manifest records, and the size its
    latency budget was derived for (a name like ``x_onnxruntime-fp32_480x640`` says; else its own size).
    A benchmark run at another ``--size`` records the bundled name with the size it ran at."""
    import re

    spec = manifest.profile_spec
    where = manifest.where
    if isinstance(spec, dict) and "io" in spec:
        data = {k: v for k, v in json.loads(json.dumps(spec)).items() if k != "source"}
        io = data.pop("io")
        named = re.search(r"_(\d+)x(\d+)$", str(data.get("name", "")))
        data["input"] = dict(io, height=int(named[1]), width=int(named[2])) if named else io
        profile = parse_profile(data, where)
        budget_size = profile.size
        return at_size(profile, int(io["height"]), int(io["width"])), budget_size
    name = manifest.profile
    if isinstance(name, str) and name:
        try:
            profile = get_profile(name)
        except EdgefuseError:
            raise ArtifactMismatchError(f"{where}: names profile {name!r}, which is unknown here") from None
        return profile, profile.size
    return None, ""


def prepare(
    session: ExportSession,
    profiles: list[Profile],
    exports: Path,
    report: Callable[[str], None] = lambda _: None,
) -> list[Prepared]:
    """An artifact directory for each profile, reusing what matches and exporting the rest."""
    out = []
    for profile in profiles:
        try:
            out.append(_prepare_one(session, profile, exports, report))
        except EdgefuseError as exc:
            out.append(Prepared(profile, None, "error", str(exc)))
    return out


def _matches(session: ExportSession, profile: Profile, path: Path) -> bool | None:
    """None: nothing there; True: built from these weights for this profile; False: something else."""

    try:
        return None if existing_status(profile, path, session) is None else True
    except ExportError:
        return False


def _prepare_one(
    session: ExportSession, profile: Profile, exports: Path, report: Callable[[str], None]
) -> Prepared:

    try:
        bundled = get_profile(profile.name) == profile
    except EdgefuseError:
        bundled = False
    size = f"{profile.io.height}x{profile.io.width}"
    cache = exports / CACHE / f"{session.info.weights_sha256[:12]}_{size}"
    # a matching build is reused as it is, wherever edgefuse export put it; a rejected one is exported
    # again: its manifest matches these weights and this profile, but a fixed exporter (a better
    # mixed-precision search) would never get its chance if the old failure were replayed
    for root in (exports, cache):
        if _matches(session, profile, root / profile.name):
            return _from_manifest(profile, root / profile.name, "reused")
    root = exports if bundled and _matches(session, profile, exports / profile.name) is None else cache
    report(f"{profile.name}: exporting")
    start = time.perf_counter()
    outcome = export_profile(
        session,
        profile,
        get_exporter(profile.backend),
        root,
        force=root == cache,
        report=lambda stage: report(f"{profile.name}: {stage}"),
    )
    seconds = time.perf_counter() - start
    status = {"failed": "rejected", "error": "error"}.get(outcome.status, "exported")
    prepared = _from_manifest(profile, outcome.path, status)
    prepared.seconds, prepared.message = seconds, outcome.message
    return prepared


def _from_manifest(profile: Profile, path: Path, status: str) -> Prepared:
    manifest = ArtifactManifest.read(path)
    validation = manifest.validation or {}
    info = {
        "export_seconds": manifest.export_seconds,
        "kept_in_higher_precision": manifest.kept_in_higher_precision or [],
        "precision_detail": manifest.precision_detail,
        "validation_status": validation.get("status"),
    }
    message = "; ".join(validation.get("misses") or []) if status == "rejected" else ""
    return Prepared(profile, path, status, message, 0.0, info)
