"""``edgefuse doctor``: which backends run here and why not, converter packages, torch/CUDA, the CPU."""

from __future__ import annotations

import json
from importlib import metadata
from typing import Annotated, Any

import typer

from edgefuse.cli._common import cli_command, console


def torch_info() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "threads": torch.get_num_threads(),
    }


def backend_rows() -> list[dict[str, Any]]:
    from edgefuse.profiles import list_profiles
    from edgefuse.runtimes.base import get_runtime, runtime_names

    per_backend: dict[str, int] = {}
    for p in list_profiles():
        per_backend[p.backend] = per_backend.get(p.backend, 0) + 1
    rows = []
    for name in runtime_names():
        ok, detail = get_runtime(name).is_available()
        n_profiles = per_backend.get(name, 0)
        rows.append({"runtime": name, "available": ok, "detail": detail, "profiles": n_profiles})
    return rows


def converter_rows() -> list[dict[str, Any]]:
    """Packages the exporters convert with (version from metadata: no slow imports), per the registry."""
    from edgefuse import backends

    rows = []
    for pkg in dict.fromkeys(p for spec in backends.specs() for p in spec.converter_tools):
        try:
            rows.append({"package": pkg, "installed": True, "version": metadata.version(pkg)})
        except metadata.PackageNotFoundError:
            rows.append({"package": pkg, "installed": False, "version": ""})
    return rows


@cli_command
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Every runtime backend (its version, or why it cannot run here), converters, torch/CUDA and the CPU."""
    from edgefuse import __version__ as edgefuse_version
    from edgefuse.bench.env import cpu_info

    report: dict[str, Any] = {
        "edgefuse": edgefuse_version,
        "cpu": cpu_info(),
        "torch": torch_info(),
        "runtimes": backend_rows(),
        "converters": converter_rows(),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    from rich.markup import escape
    from rich.table import Table

    cpu, tor = report["cpu"], report["torch"]
    console.print(f"[bold]edgefuse {edgefuse_version}[/] on {cpu['os']}, Python {cpu['python']}")
    console.print(
        f"CPU: {cpu['model']} ({cpu['arch']}), {cpu['logical_cores']} logical cores, "
        f"{cpu['usable_cores']} usable; flags: {' '.join(cpu['flags']) or 'none of note'}",
        highlight=False,
    )
    if "avx512_bf16" in cpu["flags"] or "amx_bf16" in cpu["flags"]:
        console.print("  bf16 CPU: OpenVINO runs bf16 unless told not to (edgefuse pins the precision)")
    gpus = ", ".join(tor["devices"]) or "no CUDA device"
    console.print(f"torch {tor['version']} (CUDA build {tor['cuda_build'] or 'none'}): {gpus}")
    table = Table(title="runtimes")
    for col in ("runtime", "available", "profiles", "version / why not"):
        # fold, never truncate: OpenVINO's version is one 40-character word
        table.add_column(col, overflow="fold")
    for r in report["runtimes"]:
        mark = "[green]yes[/]" if r["available"] else "[red]no[/]"
        table.add_row(r["runtime"], mark, str(r["profiles"]), escape(r["detail"]))
    console.print(table)
    conv = Table(title="converters (for edgefuse export)")
    conv.add_column("package")
    conv.add_column("version", overflow="fold")
    for r in report["converters"]:
        conv.add_row(r["package"], r["version"] if r["installed"] else "[dim]not installed[/]")
    console.print(conv)
