"""Plug-and-play helpers: fuse numpy / PIL images of any size with the student."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgefuse.color import BT601_F32
from edgefuse.errors import DataError, NonFiniteOutputError
from edgefuse.spec import MULTIPLE

_MODELS: dict[tuple[str, str], torch.nn.Module] = {}

# Frames above TILE_PIXELS run tile by tile, so the network's activations (~100 bytes per pixel untiled)
# stay bounded by the tile whatever the frame size; what remains is the frame's own arrays (~20 bytes/px).
# Each tile sees TILE_MARGIN extra pixels of context on every side, cropped off afterwards; tile origins
# sit on the network's 16-pixel grid so the strided convolutions sample exactly as they do untiled.
TILE = 1024
TILE_MARGIN = 128
TILE_PIXELS = 2048 * 2048


def load_image(path: str | os.PathLike[str], kind: str = "visible") -> np.ndarray:
    """Read a visible (H×W×3) or thermal (H×W) image as float32 in [0, 1]."""
    from edgefuse import data

    return data.read_visible(path) if kind == "visible" else data.read_thermal(path)


def _as_float(img: Any, channels: int) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    else:
        arr = arr.astype(np.float32, copy=False)
    if channels == 3:
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise DataError(f"visible image must be H×W×3, got shape {arr.shape}")
        arr = arr[..., :3]
    else:
        if arr.ndim == 3:
            # 3-channel gray (or colour-mapped) thermal: BT.601 luminance
            arr = arr[..., :3] @ BT601_F32
        if arr.ndim != 2:
            raise DataError(f"thermal image must be H×W, got shape {arr.shape}")
    return np.clip(arr, 0.0, 1.0)


def to_tensors(
    visible: np.ndarray, thermal: np.ndarray, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.from_numpy(np.ascontiguousarray(visible.transpose(2, 0, 1))).unsqueeze(0).to(device)
    t = torch.from_numpy(np.ascontiguousarray(thermal)).unsqueeze(0).unsqueeze(0).to(device)
    return v, t


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad H and W up to a multiple (replicate: no false edges for the network to fuse)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def get_model(checkpoint: str | None = None, device: str = "cpu") -> torch.nn.Module:
    from edgefuse.checkpoint import DEFAULT_CHECKPOINT, load_model

    key = (str(checkpoint or DEFAULT_CHECKPOINT), device)
    if key not in _MODELS:
        _MODELS[key] = load_model(key[0], map_location=device).model
    return _MODELS[key]


@torch.inference_mode()
def fuse_tensors(model: torch.nn.Module, visible: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
    """Any-size N×3×H×W / N×1×H×W tensors: pad to the network's multiple, run, crop back."""
    if visible.shape[-2:] != thermal.shape[-2:]:
        raise DataError(
            f"visible {tuple(visible.shape[-2:])} and thermal {tuple(thermal.shape[-2:])} sizes differ"
        )
    v, (h, w) = pad_to_multiple(visible)
    t, _ = pad_to_multiple(thermal)
    out = model(v, t)[..., :h, :w]
    if not torch.isfinite(out).all():
        raise NonFiniteOutputError("the model produced NaN/Inf values (corrupt weights or inputs?)")
    return out


Tile = tuple[slice, slice, slice, slice]


def tiles(height: int, width: int, tile: int = TILE, margin: int = TILE_MARGIN) -> list[Tile]:
    """(y, x) slices of each tile's core and of its context window (core + margin, clipped to the frame).

    ``tile`` and ``margin`` are rounded up to the network's multiple so every window starts on its grid.
    """
    tile = -(-max(tile, MULTIPLE) // MULTIPLE) * MULTIPLE
    margin = -(-max(margin, 0) // MULTIPLE) * MULTIPLE
    out: list[Tile] = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            wy0, wx0 = max(0, y0 - margin), max(0, x0 - margin)
            wy1, wx1 = min(height, y1 + margin), min(width, x1 + margin)
            out.append((slice(y0, y1), slice(x0, x1), slice(wy0, wy1), slice(wx0, wx1)))
    return out


def fuse(
    visible: Any,
    thermal: Any,
    model: torch.nn.Module | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
    tile: int | None = None,
) -> np.ndarray:
    """Fuse one pair given as numpy arrays or PIL images (uint8 or float in [0,1]); any size.

    Returns H×W×3 RGB: uint8 if the visible input was uint8 (or PIL), else float32 in [0, 1].
    Frames above ``TILE_PIXELS`` (or any frame when ``tile`` is given) run tile by tile with
    ``TILE_MARGIN`` pixels of context, so memory stays bounded; tiled output matches the untiled one to
    within a few 8-bit levels near tile seams (``tests/core/test_inference_tiles.py``).
    """
    as_uint8 = not isinstance(visible, np.ndarray) or visible.dtype == np.uint8
    vis, ir = _as_float(visible, 3), _as_float(thermal, 1)
    if vis.shape[:2] != ir.shape[:2]:
        raise DataError(
            f"visible {vis.shape[1]}×{vis.shape[0]} and thermal {ir.shape[1]}×{ir.shape[0]} sizes differ"
        )
    net = model if model is not None else get_model(checkpoint, device)
    dev = str(next(net.parameters()).device)
    h, w = ir.shape
    if tile is None and h * w <= TILE_PIXELS:
        out = fuse_tensors(net, *to_tensors(vis, ir, dev))[0].permute(1, 2, 0).float().cpu().numpy()
        return to_uint8(out) if as_uint8 else out
    result = np.empty((h, w, 3), dtype=np.uint8 if as_uint8 else np.float32)
    for ys, xs, wy, wx in tiles(h, w, tile or TILE, TILE_MARGIN):
        part = fuse_tensors(net, *to_tensors(vis[wy, wx], ir[wy, wx], dev))[0].permute(1, 2, 0).float()
        core = part[ys.start - wy.start : ys.stop - wy.start, xs.start - wx.start : xs.stop - wx.start]
        core_np = core.cpu().numpy()
        result[ys, xs] = to_uint8(core_np) if as_uint8 else core_np
    return result


def resize_gray(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float H×W image to ``size`` = (H, W)."""
    from PIL import Image

    return np.asarray(
        Image.fromarray(img.astype(np.float32), mode="F").resize(size[::-1], Image.Resampling.BILINEAR)
    )


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
