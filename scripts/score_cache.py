"""Score a teacher cache's ensemble mean on held-out pairs, with the spread of its samples.

For RoadScene only the validation split (``split_pairs`` seed 0, 20 %) is scored; other folders whole. Prints
and writes every metric of ``edgefuse.metrics`` (mean over pairs) and the per-pixel standard deviation of the
samples in 8-bit levels (median, 90th, 99th percentile over all pixels). ``--sample-metrics`` also scores each
pair's first sample alone (RGB from its luminance and the visible chroma): whether averaging the samples costs
sharpness, as it does when they differ in fine texture.

    python scripts/score_cache.py --cache runs/asc_rs --data ../shared/data/roadscene_train --val-split \
        --json runs/asc_rs_val.json
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def _score(args: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    from edgefuse.metrics import fusion_metrics

    return fusion_metrics(*args)


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over the pairs' rows."""
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _sample_rgb(lum: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """A sample's luminance (H×W float in [0, 1]) as RGB with the visible frame's chroma, as the teacher
    wrote its mean."""
    import torch

    from edgefuse.teacher.ddfm import with_visible_chroma

    v = torch.from_numpy(np.ascontiguousarray(vis)).permute(2, 0, 1)[None]
    return with_visible_chroma(torch.from_numpy(lum)[None, None], v)[0].permute(1, 2, 0).numpy()


def summary(out: dict) -> str:
    """One line for a run's log: VIF / Qabf / SSIM of the mean, the spread, the first sample's if scored."""
    h = ("VIF", "Qabf", "SSIM")
    words = [f"{k} {out['metrics'][k]:.3f}" for k in h] + ["std p50/p90/p99"]
    words += [f"{v:.2f}" for v in out["std_levels"].values()]
    if "sample0_metrics" in out:
        words += ["one sample:"] + [f"{k} {out['sample0_metrics'][k]:.3f}" for k in h]
    return " ".join(words)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-split", action="store_true", help="score only the validation split (RoadScene)")
    ap.add_argument("--json")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample-metrics", action="store_true", help="score each pair's first sample alone too")
    args = ap.parse_args(argv)

    from edgefuse.data import find_pairs, split_indices
    from edgefuse.inference import to_uint8
    from edgefuse.teacher.cache import TeacherCache

    source, cache = find_pairs(args.data), TeacherCache(args.cache)
    idx = list(split_indices(source.pairs, 0.2, 0)[1]) if args.val_split else list(range(len(source)))
    idx = [i for i in idx if source.pairs[i].stem in cache.pairs]
    triples, singles, stds = [], [], []
    for i in idx:
        vis, ir = source[i]
        entry = cache.load(source.pairs[i].stem)
        triples.append((to_uint8(entry.mean), ir, vis))
        stds.append(np.sqrt(entry.var.astype(np.float64)).ravel() * 255.0)
        if args.sample_metrics:
            samples = entry.samples_float()
            if samples is None:
                ap.error(f"{args.cache}: no samples kept, so --sample-metrics has nothing to score")
            singles.append((to_uint8(_sample_rgb(samples[0], vis)), ir, vis))
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_score, triples))
        single_rows = list(pool.map(_score, singles))
    metrics = mean_scores(rows)
    spread = dict(
        zip(("p50", "p90", "p99"), np.percentile(np.concatenate(stds), [50, 90, 99]).tolist(), strict=True)
    )
    out = {
        "cache": args.cache,
        "data": args.data,
        "pairs": len(idx),
        "metrics": metrics,
        "std_levels": spread,
    }
    if single_rows:
        out["sample0_metrics"] = mean_scores(single_rows)
    print(json.dumps(out, indent=1))
    print(summary(out))  # the last line: what the GPU chains log
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
