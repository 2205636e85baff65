"""Where does the coefficient teacher's change from its start go, against the ascent's, on training pairs?

For each pair of a folder (training pairs the model learnt from, or their night copies), the ascent teacher's
climbed maps (K = 3, the recipe, from the model's own start) and the model's sampled maps (K = 6, 50 DDIM
steps, eta 1) are compared as changes from the start, per channel (a, b, c of ``visible + a·Y + b·T + c``):
the ratio of their mean magnitudes, and the cosine between their K-means. A ratio well above 1 says the model
moves the maps further than the ascent does on that pair; a low cosine, that it moves them elsewhere.

    python scripts/coef_delta_check.py --model runs/coef20/coef --data /tmp/night_pairs --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from edgefuse.data import find_pairs
    from edgefuse.teacher.ascent import ascend_coefficients
    from edgefuse.teacher.coefficient import CoefficientTeacher
    from edgefuse.teacher.guide import ascent_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="a coefficient teacher (train-cond directory)")
    ap.add_argument("--data", type=Path, required=True, help="a paired folder of training pairs")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    teacher = CoefficientTeacher.load(a.model)
    cfg = ascent_settings(teacher.meta)
    if cfg is None:
        raise SystemExit(f"{a.model}: no ascent settings in its provenance")
    rows = {}
    source = find_pairs(a.data)
    for i, pair in enumerate(source.pairs):
        vis, ir = source[i]
        v = torch.from_numpy(np.ascontiguousarray(vis.transpose(2, 0, 1)))
        t = torch.from_numpy(ir[None].copy())
        start, climbed, _ = ascend_coefficients(teacher.student, v, t, [0, 1, 2], cfg, torch.float64)
        _, _, sampled = teacher.coefficients(v, t, list(range(6)), 50, 1.0)
        d_asc = (climbed - start).mean(0).double()  # 3×h×w, the K-means' change
        d_mod = (sampled - start).mean(0).double()
        ratio = (d_mod.abs().mean((1, 2)) / d_asc.abs().mean((1, 2)).clamp_min(1e-12)).tolist()
        cos = torch.nn.functional.cosine_similarity(d_mod.flatten(1), d_asc.flatten(1), dim=1).tolist()
        rows[pair.stem] = {"magnitude_ratio_abc": ratio, "cosine_abc": cos}
        print(
            pair.stem, "ratio", " ".join(f"{r:.2f}" for r in ratio), "cos", " ".join(f"{c:.2f}" for c in cos)
        )
    mean = {
        k: np.mean([r[k] for r in rows.values()], axis=0).tolist()
        for k in ("magnitude_ratio_abc", "cosine_abc")
    }
    print(
        "mean ratio",
        " ".join(f"{r:.2f}" for r in mean["magnitude_ratio_abc"]),
        "cos",
        " ".join(f"{c:.2f}" for c in mean["cosine_abc"]),
    )
    if a.json:
        a.json.write_text(
            json.dumps({"model": str(a.model), "data": str(a.data), "pairs": rows, "mean": mean}, indent=1)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
