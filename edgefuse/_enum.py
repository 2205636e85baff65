"""A str-valued Enum that prints as its value (``enum.StrEnum`` needs Python 3.11; we support 3.10)."""

from __future__ import annotations

from enum import Enum


class TextEnum(str, Enum):
    """Members compare equal to their strings, serialise to JSON as them, and ``str()`` gives the value."""

    def __str__(self) -> str:
        return str(self.value)
