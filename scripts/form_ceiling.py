"""Ceiling of a student form: fit its coefficient maps per image, directly, to a teacher target, and score.

No network is involved: for each pair the 1/4-resolution maps of the form (today's ``a, b, c``; with
``--select`` also the selection gain and offset ``k, o``) are optimised with Adam to minimise the L1 distance
to the target, then the fit is scored with the fusion metrics next to the target itself. If the fit scores
well below the target, no student of that form can follow the teacher, however it is trained.

For the salience objective with φ = 0 the target is exactly w·T + (1 − w)·Y, so a constructive fit also
exists: w averaged to 1/4 resolution as today's coefficients (a = −w̄, b = w̄, c = 0), or as the selection's
offset (o = logit w̄, k = 0). Those rows show what the form can represent; the Adam rows, what a direct fit
reaches.

The target here is the teacher's objective alone (``--em``: the chosen objective settings), computed without
the prior, on the tuning subset of the training pairs (scripts/tune_teacher.py).

    python scripts/form_ceiling.py --rs ../shared/data/roadscene_train \
        --em docs/results/teacher_tuning_objective.json --json docs/results/form_ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune_teacher import mean_scores, tuning_indices


def fit(
    y: torch.Tensor, t: torch.Tensor, target: torch.Tensor, select: bool, iters: int, k_init: float = 0.0
) -> torch.Tensor:
    h, w = y.shape[-2:]
    hp, wp = (h + 15) // 16 * 16, (w + 15) // 16 * 16
    yp = F.pad(y, (0, wp - w, 0, hp - h), mode="replicate")
    tp = F.pad(t, (0, wp - w, 0, hp - h), mode="replicate")
    coef = torch.zeros(1, 5 if select else 3, hp // 4, wp // 4)
    if select:
        coef[:, 3] = k_init  # a large gain starts the selection as the pixel-wise max of the sources
    coef.requires_grad_(True)
    opt = torch.optim.Adam([coef], lr=0.05)
    for _ in range(iters):
        maps = [
            F.interpolate(coef[:, i : i + 1], scale_factor=4.0, mode="bilinear") for i in range(coef.shape[1])
        ]
        out = (1 + maps[0]) * yp + maps[1] * tp + maps[2]
        if select:
            out = out + torch.sigmoid(maps[3] * (tp - yp) + maps[4]) * (tp - yp)
        loss = (out[..., :h, :w] - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return out[..., :h, :w].detach().clamp(0, 1)


def constructive(y: torch.Tensor, t: torch.Tensor, em: object) -> dict[str, torch.Tensor]:
    """The salience target's own weight w, averaged to 1/4 resolution, as each form's coefficients."""
    from edgefuse.teacher.objective import box_blur

    h, w = y.shape[-2:]
    hp, wp = (h + 15) // 16 * 16, (w + 15) // 16 * 16
    yp = F.pad(y, (0, wp - w, 0, hp - h), mode="replicate")
    tp = F.pad(t, (0, wp - w, 0, hp - h), mode="replicate")
    weight = torch.sigmoid((box_blur(tp * 2 - 1, em.blur) - box_blur(yp * 2 - 1, em.blur)) / em.softness)  # type: ignore[attr-defined]
    wq = F.avg_pool2d(weight, 4).clamp(1e-4, 1 - 1e-4)

    def up(m: torch.Tensor) -> torch.Tensor:
        return F.interpolate(m, scale_factor=4.0, mode="bilinear")

    return {
        "form a,b,c, constructive (a = −w̄, b = w̄)": (yp + up(wq) * (tp - yp))[..., :h, :w].clamp(0, 1),
        "form + selection, constructive (o = logit w̄)": (
            yp + torch.sigmoid(up(torch.log(wq) - torch.log1p(-wq))) * (tp - yp)
        )[..., :h, :w].clamp(0, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", required=True)
    ap.add_argument("--em", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--k-init", type=float, default=0.0, help="also fit the selection form from this gain")
    args = ap.parse_args()

    from edgefuse.data import find_pairs
    from edgefuse.inference import to_uint8
    from edgefuse.teacher.ddfm import luma, with_visible_chroma
    from edgefuse.teacher.objective import EMConfig, solve_objective

    with open(args.em) as fh:
        em = EMConfig.from_dict(json.load(fh)["best"]["config"])
    src = find_pairs(args.rs)
    idx = tuning_indices(src)[: args.limit]
    forms = {"form a,b,c": (False, 0.0), "form a,b,c + selection": (True, 0.0)}
    if args.k_init:
        forms[f"form a,b,c + selection, k starts at {args.k_init:g}"] = (True, args.k_init)
    rows: dict[str, list] = {"target": [], **{k: [] for k in forms}}
    l1: dict[str, list[float]] = {k: [] for k in forms}
    pairs = [src[i] for i in idx]
    for vis, ir in pairs:
        v = torch.from_numpy(np.ascontiguousarray(vis.transpose(2, 0, 1)))[None]
        t = torch.from_numpy(ir)[None, None]
        y = luma(v)
        target = (solve_objective(t * 2 - 1, y * 2 - 1, em) + 1) / 2
        rows["target"].append(to_uint8(with_visible_chroma(target, v)[0].permute(1, 2, 0).numpy()))
        if em.objective.value == "salience" and em.phi == 0:
            for name, out in constructive(y, t, em).items():
                rows.setdefault(name, []).append(
                    to_uint8(with_visible_chroma(out, v)[0].permute(1, 2, 0).numpy())
                )
                l1.setdefault(name, []).append(float((out - target).abs().mean()) * 255)
        for name, (select, k0) in forms.items():
            out = fit(y, t, target, select, args.iters, k0)
            l1[name].append(float((out - target).abs().mean()) * 255)
            rows[name].append(to_uint8(with_visible_chroma(out, v)[0].permute(1, 2, 0).numpy()))
    with ProcessPoolExecutor(2) as pool:
        scores = {
            k: mean_scores(pool, [(f, t, v) for f, (v, t) in zip(fs, pairs, strict=True)])
            for k, fs in rows.items()
        }
    out = {
        "pairs": [src.pairs[i].stem for i in idx],
        "iters": args.iters,
        "objective": em.to_dict(),
        "metrics": scores,
        "fit_l1_levels": {k: float(np.mean(v)) for k, v in l1.items()},
    }
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    for k, m in scores.items():
        extra = f", fit L1 {out['fit_l1_levels'][k]:.2f} levels" if k in l1 else ""
        print(f"{k}: VIF {m['VIF']:.3f} Qabf {m['Qabf']:.3f} SSIM {m['SSIM']:.3f} MI {m['MI']:.3f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
