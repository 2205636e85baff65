"""Hardware profiles: one TOML per device × backend × precision × input size (this package's data files).

Each profile says what to build (backend, precision, IO size, opset, backend knobs), what data calibrates an
int8 build, and the budgets a build must meet: latency derived from the device's published figures (the
arithmetic is in each file's ``latency.derivation``), drift against the PyTorch fp32 reference. The loader
lives here, not in ``edgefuse/profiles.py``: that module would shadow (editable installs) or be shadowed by
(wheels) this package of the same import name. Schema and budget derivations: README.md beside this file.
"""

from __future__ import annotations

import difflib
import functools
from importlib import resources
from pathlib import Path

import tomllib

from edgefuse.errors import ProfileError
from edgefuse.profiles.schema import (
    Calibration,
    Constraints,
    Device,
    DriftBudget,
    LatencyBudget,
    Precision,
    Profile,
    parse_profile,
    version_in_range,
)

__all__ = [
    "ALIASES",
    "Calibration",
    "Constraints",
    "Device",
    "DriftBudget",
    "LatencyBudget",
    "Precision",
    "Profile",
    "get_profile",
    "list_profiles",
    "load_profile",
    "parse_profile",
    "profile_names",
    "resolve_target",
    "version_in_range",
]


def load_profile(path: str | Path) -> Profile:
    """Load and validate one profile TOML (a user's own file or a bundled one)."""
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from None
    return parse_profile(data, str(path), stem=path.stem)


@functools.lru_cache(maxsize=1)
def _bundled() -> tuple[Profile, ...]:
    root = resources.files(__name__)
    files = sorted((f for f in root.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    return tuple(load_profile(Path(str(f))) for f in files)


def list_profiles() -> list[Profile]:
    """Every bundled profile, sorted by name."""
    return list(_bundled())


def profile_names() -> list[str]:
    return [p.name for p in _bundled()]


# family alias -> bundled profile names (tests check each name exists)
ALIASES: dict[str, tuple[str, ...]] = {
    "jetson": (
        "jetson-orin-nano_tensorrt-fp16_480x640",
        "jetson-orin-nano_tensorrt-int8_480x640",
        "jetson-agx-orin_tensorrt-fp16_480x640",
        "jetson-agx-orin_tensorrt-int8_480x640",
        "jetson-nano_tensorrt-fp16_480x640",
    ),
    "desktop-gpu": ("rtx4090_tensorrt-fp16_480x640", "rtx3060_tensorrt-fp16_480x640"),
    "intel-cpu": (
        "intel-cpu_openvino-fp32_480x640",
        "intel-cpu_openvino-fp16_480x640",
        "intel-cpu_openvino-int8_480x640",
    ),
    "apple": ("apple-m2_coreml-fp16_480x640",),
    "arm": ("rpi5_litert-int8_480x640", "rpi5_litert-fp16_480x640"),
    "rpi5": ("rpi5_litert-int8_480x640", "rpi5_litert-fp16_480x640"),
    "onnx": ("generic-cpu_onnxruntime-fp32_480x640", "generic-cpu_onnxruntime-int8_480x640"),
}


def get_profile(name_or_path: str | Path) -> Profile:
    """A bundled profile by name, or a user's TOML by path."""
    text = str(name_or_path)
    by_name = {p.name: p for p in _bundled()}
    if text in by_name:
        return by_name[text]
    if text.endswith(".toml") or Path(text).expanduser().is_file():
        return load_profile(text)
    raise ProfileError(f"unknown profile {text!r}{_suggest(text)}")


def resolve_target(target: str) -> list[Profile]:
    """A profile name, a TOML path, a family alias (jetson, desktop-gpu, intel-cpu, apple, arm, onnx, all),
    or several of those joined by commas -> profiles, duplicates dropped, in the order given."""
    out: list[Profile] = []
    for part in (t.strip() for t in target.split(",")):
        if not part:
            continue
        if part == "all":
            found = list_profiles()
        elif part in ALIASES:
            found = [get_profile(n) for n in ALIASES[part]]
        else:
            found = [get_profile(part)]
        out.extend(p for p in found if p not in out)
    if not out:
        raise ProfileError(f"no target given{_suggest('')}")
    return out


def _suggest(text: str) -> str:
    known = [*ALIASES, "all", *profile_names()]
    # a substring first ("orin" -> the orin profiles), then spelling neighbours ("jetsn" -> jetson)
    close = [k for k in known if text and text.lower() in k][:3]
    close += [k for k in difflib.get_close_matches(text, known, n=3, cutoff=0.5) if k not in close]
    close = close[:3]
    if close:
        return f"; did you mean {', '.join(close)}?"
    return f"; known aliases: {', '.join([*ALIASES, 'all'])} (edgefuse profiles list shows every name)"
