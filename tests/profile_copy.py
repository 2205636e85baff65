"""A bundled profile rewritten for a small input size, written as a TOML file (shared by the CLI tests)."""

from __future__ import annotations

import re
from pathlib import Path

from edgefuse.profiles import get_profile


def small_profile_file(
    directory: Path, bundled: str, height: int, width: int, count: int, **keys: float
) -> Path:
    """``bundled`` at ``height``×``width`` with ``count`` calibration pairs; ``keys`` replace other values."""
    name = bundled.replace("480x640", f"{height}x{width}")
    text = Path(get_profile(bundled).source).read_text(encoding="utf-8")
    text = re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', text)
    text = re.sub(r"(?m)^height = \d+$", f"height = {height}", text)
    text = re.sub(r"(?m)^width = \d+$", f"width = {width}", text)
    text = re.sub(r"(?m)^count = \d+$", f"count = {count}", text)
    for key, value in keys.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path
