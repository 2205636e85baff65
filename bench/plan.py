"""What ``edgefuse bench`` will run, decided before anything heavy happens: the profiles to export or reuse,
the artifact directories given, the input size, the checkpoint, and every profile left out with its reason.
Bad input (an unknown profile, a missing directory, mixed sizes) is one clear error here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgefuse.bench.exports import at_size, profile_from_manifest, why_not_here
from edgefuse.calibration import synthetic_frames, validation_frames
from edgefuse.errors import ArtifactMismatchError, CheckpointError, DataError, EdgefuseError
from edgefuse.io import sha256_file
from edgefuse.manifest import ArtifactManifest, read_manifest
from edgefuse.profiles import Precision, list_profiles, resolve_target
from edgefuse.spec import IOSpec

if TYPE_CHECKING:
    from edgefuse.calibration import Frames
    from edgefuse.checkpoint import LoadedModel
    from edgefuse.profiles import Profile


@dataclass
class Plan:
    height: int
    width: int
    profiles: list[Profile] = field(default_factory=list)  # to export or reuse, at the bench size
    budget_sizes: dict[str, str] = field(default_factory=dict)  # profile name -> size its budgets are for
    artifacts: list[tuple[Path, Profile | None, ArtifactManifest]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"id", "reason"}


def _calib_dir(profile: Profile, data: Path | None, calib: Path | None) -> Path:
    return calib or data or profile.calibration.path()


def make_plan(
    artifacts: list[Path],
    names: list[str],
    *,
    size: tuple[int, int] | None,
    device: str,
    data: Path | None,
    calib: Path | None,
    exports: Path | None = None,
) -> Plan:

    given: list[tuple[Path, Profile | None, ArtifactManifest]] = []
    budget_sizes: dict[str, str] = {}
    for path in artifacts:
        if not path.is_dir():
            raise DataError(f"{path}: no such artifact directory")
        manifest = read_manifest(path)
        manifest.verify(path)  # a tampered or truncated artifact is refused before anything runs
        profile, budget_size = profile_from_manifest(manifest)
        given.append((path, profile, manifest))
        if profile is not None:
            budget_sizes[profile.name] = budget_size
    wanted: list[Profile] = []
    for name in names:
        wanted += [p for p in resolve_target(name) if p not in wanted]
    if not given and not wanted:
        wanted = list_profiles()
    sizes = {(m_io.height, m_io.width) for _, _, m in given if (m_io := m.io) is not None}
    if size is None:
        sizes |= {(p.io.height, p.io.width) for p in wanted}
        if len(sizes) > 1:
            shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
            raise DataError(f"bench one input size at a time: got {shown} (pass --size HxW)")
        size = sizes.pop() if sizes else (480, 640)
    for path, _, m in given:
        m_io = m.io
        if m_io is not None and (m_io.height, m_io.width) != size:
            raise DataError(
                f"{path}: built for {m_io.height}x{m_io.width}, the benchmark runs at {size[0]}x{size[1]}"
            )
    plan = Plan(size[0], size[1], artifacts=given, budget_sizes=budget_sizes)
    for p in wanted:
        why = why_not_here(p, device)
        if (
            not why
            and p.precision is Precision.INT8
            and not _calib_dir(p, data, calib).is_dir()
            and not _exported(p, exports)
        ):
            why = (
                f"int8 export needs real calibration pairs (set {p.calibration.set!r} not here) and none "
                "was exported before: pass --calib DIR or --data DIR, or set EDGEFUSE_DATA"
            )
        if why:
            plan.skipped.append({"id": p.name, "reason": why})
            continue
        try:
            plan.profiles.append(at_size(p, *size))
        except ValueError as exc:
            raise DataError(f"--size {size[0]}x{size[1]}: {exc}") from None
        plan.budget_sizes[p.name] = p.size
    return plan


def _exported(profile: Profile, exports: Path | None) -> bool:
    """Whether ``exports/<profile>`` holds an artifact built for this profile (an int8 one is then reused
    without calibration pairs; the checkpoint and the files are checked when it is prepared)."""
    if exports is None:
        return False
    try:
        manifest = read_manifest(exports / profile.name)
    except EdgefuseError:
        return False
    return manifest.profile == profile.name and manifest.precision == profile.precision.value


def pick_checkpoint(given: str | None, plan: Plan) -> LoadedModel:
    """``--checkpoint``, else the one the given artifacts were built from, else the bundled student."""
    from edgefuse.checkpoint import load_model

    if given is None and plan.artifacts and not plan.profiles:
        given = _recorded_checkpoint(plan.artifacts[0][2])
    try:
        loaded = load_model(given)
    except CheckpointError as exc:
        if given is None:
            raise CheckpointError(f"{exc}; pass --checkpoint PATH") from None
        raise
    weights = loaded.info.weights_sha256
    for _, _, manifest in plan.artifacts:
        try:
            manifest.check(checkpoint_sha256=weights)
        except ArtifactMismatchError as exc:
            raise ArtifactMismatchError(f"{exc} (pass the --checkpoint it was exported from)") from None
    return loaded


def _recorded_checkpoint(manifest: ArtifactManifest) -> str | None:
    """The checkpoint a manifest says it was exported from, used only when that file still has the sha256
    the manifest records (a path is a claim; the file it names may have been swapped since)."""
    recorded = manifest.checkpoint if isinstance(manifest.checkpoint, dict) else {}
    path, want = recorded.get("path"), recorded.get("file_sha256")
    if not isinstance(path, str) or not path or not Path(path).is_file():
        return None
    if not isinstance(want, str) or sha256_file(path) != want:
        raise ArtifactMismatchError(
            f"{manifest.where}: the checkpoint it names ({path}) no longer has the sha256 recorded "
            "at export; "
            "pass --checkpoint with the file it was exported from"
        )
    return path


def frames_for(data: Path | None, height: int, width: int, pairs: int) -> Frames:
    """Held-out real pairs from ``data`` (calibration's split), else the synthetic set, labelled so."""

    if data is None:
        frames = synthetic_frames(height, width, pairs)
        note = "SYNTHETIC pairs (no --data given): drift on generated scenes; pass --data DIR for real pairs"
        return dataclasses.replace(frames, note=note)
    if not data.is_dir():
        raise DataError(f"{data}: --data must be a folder of visible/thermal pairs")
    shape = dataclasses.replace(list_profiles()[0], io=IOSpec(height=height, width=width))
    try:
        return validation_frames(shape, data, pairs, allow_synthetic=False)
    except EdgefuseError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{data}: cannot load pairs ({exc})") from None
