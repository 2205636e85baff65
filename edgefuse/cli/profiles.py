"""``edgefuse profiles``: list the bundled hardware profiles, show one, validate TOML files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgefuse.cli._common import cli_command, console, err_console

app = typer.Typer(help="Hardware profiles: target device, backend, precision, budgets.", no_args_is_help=True)


@app.command("list")
@cli_command
def list_(
    target: Annotated[
        str | None, typer.Argument(help="Only this family alias or name (jetson, intel-cpu, ...).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every bundled profile with its backend, precision, size and latency budget."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from edgefuse.profiles import ALIASES, list_profiles, resolve_target

    profiles = resolve_target(target) if target else list_profiles()
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in profiles], indent=2, ensure_ascii=False))
        return
    # the name already says device_backend-precision_HxW: keep it whole. Narrow terminals (80 columns) get
    # the device under the name and the budgets in three short columns instead of a truncated table.
    narrow = console.width < 120
    table = Table(title="edgefuse hardware profiles", box=box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD)
    table.add_column("name" + (" / device" if narrow else ""), no_wrap=not narrow)
    if narrow:
        for col in ("p50/p99 ms", "fps ≥", "PSNR ≥"):
            table.add_column(col, justify="right", no_wrap=True)
    else:
        for col in ("p50 ms", "p99 ms", "min fps", "min PSNR"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("device")
    for p in profiles:
        lat = p.latency
        if narrow:
            table.add_row(
                f"{p.name}\n[dim]{escape(p.device.name)}[/]",
                f"{lat.p50_ms:g}/{lat.p99_ms:g}",
                f"{lat.min_fps:g}",
                f"{p.drift.min_psnr_db:g} dB",
            )
        else:
            table.add_row(
                p.name,
                f"{lat.p50_ms:g}",
                f"{lat.p99_ms:g}",
                f"{lat.min_fps:g}",
                f"{p.drift.min_psnr_db:g} dB",
                escape(p.device.name),
            )
    console.print(table)
    if target:
        return
    console.print("aliases for --target (each exports every profile it names), and all:", highlight=False)
    for alias, names in ALIASES.items():
        console.print(f"  {alias} ({len(names)}): {', '.join(names)}", highlight=False)


@app.command("show")
@cli_command
def show(
    name: Annotated[str, typer.Argument(help="A profile name or a path to a profile TOML.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One profile in full, with the arithmetic behind its latency budget."""
    from edgefuse.profiles import get_profile

    p = get_profile(name)
    d = p.to_dict()
    if as_json:
        typer.echo(json.dumps(d, indent=2, ensure_ascii=False))
        return
    console.print(f"[bold]{p.name}[/]  ({p.source})", highlight=False)
    console.print(f"device: {p.device.name} [{p.device.arch}]", highlight=False)
    if p.device.notes:
        console.print(f"  {p.device.notes}", highlight=False)
    console.print(f"build: {p.backend} {p.precision.value}, input {p.io.batch}x{p.size}", highlight=False)
    for section in ("constraints", "calibration", p.backend):
        fields = ", ".join(f"{k}={v!r}" for k, v in d[section].items() if k != "notes")
        console.print(f"{section}: {fields}", highlight=False)
        if d[section].get("notes"):
            console.print(f"  {d[section]['notes']}", highlight=False)
    lat, drift = p.latency, p.drift
    console.print(
        f"latency budget: p50 <= {lat.p50_ms:g} ms, p99 <= {lat.p99_ms:g} ms, >= {lat.min_fps:g} fps",
        highlight=False,
    )
    console.print(f"  {lat.derivation}", highlight=False)
    console.print(
        f"drift budget: PSNR >= {drift.min_psnr_db:g} dB, every fusion metric within "
        f"{drift.max_metric_change_pct:g}%, max |diff| <= {drift.max_abs_8bit:g} (8-bit levels)",
        highlight=False,
    )


@app.command("validate")
@cli_command
def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Profile TOML files or folders (default: the bundled ones).")
    ] = None,
) -> None:
    """Check profile files; exit 1 listing every problem, one line per file."""
    from edgefuse.errors import ProfileError
    from edgefuse.profiles import load_profile

    if paths:
        files: list[Path] = []
        for path in paths:
            files.extend(sorted(path.glob("*.toml")) if path.is_dir() else [path])
    else:
        from importlib import resources

        root = resources.files("edgefuse.profiles")
        files = sorted(Path(str(f)) for f in root.iterdir() if f.name.endswith(".toml"))
    problems = 0
    for f in files:
        try:
            p = load_profile(f)
        except ProfileError as exc:
            problems += 1
            err_console.print(f"[red]invalid[/] {exc}", highlight=False, soft_wrap=True)
            continue
        line = f"[green]ok[/] {f} ({p.backend} {p.precision.value} {p.size})"
        console.print(line, highlight=False, soft_wrap=True)
    if not files:
        err_console.print("no profile files found", highlight=False)
        raise typer.Exit(1)
    if problems:
        err_console.print(f"{problems} of {len(files)} profile files are invalid", highlight=False)
        raise typer.Exit(1)
