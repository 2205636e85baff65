"""The written-down coefficient rerun's gate, on training pairs only (docs/results/
session19_coefficient_plan.md): from scripts/coef_fit_check.sh's scores, the share of the ascent teacher's
gain over the start that the coefficient teacher keeps, on VIF and on Qabf. Exit 0 when both shares clear
their floors (the held-out sets may be sampled), 1 when not. With ``--above-ascent S`` (the polished teacher's
rule, docs/results/session21_polish_plan.md) it must instead be above the ascent teacher itself on VIF and
on Qabf, with SSIM no more than S below.

    python scripts/fit_gate.py /tmp/w/fit --vif 0.60 --qabf 0.49
    python scripts/fit_gate.py /tmp/w/fit --above-ascent 0.01
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def kept(folder: Path) -> dict[str, float]:
    """Per metric, (coefficient − start) / (ascent − start) on the check's pairs."""
    start = json.loads((folder / "start.json").read_text())
    coef = json.loads((folder / "coef.json").read_text())["metrics"]
    asc = json.loads((folder / "asc.json").read_text())["metrics"]
    return {m: (coef[m] - start[m]) / (asc[m] - start[m]) for m in ("VIF", "Qabf")}


def above_ascent(folder: Path, slack: float, out: Path | None) -> int:
    coef = json.loads((folder / "coef.json").read_text())["metrics"]
    asc = json.loads((folder / "asc.json").read_text())["metrics"]
    diff = {m: coef[m] - asc[m] for m in ("VIF", "Qabf", "SSIM")}
    ok = diff["VIF"] > 0 and diff["Qabf"] > 0 and diff["SSIM"] >= -slack
    if out:
        out.write_text(json.dumps({"minus_ascent": diff, "ssim_slack": slack, "pass": ok}, indent=1) + "\n")
    word = "pass" if ok else "stop"
    vif, qabf, ssim = diff["VIF"], diff["Qabf"], diff["SSIM"]
    print(f"against the ascent: VIF {vif:+.4f}, Qabf {qabf:+.4f}, SSIM {ssim:+.4f}: {word}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="coef_fit_check.sh's work folder")
    ap.add_argument("--vif", type=float, default=0.60, help="VIF share floor (0.50 kept in session 19)")
    ap.add_argument("--qabf", type=float, default=0.49, help="Qabf share floor (0.39 kept in session 19)")
    ap.add_argument("--above-ascent", type=float, metavar="S", help="above the ascent, SSIM within S")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    if a.above_ascent is not None:
        return above_ascent(a.folder, a.above_ascent, a.json)
    shares = kept(a.folder)
    ok = shares["VIF"] > a.vif and shares["Qabf"] > a.qabf
    verdict = {"kept": shares, "floors": {"VIF": a.vif, "Qabf": a.qabf}, "pass": ok}
    if a.json:
        a.json.write_text(json.dumps(verdict, indent=1) + "\n")
    vif, qabf = shares["VIF"], shares["Qabf"]
    word = "pass" if ok else "stop"
    print(f"kept VIF {vif:.0%} (floor {a.vif:.0%}), Qabf {qabf:.0%} (floor {a.qabf:.0%}): {word}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
