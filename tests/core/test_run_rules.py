"""The rules the distillation runs are decided by (scripts/training_choice.py, ascent_ablation --variant)."""

from __future__ import annotations

import argparse
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))  # the scripts import their siblings by name

import ascent_ablation
import training_choice


def _rows(**groups: tuple[float, float, float]) -> dict:
    """One set: 2 seeds per group, the given VIF / Qabf / SSIM ± 0.001."""
    rows: dict = {"pairs": 3}
    for name, (vif, qabf, ssim) in groups.items():
        for seed, d in ((0, -0.001), (1, 0.001)):
            rows[f"{name}_s{seed}"] = {"VIF": vif + d, "Qabf": qabf + d, "SSIM": ssim + d}
    return rows


def test_choice_takes_the_best_eligible_candidate() -> None:
    report = {
        "day": _rows(a=(0.7, 0.6, 1.03), d=(0.8, 0.62, 1.028), d2=(0.72, 0.58, 1.04)),
        "night": _rows(a=(0.85, 0.64, 1.01), d=(0.9, 0.65, 0.996), d2=(0.85, 0.63, 1.017)),
    }
    out = training_choice.choose(report, "a", ["d", "d2"], 0.01)
    # d scores higher but loses 0.014 SSIM at night: not eligible
    assert out["summary"]["d"]["eligible"] is False
    assert out["summary"]["d"]["mean_score"] > out["summary"]["d2"]["mean_score"]
    assert out["chosen"] == "d2"
    assert out["sets"]["day"]["a"]["score"] == pytest.approx(2.0)


def test_choice_is_none_when_nothing_is_eligible() -> None:
    report = {"night": _rows(a=(0.85, 0.64, 1.01), d=(0.9, 0.65, 0.99))}
    assert training_choice.choose(report, "a", ["d"], 0.01)["chosen"] is None


def test_choice_names_missing_rows() -> None:
    with pytest.raises(SystemExit, match="d9"):
        training_choice.choose({"day": _rows(a=(0.7, 0.6, 1.0))}, "a", ["d9"], 0.01)


def test_variants_extend_the_distilled_rows() -> None:
    ap = argparse.ArgumentParser()
    got = ascent_ablation.parse_variants(ap, ["d2=d:--w-source-ssim 2", "c0=c:"], ["a", "c"])
    assert got == {"c": ("c", []), "d2": ("d", ["--w-source-ssim", "2"]), "c0": ("c", [])}
    for bad in ("a=d:--x 1", "c=c:", "e1=e:", "1x=d:"):
        with pytest.raises(SystemExit):
            ascent_ablation.parse_variants(ap, [bad], ["a", "c"])
    (_, extra), *_ = ascent_ablation.parse_variants(
        ap, ["t=d:--init w/d_s{seed}.safetensors --lr 5e-4"], []
    ).values()
    assert ascent_ablation.seeded(extra, "2") == ["--init", "w/d_s2.safetensors", "--lr", "5e-4"]


def _scores(rsval: tuple[float, float, float], llvip: tuple[float, float, float]) -> dict:
    return {
        n: dict(zip(("VIF", "Qabf", "SSIM"), v, strict=True)) for n, v in (("rsval", rsval), ("llvip", llvip))
    }


def test_teacher_rule_on_the_committed_reference() -> None:
    """The conditional teacher's rerun fails the bar on LLVIP; the ascent teacher it learnt from is worth
    distilling (both as recorded in docs/results)."""
    import json

    import teacher_rule

    refs = teacher_rule.references(json.loads((REPO / "docs/results/session11_heldout.json").read_text()))
    assert refs["rsval"]["a"]["VIF"] == pytest.approx(0.716, abs=5e-4)
    assert refs["llvip"]["shipped"]["Qabf"] == pytest.approx(0.691, abs=5e-4)
    cond = teacher_rule.judge(_scores((0.801, 0.629, 1.025), (1.153, 0.657, 0.953)), refs)
    assert not cond["meets_bar"] and cond["checks"]["rsval"]["vif_qabf_at_least_shipped"]
    assert (
        not cond["checks"]["llvip"]["qabf_above_a"] and not cond["checks"]["llvip"]["ssim_within_slack_of_a"]
    )
    ascent = teacher_rule.judge(_scores((0.846, 0.644, 1.027), (1.314, 0.723, 1.018)), refs)
    assert ascent["meets_bar"] and ascent["worth_distilling"]
    # above (a) but below the shipped student: the bar without being worth distilling
    between = teacher_rule.judge(_scores((0.75, 0.61, 1.03), (1.15, 0.68, 1.02)), refs)
    assert between["meets_bar"] and not between["worth_distilling"]
