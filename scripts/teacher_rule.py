"""Item 1's rule for a teacher, on its held-out scores (written before the sixteenth session's run, in
docs/results/session15_conditional_plan.md, and used unchanged since):

- the bar: the teacher's ensemble mean beats the teacher-free row (a) (the mean of its 3 seeds) on VIF and
  Qabf on both RoadScene val and LLVIP, with SSIM no more than 0.02 lower;
- worth distilling: the bar, and VIF and Qabf at least the shipped student's (d_s0) on both sets.

Row (a) and the shipped student come from --reference (the eleventh session's held-out scores). Exit 0 when
the teacher is worth distilling, 1 when not.

    python scripts/teacher_rule.py --score rsval=/tmp/w/mix_teacher_rsval.json \
        --score llvip=/tmp/w/mix_teacher_llvip.json --json /tmp/w/mix_rule.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETS = {"rsval": "roadscene_val", "llvip": "llvip_sample"}  # score names -> the reference's set names
SSIM_SLACK = 0.02


def references(report: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per set: row (a) as the mean of a_s0..a_s2, and the shipped student d_s0 (VIF, Qabf, SSIM)."""
    out = {}
    for name, key in SETS.items():
        rows = report[key]
        seeds = [rows[f"a_s{i}"] for i in range(3)]
        a = {m: sum(s[m] for s in seeds) / len(seeds) for m in ("VIF", "Qabf", "SSIM")}
        out[name] = {"a": a, "shipped": {m: rows["d_s0"][m] for m in ("VIF", "Qabf", "SSIM")}}
    return out


def judge(
    scores: dict[str, dict[str, float]], refs: dict[str, dict[str, dict[str, float]]]
) -> dict[str, Any]:
    """Per set which parts of the rule hold, and the two verdicts."""
    checks = {}
    for name in SETS:
        m, a, shipped = scores[name], refs[name]["a"], refs[name]["shipped"]
        checks[name] = {
            "vif_above_a": m["VIF"] > a["VIF"],
            "qabf_above_a": m["Qabf"] > a["Qabf"],
            "ssim_within_slack_of_a": m["SSIM"] >= a["SSIM"] - SSIM_SLACK,
            "vif_qabf_at_least_shipped": m["VIF"] >= shipped["VIF"] and m["Qabf"] >= shipped["Qabf"],
        }
    bar = all(c["vif_above_a"] and c["qabf_above_a"] and c["ssim_within_slack_of_a"] for c in checks.values())
    worth = bar and all(c["vif_qabf_at_least_shipped"] for c in checks.values())
    return {"checks": checks, "meets_bar": bar, "worth_distilling": worth}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--score", action="append", default=[], help="SET=scripts/score_cache.py --json output")
    ap.add_argument("--reference", type=Path, default=ROOT / "docs/results/session11_heldout.json")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    given = dict(s.split("=", 1) for s in args.score)
    if set(given) != set(SETS):
        ap.error(f"give --score for exactly {', '.join(SETS)}")
    scores = {name: json.loads(Path(path).read_text())["metrics"] for name, path in given.items()}
    refs = references(json.loads(args.reference.read_text()))
    verdict = {**judge(scores, refs), "scores": scores, "references": refs}
    for name in SETS:
        m, a = scores[name], refs[name]["a"]
        print(name, *(f"{k} {m[k]:.3f} (a {a[k]:.3f})" for k in ("VIF", "Qabf", "SSIM")))
    print(f"meets the bar: {verdict['meets_bar']}; worth distilling: {verdict['worth_distilling']}")
    if args.json:
        args.json.write_text(json.dumps(verdict, indent=1) + "\n")
    return 0 if verdict["worth_distilling"] else 1


if __name__ == "__main__":
    sys.exit(main())
