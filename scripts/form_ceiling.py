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
the prior, on the tuning subset of the training pairs (scripts/tune_teacher.py). With ``--cache`` it is a
teacher cache's ensemble mean instead (the cache's pairs among ``--rs``), and each form is fitted twice: with
the plain L1 and with the L1 weighted as ``edgefuse distill`` weights it (``variance_weights``, τ the mean
variance of these pairs). If even per-image fits score the same either way, variance weighting cannot help
a student of that form.

    python scripts/form_ceiling.py --rs ../shared/data/roadscene_train \
        --em docs/results/teacher_tuning_objective.json --json docs/results/form_ceiling.json
    python scripts/form_ceiling.py --rs ../shared/data/roadscene_train --cache runs/asc --json runs/fc.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune_teacher import _score, mean_scores, tuning_indices

from edgefuse.inference import pad_to_multiple

HEAD = ("VIF", "Qabf", "SSIM")


def mean_se(values: list[float]) -> dict[str, float]:
    """Mean and standard error over pairs."""
    return {"mean": float(np.mean(values)), "se": float(np.std(values, ddof=1) / np.sqrt(len(values)))}


def paired(base: list[dict[str, float]], other: list[dict[str, float]], keys: tuple[str, ...]) -> dict:
    """other − base per pair, as mean and standard error over pairs for each metric in ``keys``."""
    return {m: mean_se([b[m] - a[m] for a, b in zip(base, other, strict=True)]) for m in keys}


def minimise(param: torch.Tensor, loss: Callable[[], torch.Tensor], iters: int, anneal: bool) -> None:
    """Adam (lr 0.05) on one tensor for ``iters`` steps of ``loss()``.

    Adam on an L1 loss keeps stepping ~lr however close it is (the fits stall at ~1.4 levels); ``anneal``, a
    cosine decay to zero, lets it settle.
    """
    opt = torch.optim.Adam([param], lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters) if anneal else None
    for _ in range(iters):
        value = loss()
        opt.zero_grad()
        value.backward()
        opt.step()
        if sched is not None:
            sched.step()


def fit(
    y: torch.Tensor,
    t: torch.Tensor,
    target: torch.Tensor,
    select: bool,
    iters: int,
    k_init: float = 0.0,
    weight: torch.Tensor | None = None,
    anneal: bool = False,
) -> torch.Tensor:
    (yp, (h, w)), (tp, _) = pad_to_multiple(y, 16), pad_to_multiple(t, 16)
    coef = torch.zeros(1, 5 if select else 3, yp.shape[-2] // 4, yp.shape[-1] // 4)
    if select:
        coef[:, 3] = k_init  # a large gain starts the selection as the pixel-wise max of the sources
    coef.requires_grad_(True)
    last: dict[str, torch.Tensor] = {}

    def loss() -> torch.Tensor:
        maps = [
            F.interpolate(coef[:, i : i + 1], scale_factor=4.0, mode="bilinear") for i in range(coef.shape[1])
        ]
        out = (1 + maps[0]) * yp + maps[1] * tp + maps[2]
        if select:
            out = out + torch.sigmoid(maps[3] * (tp - yp) + maps[4]) * (tp - yp)
        last["out"] = out
        err = (out[..., :h, :w] - target).abs()
        return (err if weight is None else err * weight).mean()

    minimise(coef, loss, iters, anneal)
    return last["out"][..., :h, :w].detach().clamp(0, 1)


def constructive(y: torch.Tensor, t: torch.Tensor, em: object) -> dict[str, torch.Tensor]:
    """The salience target's own weight w, averaged to 1/4 resolution, as each form's coefficients."""
    from edgefuse.teacher.objective import box_blur

    (yp, (h, w)), (tp, _) = pad_to_multiple(y, 16), pad_to_multiple(t, 16)
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


def cache_fits(args: argparse.Namespace) -> int:
    """Each form fitted to the cache's ensemble mean with the plain and the variance-weighted L1."""
    from edgefuse.data import find_pairs
    from edgefuse.distill import mean_variance, variance_weights
    from edgefuse.inference import to_uint8
    from edgefuse.teacher.cache import TeacherCache
    from edgefuse.teacher.ddfm import luma, with_visible_chroma

    src, cache = find_pairs(args.rs), TeacherCache(args.cache)
    idx = [i for i in range(len(src)) if src.pairs[i].stem in cache.pairs][: args.limit]
    stems = [src.pairs[i].stem for i in idx]
    tau = mean_variance(cache, stems)
    losses = ("plain L1", "weighted L1")
    fits = {f"form a,b,c, {k}": (False, k) for k in losses}
    if args.k_init:
        fits |= {f"form + selection from k {args.k_init:g}, {k}": (True, k) for k in losses}
    rows: dict[str, list] = {"target (ensemble mean)": [], **{k: [] for k in fits}}
    l1: dict[str, list[tuple[float, float]]] = {k: [] for k in fits}  # all pixels, pixels with w >= 0.5
    pairs = [src[i] for i in idx]
    for (vis, ir), stem in zip(pairs, stems, strict=True):
        entry = cache.load(stem)
        v = torch.from_numpy(np.ascontiguousarray(vis.transpose(2, 0, 1)))[None]
        t = torch.from_numpy(ir)[None, None]
        mean = torch.from_numpy(np.ascontiguousarray(entry.mean.transpose(2, 0, 1)).astype(np.float32))[None]
        target = luma(mean)
        w = variance_weights(torch.from_numpy(entry.var.astype(np.float32))[None, None], tau)
        rows["target (ensemble mean)"].append(to_uint8(entry.mean))
        for name, (select, how) in fits.items():
            weight = w if how == "weighted L1" else None
            out = fit(luma(v), t, target, select, args.iters, args.k_init, weight, anneal=True)
            err = (out - target).abs()
            l1[name].append((float(err.mean()) * 255, float(err[w >= 0.5].mean()) * 255))
            rows[name].append(to_uint8(with_visible_chroma(out, v)[0].permute(1, 2, 0).numpy()))
    with ProcessPoolExecutor(2) as pool:
        per_pair = {
            k: list(pool.map(_score, [(f, t, v) for f, (v, t) in zip(fs, pairs, strict=True)]))
            for k, fs in rows.items()
        }
    scores = {k: {m: float(np.mean([r[m] for r in rs])) for m in rs[0]} for k, rs in per_pair.items()}
    differences = {}  # weighted − plain, per pair: mean and standard error over pairs
    for plain in (k for k in fits if k.endswith("plain L1")):
        weighted = plain.replace("plain L1", "weighted L1")
        differences[weighted + " − " + plain] = paired(per_pair[plain], per_pair[weighted], HEAD)
    out = {
        "cache": args.cache,
        "pairs": stems,
        "iters": args.iters,
        "tau": tau,
        "metrics": scores,
        "fit_l1_levels": {k: float(np.mean([a for a, _ in v])) for k, v in l1.items()},
        "fit_l1_levels_where_w_ge_half": {k: float(np.mean([b for _, b in v])) for k, v in l1.items()},
        "weighted_minus_plain": differences,
    }
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    for k, m in scores.items():
        extra = f", fit L1 {out['fit_l1_levels'][k]:.2f} levels" if k in l1 else ""
        print(f"{k}: VIF {m['VIF']:.3f} Qabf {m['Qabf']:.3f} SSIM {m['SSIM']:.3f}{extra}")
    for k, d in differences.items():
        print(k + ": " + ", ".join(f"{m} {v['mean']:+.4f} ± {v['se']:.4f}" for m, v in d.items()))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", required=True)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--em", help="the objective's settings (scripts/tune_teacher.py JSON)")
    where.add_argument("--cache", help="a teacher cache: fit its ensemble mean, plain and variance-weighted")
    ap.add_argument("--json", required=True)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--k-init", type=float, default=0.0, help="also fit the selection form from this gain")
    args = ap.parse_args()
    if args.cache:
        return cache_fits(args)

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
