"""Paired visible/thermal images: decoding, folder layouts, deterministic splits and a training Dataset.

A paired folder holds a visible directory and a thermal directory whose files share stems
(``vi/0001.png`` <-> ``ir/0001.png``). Images decode to float32 in [0, 1]: visible H×W×3 RGB, thermal H×W.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from edgefuse.augment import augment_pair
from edgefuse.color import BT601_F32
from edgefuse.errors import DataError

if TYPE_CHECKING:
    from edgefuse.synthetic import SyntheticPairs

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
# (visible dir, thermal dir), matched case-insensitively, first hit wins
LAYOUTS: tuple[tuple[str, str], ...] = (
    ("vi", "ir"),
    ("vis", "ir"),
    ("visible", "infrared"),
    ("visible", "thermal"),
    ("rgb", "thermal"),
    ("visible", "lwir"),
    ("crop_LR_visible", "cropinfrared"),
)
BT601 = BT601_F32
# Larger frames are refused before decoding: 100 MP decodes to ~2 GB of float32 frames (visible +
# thermal + output) even though inference runs tile by tile (edgefuse.inference.TILE_PIXELS).
MAX_PIXELS = 100_000_000


# --- decoding -------------------------------------------------------------------------------------------


def _open(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            if img.width * img.height > MAX_PIXELS:
                raise DataError(
                    f"{path}: {img.width}×{img.height} is {img.width * img.height / 1e6:.0f} MP, above the "
                    f"{MAX_PIXELS / 1e6:.0f} MP limit (edgefuse.data.MAX_PIXELS); downscale or crop it first"
                )
            img.load()  # decode now so truncated files fail here, not later
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read image ({reason})") from None
    return img


def _to_float(img: Image.Image, path: Path) -> np.ndarray:
    """H×W or H×W×C float32 in [0, 1], whatever the bit depth."""
    mode = img.mode
    if mode in ("1", "L", "RGB"):
        return np.asarray(img, dtype=np.float32) / 255.0
    if mode in ("LA", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "La", "RGBa", "RGBX"):
        target = "L" if mode in ("LA", "La") else "RGB"
        return np.asarray(img.convert(target), dtype=np.float32) / 255.0
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.float32)
        if arr.min() < 0 or arr.max() > 65535:
            raise DataError(f"{path}: integer image values outside 0..65535")
        return arr / 65535.0
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
            raise DataError(f"{path}: float image with values outside [0, 1]")
        return arr
    raise DataError(f"{path}: unsupported image mode {mode!r}")


def read_visible(path: str | os.PathLike[str]) -> np.ndarray:
    """Visible frame as float32 H×W×3 RGB in [0, 1] (gray images are repeated over three channels)."""
    path = Path(path)
    arr = _to_float(_open(path), path)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3], dtype=np.float32)


def read_thermal(path: str | os.PathLike[str]) -> np.ndarray:
    """Thermal frame as float32 H×W in [0, 1]; 3-channel files (gray stored as RGB) go through BT.601."""
    path = Path(path)
    arr = _to_float(_open(path), path)
    if arr.ndim == 3:
        arr = arr[..., :3] @ BT601
    return np.ascontiguousarray(np.clip(arr, 0.0, 1.0), dtype=np.float32)


def resize_to(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float H×W or H×W×C image (each channel as a 32-bit float PIL image)."""
    if img.shape[:2] == (height, width):
        return img
    if img.ndim == 2:
        gray = Image.fromarray(img.astype(np.float32), mode="F")
        return np.asarray(gray.resize((width, height), Image.Resampling.BILINEAR))
    return np.stack([resize_to(img[..., c], height, width) for c in range(img.shape[2])], axis=2)


# --- paired folders -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    stem: str
    visible: Path
    thermal: Path


def _listdir(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None


def _images(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in _listdir(folder):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTS or path.name.startswith("."):
            continue
        if path.stem in found:
            other = found[path.stem].name
            raise DataError(f"{folder}: two images share the stem {path.stem!r} ({other}, {path.name})")
        found[path.stem] = path
    return found


def detect_layout(root: Path) -> tuple[Path, Path]:
    """The (visible dir, thermal dir) of ``root`` for the first known layout; DataError when none fits."""
    if not root.is_dir():
        raise DataError(f"{root}: paired-image folder not found")
    subdirs = {p.name.lower(): p for p in reversed(_listdir(root)) if p.is_dir()}
    for vis_name, ir_name in LAYOUTS:
        vis, ir = subdirs.get(vis_name.lower()), subdirs.get(ir_name.lower())
        if vis is not None and ir is not None:
            return vis, ir
    looked = ", ".join(f"{v}/+{i}/" for v, i in LAYOUTS)
    raise DataError(f"{root}: no known paired layout (looked for {looked}, case-insensitive)")


class PairedFolder:
    """Registered pairs found in ``root``; ``self[i]`` decodes pair ``i`` as (vis H×W×3, ir H×W) float32."""

    synthetic = False

    def __init__(self, root: str | Path, resize_ir: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.resize_ir = resize_ir
        self.layout = detect_layout(self.root)
        vis, ir = _images(self.layout[0]), _images(self.layout[1])
        self.pairs = [Pair(s, vis[s], ir[s]) for s in sorted(vis.keys() & ir.keys())]
        self.unmatched = {
            "visible": sorted(vis.keys() - ir.keys()),
            "thermal": sorted(ir.keys() - vis.keys()),
        }
        if not self.pairs:
            raise DataError(
                f"{self.root}: no pairs with matching stems in {self.layout[0].name}/ "
                f"({len(vis)} images) and {self.layout[1].name}/ ({len(ir)} images)"
            )

    @property
    def name(self) -> str:
        return self.root.resolve().name

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        pair = self.pairs[i]
        vis, ir = read_visible(pair.visible), read_thermal(pair.thermal)
        if vis.shape[:2] != ir.shape[:2]:
            if not self.resize_ir:
                raise DataError(
                    f"size mismatch: {pair.visible} is {vis.shape[1]}×{vis.shape[0]} but {pair.thermal} is "
                    f"{ir.shape[1]}×{ir.shape[0]} (resize_ir=True / --resize-ir resizes the thermal frame)"
                )
            ir = np.clip(resize_to(ir, *vis.shape[:2]), 0.0, 1.0)
        return vis, ir

    def __repr__(self) -> str:
        layout = f"{self.layout[0].name}/{self.layout[1].name}"
        return f"PairedFolder({str(self.root)!r}, pairs={len(self)}, layout={layout})"


def find_pairs(root: str | Path, resize_ir: bool = False) -> PairedFolder:
    return PairedFolder(root, resize_ir=resize_ir)


def open_pairs(
    data: str | Path | None, n: int = 8, seed: int = 0, resize_ir: bool = False
) -> PairedFolder | SyntheticPairs:
    """``None`` or ``"synthetic"``: ``n`` synthetic pairs; anything else: the paired folder at ``data``."""
    if data is None or str(data) == "synthetic":
        from edgefuse.synthetic import SyntheticPairs

        return SyntheticPairs(n=n, seed=seed)
    return find_pairs(data, resize_ir=resize_ir)


# --- splits ---------------------------------------------------------------------------------------------


def _stem(item: Any) -> str:
    return item if isinstance(item, str) else str(item.stem)


def _unit(seed: int, stem: str) -> float:
    digest = hashlib.sha1(f"{seed}:{stem}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_pairs(
    pairs: Sequence[Any], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Any], list[Any]]:
    """(train, val) by hashing each stem with the seed: adding files never moves the others.

    Items are Pairs (or anything with ``.stem``, or stems); input order is kept. Sets of two or more keep
    at least one item on each side when 0 < val_fraction < 1.
    """
    is_val = _val_mask(pairs, val_fraction, seed)
    train = [p for p, v in zip(pairs, is_val, strict=True) if not v]
    val = [p for p, v in zip(pairs, is_val, strict=True) if v]
    return train, val


def split_indices(
    pairs: Sequence[Any], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[int], list[int]]:
    """The same split as :func:`split_pairs`, as positions in ``pairs`` (what datasets index by)."""
    is_val = _val_mask(pairs, val_fraction, seed)
    return [i for i, v in enumerate(is_val) if not v], [i for i, v in enumerate(is_val) if v]


def _val_mask(pairs: Sequence[Any], val_fraction: float, seed: int) -> list[bool]:
    if not 0.0 <= val_fraction <= 1.0:
        raise DataError(f"val_fraction must be in [0, 1], got {val_fraction}")
    units = [_unit(seed, _stem(p)) for p in pairs]
    is_val = [u < val_fraction for u in units]
    if len(pairs) >= 2 and 0.0 < val_fraction < 1.0:
        if not any(is_val):
            is_val[int(np.argmin(units))] = True
        elif all(is_val):
            is_val[int(np.argmax(units))] = False
    return is_val


# --- torch dataset --------------------------------------------------------------------------------------


def _pad_to(img: np.ndarray, height: int, width: int) -> np.ndarray:
    ph, pw = max(0, height - img.shape[0]), max(0, width - img.shape[1])
    if not ph and not pw:
        return img
    widths = [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)] + [(0, 0)] * (img.ndim - 2)
    return np.pad(img, widths, mode="reflect" if min(img.shape[:2]) > 1 else "edge")


class FusionDataset(Dataset):
    """Dicts {"visible": 3×h×w, "thermal": 1×h×w, "stem"} from a PairedFolder or SyntheticPairs.

    train=True: random crops and horizontal flips drawn from a generator seeded by (seed, epoch, pair index),
    so a run is reproducible whatever the worker count. train=False: centre crops (or full images when
    crop=None). Images smaller than the crop are reflect-padded. ``night`` (train only): the probability
    that a crop's visible frame is darkened (:func:`edgefuse.augment.night_visible`); ``thermal_level``
    (train only): the probability that its thermal frame is moved to a darker level
    (:func:`edgefuse.augment.dark_thermal`).
    """

    def __init__(
        self,
        source: Any,
        indices: Sequence[int] | None = None,
        crop: int | tuple[int, int] | None = 256,
        train: bool = True,
        seed: int = 0,
        cache: bool = False,
        night: float = 0.0,
        night_noise: float = 0.0,
        thermal_level: float = 0.0,
    ) -> None:
        self.source = source
        self.night, self.night_noise = float(night), float(night_noise)
        self.thermal_level = float(thermal_level)
        self.indices = list(range(len(source))) if indices is None else [int(i) for i in indices]
        self.crop = (crop, crop) if isinstance(crop, int) else crop
        self.train, self.seed, self.cache = train, int(seed), cache
        self._cached: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # shared memory so persistent DataLoader workers see set_epoch() made in the main process
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.indices)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i in self._cached:
            return self._cached[i]
        vis, ir = self.source[i]
        if self.cache:
            self._cached[i] = (vis, ir)
        return vis, ir

    def __getitem__(self, k: int) -> dict[str, Any]:
        i = self.indices[k]
        vis, ir = self._load(i)
        if self.crop is not None:
            ch, cw = self.crop
            vis, ir = _pad_to(vis, ch, cw), _pad_to(ir, ch, cw)
            h, w = ir.shape
            if self.train:
                rng = np.random.default_rng([self.seed, self.epoch, k])  # k: repeated indices get new crops
                top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                flip = bool(rng.integers(0, 2))
            else:
                top, left, flip = (h - ch) // 2, (w - cw) // 2, False
            vis, ir = vis[top : top + ch, left : left + cw], ir[top : top + ch, left : left + cw]
        elif self.train:
            flip = bool(np.random.default_rng([self.seed, self.epoch, k]).integers(0, 2))
        else:
            flip = False
        if flip:
            vis, ir = vis[:, ::-1], ir[:, ::-1]
        if self.train:
            draw = (self.seed, self.epoch, k)
            vis, ir, _ = augment_pair(vis, ir, self.night, self.night_noise, self.thermal_level, draw)
        return {
            "visible": torch.from_numpy(np.array(vis.transpose(2, 0, 1), dtype=np.float32)),
            "thermal": torch.from_numpy(np.array(ir[None], dtype=np.float32)),  # a copy, never the cache
            "stem": _stem(self.source.pairs[i]),
        }
