"""Score student checkpoints next to the trivial fusions on held-out real pairs.

Rows: each ``--student NAME=CKPT`` plus the per-pixel mean and max of the sources (RGB: visible with the
thermal frame replicated to 3 channels), all scored by ``edgefuse.metrics`` (convention A) on the RoadScene
validation split (``split_pairs`` seed 0, 20 %, the split ``edgefuse train`` holds out) and on any extra
paired folders.

    python scripts/evaluate_students.py --rs ../shared/data/roadscene_train \
        --extra ../shared/data/llvip_sample --student a=runs/a.safetensors --json runs/eval.json
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def _row_metrics(args: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    from edgefuse.metrics import fusion_metrics

    fused, ir, vis = args
    return fusion_metrics(fused, ir, vis)


def _fusions(students: dict[str, Any], vis: np.ndarray, ir: np.ndarray) -> dict[str, np.ndarray]:
    from edgefuse.inference import fuse, to_uint8

    v8, t8 = to_uint8(vis), to_uint8(ir)
    t3 = np.repeat(t8[..., None], 3, axis=2).astype(np.float32)
    out = {name: to_uint8(fuse(vis, ir, model=m)) for name, m in students.items()}
    out["mean of sources"] = np.round((v8.astype(np.float32) + t3) / 2).astype(np.uint8)
    out["max of sources"] = np.maximum(v8, t3.astype(np.uint8))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", help="RoadScene paired folder (its validation split is scored)")
    ap.add_argument("--extra", action="append", default=[], help="another paired folder, scored whole")
    ap.add_argument("--student", action="append", default=[], help="NAME=CHECKPOINT")
    ap.add_argument("--json", help="write the per-set tables here")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    from edgefuse.checkpoint import load_model
    from edgefuse.data import find_pairs, split_indices
    from edgefuse.inference import to_uint8
    from edgefuse.metrics import METRIC_NAMES, mean_metrics

    students = dict(s.split("=", 1) for s in args.student)
    loaded = {name: load_model(path) for name, path in students.items()}
    models, infos = {k: v.model for k, v in loaded.items()}, {k: v.info for k, v in loaded.items()}
    sets = []
    if args.rs:  # without it, only --extra sets (training pairs, for choices made before held-out scores)
        rs = find_pairs(args.rs)
        _, val = split_indices(rs.pairs, val_fraction=0.2, seed=0)
        val_stems = {rs.pairs[i].stem for i in val}
        for name in models:  # never score a pair a student was trained on
            trained = set(infos[name].provenance.get("train_pairs", []))
            if trained & val_stems:
                print(f"error: {name} was trained on validation pairs {sorted(trained & val_stems)[:3]}")
                return 2
        sets.append(("roadscene_val", rs, val))
    for extra in args.extra:
        src = find_pairs(extra)
        sets.append((Path(extra).name, src, list(range(len(src)))))
    report: dict[str, Any] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for set_name, src, idx in sets:
            jobs: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
            for i in idx:
                vis, ir = src[i]
                for row, fused in _fusions(models, vis, ir).items():
                    jobs.setdefault(row, []).append((fused, to_uint8(ir), to_uint8(vis)))
            report[set_name] = {"pairs": len(idx)}
            for row, items in jobs.items():
                report[set_name][row] = mean_metrics(pool.map(_row_metrics, items))
            print(f"\n### {set_name} ({len(idx)} pairs)\n")
            print("| row | " + " | ".join(METRIC_NAMES) + " |")
            print("|---|" + "---|" * len(METRIC_NAMES))
            for row in jobs:
                vals = report[set_name][row]
                print(f"| {row} | " + " | ".join(f"{vals[k]:.3f}" for k in METRIC_NAMES) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
