"""``edgefuse info``: parameters, GMAC, IO spec and provenance of a checkpoint (and every size)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from edgefuse.cli._common import cli_command, console


@cli_command
def info(
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint file or bundled name.")] = None,
    size: Annotated[list[str] | None, typer.Option(help="Resolution HxW (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Describe the student: parameters and GMAC per size and resolution, IO spec, training provenance."""
    from rich.table import Table

    from edgefuse.checkpoint import load_model
    from edgefuse.errors import DataError
    from edgefuse.model import CONFIGS, FusionProxy, count_macs, count_params
    from edgefuse.spec import parse_size

    try:
        sizes = [parse_size(s) for s in (size or ["480x640"])]
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if any(h > 8192 or w > 8192 for h, w in sizes):
        raise DataError("--size: at most 8192 pixels a side")
    model, ci = load_model(checkpoint)
    rows = []
    for name, cfg in CONFIGS.items():
        m = FusionProxy(cfg)
        for h, w in sizes:
            # like fuse, any size runs padded up to multiples of 16: count what actually runs
            ph, pw = -(-h // 16) * 16, -(-w // 16) * 16
            rows.append(
                {
                    "size": name,
                    "resolution": f"{h}x{w}" + (f" (padded to {ph}x{pw})" if (ph, pw) != (h, w) else ""),
                    "params": count_params(m),
                    "gmac": count_macs(m, ph, pw) / 1e9,
                    "this_checkpoint": name == ci.config.name,
                }
            )
    payload = {"checkpoint": ci.to_dict(), "params": count_params(model), "sizes": rows}
    if as_json:
        typer.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))  # "N×3×H×W", not \u00d7
        return
    console.print(f"[bold]{ci.path}[/]  arch {ci.arch}-{ci.config.name}  sha256 {ci.file_sha256[:16]}…")
    table = Table(title="FusionProxy sizes")
    for col in ("size", "resolution", "params", "GMAC"):
        table.add_column(col, justify="right")
    for r in rows:
        mark = " *" if r["this_checkpoint"] else ""
        table.add_row(f"{r['size']}{mark}", str(r["resolution"]), f"{r['params']:,}", f"{r['gmac']:.3f}")
    console.print(table)
    console.print(
        "IO: visible N×3×H×W + thermal N×1×H×W -> fused N×3×H×W, float32 in [0,1]; "
        "H, W multiples of 16 (fuse pads any other size)"
    )
    prov = ci.provenance
    if prov:
        keep = {k: v for k, v in prov.items() if k not in ("train_pairs", "val_pairs")}
        console.print("provenance: " + json.dumps(keep, default=str))
