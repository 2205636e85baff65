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


# what a checkpoint's metadata may ask the network to be: generous around the bundled sizes (n/s/m), and
# small enough that a forged config cannot make load_model allocate gigabytes before its shapes are checked
STEM_RANGE = (1, 256)
WIDTH_RANGE = (1, 1024)
DEPTH_RANGE = (1, 16)
EXPANSION_RANGE = (1, 8)


def _bundled_path(key: str) -> Path:
    return Path(str(resources.files("edgefuse") / "weights" / BUNDLED[key]))


def bundled_names() -> list[str]:
    """The bundled checkpoint names whose file this installation ships."""
    return [k for k in BUNDLED if _bundled_path(k).is_file()]


def resolve(name_or_path: str | os.PathLike[str] | None) -> Path:
    """A bundled name (``fusionproxy-s``), or a path to a file."""
    key = str(name_or_path or DEFAULT_CHECKPOINT)
    if key in BUNDLED:
        path = _bundled_path(key)
        if not path.is_file():
            shipped = ", ".join(bundled_names()) or "none"
            raise CheckpointError(
                f"{key}: no bundled weights for this size (bundled: {shipped}); "
                "pass a checkpoint file you trained (edgefuse train / distill)"
            )
        return path
    path = Path(key).expanduser()
    if not path.is_file():
        hint = f" (bundled names: {', '.join(bundled_names())})" if not path.suffix else ""
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
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # bf16 has no numpy dtype
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


def _shapes_of(cfg: FusionProxyConfig) -> dict[str, torch.Tensor]:
    """The state dict a config builds, on the meta device: shapes only, nothing allocated."""
    with torch.device("meta"):
        return FusionProxy(cfg).state_dict()


def _config_from_state(path: Path, state: dict[str, torch.Tensor]) -> FusionProxyConfig:
    """Infer the size of a plain state dict by matching the shapes against every known config."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for base in CONFIGS.values():
        for cfg in (base, replace(base, select=not base.select)):  # both student forms
            ref = {k: tuple(v.shape) for k, v in _shapes_of(cfg).items()}
            if ref == shapes:
                return cfg
    raise CheckpointError(f"{path}: {describe_mismatch(_shapes_of(CONFIGS[DEFAULT_SIZE]), state)}")


def _int_in(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


def config_from_metadata(path: Path, data: Any) -> FusionProxyConfig:
    """The ``edgefuse.config`` metadata as a config, every field type- and range-checked (one line each)."""
    bad = f"{path}: malformed edgefuse.config metadata"
    if not isinstance(data, dict):
        raise CheckpointError(f"{bad} (expected a JSON object)")
    for key in ("widths", "depths"):
        value = data.get(key)
        if not isinstance(value, list) or len(value) != 3:
            raise CheckpointError(f"{bad} ({key} must be a list of exactly 3 integers)")
    checks = [
        ("stem", data.get("stem"), STEM_RANGE),
        ("expansion", data.get("expansion", 2), EXPANSION_RANGE),
    ]
    checks += [("widths", w, WIDTH_RANGE) for w in data["widths"]]
    checks += [("depths", d, DEPTH_RANGE) for d in data["depths"]]
    for key, value, bounds in checks:
        if not _int_in(value, bounds):
            raise CheckpointError(f"{bad} ({key} {value!r} is not an integer in {bounds[0]}..{bounds[1]})")
    name = data.get("name", "")
    if not isinstance(name, str) or len(name) > 64:
        raise CheckpointError(f"{bad} (name must be a short string)")
    if not isinstance(data.get("select", False), bool):
        raise CheckpointError(f"{bad} (select must be true or false)")
    return FusionProxyConfig.from_dict(data)


def check_state(path: Path, cfg: FusionProxyConfig, state: dict[str, torch.Tensor]) -> None:
    """Names, shapes and dtypes of the stored tensors against ``cfg``, before any network is built."""
    ints = [k for k, v in state.items() if not (v.is_floating_point())]
    if ints:
        dtype = str(state[ints[0]].dtype).removeprefix("torch.")
        raise CheckpointError(
            f"{path}: {ints[0]} holds {dtype} weights; edgefuse checkpoints are floating point "
            "(quantize through edgefuse export instead)"
        )
    expected = _shapes_of(cfg)
    if set(expected) != set(state) or any(tuple(expected[k].shape) != tuple(state[k].shape) for k in state):
        raise CheckpointError(f"{path}: {describe_mismatch(expected, state)}")


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
        raw = json.loads(meta["edgefuse.config"]) if meta.get("edgefuse.config") else None
        io = json.loads(meta.get("edgefuse.io", "{}"))
        prov = json.loads(meta.get("edgefuse.provenance", "{}"))
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: malformed edgefuse metadata ({_first_line(exc)})") from None
    if not isinstance(io, dict) or not isinstance(prov, dict):
        raise CheckpointError(f"{path}: malformed edgefuse metadata (io and provenance must be JSON objects)")
    cfg = config_from_metadata(path, raw) if raw is not None else _config_from_state(path, state)
    check_state(path, cfg, state)
    # recomputed, never taken from the metadata: the metadata is the claim, the tensors are the weights
    weights = weights_sha256(state)
    claimed = meta.get("edgefuse.weights_sha256")
    if claimed and claimed != weights:
        raise CheckpointError(
            f"{path}: weights do not match the sha256 its metadata records (modified after it was saved)"
        )
    info = CheckpointInfo(
        path=str(path),
        arch=ARCH,
        config=cfg,
        io=io,
        provenance=prov,
        weights_sha256=weights,
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
    state, info = load_checkpoint(name_or_path)  # names, shapes and dtypes checked: safe to allocate
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{info.path}: non-finite weights in {bad[0]}")
    model = FusionProxy(info.config)
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
    with atomic_path(path) as tmp:  # 0666 less the umask, like any file a user writes
        save_file(state, str(tmp), metadata=meta)
    return path
