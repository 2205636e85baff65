"""The backend registry: one :class:`BackendSpec` per backend says everything the rest of edgefuse needs
to know about it (aliases, the extra to install, its packages, its profile knobs, the devices it runs on,
its converter and its runtime).

Profiles, ``edgefuse doctor``, the benchmark, :mod:`edgefuse._optional`, the exporters and the runtimes
all read from here, so adding a backend is one converter module, one runtime module *with the same module
name*, one :func:`register` call and one profile TOML (README, "Adding a backend"). The built-in entries
live in :mod:`edgefuse.backends`. Converter and runtime are "module:Class" strings, imported on first use,
so a backend whose SDK is missing never breaks the others.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgefuse.errors import ExportError


@dataclass(frozen=True)
class BackendSpec:
    """One backend. ``converter`` is None for a runtime that runs checkpoints only (torch)."""

    name: str
    runtime: str  # "package.module:Class" of the runtime (edgefuse.runtimes.<module>)
    converter: str | None = None  # "package.module:Class" of the exporter (edgefuse.exporters.<module>)
    aliases: tuple[str, ...] = ()  # other spellings a manifest, a profile or a user may give
    extra: str = ""  # pip install "edgefuse[extra]" provides ``modules`` ("" = a core dependency)
    modules: Mapping[str, str] = field(default_factory=dict)  # import name -> pip distribution
    converter_tools: tuple[str, ...] = ()  # distributions ``edgefuse doctor`` lists as converters
    report_packages: tuple[str, ...] = ()  # distributions whose versions a bench report records
    knobs: type | None = None  # frozen dataclass of the profile's [<name>] table
    devices: tuple[str, ...] = ("cpu",)  # device kinds the runtime runs on ("cpu", "cuda")
    deploy: str = ""  # what to do with an exported artifact on its device (edgefuse export prints it)

    def __post_init__(self) -> None:
        if self.converter is not None and _module_name(self.converter) != _module_name(self.runtime):
            raise ValueError(
                f"backend {self.name!r}: converter {self.converter!r} and runtime {self.runtime!r} "
                "must be modules with the same name"
            )
        if self.converter is not None and self.knobs is None:
            raise ValueError(f"backend {self.name!r}: an exportable backend needs a knobs dataclass")

    @property
    def exportable(self) -> bool:
        return self.converter is not None

    @property
    def module(self) -> str:
        """The module name converter and runtime share (``onnxruntime``, ``litert``, ...)."""
        return _module_name(self.runtime)

    def runtime_class(self) -> type[Any]:
        return _load(self.runtime)

    def converter_class(self) -> type[Any]:
        if self.converter is None:
            raise ExportError(f"backend {self.name!r} has no converter (it runs checkpoints only)")
        return _load(self.converter)


_SPECS: dict[str, BackendSpec] = {}
_ALIASES: dict[str, str] = {}


def _module_name(target: str) -> str:
    return target.partition(":")[0].rsplit(".", 1)[-1]


def _load(target: str) -> type[Any]:
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def register(spec: BackendSpec) -> BackendSpec:
    """Add a backend; a name or alias already taken by another backend is an error."""
    for key in (spec.name, *spec.aliases):
        owner = _SPECS[key].name if key in _SPECS else _ALIASES.get(key)
        if owner is not None and owner != spec.name:
            raise ValueError(f"backend name {key!r} is taken by {owner!r}")
    _SPECS[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def unregister(name: str) -> None:
    """Remove a backend (tests registering a toy backend clean up with this)."""
    spec = _SPECS.pop(name)
    for alias in spec.aliases:
        _ALIASES.pop(alias, None)


def canonical(name: str) -> str | None:
    """The registered name for a name or alias (any case), or None."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in _SPECS else None


def suggest(name: str, exportable: bool = False) -> str:
    """ "; did you mean ...?" or "; known: ..." for an unknown name."""
    names = list(names_of(exportable))
    aliases = [a for a, n in _ALIASES.items() if n in names]
    close = difflib.get_close_matches(name.strip().lower(), [*names, *aliases], n=2)
    return f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(names)}"


def get(name: str) -> BackendSpec:
    """The spec for a name or alias; :class:`KeyError` naming the known ones otherwise."""
    key = canonical(name)
    if key is None:
        raise KeyError(f"unknown backend {name!r}{suggest(name)}")
    return _SPECS[key]


def specs(exportable: bool = False) -> tuple[BackendSpec, ...]:
    """Every registered backend in registration order (``exportable``: only those with a converter)."""
    return tuple(s for s in _SPECS.values() if s.exportable or not exportable)


def names_of(exportable: bool = False) -> tuple[str, ...]:
    return tuple(s.name for s in specs(exportable))


def aliases() -> dict[str, str]:
    return dict(_ALIASES)


def runs_on(name: str, device: str) -> bool:
    """Whether backend ``name`` runs on ``device`` ("cpu", "cuda", "cuda:1", ...)."""
    return device.split(":")[0] in get(name).devices


def distribution(module: str) -> tuple[str, str] | None:
    """(pip distribution, extra) of an import name that some backend provides, or None."""
    top = module.split(".")[0]
    for spec in _SPECS.values():
        if top in spec.modules:
            return spec.modules[top], spec.extra
    return None
