"""Export one profile: build in a temporary directory beside the target, validate, fall back to mixed
precision when int8 misses its budget, write ``edgefuse.json``, then swap the directory into place.

A killed or failed export leaves no half-written artifact: the target is either the previous complete
artifact or the new one. A build that ran and missed its budget is not installed; it is kept, complete
with its manifest, as ``<name>.rejected`` beside the target so it can be inspected.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse import __version__
from edgefuse._enum import TextEnum
from edgefuse.drift import FAILED, PASSED
from edgefuse.errors import ArtifactMismatchError, ExportError
from edgefuse.exporters.base import (
    Build,
    Exporter,
    ExportSession,
    Job,
    owner_alive,
    quiet,
    tool_versions,
)
from edgefuse.exporters.mixed import mixed_precision
from edgefuse.exporters.validate import FULL, SEARCH, Report, groups_of, incomplete, validate
from edgefuse.io import sha256_path, size_bytes
from edgefuse.manifest import MANIFEST, SCHEMA_VERSION, ArtifactManifest
from edgefuse.profiles import Precision

if TYPE_CHECKING:
    from edgefuse.drift import DriftResult
    from edgefuse.profiles import Profile


class ExportStatus(TextEnum):
    """One profile's export: what ``edgefuse export`` prints and its JSON says."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_VALIDATED = "not_validated"  # built; no runtime for it here (the reason is in the message)
    UP_TO_DATE = "up_to_date"  # built earlier from this checkpoint for this profile
    ERROR = "error"  # the export raised (the command line records it and goes on)
    SKIPPED = "skipped"  # not attempted: something it needs is not here (int8 without calibration pairs)


@dataclass
class Outcome:
    """The result of exporting one profile, as the CLI reports it."""

    profile: str
    status: ExportStatus
    path: Path
    seconds: float = 0.0
    validation: dict[str, Any] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (ExportStatus.PASSED, ExportStatus.NOT_VALIDATED, ExportStatus.UP_TO_DATE)


def build_order(profiles: Sequence[Profile]) -> list[Profile]:
    """The order to export ``profiles`` in: int8 TensorRT first, the rest as given.

    Symmetric int8 activations (TensorRT's explicit quantization) are the strictest int8 scheme here, so
    its mixed-precision search keeps the most groups; run first, its answer is the hint the other int8
    searches try (shortest prefix first, accepted only when their own validation passes), which spares
    them a sensitivity measurement of their own. Each answer is still confirmed by its own backend's
    validation: the order only decides which candidates are tried first."""
    return sorted(profiles, key=lambda p: not (p.backend == "tensorrt" and p.precision is Precision.INT8))


def existing_status(profile: Profile, target: Path, session: ExportSession) -> ExportStatus | None:
    """``None`` when nothing usable is at ``target`` (nothing there, or an artifact whose files no longer
    match its manifest: truncated, edited or missing, rebuilt rather than reused); "up_to_date" when it was
    built from these weights for this profile; otherwise :class:`ExportError` (a different build is there:
    ``--force`` replaces it). An int8 artifact is compared with the calibration set only when one was
    named (``--calib``): re-using an export needs no calibration pairs."""
    return check_existing(profile, target, session)[0]


def check_existing(profile: Profile, target: Path, session: ExportSession) -> tuple[ExportStatus | None, str]:
    """:func:`existing_status` and, when an artifact there is rebuilt, why."""
    if not target.exists():
        return None, ""
    try:
        manifest = ArtifactManifest.read(target)
    except ArtifactMismatchError:
        raise ExportError(
            f"{target}: exists without a readable {MANIFEST}; pass --force to replace it"
        ) from None
    calibrated = profile.precision is Precision.INT8 and session.calib_dir is not None
    want = {
        "schema_version": SCHEMA_VERSION,
        "weights_sha256": session.info.weights_sha256,
        "profile": _spec(profile.to_dict()),
        "calibration source": str(session.calib_dir) if calibrated else None,
    }
    got = {
        "schema_version": manifest.schema_version,
        "weights_sha256": (manifest.checkpoint or {}).get("weights_sha256"),
        "profile": _spec(manifest.profile_spec or {}),
        "calibration source": (manifest.calibration or {}).get("source") if calibrated else None,
    }
    diff = [k for k in want if want[k] != got[k]]
    if diff:
        raise ExportError(
            f"{target}: an artifact with a different {', '.join(diff)} exists; pass --force to replace it"
        )
    if not manifest.recorded_files():
        raise ExportError(
            f"{target}: its {MANIFEST} records no file hashes to verify; pass --force to rebuild"
        )
    try:
        manifest.verify(target)
    except ArtifactMismatchError as exc:
        return None, f"rebuilt: the previous artifact failed verification ({exc})"
    return ExportStatus.UP_TO_DATE, ""


def _spec(d: dict[str, Any]) -> dict[str, Any]:
    """A profile as it reads back from JSON, without the file it was loaded from."""
    return {k: v for k, v in json.loads(json.dumps(d)).items() if k != "source"}


@contextlib.contextmanager
def _lock(out_root: Path, name: str) -> Iterator[None]:
    """One export of a profile into a folder at a time: a second one stops with one line instead of racing
    the first to install (which ended in a raw ENOTEMPTY)."""
    import fcntl

    out_root.mkdir(parents=True, exist_ok=True)
    path = out_root / f".{name}.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ExportError(
                f"{out_root / name}: another edgefuse export is writing this artifact now; "
                "wait for it to finish or pass another --output"
            ) from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(fh, fcntl.LOCK_UN)


def export_profile(
    session: ExportSession,
    profile: Profile,
    exporter: Exporter,
    out_root: Path,
    *,
    force: bool = False,
    report: Report = lambda _: None,
) -> Outcome:
    with _lock(out_root, profile.name):
        return _export_profile(session, profile, exporter, out_root, force=force, report=report)


def _export_profile(
    session: ExportSession,
    profile: Profile,
    exporter: Exporter,
    out_root: Path,
    *,
    force: bool = False,
    report: Report = lambda _: None,
) -> Outcome:
    target = out_root / profile.name
    clean_interrupted(out_root, profile.name)
    status, rebuilt = (None, "") if force else check_existing(profile, target, session)
    if status is ExportStatus.UP_TO_DATE:
        manifest = ArtifactManifest.read(target)
        val = manifest.validation or {}
        kept = manifest.kept_in_higher_precision
        note = "already built from this checkpoint (--force rebuilds)"
        return Outcome(profile.name, ExportStatus.UP_TO_DATE, target, 0.0, val, kept, note)
    out_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{profile.name}.tmp-{os.getpid()}-", dir=out_root))
    try:
        start = time.perf_counter()
        job = Job(session, profile)
        report("building")
        with quiet():
            build = exporter.build(job, work)
        fallback = profile.precision is Precision.INT8 and bool(groups_of(job, exporter))
        result = validate(job, build, report, SEARCH if fallback else FULL)
        mixed: dict[str, Any] | None = None
        if result.status is FAILED and fallback:
            build, result, mixed = mixed_precision(job, exporter, work, build, result, report)
        if incomplete(result):  # the verdict that is recorded always has every metric
            result = validate(job, build, report, FULL)
        seconds = time.perf_counter() - start
        _write_manifest(job, exporter, build, result, mixed, work, seconds)
        if result.status is FAILED:
            rejected = out_root / f"{profile.name}.rejected"
            _install(work, rejected)
            return Outcome(profile.name, ExportStatus.FAILED, rejected, seconds, result.to_dict(), build.kept,
                           "; ".join(result.misses))  # fmt: skip
        _install(work, target)
        shutil.rmtree(out_root / f"{profile.name}.rejected", ignore_errors=True)  # superseded
        status = ExportStatus.PASSED if result.status is PASSED else ExportStatus.NOT_VALIDATED
        msg = result.summary() if result.ran else f"not validated here: {result.reason}"
        msg = f"{msg}; {rebuilt}" if rebuilt else msg
        return Outcome(profile.name, status, target, seconds, result.to_dict(), build.kept, msg)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already when installed


def _install(work: Path, target: Path) -> None:
    """Swap ``work`` into ``target``: the old directory moves aside first and is deleted last."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.rename(target, old)
    try:
        os.rename(work, target)
    except OSError as exc:
        if old.exists() and not target.exists():
            os.rename(old, target)
        raise ExportError(
            f"{target}: cannot install the new build ({exc.strerror or exc}); another process wrote there"
        ) from None
    except BaseException:
        if old.exists() and not target.exists():
            os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def clean_interrupted(out_root: Path, name: str) -> None:
    """Tidy up after an export of ``name`` that was killed (SIGKILL, power loss: no ``finally`` ran).

    Its temporary build directory is deleted, and an artifact that an unfinished install had moved aside
    is put back where it was. Only directories of processes that no longer run are touched, so a
    concurrent export into the same folder keeps its own.
    """
    if not out_root.is_dir():
        return
    for target in (out_root / name, out_root / f"{name}.rejected"):
        for old in sorted(out_root.glob(f".{target.name}.old-*-*")):
            if owner_alive(old.name[len(f".{target.name}.old-") :]):
                continue
            if not target.exists():
                os.rename(old, target)  # the swap stopped between its two renames: undo the first
            else:
                shutil.rmtree(old, ignore_errors=True)  # the swap finished; only the delete did not
    for tmp in out_root.glob(f".{name}.tmp-*-*"):
        if not owner_alive(tmp.name[len(f".{name}.tmp-") :]):
            shutil.rmtree(tmp, ignore_errors=True)


def _write_manifest(
    job: Job,
    exporter: Exporter,
    build: Build,
    result: DriftResult,
    mixed: dict[str, Any] | None,
    work: Path,
    seconds: float,
) -> None:
    profile, info = job.profile, job.session.info
    artifact = work / build.artifact
    files: dict[str, dict[str, Any]] = {
        p.name: {"sha256": sha256_path(p), "bytes": size_bytes(p)}
        for p in sorted(work.iterdir())
        if p.name != MANIFEST
    }
    ArtifactManifest(
        schema_version=SCHEMA_VERSION,
        edgefuse_version=__version__,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        profile=profile.name,
        profile_spec=profile.to_dict(),
        backend=profile.backend,
        precision=profile.precision.value,
        precision_detail=build.precision_detail,
        io=profile.io,
        checkpoint={
            "path": info.path,
            "file_sha256": info.file_sha256,
            "weights_sha256": info.weights_sha256,
            "size": info.config.name,
        },
        artifact=build.artifact,
        artifact_sha256=sha256_path(artifact),
        artifact_bytes=size_bytes(artifact),
        files=files,
        total_bytes=sum(f["bytes"] for f in files.values()),
        tools=tool_versions(exporter.tools),
        export_seconds=round(seconds, 2),
        kept_in_higher_precision=build.kept,
        mixed_precision=mixed,
        calibration=job.session.calibration(profile).to_dict() if build.calibrated else None,
        validation=result.to_dict(),
        backend_details=build.details,
    ).write(work)
