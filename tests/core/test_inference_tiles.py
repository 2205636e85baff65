"""Tiled inference: the bounded-memory path for huge frames must match the untiled output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import edgefuse.inference as inference
from edgefuse.data import read_visible
from edgefuse.errors import DataError
from edgefuse.inference import fuse, get_model, tiles
from edgefuse.synthetic import SyntheticPairs


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 700),
    w=st.integers(1, 700),
    tile=st.integers(1, 300),
    margin=st.integers(0, 200),
)
def test_tiles_cover_every_pixel_once_on_the_grid(h: int, w: int, tile: int, margin: int) -> None:
    seen = np.zeros((h, w), dtype=np.int32)
    for ys, xs, wy, wx in tiles(h, w, tile, margin):
        seen[ys, xs] += 1
        # the window contains the core and starts on the network's 16-pixel grid
        assert wy.start <= ys.start < ys.stop <= wy.stop <= h
        assert wx.start <= xs.start < xs.stop <= wx.stop <= w
        assert wy.start % 16 == 0 and wx.start % 16 == 0
    assert (seen == 1).all()


def _uint8_pair(n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    vis, ir = SyntheticPairs(n=n, seed=3)[0]
    return (vis * 255 + 0.5).astype(np.uint8), (ir * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("crop", [(480, 640), (301, 517)], ids=["480x640", "301x517"])
def test_tiled_output_matches_untiled(crop: tuple[int, int]) -> None:
    vis, ir = _uint8_pair()
    vis, ir = vis[: crop[0], : crop[1]], ir[: crop[0], : crop[1]]
    model = get_model()
    whole = fuse(vis, ir, model=model)
    tiled = fuse(vis, ir, model=model, tile=128)  # many seams: 4×5 tiles at 480×640
    diff = np.abs(whole.astype(np.int16) - tiled.astype(np.int16))
    assert tiled.shape == whole.shape and tiled.dtype == np.uint8
    assert diff.max() <= 1, f"max |Δ| {diff.max()} levels"
    assert (diff > 0).mean() < 1e-3


def test_float_inputs_tile_to_float_outputs() -> None:
    vis, ir = SyntheticPairs(n=1, seed=4)[0]
    model = get_model()
    whole, tiled = fuse(vis, ir, model=model), fuse(vis, ir, model=model, tile=160)
    assert tiled.dtype == np.float32
    assert float(np.abs(whole - tiled).max()) < 2 / 255


def test_large_frames_tile_automatically_with_bounded_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above TILE_PIXELS the network never sees more than one tile plus its margins."""
    monkeypatch.setattr(inference, "TILE_PIXELS", 200 * 200)
    monkeypatch.setattr(inference, "TILE", 128)
    monkeypatch.setattr(inference, "TILE_MARGIN", 64)
    model = get_model()
    largest = 0

    def record(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        nonlocal largest
        largest = max(largest, args[0].shape[-2] * args[0].shape[-1])

    handle = model.register_forward_pre_hook(record)
    try:
        vis, ir = _uint8_pair()
        out = fuse(vis, ir, model=model)
    finally:
        handle.remove()
    assert out.shape == (480, 640, 3)
    assert largest <= (128 + 2 * 64) ** 2 < 480 * 640


def test_frames_above_the_pixel_limit_are_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgefuse.data as data

    path = tmp_path / "big.png"
    Image.new("L", (300, 200)).save(path)
    monkeypatch.setattr(data, "MAX_PIXELS", 300 * 200 - 1)
    with pytest.raises(DataError, match="MAX_PIXELS"):
        read_visible(path)
    monkeypatch.setattr(data, "MAX_PIXELS", 300 * 200)
    assert read_visible(path).shape == (200, 300, 3)
