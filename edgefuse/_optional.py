"""Lazy imports of optional backends, with an error that names the extra to install."""

from __future__ import annotations

import importlib
import re
from types import ModuleType

from edgefuse import backends
from edgefuse.errors import MissingExtraError

# modules no backend provides: module name -> (pip package, edgefuse extra); backends' own packages and
# extras come from their registry entries (edgefuse.backends)
OTHER_EXTRAS: dict[str, tuple[str, str]] = {
    "cv2": ("opencv-python-headless", "video"),
    "diffusers": ("diffusers", "teacher"),
    # not in an extra: timm pulls torchvision, which must match the installed torch exactly
    "timm": ("timm", ""),
}


def extra_for(module: str) -> tuple[str, str]:
    """(pip package, edgefuse extra) that provides ``module`` (extra "all" when nothing says)."""
    top = module.split(".")[0]
    return backends.distribution(top) or OTHER_EXTRAS.get(top, (module, "all"))


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package, extra = extra_for(module)
        raise MissingExtraError(package, extra, reason=str(exc).splitlines()[0]) from exc


def available(module: str) -> tuple[bool, str]:
    """(importable, reason-or-version) without raising."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a broken install can raise more than ImportError; report it
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return True, str(getattr(mod, "__version__", "unknown version"))


def version_tuple(text: str) -> tuple[int, ...]:
    """The first three numbers of a version string: "2024.4.0-16579" -> (2024, 4, 0), "8.6" -> (8, 6)."""
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])
