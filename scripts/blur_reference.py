"""A reference for reading a teacher that smooths or regenerates fine texture: the shipped student's output
on the held-out pairs, as it is and Gaussian-blurred (σ 0.5 and 1.0 pixels), scored by edgefuse.metrics.
Convention-A SSIM uses a near-zero C2 (data range 2 on 8-bit values), so in flat, noisy regions it is the
correlation of the fused image's fine texture with the sources' own: removing it, or replacing it with texture
of one's own, costs SSIM and Qabf far more than PSNR or CC.

    python scripts/blur_reference.py --json docs/results/session16_blur_reference.json
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("SD", "SF", "AG", "CC", "PSNR", "VIF", "Qabf", "SSIM")


def _score(args: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    from edgefuse.metrics import fusion_metrics

    return fusion_metrics(*args, names=NAMES)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", default=str(ROOT.parent / "shared/data/roadscene_train"))
    ap.add_argument("--llvip", default=str(ROOT.parent / "shared/data/llvip_sample"))
    ap.add_argument("--student", default="fusionproxy-s")
    ap.add_argument("--sigmas", default="0,0.5,1.0")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from scipy import ndimage

    from edgefuse.checkpoint import load_model
    from edgefuse.data import find_pairs, split_indices
    from edgefuse.inference import fuse, to_uint8

    model = load_model(args.student).model
    sigmas = [float(s) for s in args.sigmas.split(",")]
    out: dict[str, dict[str, float]] = {}
    for name, root, val in (("llvip", args.llvip, False), ("rsval", args.rs, True)):
        src = find_pairs(root)
        idx = split_indices(src.pairs, 0.2, 0)[1] if val else range(len(src))  # RoadScene: the val split
        jobs: dict[float, list] = {s: [] for s in sigmas}
        for i in idx:
            v, t = src[i]
            f = fuse(v, t, model=model)
            for s in sigmas:
                g = f if s == 0 else ndimage.gaussian_filter(f, sigma=(s, s, 0))
                jobs[s].append((to_uint8(g), t, v))
        with ProcessPoolExecutor(args.workers) as pool:
            for s, js in jobs.items():
                rows = list(pool.map(_score, js))
                out[f"{name}_sigma{s:g}"] = {k: float(np.mean([r[k] for r in rows])) for k in NAMES}
                print(name, f"σ {s:g}:", " ".join(f"{k} {out[f'{name}_sigma{s:g}'][k]:.3f}" for k in NAMES))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
