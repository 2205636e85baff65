"""Choose the teacher's settings on a tuning subset of the *training* pairs (never the validation split).

The tuning subset is every 4th pair of RoadScene's training split (``split_indices`` seed 0, 20 %, the split
``edgefuse train`` holds out), so the validation pairs and LLVIP stay unseen until the final report.

Two stages, one rule: a config is admissible if its SSIM is at most 0.01 below the reference student's on the
same tuning pairs; among admissible configs the largest VIF/VIF_ref + Qabf/Qabf_ref wins.

- ``--stage objective`` (CPU is fine): the objective alone, solved to convergence (no prior), over a grid of
  objective, φ, salience softness and blur;
- ``--stage sampler`` (GPU): the full sampler with a trained prior over μ, EM iterations, steps and η, on the
  objective chosen by the first stage (``--em JSON``), K=2 samples per pair, the ensemble mean scored.
- ``--stage cond`` (GPU): the conditional teacher (``--model``, ``teacher train-cond``) over DDIM steps and η,
  K samples per pair (``--k``), the ensemble mean scored.

    python scripts/tune_teacher.py --stage objective --rs ../shared/data/roadscene_train \
        --json docs/results/teacher_tuning_objective.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch


def tuning_indices(source: Any) -> list[int]:
    from edgefuse.data import split_indices

    train, _ = split_indices(source.pairs, val_fraction=0.2, seed=0)
    return list(train)[::4]


def _score(args: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    from edgefuse.metrics import fusion_metrics

    return fusion_metrics(*args)


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def mean_scores(pool: Any, triples: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Mean fusion metrics over (fused, thermal, visible) triples, scored in ``pool``'s processes."""
    return _mean(list(pool.map(_score, triples)))


def _rgb(y: torch.Tensor, v: torch.Tensor) -> np.ndarray:
    from edgefuse.teacher.ddfm import with_visible_chroma

    return with_visible_chroma(y, v)[0].permute(1, 2, 0).cpu().numpy()


def choose(rows: list[dict[str, Any]], ref: dict[str, float]) -> dict[str, Any]:
    ok = [r for r in rows if r["metrics"]["SSIM"] >= ref["SSIM"] - 0.01]
    pool = ok or rows

    def score(r: dict[str, Any]) -> float:
        return r["metrics"]["VIF"] / ref["VIF"] + r["metrics"]["Qabf"] / ref["Qabf"]

    best = max(pool, key=score)
    return {**best, "admissible": bool(ok), "score": score(best)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=("objective", "sampler", "cond"), required=True)
    ap.add_argument("--rs", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--reference", default="fusionproxy-s", help="student checkpoint the rule compares with")
    ap.add_argument("--prior", help="prior directory (sampler stage)")
    ap.add_argument("--em", help="JSON file with the chosen objective (sampler stage: its 'best.config')")
    ap.add_argument("--model", help="conditional teacher directory (cond stage)")
    ap.add_argument("--k", type=int, default=6, help="samples per pair (cond stage)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument(
        "--grid",
        choices=("full", "tiny", "eta1"),
        default="full",
        help="eta1 (cond stage): steps 10/20/50 at eta 1 only, best at every step count in the first run",
    )
    args = ap.parse_args(argv)
    if args.grid == "eta1" and args.stage != "cond":
        ap.error("--grid eta1 is the cond stage's")

    from edgefuse.checkpoint import load_model
    from edgefuse.data import find_pairs
    from edgefuse.inference import fuse, to_uint8
    from edgefuse.teacher.ddfm import SamplerConfig, luma, sample_fusion
    from edgefuse.teacher.objective import EMConfig, solve_objective

    torch.set_grad_enabled(False)
    src = find_pairs(args.rs)
    idx = tuning_indices(src)[: args.limit or None]
    pairs = [src[i] for i in idx]
    student = load_model(args.reference).model
    pool = ProcessPoolExecutor(args.workers)
    ref = mean_scores(pool, [(to_uint8(fuse(v, t, model=student)), t, v) for v, t in pairs])
    print(
        f"tuning pairs: {len(idx)} of the training split; reference {args.reference}: "
        f"VIF {ref['VIF']:.3f} Qabf {ref['Qabf']:.3f} SSIM {ref['SSIM']:.3f}",
        flush=True,
    )

    if args.stage == "objective":
        grid = [EMConfig(objective="ddfm", phi=3.0, prior_weight=0.0)]
        for phi, soft, blur in itertools.product((0.0, 0.02, 0.1), (0.06, 0.1, 0.16), (2, 5, 9)):
            grid.append(EMConfig(phi=phi, softness=soft, blur=blur, prior_weight=0.0))
        configs: list[Any] = grid
    elif args.stage == "cond":
        from edgefuse.teacher.conditional import ConditionalTeacher

        teacher = ConditionalTeacher.load(args.model, device=args.device, precision="bf16")
        grid = {"full": ((10, 20, 50), (0.0, 0.5, 1.0)), "eta1": ((10, 20, 50), (1.0,))}.get(
            args.grid, ((2,), (1.0,))
        )
        configs = [{"steps": n, "eta": e} for n, e in itertools.product(*grid)]
    else:
        from edgefuse.teacher.prior import Prior

        with open(args.em) as fh:
            base = EMConfig.from_dict(json.load(fh)["best"]["config"])
        prior = Prior.load(args.prior, device=args.device, precision="bf16")
        configs = []
        grid = (
            itertools.product((0.0, 0.5, 1.0, 2.0, 5.0), (0.0, 0.5, 1.0), (0.1,), (10,))
            if args.grid == "full"
            else itertools.product((0.0, 5.0), (0.5,), (0.1,), (2,))
        )
        for mu, eta, jitter, steps in grid:
            em = base.with_(prior_weight=mu, iters=3, jitter=jitter, phi_jitter=0.3)
            configs.append(SamplerConfig(steps=steps, eta=eta, em=em))
    rows = []
    for cfg in configs:
        t0 = time.perf_counter()
        fused = []
        for v, t in pairs:
            vt = torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1)))[None].to(args.device)
            tt = torch.from_numpy(t)[None, None].to(args.device)
            if args.stage == "objective":
                y = (solve_objective(tt * 2 - 1, luma(vt) * 2 - 1, cfg, iters=30) + 1) / 2
            elif args.stage == "cond":
                seeds = list(range(args.k))
                y = teacher.sample(vt[0], tt[0], seeds, cfg["steps"], cfg["eta"]).mean(dim=0, keepdim=True)
            else:
                y = sample_fusion(prior, vt[0], tt[0], [0, 1], cfg).mean(dim=0, keepdim=True)
            fused.append(to_uint8(_rgb(y, vt)))
        secs = time.perf_counter() - t0
        m = mean_scores(pool, [(f, t, v) for f, (v, t) in zip(fused, pairs, strict=True)])
        conf = cfg if isinstance(cfg, dict) else cfg.to_dict()
        rows.append({"config": conf, "metrics": m, "seconds": secs})
        print(
            f"{json.dumps(conf)}: VIF {m['VIF']:.3f} Qabf {m['Qabf']:.3f} SSIM {m['SSIM']:.3f} "
            f"({secs:.1f} s)",
            flush=True,
        )
    best = choose(rows, ref)
    out = {
        "stage": args.stage,
        "tuning_stems": [src.pairs[i].stem for i in idx],
        "reference": ref,
        "rows": rows,
        "best": best,
    }
    with open(args.json, "w") as fh:
        json.dump(out, fh, indent=1)
    bm = best["metrics"]
    print(
        f"best: {json.dumps(best['config'])} VIF {bm['VIF']:.3f} Qabf {bm['Qabf']:.3f} "
        f"SSIM {bm['SSIM']:.3f} admissible={best['admissible']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
