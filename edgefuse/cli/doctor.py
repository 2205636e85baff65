"""``edgefuse doctor``: which backends run here and why not, converter packages, torch/CUDA, the CPU."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefuse.cli._common import cli_command, console

# packages the exporters convert with (version from metadata: no slow imports)
CONVERTERS = ("onnx", "onnxscript", "onnxslim", "nncf", "litert-torch", "coremltools", "tensorrt")
# CPU features that change how a profile behaves (int8 dot products, bf16 defaults in OpenVINO, fp16 math)
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "avx512_fp16")
ARM_FLAGS = ("asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve")


def cpu_info() -> dict[str, Any]:
    """CPU model, logical cores (and how many this process may use), notable ISA flags."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text(errors="replace")
        m = re.search(r"^(model name|Model|Hardware)\s*:\s*(.+)$", text, re.M)
        model = m.group(2).strip() if m else model
        f = re.search(r"^(flags|Features)\s*:\s*(.+)$", text, re.M)
        flags = set(f.group(2).split()) if f else set()
    elif sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
            model = out.stdout.strip() or model
        except OSError:
            pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    known = CPU_FLAGS if platform.machine() in ("x86_64", "AMD64") else ARM_FLAGS
    return {
        "model": model,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "flags": [f for f in known if f in flags],
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


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
    from edgefuse.runtimes.base import RUNTIMES, get_runtime

    per_backend: dict[str, int] = {}
    for p in list_profiles():
        per_backend[p.backend] = per_backend.get(p.backend, 0) + 1
    rows = []
    for name in RUNTIMES:
        ok, detail = get_runtime(name).is_available()
        n_profiles = per_backend.get(name, 0)
        rows.append({"runtime": name, "available": ok, "detail": detail, "profiles": n_profiles})
    return rows


def converter_rows() -> list[dict[str, Any]]:
    rows = []
    for pkg in CONVERTERS:
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

    report: dict[str, Any] = {
        "edgefuse": edgefuse_version,
        "cpu": cpu_info(),
        "torch": torch_info(),
        "runtimes": backend_rows(),
        "converters": converter_rows(),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
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
        table.add_column(col)
    for r in report["runtimes"]:
        mark = "[green]yes[/]" if r["available"] else "[red]no[/]"
        table.add_row(r["runtime"], mark, str(r["profiles"]), escape(r["detail"]))
    console.print(table)
    conv = Table(title="converters (for edgefuse export)")
    conv.add_column("package")
    conv.add_column("version")
    for r in report["converters"]:
        conv.add_row(r["package"], r["version"] if r["installed"] else "[dim]not installed[/]")
    console.print(conv)
