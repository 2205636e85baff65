"""Does a teacher cache's per-pixel spread predict a student's error? Spearman ρ per pair, then the mean.

The error is |student − teacher mean| (mean over RGB) at each pixel, the spread the samples' standard
deviation; ρ is computed on 20,000 pixels per pair drawn with a fixed seed (scripts/ablation.py's rule). Pairs
are those of ``--data`` that the cache holds (give a folder of held-out pairs).

Also the reach of distillation's variance weighting (``edgefuse.distill.variance_weights``, τ the mean
variance of the pairs scored, as ``edgefuse distill`` sets it on its own pairs): the share of pixels it
down-weights below 0.5, the share of each student's L1 error lying there, and Σw·err / Σerr (1: the weighted
loss is the uniform one).

    python scripts/spread_error.py --cache runs/asc_val --data runs/rs_val --student c=runs/c.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from ablation import _heat, _save_previews, _spearman  # the ablation's rule and map style


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--student", action="append", default=[], help="NAME=CHECKPOINT")
    ap.add_argument("--json")
    ap.add_argument("--maps", help="JPEG: visible, thermal, mean, spread, error maps")
    ap.add_argument("--map-pairs", type=int, default=4)
    args = ap.parse_args(argv)

    import torch

    from edgefuse.checkpoint import load_model
    from edgefuse.data import find_pairs
    from edgefuse.distill import mean_variance, variance_weights
    from edgefuse.inference import fuse
    from edgefuse.teacher.cache import TeacherCache

    source, cache = find_pairs(args.data), TeacherCache(args.cache)
    students = {n: load_model(p).model for n, p in (s.split("=", 1) for s in args.student)}
    rhos: dict[str, list[float]] = {n: [] for n in students}
    idx = [i for i in range(len(source)) if source.pairs[i].stem in cache.pairs]
    tau = mean_variance(cache, [source.pairs[i].stem for i in idx])
    low = np.zeros(2)  # pixels with w < 0.5, all pixels
    reach = {n: np.zeros(3) for n in students}  # error on w < 0.5, Σ w·err, Σ err
    rows = []
    for n, i in enumerate(idx):
        vis, ir = source[i]
        entry = cache.load(source.pairs[i].stem)
        std8 = np.sqrt(np.maximum(entry.var, 0.0)) * 255.0
        w = variance_weights(torch.from_numpy(entry.var.astype(np.float32)), tau).numpy()
        low += (float((w < 0.5).sum()), float(w.size))
        errs = []
        for name, model in students.items():
            err = np.abs(fuse(vis, ir, model=model) - entry.mean).mean(axis=2)
            rhos[name].append(_spearman(std8, err))
            reach[name] += (float(err[w < 0.5].sum()), float((w * err).sum()), float(err.sum()))
            errs.append(err * 255.0)
        if args.maps and n < args.map_pairs:  # heat scale: 0 black to 8 levels or more white
            extra = [_heat(errs[0])] if errs else []
            rows.append([vis, np.repeat(ir[..., None], 3, axis=2), entry.mean, _heat(std8), *extra])
    out = {
        "cache": args.cache,
        "pairs": len(idx),
        "spearman_mean": {n: float(np.mean(v)) for n, v in rhos.items()},
        "weighting": {
            "tau": tau,
            "pixels_below_half": low[0] / low[1],
            "error_share_below_half": {n: r[0] / r[2] for n, r in reach.items()},
            "weighted_over_uniform": {n: r[1] / r[2] for n, r in reach.items()},
        },
    }
    print(json.dumps(out, indent=1))
    if args.maps and rows:
        _save_previews(rows, args.maps)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
