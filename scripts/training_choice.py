"""Choose among candidate rows on training pairs only (the rule the distillation runs write down beforehand).

A candidate is eligible if its seed-mean SSIM is at least the baseline's − ``--ssim-tolerance`` on every set
of ``--eval`` (scripts/evaluate_students.py output on scripts/proxy_pairs.py's sets); its score on a set is
VIF/VIF_base + Qabf/Qabf_base; the eligible candidate with the highest mean score over the sets is chosen.

    python scripts/training_choice.py --eval runs/eval_train.json --baseline a --candidate d \
        --candidate d2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from seed_compare import group  # rows <group>_s<seed> -> seed means


def choose(report: dict[str, Any], baseline: str, candidates: list[str], tol: float) -> dict[str, Any]:
    per_set: dict[str, dict[str, Any]] = {}
    for set_name, rows in report.items():
        groups = group(rows)
        missing = [n for n in (baseline, *candidates) if n not in groups]
        if missing:
            raise SystemExit(f"{set_name}: no rows for {', '.join(missing)}")
        base = groups[baseline]
        per_set[set_name] = {
            name: {
                "VIF": g["VIF"],
                "Qabf": g["Qabf"],
                "SSIM": g["SSIM"],
                "score": g["VIF"] / base["VIF"] + g["Qabf"] / base["Qabf"],
                "ssim_minus_base": g["SSIM"] - base["SSIM"],
            }
            for name, g in groups.items()
            if name in (baseline, *candidates)
        }
    summary = {}
    for name in candidates:
        rows = [per_set[s][name] for s in per_set]
        summary[name] = {
            "mean_score": float(np.mean([r["score"] for r in rows])),
            "eligible": all(r["ssim_minus_base"] >= -tol for r in rows),
        }
    eligible = [n for n in candidates if summary[n]["eligible"]]
    chosen = max(eligible, key=lambda n: summary[n]["mean_score"]) if eligible else None
    out = {"baseline": baseline, "ssim_tolerance": tol, "sets": per_set, "summary": summary}
    return {**out, "chosen": chosen}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", required=True, help="scripts/evaluate_students.py --json on training pairs")
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--candidate", action="append", required=True)
    ap.add_argument("--ssim-tolerance", type=float, default=0.01)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    out = choose(json.loads(Path(args.eval).read_text()), args.baseline, args.candidate, args.ssim_tolerance)
    for set_name, rows in out["sets"].items():
        print(f"{set_name}:")
        for name, r in rows.items():
            print(
                f"  {name:>6}  VIF {r['VIF']:.4f}  Qabf {r['Qabf']:.4f}  SSIM {r['SSIM']:.4f}"
                f"  score {r['score']:.4f}  SSIM − {args.baseline} {r['ssim_minus_base']:+.4f}"
            )
    for name, s in out["summary"].items():
        print(f"{name}: mean score {s['mean_score']:.4f}, eligible {s['eligible']}")
    print(f"chosen: {out['chosen'] or 'none (no candidate eligible)'}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
