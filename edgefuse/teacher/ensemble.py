"""Sample the teacher ensemble of a paired folder into a cache (the loop behind ``edgefuse teacher sample``).

Pairs are split over ``torchrun`` ranks (one GPU each); every pair's K samples run as one batch. A pair
already in the cache is kept with ``resume`` (the settings file must match), so an interrupted run continues
where it stopped: each pair is written atomically as soon as it is done."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgefuse.distributed import gather, rank_and_world
from edgefuse.errors import DataError
from edgefuse.teacher.cache import ensemble_stats, read_entry_meta, write_entry, write_manifest
from edgefuse.teacher.ddfm import SamplerConfig, sample_fusion, with_visible_chroma
from edgefuse.teacher.prior import Prior

SETTINGS = "sampling.json"


def teacher_record(prior: Prior, cfg: SamplerConfig, precision: str) -> dict[str, Any]:
    """What identifies this teacher in a cache manifest (and the student's provenance)."""
    return {
        "kind": "ddfm",
        "objective": cfg.em.objective.value,
        "prior": str(prior.path.resolve()),
        "prior_sha256": prior.sha256,
        "prior_train_stems": prior.meta.get("train_stems"),
        "prior_steps": prior.meta.get("steps"),
        "sampler": cfg.to_dict(),
        "precision": precision if prior.device.type == "cuda" else "fp32",
    }


def sample_ensemble(
    prior: Prior,
    source: Any,
    out: str | Path,
    cfg: SamplerConfig,
    seeds: Sequence[int],
    *,
    precision: str = "bf16",
    limit: int = 0,
    save_samples: bool = True,
    resume: bool = False,
    on_pair: Callable[[], None] | None = None,
) -> tuple[Path, dict[str, Any]] | None:
    """Fuse every pair ``len(seeds)`` times; write ``<stem>.npz`` per pair and, on rank 0, the manifest.

    Returns (manifest path, manifest meta) on rank 0, None on the other ranks.
    """

    def fuse_pair(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return with_visible_chroma(sample_fusion(prior, v, t, list(seeds), cfg), v[None])

    return write_ensemble(
        source,
        out,
        teacher_record(prior, cfg, precision),
        seeds,
        fuse_pair,
        prior.device,
        limit=limit,
        save_samples=save_samples,
        resume=resume,
        on_pair=on_pair,
    )


def write_ensemble(
    source: Any,
    out: str | Path,
    teacher: dict[str, Any],
    seeds: Sequence[int],
    fuse_pair: Callable[[torch.Tensor, torch.Tensor], Any],
    device: torch.device,
    *,
    limit: int = 0,
    save_samples: bool = True,
    resume: bool = False,
    on_pair: Callable[[], None] | None = None,
) -> tuple[Path, dict[str, Any]] | None:
    """Any teacher's cache: ``fuse_pair(visible 3×H×W, thermal 1×H×W) -> K×3×H×W`` RGB in [0, 1] per pair,
    or (that, {name: array}) to store more arrays in the pair's entry."""
    out = Path(out)
    rank, world = rank_and_world()
    out.mkdir(parents=True, exist_ok=True)
    settings = out / SETTINGS
    wanted = {"teacher": teacher, "seeds": list(seeds)}
    if rank == 0:
        if resume and settings.is_file() and json.loads(settings.read_text()) != wanted:
            raise DataError(f"{settings}: --resume with different teacher settings; use a new --out")
        settings.write_text(json.dumps(wanted, indent=1) + "\n")
    indices = list(range(len(source)))[: limit or None]
    entries: dict[str, dict[str, Any]] = {}
    seconds: list[float] = []
    for i in indices[rank::world]:
        stem = source.pairs[i].stem
        done = out / f"{stem}.npz"
        if resume and done.is_file():
            entries[stem] = read_entry_meta(done)
        else:
            vis, ir = source[i]
            v = torch.from_numpy(np.ascontiguousarray(vis.transpose(2, 0, 1))).to(device)
            t = torch.from_numpy(ir[None].copy()).to(device)
            t0 = time.perf_counter()
            rgb, extra = fuse_pair(v, t), None
            if isinstance(rgb, tuple):
                rgb, extra = rgb
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - t0)
            mean, var, ys = ensemble_stats(rgb.permute(0, 2, 3, 1).cpu().numpy())
            entries[stem] = write_entry(out, stem, mean, var, ys if save_samples else None, extra)
        if on_pair is not None:
            on_pair()
    all_entries: dict[str, dict[str, Any]] = {}
    all_seconds: list[float] = []
    for part_entries, part_seconds in gather((entries, seconds)):
        all_entries.update(part_entries)
        all_seconds.extend(part_seconds)
    if rank != 0:
        return None
    meta = {
        "teacher": teacher,
        "k": len(seeds),
        "seeds": list(seeds),
        "has_samples": save_samples,
        "data": {"name": source.name, "root": str(source.root.resolve())},
        "world_size": world,
        "seconds_per_pair": float(np.mean(all_seconds)) if all_seconds else None,
    }
    return write_manifest(out, all_entries, meta), meta
