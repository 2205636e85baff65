"""Checkpoints: safetensors with edgefuse metadata; plain PyTorch state dicts through ``weights_only``.

Never unpickles arbitrary objects. Every failure is one :class:`CheckpointError` line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import torch

from edgefuse import __version__
from edgefuse.errors import CheckpointError
from edgefuse.io import atomic_path, sha256_file
from edgefuse.model import ARCH, CONFIGS, DEFAULT_SIZE, FusionProxy, FusionProxyConfig
from edgefuse.spec import IOSpec

BUNDLED = {f"{ARCH}-{k}": f"{ARCH}-{k}.safetensors" for k in CONFIGS}
DEFAULT_CHECKPOINT = f"{ARCH}-{DEFAULT_SIZE}"
_PREFIXES = ("module.", "_orig_mod.")
_SAFETENSORS_MAGIC_MAX = 100 * 1024 * 1024  # a header larger than this is not a real safetensors file


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about itself (safetensors metadata; empty for plain state dicts)."""

    path: str
    arch: str
    config: FusionProxyConfig
    io: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    file_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "arch": self.arch,
            "size": self.config.name,
            "config": self.config.to_dict(),
            "io": self.io,
            "provenance": self.provenance,
            "weights_sha256": self.weights_sha256,
            "file_sha256": self.file_sha256,
        }


def resolve(name_or_path: str | os.PathLike[str] | None) -> Path:
    """A bundled name (``fusionproxy-s``), or a path to a file."""
    key = str(name_or_path or DEFAULT_CHECKPOINT)
    if key in BUNDLED:
        ref = resources.files("edgefuse") / "weights" / BUNDLED[key]
        path = Path(str(ref))
        if not path.is_file():
            raise CheckpointError(f"{key}: bundled checkpoint is missing from the installation ({path})")
        return path
    path = Path(key).expanduser()
    if not path.is_file():
        hint = f" (bundled names: {', '.join(BUNDLED)})" if not path.suffix else ""
        raise CheckpointError(f"{path}: no such checkpoint file{hint}")
    return path


file_sha256 = sha256_file  # the checkpoint file's hash, as manifests and reports record it


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """Hash of names, shapes and bytes in sorted key order: independent of the container format."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().to("cpu").contiguous()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        for p in _PREFIXES:
            while k.startswith(p):
                k = k[len(p) :]
        out[k] = v
    return out


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
    return state, meta


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a safetensors file and not a weights-only PyTorch checkpoint ({_first_line(exc)})"
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "ema", "model_ema"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: PyTorch file holds no tensor state dict")
    return dict(obj)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n < _SAFETENSORS_MAGIC_MAX and head[8:9] == b"{"


def _config_from_state(path: Path, state: dict[str, torch.Tensor]) -> FusionProxyConfig:
    """Infer the size of a plain state dict by matching the shapes against every known config."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for base in CONFIGS.values():
        for cfg in (base, replace(base, select=not base.select)):  # both student forms
            ref = {k: tuple(v.shape) for k, v in FusionProxy(cfg).state_dict().items()}
            if ref == shapes:
                return cfg
    raise CheckpointError(f"{path}: {describe_mismatch(FusionProxy(DEFAULT_SIZE).state_dict(), state)}")


def describe_mismatch(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> str:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    shape = [k for k in expected if k in got and tuple(expected[k].shape) != tuple(got[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected keys (e.g. {extra[0]})")
    if shape:
        k = shape[0]
        parts.append(f"shape mismatch at {k}: {tuple(got[k].shape)} vs {tuple(expected[k].shape)}")
    return "not a FusionProxy checkpoint: " + ("; ".join(parts) or "unknown layout")


def load_checkpoint(
    name_or_path: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    """Read a checkpoint into (state_dict, info) without building a model."""
    path = resolve(name_or_path)
    if _is_safetensors(path):
        state, meta = _read_safetensors(path)
    else:
        state, meta = _read_torch(path), {}
    state = _strip_prefixes(state)
    if meta.get("edgefuse.arch", ARCH) != ARCH:
        raise CheckpointError(f"{path}: foreign architecture {meta['edgefuse.arch']!r} (expected {ARCH!r})")
    try:
        cfg = (
            FusionProxyConfig.from_dict(json.loads(meta["edgefuse.config"]))
            if meta.get("edgefuse.config")
            else None
        )
        io = json.loads(meta.get("edgefuse.io", "{}"))
        prov = json.loads(meta.get("edgefuse.provenance", "{}"))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: malformed edgefuse metadata ({_first_line(exc)})") from None
    if cfg is None:
        cfg = _config_from_state(path, state)
    info = CheckpointInfo(
        path=str(path),
        arch=ARCH,
        config=cfg,
        io=io,
        provenance=prov,
        weights_sha256=meta.get("edgefuse.weights_sha256", "") or weights_sha256(state),
        file_sha256=file_sha256(path),
    )
    return state, info


class LoadedModel(NamedTuple):
    """A model and what its checkpoint says about it (hashes, config, provenance), kept together."""

    model: FusionProxy
    info: CheckpointInfo


def load_model(name_or_path: str | os.PathLike[str] | None = None, map_location: str = "cpu") -> LoadedModel:
    """Build the model a checkpoint describes and load its weights strictly; eval mode.

    ``model, info = load_model(path)``: the info travels beside the model, not as an attribute of it."""
    state, info = load_checkpoint(name_or_path)
    model = FusionProxy(info.config)
    expected = model.state_dict()
    if set(expected) != set(state) or any(tuple(expected[k].shape) != tuple(state[k].shape) for k in state):
        raise CheckpointError(f"{info.path}: {describe_mismatch(expected, state)}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{info.path}: non-finite weights in {bad[0]}")
    model.load_state_dict(state, strict=True)
    return LoadedModel(model.to(map_location).eval(), info)


def flush_denormals(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Zero float32 values below the smallest normal: denormals run ~20× slower on x86 CPUs."""
    out = {}
    for k, v in state.items():
        if v.is_floating_point():
            tiny = torch.finfo(v.dtype).tiny
            v = torch.where(v.abs() < tiny, torch.zeros_like(v), v)
        out[k] = v
    return out


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return rev.stdout.strip() if rev.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_checkpoint(
    model: FusionProxy,
    path: str | os.PathLike[str],
    provenance: dict[str, Any] | None = None,
    io: IOSpec | None = None,
) -> Path:
    """Write ``model`` atomically as safetensors with edgefuse metadata; returns the path."""
    from safetensors.torch import save_file

    state = flush_denormals(
        {k: v.detach().to("cpu").float().contiguous() for k, v in model.state_dict().items()}
    )
    prov = {"edgefuse_version": __version__, "git_revision": git_revision(), **(provenance or {})}
    io_dict = (io or IOSpec()).to_dict()
    io_dict.pop("height", None)  # the student is size-agnostic; sizes belong to exports
    io_dict.pop("width", None)
    io_dict.pop("inputs", None)
    io_dict.pop("outputs", None)
    io_dict.update({"inputs": {"visible": "N×3×H×W", "thermal": "N×1×H×W"}, "outputs": {"fused": "N×3×H×W"}})
    meta = {
        "format": "pt",
        "edgefuse.arch": ARCH,
        "edgefuse.size": model.config.name,
        "edgefuse.config": json.dumps(model.config.to_dict()),
        "edgefuse.io": json.dumps(io_dict),
        "edgefuse.provenance": json.dumps(prov, default=str),
        "edgefuse.weights_sha256": weights_sha256(state),
    }
    path = Path(path)
    with atomic_path(path, mode=None) as tmp:  # mode None: keep mkstemp's 0600, as before
        save_file(state, str(tmp), metadata=meta)
    return path
