"""One source of real paired frames for calibration and validation, adapted to every quantizer.

Frames come from a paired folder (any layout :func:`edgefuse.data.find_pairs` accepts: ``--calib DIR``, else
the profile's calibration set under ``../shared/data``), are resized to cover the profile's input size and
centre-cropped (no padding: padded borders would skew activation ranges), and are always taken in the same
order. The folder is split with :func:`edgefuse.data.split_pairs`: calibration draws from the training
part and validation from the held-out part, so an int8 build is never judged on the frames it was
calibrated on (unless the folder is too small to split, which the result says).

Adapters: :func:`ort_reader` (ONNX Runtime ``CalibrationDataReader``), :func:`nncf_dataset`,
:func:`samples` (dicts for LiteRT / CoreML), :func:`torch_samples`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefuse.errors import DataError
from edgefuse.synthetic import SyntheticPairs

if TYPE_CHECKING:
    import torch

    from edgefuse.profiles import Profile

RESIZE = "cover-resize (bilinear, antialiased) + centre crop"


@dataclass(frozen=True, eq=False)
class Frames:
    """Real pairs at one input size; each item is ``{"visible": 1×3×H×W, "thermal": 1×1×H×W}`` float32."""

    source: str
    role: str  # "calibration" or "validation"
    stems: tuple[str, ...]
    height: int
    width: int
    visible: tuple[np.ndarray, ...] = field(repr=False)
    thermal: tuple[np.ndarray, ...] = field(repr=False)
    note: str = ""
    synthetic: bool = False

    def __len__(self) -> int:
        return len(self.stems)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for v, t in zip(self.visible, self.thermal, strict=True):
            yield {"visible": v, "thermal": t}

    def head(self, n: int) -> Frames:
        """The first ``n`` frames (a cheaper subset with the same order)."""
        return Frames(
            self.source, self.role, self.stems[:n], self.height, self.width,
            self.visible[:n], self.thermal[:n], self.note, self.synthetic,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.source,
            "role": self.role,
            "pairs": len(self),
            "size": f"{self.height}x{self.width}",
            "resize": RESIZE,
            "stems": list(self.stems),
        }
        if self.note:
            d["note"] = self.note
        if self.synthetic:
            d["synthetic"] = True
        return d


def fit(visible: np.ndarray, thermal: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """H×W×3 and H×W float [0,1] -> 1×3×h×w and 1×1×h×w: scale to cover (h, w), then centre-crop."""
    import torch
    import torch.nn.functional as F

    if visible.shape[:2] != thermal.shape[:2]:
        raise DataError(f"visible {visible.shape[:2]} and thermal {thermal.shape[:2]} sizes differ")
    src_h, src_w = thermal.shape[:2]
    scale = max(height / src_h, width / src_w)
    size = (max(height, round(src_h * scale)), max(width, round(src_w * scale)))
    both = np.concatenate([visible.transpose(2, 0, 1), thermal[None]], axis=0)
    x = torch.from_numpy(np.ascontiguousarray(both, dtype=np.float32)).unsqueeze(0)
    if size != (src_h, src_w):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0.0, 1.0)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    x = x[..., top : top + height, left : left + width]
    arr = x.numpy()
    return np.ascontiguousarray(arr[:, :3]), np.ascontiguousarray(arr[:, 3:])


def spread(n: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(n)`` (deterministic; all of them when count >= n)."""
    if count >= n:
        return list(range(n))
    return sorted({round(i) for i in np.linspace(0, n - 1, count)})


def _stem(pair: Any) -> str:
    return str(getattr(pair, "stem", pair))


def _split(folder: Any) -> tuple[list[int], list[int], str]:
    """Indices of the calibration and validation parts of a folder (held-out split when it can be made)."""
    from edgefuse.data import split_pairs

    pairs = list(folder.pairs)
    if len(pairs) < 2:
        return [0], [0], "the folder holds one pair: validation reuses the calibration pair"
    train, val = split_pairs(pairs, val_fraction=0.2, seed=0)
    index = {_stem(p): i for i, p in enumerate(pairs)}
    ti = sorted(index[_stem(p)] if not isinstance(p, int) else p for p in train)
    vi = sorted(index[_stem(p)] if not isinstance(p, int) else p for p in val)
    if not ti or not vi:
        every = list(range(len(pairs)))
        return every, every, "the split left one side empty: validation reuses the calibration pairs"
    return ti, vi, ""


def _folder(profile: Profile, calib_dir: str | Path | None) -> Any:
    from edgefuse.data import find_pairs

    root = Path(calib_dir).expanduser() if calib_dir else profile.calibration.path()
    if not root.is_dir():
        hint = (
            ""
            if calib_dir
            else f" (the profile's calibration set {profile.calibration.set!r}); pass --calib DIR"
        )
        raise DataError(f"{root}: calibration folder not found{hint}")
    # registered sets sometimes store IR at another resolution: resize it rather than refuse the folder
    return find_pairs(root, resize_ir=True)


def _load(folder: Any, indices: Sequence[int], role: str, height: int, width: int, note: str) -> Frames:
    vis, ir, stems = [], [], []
    for i in indices:
        v, t = folder[i]
        fv, ft = fit(v, t, height, width)
        vis.append(fv)
        ir.append(ft)
        stems.append(_stem(folder.pairs[i]))
    return Frames(str(folder.root), role, tuple(stems), height, width, tuple(vis), tuple(ir), note)


def calibration_frames(
    profile: Profile, calib_dir: str | Path | None = None, count: int | None = None
) -> Frames:
    """``count`` (default: the profile's) real pairs from the training part of the calibration folder."""
    folder = _folder(profile, calib_dir)
    return _calibration(folder, count or profile.calibration.count, profile.io.height, profile.io.width)


def calibration_frames_in(root: str | Path, count: int, height: int, width: int) -> Frames:
    """What :func:`calibration_frames` returns for the folder ``root``, without a profile (a worker process
    that was handed the folder and size)."""
    from edgefuse.data import find_pairs

    return _calibration(find_pairs(Path(root), resize_ir=True), count, height, width)


def _calibration(folder: Any, count: int, height: int, width: int) -> Frames:
    train, _, note = _split(folder)
    picked = [train[i] for i in spread(len(train), count)]
    return _load(folder, picked, "calibration", height, width, note)


def validation_frames(
    profile: Profile, calib_dir: str | Path | None = None, count: int = 8, allow_synthetic: bool = True
) -> Frames:
    """``count`` held-out real pairs; synthetic pairs (said so) only when no real folder exists at all."""
    try:
        folder = _folder(profile, calib_dir)
    except DataError:
        if calib_dir or not allow_synthetic:
            raise
        return synthetic_frames(profile.io.height, profile.io.width, count)
    _, val, note = _split(folder)
    picked = [val[i] for i in spread(len(val), count)]
    return _load(folder, picked, "validation", profile.io.height, profile.io.width, note)


def synthetic_frames(height: int, width: int, count: int, seed: int = 0) -> Frames:

    pairs = SyntheticPairs(n=count, seed=seed, height=height, width=width)
    vis, ir = zip(*(fit(*pairs[i], height, width) for i in range(len(pairs))), strict=True)
    note = "no real pairs found: validated on synthetic pairs"
    stems = tuple(f"synthetic_{i:04d}" for i in range(count))
    return Frames(
        "synthetic", "validation", stems, height, width, tuple(vis), tuple(ir), note, synthetic=True
    )


# --- adapters ------------------------------------------------------------------------------------------


def samples(frames: Frames) -> list[dict[str, np.ndarray]]:
    """Named float32 NCHW inputs, one dict per frame (LiteRT's and CoreML's calibration format)."""
    return list(frames)


def torch_samples(frames: Frames) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    import torch

    for item in frames:
        yield torch.from_numpy(item["visible"]), torch.from_numpy(item["thermal"])


def ort_reader(frames: Frames) -> Any:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over the frames (rewindable)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = list(frames)
            self.pos = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.pos >= len(self.items):
                return None
            self.pos += 1
            return self.items[self.pos - 1]

        def __len__(self) -> int:
            return len(self.items)

        def rewind(self) -> None:
            self.pos = 0

        def set_range(self, start_index: int, end_index: int) -> None:
            self.items = list(frames)[start_index:end_index]
            self.pos = 0

    return Reader()


def nncf_dataset(frames: Frames) -> Any:
    import nncf

    return nncf.Dataset(list(frames))
