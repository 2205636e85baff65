"""The profile schema: frozen dataclasses and their validation from a parsed TOML document.

Every bad key or value is one :class:`ProfileError` naming the file and the dotted key; the schema is
documented in ``profiles/README.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from edgefuse import backends
from edgefuse._enum import TextEnum
from edgefuse._optional import version_tuple
from edgefuse.errors import ProfileError
from edgefuse.spec import IOSpec

# the source tree's ../shared/data (an installed package lives elsewhere: see data_root)
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def data_root() -> Path:
    """Where bare calibration-set names live: $EDGEFUSE_DATA, else ../shared/data of the working directory
    (a checkout), else of the source tree."""
    env = os.environ.get("EDGEFUSE_DATA")
    if env:
        return Path(env).expanduser()
    here = Path.cwd().parent / "shared" / "data"
    for candidate in (here, SHARED_DATA):
        if candidate.is_dir():
            return candidate
    return here  # (not SHARED_DATA: an installed package's would name a folder in site-packages)


class Precision(TextEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


MAX_CALIBRATION = 4096  # pairs a calibration may load (each is a full frame in memory)
MAX_SIDE = 8192  # pixels per side of a profile's input
MAX_BATCH = 64
# a profile's name is a directory name under the export folder: no separators, not "." or ".."
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}"
# calibration folders a profile may name: not the system's pseudo file systems or its configuration
_NOT_DATA = ("/proc", "/sys", "/dev", "/etc", "/boot", "/run")


def _at_least(low: float) -> dict[str, Any]:
    return {"min": low}


@dataclass(frozen=True)
class Device:
    name: str
    arch: str
    notes: str = ""


@dataclass(frozen=True)
class Constraints:
    onnx_opset: int = field(default=17, metadata={"min": 7, "max": 23})
    min_backend_version: str = ""  # "" = no bound; compared as dotted integers
    max_backend_version: str = ""
    notes: str = ""


@dataclass(frozen=True)
class Calibration:
    set: str = "roadscene_train"  # a folder name under ../shared/data, or a path
    count: int = field(default=64, metadata={"min": 1, "max": MAX_CALIBRATION})

    def path(self, shared_data: Path | None = None) -> Path:
        """The folder this names: a bare name lives under ``../shared/data``; anything else is a path."""
        p = Path(self.set).expanduser()
        if p.is_absolute() or len(p.parts) > 1 or p.exists():
            return p
        return (shared_data or data_root()) / self.set


@dataclass(frozen=True)
class LatencyBudget:
    p50_ms: float = field(metadata={"gt": 0})
    p99_ms: float = field(metadata={"gt": 0})
    min_fps: float = field(metadata={"gt": 0})
    derivation: str = ""


@dataclass(frozen=True)
class DriftBudget:
    min_psnr_db: float = field(metadata={"gt": 0})
    max_metric_change_pct: float = field(metadata={"gt": 0})
    max_abs_8bit: float = field(metadata={"gt": 0, "max": 255})


def exportable_backends() -> tuple[str, ...]:
    """Backends a profile may name: every registered backend with a converter (edgefuse.backends)."""
    return backends.names_of(exportable=True)


def knobs_class(backend: str) -> type:
    knobs = backends.get(backend).knobs
    assert knobs is not None  # an exportable backend always has one (BackendSpec checks)
    return knobs


@dataclass(frozen=True)
class Profile:
    name: str
    backend: str
    precision: Precision
    device: Device
    io: IOSpec
    constraints: Constraints
    calibration: Calibration
    latency: LatencyBudget
    drift: DriftBudget
    knobs: Any = None  # the knobs dataclass of this profile's backend (its [<backend>] table); None: defaults
    source: str = field(default="", compare=False)  # the file it came from

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", Precision(self.precision))
        if self.backend not in exportable_backends():
            raise ValueError(f"backend {self.backend!r} is not one of {', '.join(exportable_backends())}")
        cls = knobs_class(self.backend)
        if self.knobs is None:
            object.__setattr__(self, "knobs", cls())
        elif not isinstance(self.knobs, cls):
            raise TypeError(
                f"knobs for {self.backend} must be {cls.__name__}, got {type(self.knobs).__name__}"
            )

    def __getattr__(self, name: str) -> Any:
        """``profile.openvino`` reads like the TOML table: this profile's knobs for its own backend, a
        backend's defaults for another registered backend."""
        if name.startswith("_") or name in ("backend", "knobs"):
            raise AttributeError(name)
        if name == self.backend:
            return self.knobs
        if backends.canonical(name) == name and backends.get(name).knobs is not None:
            return knobs_class(name)()
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def size(self) -> str:
        return f"{self.io.height}x{self.io.width}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["precision"] = self.precision.value
        d["io"] = {"height": self.io.height, "width": self.io.width, "batch": self.io.batch}
        source = d.pop("source")
        d[self.backend] = d.pop("knobs")  # keyed by backend, as in the TOML
        d["source"] = source
        return d


# --- parsing ---------------------------------------------------------------------------------------------

_TOP_SCALARS = ("name", "backend", "precision")
_SECTIONS: dict[str, type] = {
    "device": Device,
    "constraints": Constraints,
    "calibration": Calibration,
    "latency": LatencyBudget,
    "drift": DriftBudget,
}
_REQUIRED_SECTIONS = ("device", "input", "latency", "drift")
_NAME_RE = re.compile(
    r"^(?P<device>[a-z0-9][a-z0-9.-]*)_(?P<backend>[a-z]+)-(?P<precision>[a-z0-9]+)_(?P<h>\d+)x(?P<w>\d+)$"
)


def _fail(src: str, key: str, problem: str) -> ProfileError:
    return ProfileError(f"{src}: {key}: {problem}")


def _check_value(src: str, key: str, value: Any, typ: Any, meta: Any) -> Any:
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise _fail(src, key, f"expected {typ.__name__}, got {type(value).__name__} {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        close = difflib.get_close_matches(str(value), meta["choices"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _fail(src, key, f"{value!r} is not one of {', '.join(meta['choices'])}{hint}")
    if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        raise _fail(src, key, f"{value!r} does not look like {meta['pattern']}")
    if "min" in meta and value < meta["min"]:
        raise _fail(src, key, f"{value} is below the minimum {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise _fail(src, key, f"{value} is above the maximum {meta['max']}")
    if "gt" in meta and not value > meta["gt"]:
        raise _fail(src, key, f"must be > {meta['gt']}, got {value}")
    return value


def _build(cls: type, table: Any, src: str, prefix: str) -> Any:
    if not isinstance(table, dict):
        raise _fail(src, prefix, f"expected a table ([{prefix}]), got {type(table).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _fail(src, f"{prefix}.{key}", f"unknown key{hint}")
    kwargs = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _fail(src, f"{prefix}.{name}", "required key is missing")
            continue
        kwargs[name] = _check_value(src, f"{prefix}.{name}", table[name], hints[name], f.metadata)
    return cls(**kwargs)


def parse_profile(data: dict[str, Any], src: str, stem: str | None = None) -> Profile:
    """Validate a parsed TOML document; ``src`` names it in errors, ``stem`` must equal ``name`` if given."""
    names = exportable_backends()
    allowed = {*_TOP_SCALARS, *_SECTIONS, "input", *names}
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            raise _fail(src, key, "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))
    for key in (*_TOP_SCALARS, *_REQUIRED_SECTIONS):
        if key not in data:
            raise _fail(src, key, "required key is missing")
    name = _check_value(src, "name", data["name"], str, {"pattern": NAME_PATTERN})
    if stem is not None and name != stem:
        raise _fail(src, "name", f"{name!r} must equal the file name stem {stem!r}")
    backend = _check_value(src, "backend", data["backend"], str, {"choices": names})
    prec = _check_value(
        src, "precision", data["precision"], str, {"choices": tuple(x.value for x in Precision)}
    )
    sections = {key: _build(cls, data.get(key, {}), src, key) for key, cls in _SECTIONS.items()}
    io = _parse_io(data["input"], src)
    for other in names:
        if other in data and other != backend:
            raise _fail(src, other, f"knobs for {other} in a profile whose backend is {backend}")
    knobs = _build(knobs_class(backend), data.get(backend, {}), src, backend)
    profile = Profile(
        name=name, backend=backend, precision=Precision(prec), io=io, source=src, knobs=knobs, **sections
    )
    _check_consistency(profile, src)
    return profile


def _parse_io(table: Any, src: str) -> IOSpec:
    if not isinstance(table, dict):
        raise _fail(src, "input", "expected a table [input] with height, width, batch")
    for key in table:
        if key not in ("height", "width", "batch"):
            raise _fail(src, f"input.{key}", "unknown key (expected height, width, batch)")
    values = {}
    for key in ("height", "width", "batch"):
        if key not in table and key != "batch":
            raise _fail(src, f"input.{key}", "required key is missing")
        top = MAX_BATCH if key == "batch" else MAX_SIDE
        values[key] = _check_value(src, f"input.{key}", table.get(key, 1), int, {"min": 1, "max": top})
    try:
        return IOSpec(**values)
    except ValueError as exc:
        raise _fail(src, "input", str(exc)) from None


def _check_calibration_set(text: str, src: str) -> None:
    """A bare set name (under $EDGEFUSE_DATA) or a folder path: no ``..``, not under /proc, /etc..."""
    p = Path(text).expanduser()
    if not text.strip() or "\x00" in text or ".." in p.parts or text.strip() in (".", "/"):
        raise _fail(
            src, "calibration.set", f"{text!r} is not a data folder (a set name or a path without ..)"
        )
    if p.is_absolute() and any(str(p) == d or str(p).startswith(d + "/") for d in _NOT_DATA):
        raise _fail(src, "calibration.set", f"{text!r} is a system folder, not a folder of image pairs")


def _check_consistency(p: Profile, src: str) -> None:
    _check_calibration_set(p.calibration.set, src)
    if p.latency.p99_ms < p.latency.p50_ms:
        raise _fail(src, "latency.p99_ms", f"{p.latency.p99_ms} is below latency.p50_ms {p.latency.p50_ms}")
    lo, hi = p.constraints.min_backend_version, p.constraints.max_backend_version
    for key, text in (("min_backend_version", lo), ("max_backend_version", hi)):
        if text and not version_tuple(text):
            raise _fail(src, f"constraints.{key}", f"{text!r} is not a version like 8.6 or 2024.4")
    if lo and hi and version_tuple(lo) > version_tuple(hi):
        raise _fail(src, "constraints.max_backend_version", f"{hi!r} is older than the minimum {lo!r}")
    if p.backend == "openvino" and p.precision is Precision.FP32 and p.knobs.inference_precision != "f32":
        why = "an fp32 profile must pin f32 (CPUs with bf16 otherwise run bf16)"
        raise _fail(src, "openvino.inference_precision", why)
    m = _NAME_RE.match(p.name)
    if m:  # names shaped like device_backend-precision_HxW must say what the file says
        said = (m["backend"], m["precision"], int(m["h"]), int(m["w"]))
        real = (p.backend, p.precision.value, p.io.height, p.io.width)
        if said != real:
            raise _fail(
                src, "name", f"{p.name!r} says {said}, the file says {real} (backend, precision, H, W)"
            )


def version_in_range(p: Profile, version: str) -> bool:
    """Whether a backend version satisfies the profile's min/max constraints (missing bounds are open)."""
    v = version_tuple(version)
    lo, hi = p.constraints.min_backend_version, p.constraints.max_backend_version
    if lo and v < version_tuple(lo):
        return False
    # a max of "8.6" admits 8.6.x: compare only as many parts as the bound gives
    return not (hi and v[: len(version_tuple(hi))] > version_tuple(hi))
