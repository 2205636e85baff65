"""Seed spreads and side-by-side verdicts for students scored by ``scripts/evaluate_students.py``.

Rows named ``<group>_s<seed>`` are grouped: mean ± std (ddof 1) per metric and held-out set. ``--compare
NEW=OLD`` adds, per set, NEW − OLD on VIF, Qabf and SSIM with the larger std of the two groups; a difference
within it is "no difference" (the rule the ablation uses, scripts/seed_table.py).

    python scripts/seed_compare.py --eval runs/eval.json --compare new60=old60 --md out.md --json out.json

``--eval`` may repeat (rows of later files join, per set); ``--teacher SET=JSON`` adds a teacher cache's
ensemble mean (``scripts/score_cache.py --json``) to SET as the row "e (teacher mean)".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from seed_table import SHOWN, compare  # the ablation's rule and metric list, for the same verdicts

HEADLINE = ("VIF", "Qabf", "SSIM")


def group(rows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{group: {"seeds": [...], metric: mean, metric_std: std}} (the ablation JSON's shape, which
    ``seed_table.compare`` reads); rows without a _s<N> suffix are groups of one (std 0)."""
    members: dict[str, list[tuple[int, dict[str, float]]]] = {}
    for name, vals in rows.items():
        if not isinstance(vals, dict):
            continue  # the set's "pairs" count
        m = re.fullmatch(r"(.+)_s(\d+)", name)
        key, seed = (m.group(1), int(m.group(2))) if m else (name, -1)
        members.setdefault(key, []).append((seed, vals))
    out: dict[str, dict[str, Any]] = {}
    for key, runs in members.items():
        ddof = 1 if len(runs) > 1 else 0
        entry: dict[str, Any] = {"seeds": sorted(s for s, _ in runs)}
        for k in runs[0][1]:
            vals = [v[k] for _, v in runs]
            entry[k], entry[k + "_std"] = float(np.mean(vals)), float(np.std(vals, ddof=ddof))
        out[key] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--eval", action="append", required=True, help="scripts/evaluate_students.py --json output"
    )
    ap.add_argument("--teacher", action="append", default=[], help="SET=scripts/score_cache.py --json output")
    ap.add_argument("--compare", action="append", default=[], help="NEW=OLD (group names)")
    ap.add_argument("--md", required=True)
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    report: dict[str, dict[str, Any]] = {}

    def same_pairs(set_name: str, count: Any, path: str) -> None:
        # rows scored on other pairs are not comparable: refuse rather than let the later count win
        have = report.get(set_name, {}).get("pairs")
        if have is not None and count is not None and have != count:
            sys.exit(f"seed_compare: {path}: {set_name} has {count} pairs, the files before it {have}")

    for path in args.eval:
        for set_name, rows in json.loads(Path(path).read_text()).items():
            same_pairs(set_name, rows.get("pairs"), path)
            report.setdefault(set_name, {}).update(rows)
    for spec in args.teacher:
        set_name, path = spec.split("=", 1)
        teacher = json.loads(Path(path).read_text())
        same_pairs(set_name, teacher.get("pairs"), path)
        report[set_name]["e (teacher mean)"] = teacher["metrics"]
    lines, out = [], {}
    for set_name, rows in report.items():
        groups = group(rows)
        out[set_name] = {"pairs": rows.get("pairs"), "groups": groups, "compare": {}}
        lines += [f"### {set_name} ({rows.get('pairs')} pairs)", ""]
        lines += ["| row | seeds | " + " | ".join(SHOWN) + " |", "|---|---|" + "---|" * len(SHOWN)]
        for key, g in sorted(groups.items(), key=lambda kv: (kv[1]["seeds"] == [-1], kv[0])):  # seeded first
            cells = [
                f"{g[k]:.3f} ± {g[k + '_std']:.3f}" if len(g["seeds"]) > 1 else f"{g[k]:.3f}" for k in SHOWN
            ]
            seeds = ",".join(str(s) for s in g["seeds"] if s >= 0) or "–"
            lines.append(f"| {key} | {seeds} | " + " | ".join(cells) + " |")
        lines.append("")
        for spec in args.compare:
            new, old = spec.split("=", 1)
            verdict = {m: compare(groups[new], groups[old], m) for m in HEADLINE}
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
