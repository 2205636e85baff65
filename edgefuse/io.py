"""One helper per file job: atomic writes, sha256 of files and directories, strict JSON.

Every file edgefuse writes for others to read (manifests, reports, checkpoints, caches) goes through
:func:`atomic_write_text` / :func:`atomic_path`: a temporary file in the same directory, renamed over the
target, so a reader never sees half a file and a killed writer leaves the old one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int | None = 0o666) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends without an
    exception, removed otherwise. ``mode`` (less the umask) replaces mkstemp's 0600: files are shared."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode is not None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, mode & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(path: str | os.PathLike[str], *inputs: str | os.PathLike[str]) -> Path:
    """Refuse, before any long work, an output path that cannot be written (a folder, a read-only or
    missing place it cannot create) or that would replace one of ``inputs``. Raises ``ValueError`` with
    the one line to show; returns the path."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name")
    for src in inputs:
        if Path(src).exists() and path.exists() and path.resolve() == Path(src).resolve():
            raise ValueError(f"{path}: is also an input; write the output somewhere else")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the folder that will be created under
    if not parent.is_dir():
        raise ValueError(f"{path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{path}: not writable here")
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and bytes, sorted) such as .mlpackage."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def size_bytes(path: Path, within: Path | None = None) -> int:
    """Bytes of a file or of a directory's files; ``within``: refuse (ValueError) any that leaves it."""
    if path.is_file():
        if within is not None and not inside(path, within):
            raise ValueError(f"{path.name} points outside {within}")
        return path.stat().st_size
    total = 0
    for p in path.rglob("*"):
        if within is not None and not inside(p, within):
            raise ValueError(f"{p.relative_to(path.parent)} points outside {within}")
        if p.is_file():
            total += p.stat().st_size
    return total


def inside(path: Path, directory: Path) -> bool:
    """Whether ``path``, symlinks resolved, lies in ``directory`` (resolved too)."""
    try:
        path.resolve().relative_to(directory.resolve())
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False
    return True


# (resolved path, size, mtime_ns, inode) -> sha256: an artifact opened again in one process is not re-hashed
_HASHES: dict[tuple[str, int, int, int], str] = {}


def sha256_cached(path: Path, within: Path | None = None) -> str:
    """:func:`sha256_path`, cached by size and mtime of the file (every file, for a directory);
    ``within``: refuse (ValueError) a file or link that leaves that directory."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if within is not None:
        for f in files:
            if not inside(f, within):
                raise ValueError(f"{f.relative_to(path.parent)} points outside {within}")
    stats = [f.stat() for f in files]
    key = (
        str(path.resolve()),
        sum(s.st_size for s in stats),
        max((s.st_mtime_ns for s in stats), default=0),
        sum(s.st_ino for s in stats),
    )
    if key not in _HASHES:
        _HASHES[key] = sha256_path(path)
    return _HASHES[key]


def jsonable(x: Any) -> Any:
    """Strict JSON values: non-finite floats (PSNR of identical outputs is inf) become the strings
    "inf"/"nan", paths strings, numpy scalars Python numbers; dict keys strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return jsonable(x.item())
    return x


def dumps_strict(data: Any, indent: int | None = 2, default: Any = None) -> str:
    """JSON text that any strict parser reads (no NaN/Infinity literals), newline-terminated."""
    return json.dumps(jsonable(data), indent=indent, allow_nan=False, default=default) + "\n"
