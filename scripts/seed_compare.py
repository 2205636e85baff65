"""Seed spreads and side-by-side verdicts for students scored by ``scripts/evaluate_students.py``.

Rows named ``<group>_s<seed>`` are grouped: mean ± std (ddof 1) per metric and held-out set. ``--compare
NEW=OLD`` adds, per set, NEW − OLD on VIF, Qabf and SSIM with the larger std of the two groups; a difference
within it is "no difference" (the rule the ablation uses, scripts/seed_table.py).

    python scripts/seed_compare.py --eval runs/eval.json --compare new60=old60 --md out.md --json out.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

SHOWN = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")  # the judged metrics (docs/metrics.md)
HEADLINE = ("VIF", "Qabf", "SSIM")


def group(rows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{group: {"seeds": [...], metric: (mean, std)}}; rows without a _s<N> suffix are groups of one."""
    members: dict[str, list[tuple[int, dict[str, float]]]] = {}
    for name, vals in rows.items():
        if not isinstance(vals, dict):
            continue  # the set's "pairs" count
        m = re.fullmatch(r"(.+)_s(\d+)", name)
        key, seed = (m.group(1), int(m.group(2))) if m else (name, -1)
        members.setdefault(key, []).append((seed, vals))
    out = {}
    for key, runs in members.items():
        ddof = 1 if len(runs) > 1 else 0
        out[key] = {"seeds": sorted(s for s, _ in runs)} | {
            k: (float(np.mean([v[k] for _, v in runs])), float(np.std([v[k] for _, v in runs], ddof=ddof)))
            for k in runs[0][1]
        }
    return out


def compare(new: dict[str, Any], old: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for k in HEADLINE:
        diff, spread = new[k][0] - old[k][0], max(new[k][1], old[k][1])
        out[k] = {"diff": diff, "spread": spread, "beyond": abs(diff) > spread}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", required=True, help="scripts/evaluate_students.py --json output")
    ap.add_argument("--compare", action="append", default=[], help="NEW=OLD (group names)")
    ap.add_argument("--md", required=True)
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    report = json.loads(Path(args.eval).read_text())
    lines, out = [], {}
    for set_name, rows in report.items():
        groups = group(rows)
        out[set_name] = {"pairs": rows.get("pairs"), "groups": groups, "compare": {}}
        lines += [f"### {set_name} ({rows.get('pairs')} pairs)", ""]
        lines += ["| row | seeds | " + " | ".join(SHOWN) + " |", "|---|---|" + "---|" * len(SHOWN)]
        for key, g in groups.items():
            cells = [
                f"{g[k][0]:.3f} ± {g[k][1]:.3f}" if len(g["seeds"]) > 1 else f"{g[k][0]:.3f}" for k in SHOWN
            ]
            seeds = ",".join(str(s) for s in g["seeds"] if s >= 0) or "–"
            lines.append(f"| {key} | {seeds} | " + " | ".join(cells) + " |")
        lines.append("")
        for spec in args.compare:
            new, old = spec.split("=", 1)
            verdict = compare(groups[new], groups[old])
            out[set_name]["compare"][spec] = verdict
            parts = []
            for k, v in verdict.items():
                said = "beyond" if v["beyond"] else "no difference"
                parts.append(f"{k} {v['diff']:+.3f} (spread {v['spread']:.3f}: {said})")
            lines += [f"{new} − {old}: " + "; ".join(parts), ""]
    Path(args.md).write_text("\n".join(lines))
    Path(args.json).write_text(json.dumps(out, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
