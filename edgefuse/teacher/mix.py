"""One ensemble from several teacher caches: per pair, the union of their K samples.

The issue's third route to a teacher ensemble ("several objectives"): teachers that disagree where the sources
do. Every sample counts once, so a teacher's weight in the mean is its share of the samples. With samples in
every part the variance is that of the pooled samples (float32 from the float16 ones, as a single teacher's
would be); if a part kept none, it is the pooled variance from each part's mean and variance (exact up to the
float16 of the stored means), and the mix keeps no samples either.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.errors import DataError
from edgefuse.teacher.cache import BT601, CacheEntry, TeacherCache, write_entry, write_manifest


def mix_entries(
    entries: Sequence[CacheEntry], ks: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(mean RGB, luminance variance, float32 samples or None) of the union of ``entries``' samples
    (``write_entry`` stores kept samples at float16, their precision in the parts)."""
    w = np.asarray(ks, dtype=np.float32)
    means = np.stack([e.mean for e in entries])  # P×H×W×3
    mean = np.tensordot(w, means, axes=1) / w.sum()
    pooled = [e.samples_float() for e in entries]
    if all(s is not None for s in pooled):
        ys = np.concatenate([s for s in pooled if s is not None])
        return mean, ys.var(axis=0, ddof=1), ys
    within = np.tensordot(w - 1.0, np.stack([e.var for e in entries]), axes=1)
    between = np.tensordot(w, np.square(means @ BT601 - mean @ BT601), axes=1)
    return mean, (within + between) / (w.sum() - 1.0), None


def mix_caches(
    parts: Sequence[TeacherCache],
    out: str | os.PathLike[str],
    *,
    keep_samples: bool = True,
    workers: int = 1,
    on_pair: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write the mixed cache of ``parts`` to ``out``; returns its manifest summary (pairs, k, left out)."""
    if len(parts) < 2:
        raise DataError("mixing needs at least two teacher caches")
    out = Path(out).expanduser()
    for p in parts:
        if p.root.resolve() == out.resolve():
            raise DataError(f"{out}: the mixed cache cannot overwrite one of its parts")
    common = set(parts[0].pairs).intersection(*(p.pairs for p in parts[1:]))
    if not common:
        raise DataError(f"{', '.join(str(p.root) for p in parts)}: the caches share no pair")

    def mix_one(stem: str) -> dict[str, Any]:
        loaded = [p.load(stem) for p in parts]
        sizes = {e.var.shape for e in loaded}
        if len(sizes) > 1:
            got = ", ".join(f"{w}×{h}" for h, w in (e.var.shape for e in loaded))
            raise DataError(f"pair {stem!r} has different sizes in the caches ({got})")
        ks = [
            e.samples.shape[0] if e.samples is not None else p.k for e, p in zip(loaded, parts, strict=True)
        ]
        mean, var, samples = mix_entries(loaded, ks)
        return write_entry(out, stem, mean, var, samples if keep_samples else None)

    entries: dict[str, dict[str, Any]] = {}
    # threads: the time goes to zlib and numpy, which release the GIL (~0.6 s a 480×640 pair alone, K = 3 + 3)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for stem, entry in zip(sorted(common), pool.map(mix_one, sorted(common)), strict=True):
            entries[stem] = entry
            if on_pair is not None:
                on_pair(stem)
    k = sum(p.k for p in parts)
    has_samples = keep_samples and all(p.has_samples for p in parts)
    # the diffusion prior whose encoder routes the distillation, when the parts that name one agree
    priors = {
        str(t["prior"])
        for t in (p.manifest.get("teacher") for p in parts)
        if isinstance(t, dict) and t.get("prior")
    }
    meta = {
        "teacher": {
            "kind": "mix",
            **({"prior": priors.pop()} if len(priors) == 1 else {}),
            "parts": [
                {
                    "root": str(p.root.resolve()),
                    "sha256": p.sha256,
                    "k": p.k,
                    "teacher": p.manifest.get("teacher"),
                }
                for p in parts
            ],
        },
        "k": k,
        "seeds": None,
        "has_samples": has_samples,
        "data": parts[0].manifest.get("data"),
        "world_size": 1,
        "seconds_per_pair": None,
    }
    write_manifest(out, entries, meta)
    left_out = len(set().union(*(p.pairs for p in parts))) - len(common)
    return {"pairs": len(entries), "k": k, "has_samples": has_samples, "left_out": left_out}
