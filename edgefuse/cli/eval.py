"""``edgefuse eval``: convention-A fusion metrics of a folder of fused images against their source pairs."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefuse.cli._common import cli_command, console, err_console
from edgefuse.errors import DataError
from edgefuse.io import atomic_write_text

CONVENTION_NOTE = "convention A, no min-max stretching (see docs/metrics.md)"


def _fused_images(folder: Path) -> dict[str, Path]:
    from edgefuse.data import IMAGE_EXTS

    if not folder.is_dir():
        raise DataError(f"{folder}: fused-image folder not found")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTS and not path.name.startswith("."):
            if path.stem in found:
                raise DataError(f"{folder}: two fused images share the stem {path.stem!r}")
            found[path.stem] = path
    return found


def _listing(stems: list[str], limit: int = 8) -> str:
    more = f", … (+{len(stems) - limit} more)" if len(stems) > limit else ""
    return ", ".join(stems[:limit]) + more


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None  # strict JSON has no NaN/Infinity


def _csv_text(names: tuple[str, ...], per_pair: dict[str, dict[str, float]], means: dict[str, float]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["stem", *names])
    for stem, row in [*per_pair.items(), ("mean", means)]:
        writer.writerow([stem, *(repr(float(row[n])) for n in names)])
    return buf.getvalue()


@cli_command
def evaluate(
    fused: Annotated[
        Path, typer.Option("--fused", help="Folder of fused images, matched to the pairs by file stem.")
    ],
    data: Annotated[Path, typer.Option("--data", help="Paired folder (vi/ + ir/ or another known layout).")],
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write means, per-pair values and the pair count as JSON.")
    ] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write one row per pair and a mean row.")
    ] = None,
    resize_ir: Annotated[
        bool, typer.Option(help="Resize thermal to the visible size if they differ.")
    ] = False,
) -> None:
    """Score fused images with the convention-A metrics (EN SD SF AG MI SCD CC PSNR VIF Qabf SSIM Nabf)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from edgefuse.data import find_pairs, read_visible
    from edgefuse.io import check_writable
    from edgefuse.metrics import HIGHER_IS_BETTER, METRIC_NAMES, fusion_metrics, mean_metrics

    try:  # an unwritable output fails now, not after every pair was scored
        for path in (p for p in (json_path, csv_path) if p is not None):
            check_writable(path)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    folder = find_pairs(data, resize_ir=resize_ir)
    images = _fused_images(fused)
    matched = [(i, p) for i, p in enumerate(folder.pairs) if p.stem in images]
    missing = [p.stem for p in folder.pairs if p.stem not in images]
    extra = sorted(images.keys() - {p.stem for p in folder.pairs})
    if not matched:
        raise DataError(
            f"{fused}: no fused image matches a pair of {data} by stem "
            f"({len(images)} images here, {len(folder)} pairs there, e.g. {folder.pairs[0].stem!r})"
        )
    if missing:
        err_console.print(
            f"[yellow]warning:[/] no fused image for {len(missing)} of {len(folder)} pairs: "
            + _listing(missing),
            highlight=False,
            soft_wrap=True,
        )
    if extra:
        err_console.print(
            f"[yellow]warning:[/] {len(extra)} fused images have no pair (ignored): {_listing(extra)}",
            highlight=False,
            soft_wrap=True,
        )

    per_pair: dict[str, dict[str, float]] = {}
    cols = (TextColumn("eval"), BarColumn(), MofNCompleteColumn())
    with Progress(*cols, console=console, transient=True) as bar:
        task = bar.add_task("eval", total=len(matched))
        for i, pair in matched:
            vis, ir = folder[i]
            out = read_visible(images[pair.stem])
            if out.shape[:2] != vis.shape[:2]:
                raise DataError(
                    f"{images[pair.stem]}: fused image is {out.shape[1]}×{out.shape[0]} but the pair "
                    f"{pair.stem} is {vis.shape[1]}×{vis.shape[0]}"
                )
            try:
                per_pair[pair.stem] = fusion_metrics(out, ir, vis)
            except ValueError as exc:  # e.g. an image too small for VIF/SSIM windows
                raise DataError(f"{images[pair.stem]}: {exc}") from None
            bar.update(task, advance=1)
    means = mean_metrics(per_pair.values())

    table = Table(title=f"{len(per_pair)} pairs: {fused} vs {folder.name}")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("better", justify="center")
    for name in METRIC_NAMES:
        table.add_row(name, f"{means[name]:.4g}", "↑" if HIGHER_IS_BETTER[name] else "↓")
    console.print(table)
    console.print(CONVENTION_NOTE, highlight=False)

    if json_path is not None:
        payload: dict[str, Any] = {name: _finite_or_none(means[name]) for name in METRIC_NAMES}
        payload["pairs"] = len(per_pair)
        payload["per_pair"] = {
            s: {k: _finite_or_none(v) for k, v in row.items()} for s, row in per_pair.items()
        }
        payload["convention"] = "A"
        atomic_write_text(json_path, json.dumps(payload, indent=2) + "\n")
        console.print(f"[green]wrote[/] {json_path}", highlight=False)
    if csv_path is not None:
        atomic_write_text(csv_path, _csv_text(METRIC_NAMES, per_pair, means))
        console.print(f"[green]wrote[/] {csv_path}", highlight=False)
