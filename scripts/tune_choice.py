"""Apply the loss-choice rule to `scripts/tune_distill.py` results (training pairs only); print the choice.

The rule (the third session's, made exact in docs/results/session14_loss_tune.md before its run): on every
scored set of the tuning pairs (day, and the night proxy when scored), a distilled config is eligible if its
3-seed mean Qabf is at least the control's (``--control``, a row ``a`` config) and its mean SSIM at most 0.01
below it. Among the eligible configs the one with the highest VIF, averaged over the sets, is chosen. A
config other than ``--base`` replaces an eligible base only if that VIF beats the base's by more than the
larger seed std of the two (over the sets); otherwise the base stays. Prints the chosen config's distill
options (``--w-pixel 4`` …), empty when the base stays or none is eligible, and writes the reasoning as JSON.

    python scripts/tune_choice.py tune_*.json --control "a ..." --base "b ..." --json choice.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SSIM_SLACK = 0.01


def sets_of(row: dict) -> list[str]:
    """Metric prefixes scored for a row: '' (the pairs as they are), 'night_', 'noisy_'."""
    return [p for p in ("", "night_", "noisy_") if f"{p}VIF" in row["mean_std"]]


def distill_args(spec: str, base: str) -> list[str]:
    """The ``edgefuse distill`` options that turn the base config into ``spec`` (fields that differ)."""
    fields = dict(f.split("=") for f in spec.split()[1:])
    base_fields = dict(f.split("=") for f in base.split()[1:])
    out = []
    for k, v in fields.items():
        if base_fields.get(k) != v:
            out += [f"--{k.replace('_', '-')}", v]
    return out


def choose(rows: dict[str, dict], control: str, base: str) -> dict:
    if control not in rows or base not in rows:
        raise SystemExit(f"need the control {control!r} and the base {base!r} among {sorted(rows)}")
    ctrl = rows[control]["mean_std"]
    prefixes = sets_of(rows[control])
    report: dict = {"control": control, "base": base, "configs": {}}
    for spec, row in rows.items():
        if spec == control:
            continue
        ms = row["mean_std"]
        ok = all(
            ms[f"{p}Qabf"][0] >= ctrl[f"{p}Qabf"][0] and ms[f"{p}SSIM"][0] >= ctrl[f"{p}SSIM"][0] - SSIM_SLACK
            for p in prefixes
        )
        vif = sum(ms[f"{p}VIF"][0] for p in prefixes) / len(prefixes)
        spread = max(ms[f"{p}VIF"][1] for p in prefixes)
        report["configs"][spec] = {"eligible": ok, "VIF": vif, "VIF_std": spread}
    eligible = {k: v for k, v in report["configs"].items() if v["eligible"]}
    best = max(eligible, key=lambda k: eligible[k]["VIF"]) if eligible else None
    if best and best != base and base in eligible:
        b, c = eligible[base], eligible[best]
        if c["VIF"] - b["VIF"] <= max(b["VIF_std"], c["VIF_std"]):
            report["why"] = f"{best!r} beats the base by {c['VIF'] - b['VIF']:+.4f} VIF, inside the spread"
            best = base
    report["chosen"] = best
    report["args"] = distill_args(best, base) if best and best != base else []
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="tune_distill.py JSON files")
    ap.add_argument("--control", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    rows = {r["config"]: r for f in args.results for r in json.loads(f.read_text())["rows"]}
    report = choose(rows, args.control, args.base)
    Path(args.json).write_text(json.dumps(report, indent=1))
    for spec, r in report["configs"].items():
        print(f"{spec}: eligible {r['eligible']}, VIF {r['VIF']:.4f} ± {r['VIF_std']:.4f}", file=sys.stderr)
    print(f"chosen: {report['chosen']} {report.get('why', '')}", file=sys.stderr)
    print(" ".join(report["args"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
