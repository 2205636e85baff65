"""``edgefuse report``: work with benchmark reports; ``merge`` puts several machines side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from edgefuse.cli._common import cli_command, console

app = typer.Typer(help="Work with benchmark reports (edgefuse bench --json).", no_args_is_help=True)


@app.command("merge")
@cli_command
def merge(
    reports: Annotated[
        list[Path], typer.Argument(help="Reports from edgefuse bench --json, one per machine.")
    ],
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the merged JSON here.")] = None,
    md: Annotated[Path | None, typer.Option("--md", help="Write a Markdown comparison here.")] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML comparison here.")
    ] = None,
) -> None:
    """One cross-device comparison table from reports taken on different machines."""
    from rich.table import Table

    from edgefuse.bench.merge import cell_text, drift_text, merge, merged_markdown
    from edgefuse.bench.report import save_json
    from edgefuse.errors import DataError
    from edgefuse.io import atomic_write_text, check_writable

    try:  # checked before reading: an output that cannot be written, or that would replace an input
        for out in (p for p in (json_path, md, html) if p is not None):
            check_writable(out, *reports)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    merged = merge(list(reports))
    labels = [h["label"] for h in merged["hosts"]]
    table = Table(title="edgefuse bench: p50 · FPS · speed-up over each machine's torch reference / drift")
    table.add_column("target", no_wrap=True)
    for label in labels:
        table.add_column(escape(label))
    for row in merged["rows"]:
        cells = [f"{cell_text(row['cells'][k])}\n[dim]{drift_text(row['cells'][k])}[/]" for k in labels]
        table.add_row(escape(row["id"]), *cells)
    width = console.width
    console.width = max(width, 60 + 34 * len(labels))
    try:
        console.print(table)
    finally:
        console.width = width
    if json_path is not None:
        save_json(merged, json_path)
    if md is not None:
        atomic_write_text(md, merged_markdown(merged))
    if html is not None:
        from edgefuse.bench.html import merged_html

        atomic_write_text(html, merged_html(merged))
    for path in (json_path, md, html):
        if path is not None:
            console.print(f"wrote {escape(str(path))}", highlight=False)
