"""A self-contained HTML report: tables, inline SVG plots and sample panels as base64 JPEG (no external
files, scripts or fonts), for one run (``edgefuse bench --html``) or a merge (``edgefuse report merge``)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from edgefuse.bench import plots
from edgefuse.bench.markdown import check_lines, environment_lines, metric_rows
from edgefuse.bench.merge import cell_text, drift_text
from edgefuse.bench.records import Report, TargetRecord
from edgefuse.bench.report import COLUMNS, fmt, grouped_skips, headline, num, summary

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;
 padding:0 16px;color:#1d2329}
h1{font-size:22px;margin-bottom:2px}
h2{font-size:17px;margin-top:30px;border-bottom:1px solid #dde;padding-bottom:3px}
.meta{color:#555}.banner{background:#fff3cd;border:1px solid #e6c200;padding:8px 12px;border-radius:4px}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}
th,td{padding:3px 8px;border-bottom:1px solid #e3e6ea}th{background:#f3f5f7;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.passed,.pass{color:#12813a;font-weight:600}.failed,.error,.FAIL{color:#c0262d;font-weight:600}
.not_run,.not_checked,.not{color:#8a6d00}.fig{overflow-x:auto}.fig svg{max-width:100%;height:auto}
.panels td{vertical-align:top;padding:2px 3px;border:0}.panels img{display:block;width:216px;height:auto}
.panels td.tid{padding-top:10px;font-size:12px;color:#333;border-bottom:1px solid #e3e6ea}
.cap{font-size:11.5px;color:#555}ul{margin-top:4px}code{background:#f3f5f7;padding:1px 4px}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def table(head: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """An HTML table; ``classes[j]`` styles column j (``n``: numeric, right-aligned)."""
    classes = classes or [""] * len(head)
    out = ["<table><tr>", *(f"<th>{_esc(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        cells = []
        for cell, cls in zip(row, classes, strict=False):
            extra = f" {cell}" if cls == "status" else ""
            cells.append(f'<td class="{cls}{extra}">{_esc(cell)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _page(title: str, body: list[str]) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _fig(svg: str, empty: str) -> str:
    return f'<div class="fig">{svg}</div>' if svg else f"<p class=meta>{_esc(empty)}</p>"


def _jpeg(img: np.ndarray, width: int = 320) -> str:
    from PIL import Image

    arr = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    pic = Image.fromarray(arr)
    if pic.width > width:
        pic = pic.resize((width, round(pic.height * width / pic.width)), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    pic.convert("RGB").save(buf, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _heat(delta: np.ndarray, peak: float) -> np.ndarray:
    """|Δ| (max over channels, 8-bit units) coloured with inferno from 0 to ``peak`` (the largest of every
    row: one scale for all, so an fp32 row does not look as hot as an int8 one), on a square-root scale: a
    few peak pixels would otherwise leave the rest of the map black."""
    scaled = np.sqrt(np.clip(delta / peak, 0.0, 1.0)) if peak > 0 else delta
    return plots.colormap(scaled)


def panels_html(panels: dict[str, Any]) -> str:
    """Per target: visible | thermal | reference | artifact | |Δ| heat map, the target named above."""
    vis, ir, ref = panels["visible"], panels["thermal"], panels["reference"]
    shared = [_jpeg(vis), _jpeg(np.repeat(ir[..., None], 3, axis=2)), _jpeg(ref)]
    heads = ["visible", "thermal", "reference (torch fp32)", "artifact", "|Δ| heat map"]
    rows = ['<table class="panels"><tr>', *(f"<th>{h}</th>" for h in heads), "</tr>"]
    deltas = {
        tid: np.abs(out.astype(np.float64) - ref.astype(np.float64)).max(axis=2) * 255.0
        for tid, out in panels["outputs"].items()
    }
    scale = max((float(d.max()) for d in deltas.values()), default=0.0)
    rows.append(
        f'<tr><td colspan="5" class="tid">|Δ| heat maps share one colour scale: 0 → {scale:.3g} '
        "(the largest |Δ| of any row; max over channels, 8-bit units; square root)</td></tr>"
    )
    for tid, out in panels["outputs"].items():
        delta = deltas[tid]
        imgs = [*shared, _jpeg(out), _jpeg(_heat(delta, scale))]
        rows.append(
            f'<tr><td colspan="5" class="tid">{_esc(tid)}: |Δ| max {float(delta.max()):.3g}, '
            f"mean {delta.mean():.3g}</td></tr>"
        )
        rows.append("<tr>" + "".join(f'<td><img alt="" src="{src}"></td>' for src in imgs) + "</tr>")
    return "".join(rows) + "</table>"


def _plots(targets: list[tuple[str, TargetRecord]]) -> list[str]:
    """The three figures for (label, target record) pairs."""
    dist = [
        (label, [num(s) for s in (t.latency or {}).get("samples", [])], t.latency or {})
        for label, t in targets
        if t.latency
    ]
    points = [
        (
            label,
            num((t.latency or {}).get("p50")),
            num(((t.drift or {}).get("drift") or {}).get("psnr_min")),
        )
        for label, t in targets
        if t.latency and t.drift
    ]
    deltas = [(label, t.metrics or {}) for label, t in targets]
    return [
        "<h2>Latency distribution per platform</h2>",
        _fig(plots.latency_distribution(dist), "no timed targets"),
        "<h2>Drift vs latency</h2>",
        _fig(plots.drift_vs_latency(points), "no target with both drift and latency"),
        "<h2>Fusion metric deltas vs the fp32 reference</h2>",
        _fig(plots.metric_deltas(deltas), "no fusion metrics measured"),
    ]


def report_html(report: dict[str, Any], panels: dict[str, Any] | None = None) -> str:
    """One run's page; :class:`~edgefuse.errors.DataError` when ``report`` is malformed."""
    rec = Report.from_dict(report)
    label = rec.environment.get("label", "?")
    body = [f"<h1>edgefuse bench: {_esc(label)}</h1>", f'<p class="meta">{_esc(headline(report))}</p>']
    data = rec.data
    if data.get("synthetic"):
        body.append(f'<p class="banner">{_esc(data.get("note", "SYNTHETIC pairs"))}</p>')
    rows = [[summary(t)[key] for key, _ in COLUMNS] for t in rec.targets]  # summary reads the JSON objects
    classes = ["", "", *["n"] * 10, "status"]
    body += ["<h2>Summary</h2>", table([title for _, title in COLUMNS], rows, classes)]
    body += _plots([(t.id, t) for t in rec.target_records()])
    head, mrows = metric_rows(report)
    if mrows:
        body.append(table(head, mrows, ["", *["n"] * (len(head) - 1)]))
    if panels and panels.get("outputs"):
        body += [
            f"<h2>Sample pair {_esc(panels['stem'])} (the pair with the largest drift)</h2>",
            panels_html(panels),
        ]
    body += _details(report)
    return _page(f"edgefuse bench: {label}", body)


def _details(report: dict[str, Any]) -> list[str]:
    rec = Report.from_dict(report)
    out = []
    pipe = rec.pipeline
    stages = [s for s in ("decode", "resize", "layout", "postprocess") if s in pipe]
    if stages:
        out += [
            f"<h2>Pre- and post-processing per frame ({_esc(pipe.get('source', ''))})</h2>",
            table(
                ["stage", "p50 ms", "p90 ms", "mean ms", "n"],
                [
                    [
                        s,
                        fmt(pipe[s].get("p50"), 3),
                        fmt(pipe[s].get("p90"), 3),
                        fmt(pipe[s].get("mean"), 3),
                        str(pipe[s].get("n")),
                    ]
                    for s in stages
                ],
                ["", "n", "n", "n", "n"],
            ),
            "<p class=cap>decode: file → float arrays; resize: cover-resize + crop + NCHW (includes "
            "layout); layout: HWC → NCHW alone; postprocess: fused float → uint8 HWC.</p>",
        ]
    out += _lines_html(check_lines(report))
    skipped = grouped_skips(report)
    if skipped:
        out += ["<h2>Not benchmarked here</h2><ul>", *(f"<li>{_esc(s)}</li>" for s in skipped), "</ul>"]
    out += ["<h2>Notes</h2><ul>", *(f"<li>{_esc(n)}</li>" for n in rec.notes), "</ul>"]
    out += _lines_html(environment_lines(report))
    return out


def _lines_html(lines: list[str]) -> list[str]:
    """The Markdown sections' lines as HTML: headings, bullets, tables and paragraphs."""
    out, rows, bullets = [], [], []
    for line in [*lines, ""]:
        if line.startswith("- "):
            bullets.append(f"<li>{_esc(line[2:].replace('`', ''))}</li>")
            continue
        if bullets:
            out.append("<ul>" + "".join(bullets) + "</ul>")
            bullets = []
        if line.startswith("| "):
            cells = [c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]
            if not all(set(c) <= {"-"} for c in cells):
                rows.append(cells)
            continue
        if rows:
            out.append(table(rows[0], rows[1:], ["", "status", *["n"] * (len(rows[0]) - 2)]))
            rows = []
        if line.startswith("## "):
            out.append(f"<h2>{_esc(line[3:])}</h2>")
        elif line:
            out.append(f"<p>{_esc(line)}</p>")
    return out


def merged_html(merged: dict[str, Any]) -> str:

    labels = [h["label"] for h in merged["hosts"]]
    body = [
        "<h1>edgefuse bench: cross-device comparison</h1>",
        f'<p class="meta">{len(labels)} machines · merged {_esc(merged.get("created", ""))}</p>',
        table(
            ["machine", "CPU", "GPU", "device", "size", "pairs", "date"],
            [
                [
                    h["label"],
                    str(h.get("cpu")),
                    ", ".join(h.get("gpus") or []) or "-",
                    str(h.get("device")),
                    str(h.get("size")),
                    f"{h.get('pairs')}{' synthetic' if h.get('synthetic') else ''}",
                    str(h.get("created", ""))[:10],
                ]
                for h in merged["hosts"]
            ],
        ),
        "<h2>Latency: p50 · FPS · speed-up over that machine's torch fp32 reference</h2>",
        table(
            ["target", *labels],
            [[r["id"], *(cell_text(r["cells"][k]) for k in labels)] for r in merged["rows"]],
        ),
        "<h2>Drift: worst-pair PSNR · max |Δ| (8-bit units)</h2>",
        table(
            ["target", *labels],
            [
                [r["id"], *(drift_text(r["cells"][k]) for k in labels)]
                for r in merged["rows"]
                if any(drift_text(c) for c in r["cells"].values())
            ],
        ),
    ]
    pairs = [
        (f"{label}: {t.id}", t)
        for label, r in zip(labels, merged["reports"], strict=True)
        for t in Report.from_dict(r).target_records()
    ]
    body += _plots(pairs)
    return _page("edgefuse bench: cross-device comparison", body)
