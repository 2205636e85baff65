"""``edgefuse report merge``: reports from several machines (a Jetson, a Mac, an x86 box) side by side.

Rows are target ids (a profile name means the same artifact recipe everywhere; ``torch-cpu-fp32`` is
each machine's own reference), columns are machines. The merged document embeds the source reports so
its HTML can show every machine's latency distributions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefuse.bench.records import MERGED_SCHEMA, SCHEMA_VERSION, Report, TargetRecord
from edgefuse.bench.report import _md_table, created_now, fmt, load_report, num
from edgefuse.errors import DataError


def merge(paths: list[Path]) -> dict[str, Any]:
    if len(paths) < 1:
        raise DataError("report merge needs at least one report")
    reports = [load_report(p) for p in paths]
    recs = [Report.from_dict(r) for r in reports]
    labels: list[str] = []
    for r in recs:
        label = str(r.environment.get("label") or "?")
        n, base = 2, label
        while label in labels:
            label, n = f"{base} #{n}", n + 1
        labels.append(label)
    hosts = []
    for path, label, r in zip(paths, labels, recs, strict=True):
        env, s = r.environment, r.settings
        hosts.append(
            {
                "label": label,
                "file": str(path),
                "created": r.created or None,  # left out of the report: null, as before
                "device": s.get("device"),
                "size": s.get("size"),
                "threads": s.get("threads"),
                "cpu": (env.get("cpu") or {}).get("model"),
                "gpus": [g.get("name") for g in env.get("gpus") or []],
                "pairs": r.data.get("pairs"),
                "synthetic": bool(r.data.get("synthetic")),
                "edgefuse": r.edgefuse_version or None,
                "wall_seconds": r.wall_seconds,
            }
        )
    targets = [r.target_records() for r in recs]
    ids: list[str] = []
    for records in targets:
        ids += [t.id for t in records if t.id not in ids]
    rows = []
    for tid in ids:
        cells = {}
        for label, records in zip(labels, targets, strict=True):
            t = next((x for x in records if x.id == tid), None)
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


def _cell(t: TargetRecord) -> dict[str, Any]:
    lat = t.latency or {}
    drift = (t.drift or {}).get("drift") or {}
    return {
        "backend": t.backend,
        "precision": t.precision,
        "batch": t.batch,
        "status": t.status,
        "check": (t.check or {}).get("status"),
        "p50": lat.get("p50"),
        "p99": lat.get("p99"),
        "fps": lat.get("fps"),
        "ratio": (t.ratio_to_reference or {}).get("median"),
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
