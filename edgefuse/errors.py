"""A tiny exception hierarchy whose ``str()`` is the one line a user reads."""

from __future__ import annotations


class EdgefuseError(Exception):
    """Base class: the CLI prints ``str(err)`` on one line and exits non-zero."""


class CheckpointError(EdgefuseError):
    """A checkpoint file is missing, corrupt, foreign or does not match the model."""


class DataError(EdgefuseError):
    """An image or a paired folder cannot be read, or a pair does not match."""


class ProfileError(EdgefuseError):
    """A hardware profile is malformed or unknown."""


class MissingExtraError(EdgefuseError):
    """An optional backend is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, reason: str = "") -> None:
        # no extra: a package we deliberately leave out of every extra (e.g. timm pins torchvision)
        hint = f'pip install "edgefuse[{extra}]"' if extra else f"pip install {package}"
        msg = f"{package} is not installed; install it with: {hint}"
        if reason:
            msg = f"{msg} ({reason})"
        super().__init__(msg)
        self.package = package
        self.extra = extra


class ExportError(EdgefuseError):
    """Conversion failed, or the exported artifact failed validation."""


class RuntimeUnavailableError(EdgefuseError):
    """A backend cannot run on this host (missing library, wrong OS, no GPU)."""


class ArtifactMismatchError(EdgefuseError):
    """An artifact's edgefuse.json does not match the checkpoint or IO spec asked for."""


class NonFiniteOutputError(EdgefuseError):
    """A model produced NaN or Inf values."""
