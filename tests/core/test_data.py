from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgefuse.data import (
    FusionDataset,
    PairedFolder,
    find_pairs,
    open_pairs,
    read_thermal,
    read_visible,
    split_pairs,
)
from edgefuse.errors import DataError
from edgefuse.synthetic import SyntheticPairs


def _save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _folder(root: Path, vis: str, ir: str, stems=("a", "b"), size=(24, 32)) -> Path:
    rng = np.random.default_rng(1)
    for stem in stems:
        _save(root / vis / f"{stem}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        _save(root / ir / f"{stem}.png", rng.integers(0, 256, size, dtype=np.uint8))
    return root


# --- layouts and matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vis", "ir"),
    [
        ("vi", "ir"),
        ("visible", "infrared"),
        ("Vis", "Ir"),
        ("VI", "IR"),
        ("vis", "ir"),
        ("Vi", "iR"),
        ("crop_LR_visible", "cropinfrared"),
    ],
)
def test_layouts_are_detected(tmp_path: Path, vis: str, ir: str) -> None:
    folder = find_pairs(_folder(tmp_path, vis, ir))
    assert (folder.layout[0].name, folder.layout[1].name) == (vis, ir)
    assert [p.stem for p in folder.pairs] == ["a", "b"]
    assert folder.name == tmp_path.name and folder.synthetic is False
    v, t = folder[1]
    assert v.shape == (24, 32, 3) and t.shape == (24, 32)
    assert v.dtype == np.float32 and t.dtype == np.float32


def test_no_layout_lists_what_was_looked_for(tmp_path: Path) -> None:
    _folder(tmp_path, "rgb_frames", "thermal_frames")
    with pytest.raises(DataError, match="no known paired layout") as err:
        find_pairs(tmp_path)
    msg = str(err.value)
    assert "vi/+ir/" in msg and "crop_LR_visible/+cropinfrared/" in msg and "\n" not in msg
    with pytest.raises(DataError, match="not found"):
        find_pairs(tmp_path / "missing")


def test_stems_match_across_extensions_and_unmatched_are_reported(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img3, img1 = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), rng.integers(0, 256, (8, 8), dtype=np.uint8)
    for name in ("a.png", "b.JPG", "c.bmp", "only_vis.png"):
        _save(tmp_path / "vi" / name, img3)
    for name in ("a.tif", "b.jpeg", "c.PNG", "only_ir.tiff"):
        _save(tmp_path / "ir" / name, img1)
    (tmp_path / "vi" / "notes.txt").write_text("not an image")
    folder = find_pairs(tmp_path)
    assert [p.stem for p in folder.pairs] == ["a", "b", "c"]
    assert folder.pairs[1].visible.name == "b.JPG" and folder.pairs[1].thermal.name == "b.jpeg"
    assert folder.unmatched == {"visible": ["only_vis"], "thermal": ["only_ir"]}
    assert len(folder) == 3


def test_zero_pairs_and_duplicate_stems_are_errors(tmp_path: Path) -> None:
    _folder(tmp_path / "x", "vi", "ir", stems=("a",))
    (tmp_path / "x" / "ir" / "a.png").rename(tmp_path / "x" / "ir" / "z.png")
    with pytest.raises(DataError, match="no pairs with matching stems"):
        find_pairs(tmp_path / "x")
    _folder(tmp_path / "y", "vi", "ir", stems=("a",))
    _save(tmp_path / "y" / "vi" / "a.jpg", np.zeros((24, 32, 3), np.uint8))
    with pytest.raises(DataError, match="share the stem 'a'"):
        find_pairs(tmp_path / "y")


# --- decoding -------------------------------------------------------------------------------------------


def test_unreadable_and_truncated_files_name_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png")
    with pytest.raises(DataError) as err:
        read_visible(garbage)
    assert str(garbage) in str(err.value) and "\n" not in str(err.value)

    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    good = _save(tmp_path / "good.jpg", noise)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: cannot read image"):
        read_thermal(cut)
    with pytest.raises(DataError, match="not found"):
        read_visible(tmp_path / "nope.png")


def test_unreadable_file_in_a_folder(tiny_pairs: Path) -> None:
    (tiny_pairs / "ir" / "0002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    folder = find_pairs(tiny_pairs)
    folder[0]  # the others still load
    with pytest.raises(DataError, match=r"0002\.png: cannot read image"):
        folder[2]


def test_size_mismatch_names_both_files_unless_resize_ir(tiny_pairs: Path) -> None:
    ir = np.linspace(0, 255, 20 * 28).reshape(20, 28).astype(np.uint8)
    _save(tiny_pairs / "ir" / "0001.png", ir)
    with pytest.raises(DataError) as err:
        find_pairs(tiny_pairs)[1]
    msg = str(err.value)
    assert "vi/0001.png is 56×40" in msg and "ir/0001.png is 28×20" in msg and "\n" not in msg
    vis, therm = find_pairs(tiny_pairs, resize_ir=True)[1]
    assert vis.shape == (40, 56, 3) and therm.shape == (40, 56)
    assert therm.dtype == np.float32 and therm.min() >= 0.0 and therm.max() <= 1.0
    assert therm[:, 0].mean() < therm[:, -1].mean()  # the gradient survived the bilinear resize


def test_thermal_as_three_channel_gray_and_colour(tmp_path: Path) -> None:
    gray = np.random.default_rng(0).integers(0, 256, (16, 20), dtype=np.uint8)
    path = _save(tmp_path / "g.png", np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_allclose(read_thermal(path), gray / 255.0, atol=1e-5)
    colour = _save(tmp_path / "c.png", np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8))
    np.testing.assert_allclose(read_thermal(colour)[0], [0.299, 0.587, 0.114], atol=1e-5)


def test_thermal_16bit_png(tmp_path: Path) -> None:
    raw = np.array([[0, 1000, 30000], [40000, 65000, 65535]], dtype=np.uint16)
    path = tmp_path / "t16.png"
    Image.fromarray(raw).save(path)
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_allclose(read_thermal(path), raw / 65535.0, atol=1e-6)


def test_visible_gray_and_rgba_become_rgb(tmp_path: Path) -> None:
    gray = _save(tmp_path / "g.png", np.full((4, 5), 51, np.uint8))
    assert read_visible(gray).shape == (4, 5, 3) and np.allclose(read_visible(gray), 0.2)
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 10
    out = read_visible(_save(tmp_path / "a.png", rgba))
    assert out.shape == (4, 5, 3) and np.allclose(out[..., 0], 1.0) and np.allclose(out[..., 1:], 0.0)


# --- splits ---------------------------------------------------------------------------------------------


def test_split_is_deterministic_and_stable_when_files_are_added() -> None:
    stems = [f"img_{i:03d}" for i in range(200)]
    train, val = split_pairs(stems, val_fraction=0.2, seed=0)
    assert (train, val) == split_pairs(list(stems), val_fraction=0.2, seed=0)
    assert sorted(train + val) == stems and not set(train) & set(val)
    assert 20 <= len(val) <= 60
    assert split_pairs(stems, 0.2, seed=1)[1] != val
    more = stems + [f"new_{i:03d}" for i in range(50)]
    train2, val2 = split_pairs(more, val_fraction=0.2, seed=0)
    assert set(val) <= set(val2) and set(train) <= set(train2)


def test_split_keeps_both_sides_non_empty_and_accepts_pairs(tiny_pairs: Path) -> None:
    folder = find_pairs(tiny_pairs)
    for seed in range(20):
        train, val = split_pairs(folder.pairs, val_fraction=0.2, seed=seed)
        assert train and val and len(train) + len(val) == 4
        assert all(hasattr(p, "visible") for p in train + val)
    assert split_pairs(["a", "b"], val_fraction=0.0) == (["a", "b"], [])
    with pytest.raises(DataError):
        split_pairs(["a"], val_fraction=1.5)


# --- torch dataset --------------------------------------------------------------------------------------


@pytest.fixture
def registered(tmp_path: Path) -> PairedFolder:
    """Pairs whose thermal frame equals the red channel, so crops/flips can be checked for registration."""
    rng = np.random.default_rng(3)
    for i, size in enumerate([(48, 64), (40, 50), (20, 30)]):
        vis = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        _save(tmp_path / "vi" / f"{i}.png", vis)
        _save(tmp_path / "ir" / f"{i}.png", vis[..., 0].copy())
    return find_pairs(tmp_path)


def test_dataset_crops_are_registered_shaped_and_padded(registered: PairedFolder) -> None:
    ds = FusionDataset(registered, crop=32, train=True, seed=0)
    assert len(ds) == 3
    for epoch in range(3):
        ds.set_epoch(epoch)
        for k in range(len(ds)):
            item = ds[k]
            assert item["visible"].shape == (3, 32, 32) and item["thermal"].shape == (1, 32, 32)
            assert item["visible"].dtype == torch.float32 and item["stem"] == str(k)
            torch.testing.assert_close(item["thermal"][0], item["visible"][0])  # same crop, same flip
    small = FusionDataset(registered, indices=[2], crop=(24, 40), train=False)[0]  # 20×30 image, padded
    assert small["visible"].shape == (3, 24, 40)
    torch.testing.assert_close(small["thermal"][0], small["visible"][0])


def test_dataset_randomness_is_seeded_by_seed_epoch_and_index(registered: PairedFolder) -> None:
    a, b = FusionDataset(registered, crop=16, seed=5), FusionDataset(registered, crop=16, seed=5)
    torch.testing.assert_close(a[0]["visible"], b[0]["visible"])
    seen = set()
    for epoch in range(12):
        a.set_epoch(epoch)
        seen.add(a[0]["visible"].numpy().tobytes())
    assert len(seen) > 6  # crops and flips change from epoch to epoch
    a.set_epoch(3)
    b.set_epoch(3)
    torch.testing.assert_close(a[1]["visible"], b[1]["visible"])
    other = FusionDataset(registered, crop=16, seed=6)
    other.set_epoch(3)
    assert not torch.equal(other[1]["visible"], a[1]["visible"])


def test_night_augmentation_darkens_the_visible_crop_only(registered: PairedFolder) -> None:
    """night=1 darkens every training crop's visible frame (V**γ), same crop, thermal untouched; night=0 is
    the old stream exactly; evaluation crops are never darkened."""
    day, night = (
        FusionDataset(registered, crop=32, seed=2),
        FusionDataset(registered, crop=32, seed=2, night=1.0),
    )
    for epoch in (0, 1):
        day.set_epoch(epoch)
        night.set_epoch(epoch)
        for k in range(3):
            d, n = day[k], night[k]
            torch.testing.assert_close(n["thermal"], d["thermal"])
            v, nv = d["visible"].clamp(0, 1), n["visible"]
            torch.testing.assert_close(nv * 255, torch.round(nv * 255))  # 8-bit levels, as a camera stores
            assert (nv <= v + 0.5 / 255).all()
            inner = (nv > 40 / 255) & (v < 0.95)  # away from the levels' rounding: one γ per crop, in range
            gamma = torch.log(nv[inner]) / torch.log(v[inner])
            assert gamma.median() >= 1.5 - 0.05 and gamma.median() <= 3.5 + 0.05
            assert gamma.max() - gamma.min() < 0.5
    torch.testing.assert_close(
        FusionDataset(registered, crop=32, seed=2, night=0.0)[0]["visible"],
        FusionDataset(registered, crop=32, seed=2)[0]["visible"],
    )
    evaluation = FusionDataset(registered, crop=32, train=False, night=1.0)[0]
    torch.testing.assert_close(
        evaluation["visible"], FusionDataset(registered, crop=32, train=False)[0]["visible"]
    )
    half = FusionDataset(registered, indices=[0] * 40, crop=16, seed=0, night=0.5)
    base = FusionDataset(registered, indices=[0] * 40, crop=16, seed=0)
    darker = sum(not torch.equal(half[k]["visible"], base[k]["visible"]) for k in range(40))
    assert 8 < darker < 32  # about half of the crops


def test_night_noise_is_bounded_quantized_and_seeded() -> None:
    from edgefuse.augment import night_visible

    vis = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    clean = night_visible(vis, np.random.default_rng(1))
    noisy = night_visible(vis, np.random.default_rng(1), noise=0.05)
    again = night_visible(vis, np.random.default_rng(1), noise=0.05)
    np.testing.assert_array_equal(noisy, again)  # same generator, same frame
    assert not np.array_equal(noisy, clean) and noisy.min() >= 0.0 and noisy.max() <= 1.0
    np.testing.assert_allclose(noisy * 255, np.round(noisy * 255), atol=1e-4)
    assert np.abs(noisy - clean).mean() < 0.05  # std at most 0.05


def test_dark_thermal_moves_the_level_and_keeps_the_contrast() -> None:
    from edgefuse.augment import THERMAL_LEVEL, dark_thermal

    rng = np.random.default_rng(0)
    ir = np.round((0.45 + 0.1 * rng.standard_normal((32, 32))).clip(0, 1) * 255).astype(np.float32) / 255
    out = dark_thermal(ir, np.random.default_rng(3))
    np.testing.assert_array_equal(out, dark_thermal(ir, np.random.default_rng(3)))  # seeded
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-4)  # 8-bit levels
    inside = (out > 0) & (out < 1)  # where nothing clipped, a pure shift: the contrast is kept
    shift = out[inside] - ir[inside]
    assert float(shift.max() - shift.min()) < 1.5 / 255
    lo, hi = THERMAL_LEVEL
    assert lo - 0.02 < float(out.mean()) < hi + 0.02


def test_dataset_thermal_level_is_train_only_and_off_by_default(registered: PairedFolder) -> None:
    base = FusionDataset(registered, indices=[0] * 40, crop=16, seed=0, night=0.5)
    moved = FusionDataset(registered, indices=[0] * 40, crop=16, seed=0, night=0.5, thermal_level=0.5)
    changed = sum(not torch.equal(moved[k]["thermal"], base[k]["thermal"]) for k in range(40))
    assert 8 < changed < 32  # about half of the crops
    # the visible frames (crops, flips, night draws) are those of the run without it
    assert all(torch.equal(moved[k]["visible"], base[k]["visible"]) for k in range(40))
    evaluation = FusionDataset(registered, crop=32, train=False, thermal_level=1.0)[0]
    torch.testing.assert_close(
        evaluation["thermal"], FusionDataset(registered, crop=32, train=False)[0]["thermal"]
    )


def test_dataset_eval_gives_centre_crops_or_full_images(registered: PairedFolder) -> None:
    vis, _ = registered[0]
    item = FusionDataset(registered, crop=32, train=False)[0]
    expected = torch.from_numpy(vis[8:40, 16:48].transpose(2, 0, 1).copy())
    torch.testing.assert_close(item["visible"], expected)
    full = FusionDataset(registered, indices=[1], crop=None, train=False)[0]
    assert full["visible"].shape == (3, 40, 50) and full["thermal"].shape == (1, 40, 50)


def test_set_epoch_reaches_persistent_workers(registered: PairedFolder) -> None:
    ds = FusionDataset(registered, crop=16, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1, persistent_workers=True)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        batch = next(iter(loader))
        torch.testing.assert_close(batch["visible"], torch.stack([ds[k]["visible"] for k in range(3)]))


def test_dataset_cache_keeps_decoded_images(tiny_pairs: Path) -> None:
    ds = FusionDataset(find_pairs(tiny_pairs), crop=16, cache=True)
    first = ds[0]["visible"]
    for path in (tiny_pairs / "vi").iterdir():
        path.unlink()
    torch.testing.assert_close(ds[0]["visible"], first)


def test_open_pairs(tiny_pairs: Path) -> None:
    assert isinstance(open_pairs(tiny_pairs), PairedFolder)
    for data in (None, "synthetic"):
        syn = open_pairs(data, n=3, seed=2)
        assert isinstance(syn, SyntheticPairs) and len(syn) == 3 and syn.synthetic
        assert "synthetic" in syn.name


# --- real pairs -----------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_roadscene_loads_171_pairs(roadscene: Path) -> None:
    folder = find_pairs(roadscene)
    assert len(folder) == 171 and folder.unmatched == {"visible": [], "thermal": []}
    for i in range(len(folder)):  # every pair decodes and is registered (same size)
        vis, ir = folder[i]
        assert vis.shape[:2] == ir.shape and vis.shape[2] == 3
    train, val = split_pairs(folder.pairs)
    assert len(train) + len(val) == 171 and 20 <= len(val) <= 50


@pytest.mark.real_data
def test_llvip_three_channel_thermal(llvip: Path) -> None:
    folder = find_pairs(llvip)
    assert len(folder) == 32
    vis, ir = folder[0]
    assert vis.shape == (1024, 1280, 3) and ir.shape == (1024, 1280)


def test_split_indices_is_split_pairs_as_positions() -> None:
    from edgefuse.data import split_indices, split_pairs

    stems = [f"pair_{i:03d}" for i in range(50)]
    train, val = split_pairs(stems, val_fraction=0.3, seed=4)
    train_idx, val_idx = split_indices(stems, val_fraction=0.3, seed=4)
    assert [stems[i] for i in train_idx] == train and [stems[i] for i in val_idx] == val
    assert sorted(train_idx + val_idx) == list(range(50)) and val_idx
