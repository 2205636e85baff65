"""How closely do students follow a teacher cache? Scores beside its ensemble mean, and the distance to it.

For the pairs of ``--data`` that the cache holds (give training pairs: this asks whether a student follows the
teacher where it learnt from it), each student's fusion and the teacher mean are scored with every metric of
``edgefuse.metrics`` (mean over pairs); each student also gets its mean |student − teacher mean| in 8-bit
levels (over pixels and RGB) and the share of the teacher's VIF / Qabf gain over the student ``--base``
that it keeps, (student − base) / (teacher − base). docs/results/session22_follow.md is its plan.

    python scripts/follow_check.py --cache runs/fit/coef --data runs/fit/pairs --base shipped \
        --student shipped=fusionproxy-s --student p0=runs/d_s0.safetensors --json runs/follow.json
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from score_cache import _score, mean_scores  # a teacher cache's scoring, for the same numbers

HEADLINE = ("VIF", "Qabf", "SSIM")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--student", action="append", default=[], help="NAME=CHECKPOINT (path or bundled)")
    ap.add_argument("--base", help="the student whose gap to the teacher the others' are measured against")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    students = dict(s.split("=", 1) for s in args.student)
    if args.base and args.base not in students:
        ap.error(f"--base {args.base!r} is not one of the students ({', '.join(students)})")

    from edgefuse.checkpoint import load_model
    from edgefuse.data import find_pairs
    from edgefuse.inference import fuse, to_uint8
    from edgefuse.teacher.cache import TeacherCache

    source, cache = find_pairs(args.data), TeacherCache(args.cache)
    idx = [i for i in range(len(source)) if source.pairs[i].stem in cache.pairs]
    if not idx:
        ap.error(f"{args.cache} holds none of the pairs of {args.data}")
    models = {n: load_model(p).model for n, p in students.items()}
    triples: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {"teacher": []}
    triples.update({n: [] for n in models})
    dist = {n: [] for n in models}
    for i in idx:
        vis, ir = source[i]
        mean = cache.load(source.pairs[i].stem).mean
        triples["teacher"].append((to_uint8(mean), ir, vis))
        for n, model in models.items():
            out = fuse(vis, ir, model=model)
            dist[n].append(float(np.abs(out - mean).mean()) * 255.0)
            triples[n].append((to_uint8(out), ir, vis))
    with ProcessPoolExecutor(args.workers) as pool:
        scores = {n: mean_scores(list(pool.map(_score, t))) for n, t in triples.items()}
    result: dict = {"cache": args.cache, "data": args.data, "pairs": len(idx), "scores": scores}
    result["l1_to_teacher_levels"] = {n: float(np.mean(d)) for n, d in dist.items()}
    print(f"{len(idx)} pairs | " + " | ".join(HEADLINE) + " | L1 to teacher mean (levels)")
    for n, s in scores.items():
        l1 = f"{result['l1_to_teacher_levels'][n]:.2f}" if n in dist else "–"
        print(f"{n} | " + " | ".join(f"{s[k]:.3f}" for k in HEADLINE) + f" | {l1}")
    if args.base:
        b, t = scores[args.base], scores["teacher"]
        kept = {n: {k: (s[k] - b[k]) / (t[k] - b[k]) for k in ("VIF", "Qabf")} for n, s in scores.items()}
        result["gain_kept_over_base"] = kept
        others = [n for n in kept if n not in (args.base, "teacher")]
        shown = [f"{n} {kept[n]['VIF']:.2f}, {kept[n]['Qabf']:.2f}" for n in others]
        print(f"gain kept over {args.base} (VIF, Qabf): " + "; ".join(shown))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
