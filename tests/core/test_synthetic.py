from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefuse.data import FusionDataset, find_pairs
from edgefuse.synthetic import PAIR_SEED_STRIDE, SyntheticPairs, make_pair, make_scene, write_synthetic

BT601 = np.array([0.299, 0.587, 0.114])


def _ring(mask: np.ndarray, r: int) -> np.ndarray:
    """Pixels within r (4-connected steps) of the mask, outside it: an object's immediate surround."""
    grown = mask.copy()
    for _ in range(r):
        grown[1:] |= grown[:-1].copy()
        grown[:-1] |= grown[1:].copy()
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
    return grown & ~mask


@pytest.mark.parametrize(("h", "w"), [(64, 96), (17, 33), (8, 8)])
def test_shapes_dtypes_and_range(h: int, w: int) -> None:
    vis, ir = make_pair(0, height=h, width=w)
    assert vis.shape == (h, w, 3) and ir.shape == (h, w)
    assert vis.dtype == np.float32 and ir.dtype == np.float32
    for arr in (vis, ir):
        assert np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0


def test_deterministic_by_seed_and_seeds_differ() -> None:
    a, b = make_pair(7, 72, 96), make_pair(7, 72, 96)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = make_pair(8, 72, 96)
    assert np.abs(a[0] - c[0]).mean() > 0.01 and np.abs(a[1] - c[1]).mean() > 0.02


def test_fog_washes_out_visible_contrast_but_not_thermal() -> None:
    for seed in (0, 1, 2):
        clear, foggy = make_scene(seed, 120, 160), make_scene(seed, 120, 160, fog=0.8)
        np.testing.assert_array_equal(clear.thermal, foggy.thermal)
        assert (foggy.visible @ BT601).std() < 0.6 * (clear.visible @ BT601).std()
    stds = [(make_scene(0, 120, 160, fog=f).visible @ BT601).std() for f in (0.0, 0.3, 0.8)]
    assert stds[0] > stds[1] > stds[2] > 0  # more fog, less contrast
    with pytest.raises(ValueError):
        make_pair(0, 64, 64, fog=1.5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_warm_objects_bright_in_thermal_and_low_contrast_in_visible(seed: int) -> None:
    scene = make_scene(seed, 240, 320)
    warm, around = scene.warm, _ring(scene.warm, 4)
    assert warm.sum() > 50  # people and cars were drawn
    gray = scene.visible @ BT601
    thermal_contrast = scene.thermal[warm].mean() - scene.thermal[around].mean()
    visible_contrast = abs(gray[warm].mean() - gray[around].mean())
    assert thermal_contrast > 0.15
    assert scene.thermal[warm].mean() > scene.thermal[~warm].mean() + 0.2
    assert visible_contrast < thermal_contrast / 4


@pytest.mark.parametrize("seed", [0, 5])
def test_lights_bright_in_visible_but_not_warm(seed: int) -> None:
    scene = make_scene(seed, 240, 320)
    lights = scene.lights
    assert lights.sum() > 20
    gray = scene.visible @ BT601
    assert gray[lights].mean() > gray[~lights].mean() + 0.4
    assert scene.thermal[lights].mean() < scene.thermal[scene.warm].mean() - 0.15


def test_synthetic_pairs_interface() -> None:
    pairs = SyntheticPairs(n=3, seed=2, height=32, width=48)
    assert len(pairs) == 3 and pairs.synthetic is True
    assert pairs.name == "synthetic(seed=2,n=3,48x32)"
    assert [p.stem for p in pairs.pairs] == ["synthetic_0000", "synthetic_0001", "synthetic_0002"]
    vis, ir = pairs[1]
    np.testing.assert_array_equal(vis, make_pair(2 * PAIR_SEED_STRIDE + 1, 32, 48)[0])
    np.testing.assert_array_equal(ir, pairs[-2][1])
    assert not np.array_equal(pairs[0][1], ir)
    with pytest.raises(IndexError):
        pairs[3]
    assert "fog=0.5" in SyntheticPairs(n=1, fog=0.5, height=16, width=16).name
    item = FusionDataset(pairs, crop=16, seed=0)[2]
    assert item["visible"].shape == (3, 16, 16) and item["stem"] == "synthetic_0002"


def test_write_synthetic_round_trips_through_find_pairs(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "syn", n=2, seed=1, height=24, width=40)
    folder = find_pairs(root)
    assert [p.stem for p in folder.pairs] == ["synthetic_0000", "synthetic_0001"]
    assert not list(root.rglob("*.tmp*")) and len(list(root.rglob("*.png"))) == 4
    vis, ir = folder[1]
    ref_vis, ref_ir = SyntheticPairs(n=2, seed=1, height=24, width=40)[1]
    np.testing.assert_allclose(vis, ref_vis, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(ir, ref_ir, atol=0.5 / 255 + 1e-6)
