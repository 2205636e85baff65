"""The artifact manifest: ``edgefuse.json`` beside every exported model, as one typed record.

This module is the only place that knows the file's name and its fields. ``edgefuse export`` writes it
(:meth:`ArtifactManifest.write`, atomically, last, so a directory with a manifest is complete); the
runtimes, ``edgefuse bench`` and the up-to-date check read it back (:func:`read_manifest`) and check an
artifact against the checkpoint, IO size and backend expected (:meth:`ArtifactManifest.check`).

Only ``backend`` is required when reading: a hand-written manifest for a model file needs no more. Field
order is the order of the JSON file; non-finite floats are written as the strings "inf"/"nan".
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefuse import backends
from edgefuse.errors import ArtifactMismatchError
from edgefuse.io import atomic_write_text, dumps_strict, inside, sha256_cached, size_bytes
from edgefuse.spec import IOSpec

MANIFEST = "edgefuse.json"
SCHEMA_VERSION = 1


def artifact_dir(artifact: str | Path) -> Path:
    """The directory holding an artifact's manifest: the path itself, or the folder of a model file."""
    path = Path(artifact).expanduser()
    # a .mlpackage is a directory but a model, not an artifact dir
    return path if path.is_dir() and path.suffix != ".mlpackage" else path.parent


@dataclass
class ArtifactManifest:
    backend: str
    artifact: str = ""  # the file (or .mlpackage directory) the runtime loads, relative to the directory
    precision: str = ""
    io: IOSpec | None = None
    schema_version: int | None = SCHEMA_VERSION
    edgefuse_version: str = ""
    created: str = ""
    profile: str = ""
    profile_spec: dict[str, Any] = field(default_factory=dict)
    precision_detail: str = ""
    checkpoint: dict[str, Any] = field(default_factory=dict)  # path, file_sha256, weights_sha256, size
    artifact_sha256: str = ""
    artifact_bytes: int | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {sha256, bytes}
    total_bytes: int | None = None
    tools: dict[str, str] = field(default_factory=dict)
    export_seconds: float | None = None
    kept_in_higher_precision: list[str] = field(default_factory=list)
    mixed_precision: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    backend_details: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)  # where it was read from (never written)

    # the order of the JSON file (as written since schema version 1)
    ORDER = (
        "schema_version", "edgefuse_version", "created", "profile", "profile_spec", "backend", "precision",
        "precision_detail", "io", "checkpoint", "artifact", "artifact_sha256", "artifact_bytes", "files",
        "total_bytes", "tools", "export_seconds", "kept_in_higher_precision", "mixed_precision",
        "calibration", "validation", "backend_details",
    )  # fmt: skip

    @property
    def where(self) -> str:
        return str(self.path or MANIFEST)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key in self.ORDER:
            value = getattr(self, key)
            d[key] = value.to_dict() if isinstance(value, IOSpec) else value
        return d

    def to_json(self) -> str:
        return dumps_strict(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, data: Any, where: str | Path = MANIFEST) -> ArtifactManifest:
        if not isinstance(data, dict) or "backend" not in data:
            raise ArtifactMismatchError(f"{where}: manifest has no 'backend' field")
        known = {f.name for f in dataclasses.fields(cls)} - {"path", "io"}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key, value in kwargs.items():  # a wrongly typed field is one line here, not a crash later
            want = _TYPES.get(key)
            if want is not None and value is not None and not _typed(value, want):
                raise ArtifactMismatchError(f"{where}: malformed {key!r} (expected {want[1]})")
        if not isinstance(data["backend"], str) or not data["backend"].strip():
            raise ArtifactMismatchError(f"{where}: 'backend' must name a backend")
        io = data.get("io")
        try:
            spec = IOSpec.from_dict(io) if io else None
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactMismatchError(f"{where}: malformed 'io' ({exc})") from None
        return cls(**kwargs, io=spec, path=Path(where))

    @classmethod
    def read(cls, artifact: str | Path) -> ArtifactManifest:
        """The manifest of an artifact directory (or of the directory holding a model file)."""
        path = artifact_dir(artifact) / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactMismatchError(f"{path}: no manifest (not written by edgefuse export?)") from None
        except (OSError, ValueError) as exc:
            raise ArtifactMismatchError(f"{path}: unreadable manifest ({exc})") from None
        return cls.from_dict(data, path)

    def write(self, directory: Path) -> Path:
        return atomic_write_text(directory / MANIFEST, self.to_json())

    def file_path(self, directory: Path, name: Any) -> Path:
        """``directory / name`` for a name the manifest records, refused unless it stays inside ``directory``
        (no absolute path, no ``..``, no symlink pointing out): a manifest never loads files elsewhere."""
        where = self.where
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ArtifactMismatchError(f"{where}: names a file {name!r}, which is not a file name")
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or name.startswith("~"):
            raise ArtifactMismatchError(f"{where}: names {name!r}, outside the artifact directory")
        path = directory / rel
        if not inside(path, directory):
            raise ArtifactMismatchError(
                f"{where}: {name!r} is a link that points outside the artifact directory"
            )
        return path

    def recorded_files(self) -> dict[str, dict[str, Any]]:
        """name -> {"sha256", "bytes"} for every file the manifest vouches for (the artifact included)."""
        where = self.where
        files = self.files
        if not isinstance(files, dict):
            raise ArtifactMismatchError(
                f"{where}: malformed 'files' (expected a table of name -> sha256, bytes)"
            )
        out: dict[str, dict[str, Any]] = {}
        for name, rec in files.items():
            if not isinstance(rec, dict):
                raise ArtifactMismatchError(f"{where}: malformed entry for {name!r} in 'files'")
            out[str(name)] = rec
        if self.artifact and (self.artifact_sha256 or self.artifact_bytes is not None):
            out.setdefault(self.artifact, {"sha256": self.artifact_sha256, "bytes": self.artifact_bytes})
        return out

    def verify(self, directory: str | Path) -> dict[str, str]:
        """Check every file the manifest names against the directory: inside it, present, of the recorded
        size and sha256 (hashes cached by size and mtime, so a second open is fast). Returns name -> the
        sha256 computed here; raises :class:`ArtifactMismatchError` naming the first file that differs.

        A hand-written manifest that records no hashes verifies nothing but containment (``{}``)."""
        directory = Path(directory)
        where = self.where
        if self.artifact:
            path = self.file_path(directory, self.artifact)
            if not path.exists():
                raise ArtifactMismatchError(f"{where}: names {self.artifact}, which is missing")
        computed: dict[str, str] = {}
        for name, rec in self.recorded_files().items():
            path = self.file_path(directory, name)
            sha, size = rec.get("sha256"), rec.get("bytes")
            if not isinstance(sha, str) or not sha or not (size is None or _is_int(size)):
                raise ArtifactMismatchError(f"{where}: malformed sha256/bytes for {name!r}")
            if not path.exists():
                raise ArtifactMismatchError(f"{where}: {name} is missing (re-export the artifact)")
            try:
                got_size = size_bytes(path, within=directory)
                if size is not None and got_size != size:
                    raise ArtifactMismatchError(
                        f"{where}: {name} has {got_size} bytes, the manifest records {size} "
                        "(truncated or replaced: re-export the artifact)"
                    )
                got = sha256_cached(path, within=directory)
            except ValueError as exc:  # a link inside a model directory that points out
                raise ArtifactMismatchError(f"{where}: {exc}") from None
            except OSError as exc:
                raise ArtifactMismatchError(f"{where}: cannot read {name} ({exc.strerror or exc})") from None
            if got != sha:
                raise ArtifactMismatchError(
                    f"{where}: {name} does not match its recorded sha256 (modified or replaced: re-export it)"
                )
            computed[name] = got
        return computed

    def checkpoint_hashes(self) -> set[str]:
        """Every checkpoint hash the manifest records (file and weights sha256)."""
        ck = self.checkpoint if isinstance(self.checkpoint, dict) else {}
        return {h for h in (ck.get("file_sha256"), ck.get("weights_sha256")) if isinstance(h, str) and h}

    def check(
        self, checkpoint_sha256: str | None = None, io: IOSpec | None = None, backend: str | None = None
    ) -> None:
        """Raise :class:`ArtifactMismatchError` when the artifact was not built from / for what is expected
        (``None``: not checked)."""
        where = self.where
        if backend is not None and _canonical(self.backend, where) != _canonical(backend, where):
            raise ArtifactMismatchError(f"{where}: artifact is for {self.backend!r}, not {backend!r}")
        if checkpoint_sha256 is not None:
            recorded = self.checkpoint_hashes()
            if not recorded:
                raise ArtifactMismatchError(f"{where}: records no checkpoint sha256 to check against")
            if checkpoint_sha256 not in recorded:
                got = sorted(recorded)[0]
                raise ArtifactMismatchError(
                    f"{where}: built from checkpoint {got[:12]}…, not {checkpoint_sha256[:12]}…"
                )
        if io is not None:
            built = self.io
            if built is None:
                raise ArtifactMismatchError(f"{where}: records no IO spec to check against")
            if (built.batch, built.height, built.width) != (io.batch, io.height, io.width):
                raise ArtifactMismatchError(
                    f"{where}: built for {built.batch}x{built.height}x{built.width} (NxHxW), "
                    f"not {io.batch}x{io.height}x{io.width}"
                )


_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "artifact": (str, "a file name"),
    "precision": (str, "a string"),
    "schema_version": (int, "an integer"),
    "edgefuse_version": (str, "a string"),
    "created": (str, "a string"),
    "profile": (str, "a string"),
    "profile_spec": (dict, "an object"),
    "precision_detail": (str, "a string"),
    "checkpoint": (dict, "an object"),
    "artifact_sha256": (str, "a sha256 string"),
    "artifact_bytes": (int, "a byte count"),
    "files": (dict, "an object of name -> {sha256, bytes}"),
    "total_bytes": (int, "a byte count"),
    "tools": (dict, "an object"),
    "export_seconds": ((int, float), "a number"),
    "kept_in_higher_precision": (list, "a list"),
    "mixed_precision": (dict, "an object"),
    "calibration": (dict, "an object"),
    "validation": (dict, "an object"),
    "backend_details": (dict, "an object"),
}


def _typed(value: Any, want: tuple[type | tuple[type, ...], str]) -> bool:
    return isinstance(value, want[0]) and not (isinstance(value, bool) and want[0] is not bool)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _canonical(name: str, where: str) -> str:
    key = backends.canonical(str(name))
    if key is None:
        raise ArtifactMismatchError(f"{where}: unknown backend {name!r}{backends.suggest(str(name))}")
    return key


def read_manifest(artifact: str | Path) -> ArtifactManifest:
    return ArtifactManifest.read(artifact)
