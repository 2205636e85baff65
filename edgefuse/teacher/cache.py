"""The teacher ensemble cache: per pair the ensemble mean, the per-pixel variance and the K samples.

Layout of a cache directory::

    manifest.json        format, K, seeds, teacher (prior sha256, steps, EM knobs) or external source,
                         data folder, and per pair {file, height, width}
    <stem>.npz           mean: H×W×3 float16 RGB in [0, 1] (ensemble mean of the fused RGB samples)
                         var:  H×W float32, sample variance (ddof=1) over K of the luminance in [0, 1]
                         samples: K×H×W float16 luminance of every sample (kept so that the distillation can
                         compute feature statistics with whatever backbone it is given)
                         start, coefficients (optional, `teacher ascend --keep-coefficients`): float32
                         3×h×w and K×3×h×w, the ascent's start and climbed 1/4-resolution maps

Version 2 stores the variance in float32 and the samples in float16 (resolution ~1/16 of an 8-bit level at
mid-grey): with 8-bit samples a per-pixel spread below one grey level was rounded away. Version-1 caches
(float16 variance, uint8 samples) still load.

The samples are stored as luminance only: DDFM samples share the visible chroma, so
RGB_k = RGB_v + (Y_k − Y_v) rebuilds them; for imported RGB samples this rule is an approximation used
only for the routing features.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.color import BT601_F32
from edgefuse.errors import DataError
from edgefuse.io import atomic_path, atomic_write_text

FORMAT = "edgefuse-teacher-cache"
VERSION = 2
MANIFEST = "manifest.json"
BT601 = BT601_F32


@dataclass(frozen=True)
class CacheEntry:
    stem: str
    mean: np.ndarray  # H×W×3 float32 RGB
    var: np.ndarray  # H×W float32
    samples: np.ndarray | None  # K×H×W luminance: float16 in [0, 1] (v2) or uint8 (v1)

    def samples_float(self) -> np.ndarray | None:
        """The K samples' luminance as float32 in [0, 1], whichever version stored them."""
        if self.samples is None:
            return None
        s = self.samples.astype(np.float32)
        return s / 255.0 if self.samples.dtype == np.uint8 else s


def ensemble_stats(samples_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean RGB H×W×3, luminance variance H×W (ddof=1), luminance K×H×W float16) of K×H×W×3 in [0, 1]."""
    if samples_rgb.ndim != 4 or samples_rgb.shape[-1] != 3 or samples_rgb.shape[0] < 2:
        raise DataError(f"ensemble needs K>=2 RGB samples K×H×W×3, got shape {samples_rgb.shape}")
    x = samples_rgb.astype(np.float32, copy=False)
    y = x @ BT601
    mean = x.mean(axis=0)
    var = y.var(axis=0, ddof=1)
    if not (np.isfinite(mean).all() and np.isfinite(var).all()):
        raise DataError("ensemble samples hold NaN or Inf")
    return mean, var, np.clip(y, 0.0, 1.0).astype(np.float16)


def write_entry(
    root: str | os.PathLike[str],
    stem: str,
    mean: np.ndarray,
    var: np.ndarray,
    samples: np.ndarray | None,
    extra: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write ``<stem>.npz`` atomically; returns its manifest entry. ``extra``: more arrays stored as they
    are (the ascent teacher's coefficient maps), read back with :meth:`TeacherCache.load_arrays`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    h, w = var.shape
    if mean.shape != (h, w, 3) or (samples is not None and samples.shape[1:] != (h, w)):
        raise DataError(f"{stem}: inconsistent ensemble shapes mean {mean.shape}, var {var.shape}")
    clash = set(extra or {}) & {"mean", "var", "samples"}
    if clash:
        raise DataError(f"{stem}: extra cache arrays may not be named {', '.join(sorted(clash))}")
    arrays = {**(extra or {}), "mean": mean.astype(np.float16), "var": var.astype(np.float32)}
    if samples is not None:
        arrays["samples"] = samples if samples.dtype == np.uint8 else samples.astype(np.float16)
    path = root / f"{stem}.npz"

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    k = int(samples.shape[0]) if samples is not None else None
    return {"file": path.name, "height": int(h), "width": int(w), "k": k}


def read_entry_meta(path: Path) -> dict[str, Any]:
    """The manifest entry of an existing ``<stem>.npz`` (resume)."""
    try:
        with np.load(path) as z:
            h, w = z["var"].shape
            k = int(z["samples"].shape[0]) if "samples" in z.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: unreadable teacher cache entry ({exc}); delete it and resume") from None
    return {"file": path.name, "height": int(h), "width": int(w), "k": k}


def write_manifest(
    root: str | os.PathLike[str], entries: dict[str, dict[str, Any]], meta: dict[str, Any]
) -> Path:
    from edgefuse import __version__

    root = Path(root)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "edgefuse_version": __version__,
        **meta,
        "pairs": {s: entries[s] for s in sorted(entries)},
    }
    path = root / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=1, default=str) + "\n")
    return path


def pair_size(source: Any, index: int) -> tuple[int, int]:
    """(height, width) of pair ``index``; reads only the image header for files."""
    pair = source.pairs[index]
    path = getattr(pair, "visible", None)
    if isinstance(path, Path):
        from PIL import Image

        with Image.open(path) as img:
            return img.size[1], img.size[0]
    vis, _ = source[index]
    return int(vis.shape[0]), int(vis.shape[1])


class TeacherCache:
    """A cache directory opened for reading; every problem is one :class:`DataError` line naming the file."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        path = self.root / MANIFEST
        if not path.is_file():
            raise DataError(
                f"{path}: teacher cache manifest not found (run `edgefuse teacher sample` or `import`)"
            )
        raw = path.read_bytes()
        try:
            self.manifest = json.loads(raw)
        except ValueError as exc:
            raise DataError(f"{path}: malformed manifest ({exc})") from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
            raise DataError(f"{path}: not an edgefuse teacher cache (format {self.manifest.get('format')!r})")
        if int(self.manifest.get("version", 0)) > VERSION:
            raise DataError(
                f"{path}: cache version {self.manifest.get('version')} is newer than this edgefuse"
            )
        self.sha256 = hashlib.sha256(raw).hexdigest()
        pairs, k = self.manifest.get("pairs", {}), self.manifest.get("k", 0)
        if not isinstance(pairs, dict) or not isinstance(k, int) or isinstance(k, bool):
            raise DataError(f"{path}: malformed manifest ('pairs' must be an object, 'k' an integer)")
        self.pairs: dict[str, dict[str, Any]] = dict(pairs)
        self.k = k
        self.has_samples = self.manifest.get("has_samples") is True

    @property
    def stems(self) -> list[str]:
        return sorted(self.pairs)

    def load(self, stem: str) -> CacheEntry:
        if stem not in self.pairs:
            raise DataError(f"{self.root / MANIFEST}: no teacher ensemble for pair {stem!r}")
        meta = self.pairs[stem]
        path = self._entry_path(stem, meta)
        try:
            with np.load(path) as z:
                mean = z["mean"].astype(np.float32)
                var = z["var"].astype(np.float32)
                samples = z["samples"] if "samples" in z.files else None
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: unreadable teacher cache entry ({exc})") from None
        hw = (int(meta["height"]), int(meta["width"]))
        if not (np.isfinite(mean).all() and np.isfinite(var).all()) or float(var.min(initial=0.0)) < 0.0:
            raise DataError(f"{path}: teacher cache entry holds NaN/Inf or a negative variance")
        if var.shape != hw or mean.shape != (*hw, 3) or (samples is not None and samples.shape[1:] != hw):
            raise DataError(f"{path}: arrays do not match the manifest size {hw[1]}×{hw[0]}")
        return CacheEntry(stem, mean, var, samples)

    def load_arrays(self, stem: str, names: Sequence[str], hint: str = "") -> dict[str, np.ndarray]:
        """Extra arrays of a pair's entry (``write_entry(extra=...)``); a missing one is one DataError line
        ending in ``hint`` (how to write a cache that has it)."""
        if stem not in self.pairs:
            raise DataError(f"{self.root / MANIFEST}: no teacher ensemble for pair {stem!r}")
        path = self._entry_path(stem, self.pairs[stem])
        try:
            with np.load(path) as z:
                missing = [n for n in names if n not in z.files]
                if missing:
                    raise DataError(f"{path}: no {', '.join(missing)} in this cache entry{hint}")
                out = {n: z[n] for n in names}
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable teacher cache entry ({exc})") from None
        bad = [n for n, a in out.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
        if bad:
            raise DataError(f"{path}: {', '.join(bad)} hold NaN/Inf")
        return out

    def _entry_path(self, stem: str, meta: Any) -> Path:
        """The entry's file, refusing names that leave the cache folder or wrongly typed fields."""
        where = self.root / MANIFEST
        if not isinstance(meta, dict) or not isinstance(meta.get("file"), str):
            raise DataError(f"{where}: entry of pair {stem!r} is malformed")
        name = meta["file"]
        if Path(name).name != name or name in ("", ".", ".."):
            raise DataError(f"{where}: entry file {name!r} of pair {stem!r} is not a plain name in the cache")
        for key in ("height", "width"):
            if not isinstance(meta.get(key), int) or meta[key] <= 0:
                raise DataError(f"{where}: entry of pair {stem!r} has a bad {key}")
        return self.root / name

    def check(self, source: Any, indices: Iterable[int], need_samples: bool = False, min_k: int = 2) -> None:
        """Fail before training if the cache does not cover ``source[indices]`` at the right sizes."""
        where = self.root / MANIFEST
        if self.k < min_k:
            raise DataError(f"{where}: K={self.k} samples per pair; distillation needs K >= {min_k}")
        if need_samples and not self.has_samples:
            raise DataError(
                f"{where}: cache holds no samples; feature routing needs them (sample with --save-samples)"
            )
        indices = list(indices)
        missing = [source.pairs[i].stem for i in indices if source.pairs[i].stem not in self.pairs]
        if missing:
            more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
            raise DataError(
                f"{where}: {len(missing)} of {len(indices)} pairs of {source.name} have no teacher ensemble: "
                f"{', '.join(missing[:3])}{more}"
            )
        for i in indices:
            stem = source.pairs[i].stem
            meta = self.pairs[stem]
            hw = pair_size(source, i)
            if (int(meta["height"]), int(meta["width"])) != hw:
                raise DataError(
                    f"{where}: pair {stem!r} is {meta['width']}×{meta['height']} in the cache but "
                    f"{hw[1]}×{hw[0]} in {source.name}"
                )
            path = self._entry_path(stem, meta)
            if not path.is_file():
                raise DataError(f"{path}: cache entry file missing")


# --- external teachers


def _images(folder: Path) -> list[Path]:
    from edgefuse.data import IMAGE_EXTS

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def external_samples(samples_dir: str | os.PathLike[str], stems: Sequence[str]) -> dict[str, list[Path]]:
    """stem -> K sample files of an external teacher, from either layout.

    per pair: ``<dir>/<stem>/*.png`` (K images of that pair); per run: ``<dir>/<run>/<stem>.png`` (one
    sample of every pair per subfolder). The layout is chosen by whether subfolders are named like pairs.
    """
    root = Path(samples_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: samples folder not found")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not subdirs:
        raise DataError(
            f"{root}: expected one subfolder per pair (<stem>/*.png) or per run (<run>/<stem>.png)"
        )
    wanted = set(stems)
    found: dict[str, list[Path]] = {}
    if any(d.name in wanted for d in subdirs):
        for d in subdirs:
            if d.name in wanted:
                found[d.name] = _images(d)
    else:
        for d in subdirs:
            for img in _images(d):
                if img.stem in wanted:
                    found.setdefault(img.stem, []).append(img)
    if not found:
        raise DataError(f"{root}: no sample images named after any of the {len(wanted)} pairs")
    counts = {len(v) for v in found.values()}
    if len(counts) != 1:
        raise DataError(
            f"{root}: pairs have different sample counts {sorted(counts)}; every pair needs the same K"
        )
    return found
