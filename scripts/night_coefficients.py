"""Where students of one recipe part ways: the mean of each coefficient map (fused = visible + a·Y + b·T + c,
``FusionProxy.coefficients``) per checkpoint, on real night pairs and on synthetic night copies of RoadScene.

Why: students that differ only in their seed score alike on RoadScene val but spread widely on LLVIP
(docs/results/night_ascent_ablation.md). If the seeds agree on the synthetic night copies they trained on and
disagree on real night pairs, the real pairs lie outside what training pinned down: a domain gap, not noise.

    python scripts/night_coefficients.py --rs ../shared/data/roadscene_train \
        --night ../shared/data/llvip_sample --ckpt a_s0=runs/a_s0.safetensors ... --md out.md --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from proxy_pairs import GAMMA, THERMAL_MEAN, night_proxy

GAMMAS = (GAMMA, 3.5)


def _coef_means(model, vis: np.ndarray, ir: np.ndarray) -> list[float]:  # type: ignore[no-untyped-def]
    import torch

    from edgefuse.inference import to_tensors

    h, w = (n // 16 * 16 for n in vis.shape[:2])  # cropped to multiples of 16, not padded
    v, t = to_tensors(vis[:h, :w].astype(np.float32), ir[:h, :w].astype(np.float32))
    with torch.no_grad():
        return [float(x) for x in model.coefficients(v, t).mean(dim=(0, 2, 3))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", required=True, help="RoadScene folder (its training split is darkened)")
    ap.add_argument("--night", required=True, help="a folder of real night pairs")
    ap.add_argument("--ckpt", action="append", required=True, help="NAME=CHECKPOINT")
    ap.add_argument("--pairs", type=int, default=8, help="pairs per set (evenly spaced)")
    ap.add_argument(
        "--eval",
        help="scripts/evaluate_students.py JSON: rank-correlate a on the night pairs with its scores",
    )
    ap.add_argument("--eval-set", default="llvip_sample", help="the set of --eval that holds the night pairs")
    ap.add_argument("--md")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from edgefuse.checkpoint import load_model
    from edgefuse.data import find_pairs, split_indices

    rs, night = find_pairs(args.rs), find_pairs(args.night)
    train = split_indices(rs.pairs, 0.2, 0)[0]
    sets: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
        "real night": [night[int(i)] for i in np.linspace(0, len(night) - 1, args.pairs).round()],
        "RoadScene train": [rs[train[int(i)]] for i in np.linspace(0, len(train) - 1, args.pairs).round()],
    }
    for g in GAMMAS:  # the synthetic night of edgefuse.augment.night_visible at fixed γ
        sets[f"RoadScene train, V^{g}"] = [
            (np.round(v**g * 255) / 255, t) for v, t in sets["RoadScene train"]
        ]
    # a dark thermal frame as well: proxy_pairs.night_proxy, the training-pair stand-in for real night pairs
    sets[f"V^{GAMMA}, thermal mean {THERMAL_MEAN}"] = [night_proxy(v, t) for v, t in sets["RoadScene train"]]
    table: dict[str, dict[str, list[float]]] = {}
    for spec in args.ckpt:
        name, path = spec.split("=", 1)
        model = load_model(path).model.eval()
        table[name] = {
            s: np.mean([_coef_means(model, v, t) for v, t in pairs], axis=0).tolist()
            for s, pairs in sets.items()
        }
    lines = ["| checkpoint | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for name, row in table.items():
        lines.append(
            f"| {name} | " + " | ".join(" / ".join(f"{x:+.2f}" for x in row[s]) for s in sets) + " |"
        )
    spread = {s: float(np.ptp([row[s][0] for row in table.values()])) for s in sets}
    from scipy.stats import spearmanr

    real = [row["real night"][0] for row in table.values()]
    # which synthetic set orders the checkpoints as the real night pairs do (a proxy made of training pairs)
    proxy = {
        s: float(spearmanr(real, [row[s][0] for row in table.values()]).statistic)
        for s in sets
        if s != "real night" and len(table) > 2
    }
    lines.append("")
    lines.append(
        "Cells: mean a / b / c over the pairs. Range of a over the checkpoints: "
        + "; ".join(f"{s} {v:.2f}" for s, v in spread.items())
    )
    lines.append(
        "Spearman ρ of each set's a against the night pairs' a, over the checkpoints: "
        + "; ".join(f"{s} {v:+.2f}" for s, v in proxy.items())
    )
    corr: dict[str, float] = {}
    if args.eval:
        with open(args.eval) as fh:
            scores = json.load(fh)[args.eval_set]
        names = [n for n in table if n in scores]
        for metric in ("VIF", "Qabf", "SSIM"):
            a = [table[n]["real night"][0] for n in names]
            corr[metric] = float(spearmanr(a, [scores[n][metric] for n in names]).statistic)
        lines.append(
            f"Spearman ρ of night-pair a against {args.eval_set} scores over {len(names)} checkpoints: "
            + ", ".join(f"{m} {v:+.2f}" for m, v in corr.items())
        )
    text = "\n".join(lines)
    print(text)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(text + "\n")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "pairs_per_set": args.pairs,
                    "coefficients": table,
                    "range_of_a": spread,
                    "spearman_a_vs_night_a": proxy,
                    "spearman_a_vs_night_scores": corr,
                },
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
