"""The issue's verdicts on the ablation: seed spreads and yes/no checks, from ``scripts/ablation.py``'s JSON.

The ablation already aggregates every row over its seeds (mean, std with ddof 1); this script compares rows:

- the teacher's mean (e) beats the bundled teacher-free student on VIF and Qabf with SSIM at most 0.02 lower;
- (d) beats (a) on VIF and Qabf by more than the seed spread (the larger std of the two rows), SSIM
  within 0.01;
- weighting (c vs b) and routing (d vs c): a difference inside the spread is "no difference".

    python scripts/seed_table.py --ablation docs/results/ablation.json \
        --md docs/results/ablation_seeds.md --json docs/results/ablation_seeds.json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

ROWS = {
    "a": "(a) teacher-free baseline (train)",
    "b": "(b) distil: uniform pixels, no routing",
    "c": "(c) + variance-weighted pixels",
    "d": "(d) + routed feature alignment (full method)",
}
SHOWN = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")


def compare(x: dict[str, Any], y: dict[str, Any], metric: str) -> dict[str, Any]:
    """x − y with the larger seed std of the two: ``beyond`` is True when |x − y| exceeds it."""
    diff = x[metric] - y[metric]
    spread = max(x.get(metric + "_std", 0.0), y.get(metric + "_std", 0.0))
    return {"diff": diff, "spread": spread, "beyond": abs(diff) > spread}


def verdicts(
    rows: dict[str, dict[str, Any]], teacher: dict[str, Any] | None, ref: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if teacher is not None:
        out["teacher_beats_baseline"] = {
            "VIF": teacher["VIF"] > ref["VIF"],
            "Qabf": teacher["Qabf"] > ref["Qabf"],
            "SSIM_within_0.02": teacher["SSIM"] >= ref["SSIM"] - 0.02,
            "teacher": {m: teacher[m] for m in ("VIF", "Qabf", "SSIM")},
            "baseline": {m: ref[m] for m in ("VIF", "Qabf", "SSIM")},
        }
    if "a" in rows and "d" in rows:
        d_a = {m: compare(rows["d"], rows["a"], m) for m in ("VIF", "Qabf", "SSIM")}
        out["d_vs_a"] = {
            **d_a,
            "wins": all(d_a[m]["diff"] > 0 and d_a[m]["beyond"] for m in ("VIF", "Qabf"))
            and d_a["SSIM"]["diff"] >= -0.01,
        }
    if "b" in rows and "c" in rows:
        out["weighting_c_vs_b"] = {m: compare(rows["c"], rows["b"], m) for m in ("VIF", "Qabf", "SSIM")}
    if "c" in rows and "d" in rows:
        out["routing_d_vs_c"] = {m: compare(rows["d"], rows["c"], m) for m in ("VIF", "Qabf", "SSIM")}
    return out


def _cell(entry: dict[str, Any], m: str) -> str:
    sd = entry.get(m + "_std")
    return f"{entry[m]:.3f}" if not sd else f"{entry[m]:.3f} ± {sd:.3f}"


def _diffs(block: dict[str, Any]) -> str:
    def one(m: str) -> str:
        c = block[m]
        tag = "" if c["beyond"] else " (inside the spread)"
        return f"{m} {c['diff']:+.3f} (spread {c['spread']:.3f}){tag}"

    return ", ".join(one(m) for m in ("VIF", "Qabf", "SSIM"))


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "Students: mean ± std over seeds (ddof 1); teacher rows from the ablation run (one ensemble).",
        "",
    ]
    for name, block in report["sets"].items():
        lines += [f"### {name} ({block['pairs']} pairs)", ""]
        lines += ["| row | seeds | " + " | ".join(SHOWN) + " |", "|---|---|" + "---|" * len(SHOWN)]
        lines.append(
            "| bundled fusionproxy-s (teacher-free, 60-epoch recipe) | 1 | "
            + " | ".join(f"{block['ref'][m]:.3f}" for m in SHOWN)
            + " |"
        )
        for row, entry in block["rows"].items():
            seeds = ",".join(str(s).rsplit("_s", 1)[-1] for s in entry["seeds"])
            lines.append(f"| {ROWS[row]} | {seeds} | " + " | ".join(_cell(entry, m) for m in SHOWN) + " |")
        for key, label in (
            ("teacher_mean", "(e) teacher: ensemble mean"),
            ("objective_alone", "(f) teacher's objective alone (prior off)"),
        ):
            if block.get(key):
                lines.append(f"| {label} | – | " + " | ".join(f"{block[key][m]:.3f}" for m in SHOWN) + " |")
        v = block["verdicts"]
        lines.append("")
        if "teacher_beats_baseline" in v:
            t = v["teacher_beats_baseline"]
            lines.append(
                f"- teacher mean vs the bundled baseline: VIF {'higher' if t['VIF'] else 'not higher'}, "
                f"Qabf {'higher' if t['Qabf'] else 'not higher'} "
                f"({t['teacher']['Qabf']:.3f} vs {t['baseline']['Qabf']:.3f}), SSIM "
                f"{'not more than' if t['SSIM_within_0.02'] else 'more than'} 0.02 below it "
                f"({t['teacher']['SSIM']:.3f} vs {t['baseline']['SSIM']:.3f})."
            )
        if "d_vs_a" in v:
            lines.append(
                f"- (d) − (a): {_diffs(v['d_vs_a'])}; wins by the issue's rule: "
                f"{'yes' if v['d_vs_a']['wins'] else 'no'}."
            )
        if "weighting_c_vs_b" in v:
            lines.append(f"- weighting, (c) − (b): {_diffs(v['weighting_c_vs_b'])}.")
        if "routing_d_vs_c" in v:
            lines.append(f"- routing, (d) − (c): {_diffs(v['routing_d_vs_c'])}.")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ablation", required=True, help="scripts/ablation.py JSON")
    ap.add_argument("--md", required=True)
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    with open(args.ablation) as fh:
        abl = json.load(fh)
    by_key = {r["key"]: r for r in abl["rows"]}
    sets = [k for k in ("roadscene_val", "llvip") if k in by_key["ref"]]
    report: dict[str, Any] = {"ablation": args.ablation, "sets": {}}
    for name in sets:
        rows = {k: by_key[k][name] for k in ROWS if k in by_key}
        teacher = by_key.get("e", {}).get(name)
        ref = by_key["ref"][name]
        report["sets"][name] = {
            "pairs": ref["n"],
            "ref": ref,
            "rows": rows,
            "teacher_mean": teacher,
            "objective_alone": by_key.get("f", {}).get(name),
            "verdicts": verdicts(rows, teacher, ref),
        }
    with open(args.json, "w") as fh:
        json.dump(report, fh, indent=1)
    text = markdown(report)
    with open(args.md, "w") as fh:
        fh.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
