"""The Markdown sections below a report's main table: metric deltas, pre/post-processing, checks, the
regression gate, what was skipped, notes and the environment."""

from __future__ import annotations

from typing import Any

from edgefuse.bench.records import Report, Status
from edgefuse.bench.report import COLUMNS, METRIC_ORDER, _md_table, fmt, grouped_skips, headline, num, summary


def metric_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Signed relative change (%) of each fusion metric, artifact vs reference, one row per target."""
    targets = Report.from_dict(report).target_records()
    names = [m for m in METRIC_ORDER if any(m in (t.metrics or {}) for t in targets)]
    rows = []
    for t in targets:
        metrics = t.metrics or {}
        if metrics:
            rows.append([t.id, *(_pct(metrics.get(m, {}).get("change_pct")) for m in names)])
    return ["target", *[f"{m}{'' if m != 'Nabf' else ' (not gated)'}" for m in names]], rows


def _pct(x: Any) -> str:
    v = num(x)
    return "-" if v != v else f"{v:+.2f}%"


def details(report: dict[str, Any]) -> list[str]:
    rec = Report.from_dict(report)
    lines: list[str] = []
    head, rows = metric_rows(report)
    if rows:
        lines += ["", "## Fusion metrics: signed change vs the fp32 reference (mean over pairs)", ""]
        lines += _md_table(head, rows)
        ref_row = next((t for t in rec.target_records() if t.metrics), None)
        if ref_row and ref_row.metrics:
            m = ref_row.metrics
            lines += [
                "",
                "Reference values: " + ", ".join(f"{k} {fmt(v.get('reference'), 3)}" for k, v in m.items()),
            ]
    pipe = rec.pipeline
    if pipe:
        lines += [
            "",
            f"## Pre- and post-processing ({pipe.get('source', '')}, per frame at {pipe.get('size')})",
            "",
        ]
        stages = [s for s in ("decode", "resize", "layout", "postprocess") if s in pipe]
        lines += _md_table(
            ["stage", "p50 ms", "p90 ms", "mean ms", "n"],
            [
                [
                    s,
                    fmt(pipe[s].get("p50"), 3),
                    fmt(pipe[s].get("p90"), 3),
                    fmt(pipe[s].get("mean"), 3),
                    str(pipe[s].get("n", 0)),
                ]
                for s in stages
            ],
        )
        lines += [
            "",
            "decode: file -> float arrays; resize: cover-resize + crop + NCHW (includes layout); "
            "layout: HWC -> NCHW alone; postprocess: fused float -> uint8 HWC.",
        ]
    lines += check_lines(report)
    skipped = rec.skipped
    not_run = [t for t in rec.target_records() if t.status != Status.OK]
    if skipped or not_run:
        lines += ["", "## Not benchmarked here", ""]
        lines += [f"- {line}" for line in grouped_skips(report)]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in rec.notes]
    lines += environment_lines(report)
    return lines


def check_lines(report: dict[str, Any]) -> list[str]:
    rec = Report.from_dict(report)
    check = rec.check or {}
    lines = ["", "## Budgets", ""]
    lines.append(f"Latency budgets: {check.get('latency_rule', '-')}.")
    notes = [n for t in rec.target_records() for n in (t.check or {}).get("notes", [])]
    applied = [n for n in notes if n.startswith("latency budget applied")]
    budgets = [n for n in notes if n.startswith("latency budget")]
    if budgets:
        lines.append(f"A profile latency budget applied to {len(applied)} of {len(budgets)} targets here.")
    if check.get("max_ratio"):
        lines.append(
            f"Relative latency budget: p50 <= {check['max_ratio']}× the torch reference's, same run."
        )
    lines.append("")
    misses = check.get("misses") or []
    lines.append("All budgets met." if not misses else f"{len(misses)} budget miss(es):")
    lines += [f"- {m}" for m in misses]
    gate = rec.regression
    if gate:
        lines += [
            "",
            f"## Regression gate vs {gate.get('baseline', {}).get('label', '?')} "
            f"(max {gate.get('max_regression_pct')}%)",
            "",
        ]
        lines += _md_table(
            ["target", "status", "ratio now", "ratio before", "change %", "noise ±%", "raw p50 change %"],
            [
                [
                    r["id"],
                    r["status"],
                    fmt(r.get("ratio_now"), 3),
                    fmt(r.get("ratio_before"), 3),
                    fmt(r.get("change_pct"), 1),
                    fmt(r.get("noise_pct"), 1),
                    fmt(r.get("raw_change_pct"), 1),
                ]
                for r in gate.get("rows", [])
            ],
        )
        lines += ["", gate.get("method", "")]
    return lines


def environment_lines(report: dict[str, Any]) -> list[str]:
    rec = Report.from_dict(report)
    env = rec.environment
    cpu = env.get("cpu") or {}
    lines = ["", "## Environment", ""]
    lines.append(
        f"- CPU: {cpu.get('model')} ({cpu.get('arch')}), {cpu.get('logical_cores')} logical cores, "
        f"{cpu.get('usable_cores')} usable; flags {' '.join(cpu.get('flags', [])) or '-'}"
    )
    for g in env.get("gpus") or []:
        lines.append(f"- GPU: {g.get('name')} (sm {g.get('capability')}, {g.get('memory_gb')} GB)")
    lines.append(f"- memory {env.get('memory_gb')} GB; {env.get('platform')}; Python {env.get('python')}")
    pk = env.get("packages") or {}
    lines.append("- packages: " + ", ".join(f"{k} {v}" for k, v in pk.items()))
    backends = env.get("backends") or {}
    lines.append(
        "- runtimes: "
        + "; ".join(
            f"{k} {'ok ' + str(v.get('detail', '')).split(' ')[0] if v.get('available') else 'unavailable'}"
            for k, v in backends.items()
        )
    )
    ck = rec.checkpoint
    lines.append(f"- checkpoint: {ck.get('path')} (weights sha256 {str(ck.get('weights_sha256', ''))[:12]}…)")
    lines.append(f"- command: `{rec.command}`")
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown; :class:`~edgefuse.errors.DataError` when it is malformed."""
    rec = Report.from_dict(report)
    lines = [f"# edgefuse bench: {rec.environment.get('label', '?')}", "", headline(report), ""]
    rows = [[summary(t)[key] for key, _ in COLUMNS] for t in rec.targets]  # summary reads the JSON objects
    lines += _md_table([title for _, title in COLUMNS], rows)
    lines += details(report)
    return "\n".join(lines) + "\n"
