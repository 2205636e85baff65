"""``edgefuse teacher import`` and ``mix``: a teacher cache from any teacher's K fused samples per pair, or
from the union of several caches' samples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgefuse.cli._common import cli_command, console
from edgefuse.cli._teacher import CacheOut, KeepSamples, app, progress


@app.command("import")
@cli_command
def import_samples(
    samples: Annotated[Path, typer.Option(help="External teacher output: <stem>/*.png or <run>/<stem>.png.")],
    data: Annotated[Path, typer.Option(help="The paired folder those samples fuse.")],
    out: CacheOut,
    save_samples: KeepSamples = True,
    name: Annotated[str, typer.Option(help="Teacher name recorded in the manifest.")] = "external",
) -> None:
    """Build a teacher cache from any teacher's K fused samples per pair."""
    import numpy as np

    from edgefuse.data import find_pairs, read_visible
    from edgefuse.errors import DataError
    from edgefuse.teacher.cache import (
        ensemble_stats,
        external_samples,
        pair_size,
        write_entry,
        write_manifest,
    )

    source = find_pairs(data)
    found = external_samples(samples, [p.stem for p in source.pairs])
    k = len(next(iter(found.values())))
    if k < 2:
        raise DataError(f"{samples}: {k} sample per pair; an ensemble needs K >= 2")
    index = {p.stem: i for i, p in enumerate(source.pairs)}
    entries = {}
    with progress() as bar:
        task = bar.add_task(f"import K={k}", total=len(found))
        for stem, files in sorted(found.items()):
            hw = pair_size(source, index[stem])
            imgs = [read_visible(f) for f in files]
            bad = [f for f, im in zip(files, imgs, strict=True) if im.shape[:2] != hw]
            if bad:
                got = imgs[files.index(bad[0])].shape
                raise DataError(f"{bad[0]}: sample is {got[1]}×{got[0]} but pair {stem!r} is {hw[1]}×{hw[0]}")
            mean, var, ys = ensemble_stats(np.stack(imgs))
            entries[stem] = write_entry(out, stem, mean, var, ys if save_samples else None)
            bar.advance(task)
    meta = {
        "teacher": {"kind": "external", "name": name, "samples": str(Path(samples).resolve())},
        "k": k,
        "seeds": None,
        "has_samples": save_samples,
        "data": {"name": source.name, "root": str(source.root.resolve())},
        "world_size": 1,
        "seconds_per_pair": None,
    }
    path = write_manifest(out, entries, meta)
    missing = len(source) - len(entries)
    note = f"; {missing} pairs of {source.name} have no samples" if missing else ""
    console.print(f"[green]wrote[/] {path} ({len(entries)} pairs, K={k}{note})")


@app.command("mix")
@cli_command
def mix(
    caches: Annotated[
        list[Path], typer.Argument(metavar="CACHE", help="Two or more teacher caches of the same pairs.")
    ],
    out: CacheOut,
    save_samples: KeepSamples = True,
    workers: Annotated[int, typer.Option(min=1, help="Pairs mixed at once (threads).")] = 4,
) -> None:
    """Mix teacher caches: per pair the union of their samples (each counts once), mean and variance anew."""
    from edgefuse.teacher.cache import TeacherCache
    from edgefuse.teacher.mix import mix_caches

    parts = [TeacherCache(c) for c in caches]  # a bad folder fails before the bar
    with progress() as bar:
        task = bar.add_task(f"mix {len(parts)} caches", total=None)
        info = mix_caches(
            parts, out, keep_samples=save_samples, workers=workers, on_pair=lambda _: bar.advance(task)
        )
    note = f"; {info['left_out']} pairs not in every cache left out" if info["left_out"] else ""
    kept = "" if info["has_samples"] else ", no samples kept"
    console.print(f"[green]wrote[/] {out} ({info['pairs']} pairs, K={info['k']}{kept}{note})")
