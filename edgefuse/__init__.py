"""edgefuse: FusionProxy, a tiny real-time infrared+visible fusion student, and the tools to deploy it.

Attributes load lazily (PEP 562) so that ``edgefuse --help`` does not pay for importing torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "FusionProxy": "edgefuse.model",
    "create_model": "edgefuse.model",
    "fuse": "edgefuse.inference",
    "load_image": "edgefuse.inference",
}

__all__ = ["FusionProxy", "__version__", "create_model", "fuse", "load_image"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgefuse' has no attribute {name!r}")
