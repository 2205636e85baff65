"""``edgefuse report merge``: reports from several machines (a Jetson, a Mac, an x86 box) side by side.

Rows are target ids (a profile name means the same artifact recipe everywhere; ``torch-cpu-fp32`` is
each machine's own reference), columns are machines. The merged document embeds the source reports so
its HTML can show every machine's latency distributions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefuse.bench.records import MERGED_SCHEMA, SCHEMA_VERSION
from edgefuse.bench.report import _md_table, created_now, fmt, load_report, num
from edgefuse.errors import DataError


def merge(paths: list[Path]) -> dict[str, Any]:
    if len(paths) < 1:
        raise DataError("report merge needs at least one report")
    reports = [load_report(p) for p in paths]
    labels: list[str] = []
    for r in reports:
        label = str(r["environment"].get("label") or "?")
        n, base = 2, label
        while label in labels:
            label, n = f"{base} #{n}", n + 1
        labels.append(label)
    hosts = []
    for path, label, r in zip(paths, labels, reports, strict=True):
        env, s = r["environment"], r["settings"]
        hosts.append(
            {
                "label": label,
                "file": str(path),
                "created": r.get("created"),
                "device": s.get("device"),
                "size": s.get("size"),
                "threads": s.get("threads"),
                "cpu": (env.get("cpu") or {}).get("model"),
                "gpus": [g.get("name") for g in env.get("gpus") or []],
                "pairs": (r.get("data") or {}).get("pairs"),
                "synthetic": bool((r.get("data") or {}).get("synthetic")),
                "edgefuse": r.get("edgefuse_version"),
                "wall_seconds": r.get("wall_seconds"),
            }
        )
    ids: list[str] = []
    for r in reports:
        ids += [t["id"] for t in r["targets"] if t["id"] not in ids]
    rows = []
    for tid in ids:
        cells = {}
        for label, r in zip(labels, reports, strict=True):
            t = next((x for x in r["targets"] if x["id"] == tid), None)
            cells[label] = None if t is None else _cell(t)
        rows.append({"id": tid, "cells": cells})
    return {
        "schema": MERGED_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": created_now(),
        "hosts": hosts,
        "rows": rows,
        "reports": reports,
    }


def _cell(t: dict[str, Any]) -> dict[str, Any]:
    lat = t.get("latency") or {}
    drift = (t.get("drift") or {}).get("drift") or {}
    return {
        "backend": t.get("backend"),
        "precision": t.get("precision"),
        "batch": t.get("batch", 1),
        "status": t.get("status"),
        "check": (t.get("check") or {}).get("status"),
        "p50": lat.get("p50"),
        "p99": lat.get("p99"),
        "fps": lat.get("fps"),
        "ratio": (t.get("ratio_to_reference") or {}).get("median"),
        "psnr_min": drift.get("psnr_min"),
        "max_abs": drift.get("max_abs"),
    }


def cell_text(cell: dict[str, Any] | None) -> str:
    """'p50 ms · FPS · ×speedup vs that machine's torch' (or the reason it did not run)."""
    if cell is None:
        return ""
    if cell.get("status") != "ok":
        return str(cell.get("status"))
    ratio = num(cell.get("ratio"))
    speed = f" · ×{1 / ratio:.2f}" if ratio > 0 and ratio != 1.0 else ""
    return f"{fmt(cell.get('p50'))} ms · {fmt(cell.get('fps'), 0)} FPS{speed}"


def drift_text(cell: dict[str, Any] | None) -> str:
    if cell is None or cell.get("psnr_min") is None:
        return ""
    return f"{fmt(cell.get('psnr_min'), 1)} dB · max {fmt(cell.get('max_abs'))}"


def merged_markdown(merged: dict[str, Any]) -> str:
    labels = [h["label"] for h in merged["hosts"]]
    lines = ["# edgefuse bench: cross-device comparison", ""]
    lines += _md_table(
        ["machine", "CPU", "GPU", "device", "size", "threads", "pairs", "date", "edgefuse"],
        [
            [
                h["label"],
                str(h.get("cpu")),
                ", ".join(h.get("gpus") or []) or "-",
                str(h.get("device")),
                str(h.get("size")),
                str(h.get("threads")),
                f"{h.get('pairs')}{' synthetic' if h.get('synthetic') else ''}",
                str(h.get("created", ""))[:10],
                str(h.get("edgefuse")),
            ]
            for h in merged["hosts"]
        ],
    )
    lines += ["", "## Latency (p50 · FPS · speed-up over that machine's torch fp32 reference)", ""]
    lines += _md_table(
        ["target", *labels], [[r["id"], *(cell_text(r["cells"][k]) for k in labels)] for r in merged["rows"]]
    )
    lines += ["", "## Drift vs the fp32 reference (worst-pair PSNR · max |Δ| in 8-bit units)", ""]
    drift_rows = [r for r in merged["rows"] if any(drift_text(c) for c in r["cells"].values())]
    lines += _md_table(
        ["target", *labels], [[r["id"], *(drift_text(r["cells"][k]) for k in labels)] for r in drift_rows]
    )
    return "\n".join(lines) + "\n"
