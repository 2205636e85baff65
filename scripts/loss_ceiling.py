"""Where does the distillation loss itself point? Fit today's form per image to minimise it, and score.

For each pair of a teacher cache, the 1/4-resolution coefficient maps of the student's form (no network) are
fitted by Adam (cosine-decayed, as ``form_ceiling.py --cache``) to minimise the loss of each ``--config``
(``tune_distill.py``'s spelling: a row letter, ``b``/``c`` for DistillLoss with uniform / variance pixels
and no routing, ``a`` for the teacher-free loss, then fields as ``name=value``), and
the fits are scored with the fusion metrics next to the ensemble mean. A network trained with that loss can
at best reach its per-image optimum. If that optimum already sits well below the teacher, the gap between
students and teacher comes from the loss, not from the network's capacity.
Every fit is also compared with the first ``--config``'s pair by pair (``minus <config>``: mean ± SE of
the differences over pairs).

Images are cropped to multiples of 16 (the form's grid), or to a centred ``--crop`` square (each fit costs
~2000 Adam steps of the whole loss; the crop keeps that to minutes on a CPU).

    python scripts/loss_ceiling.py --rs ../shared/data/roadscene_train --cache runs/asc --json out.json \
        --config b --config "b w_intensity=0"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from form_ceiling import mean_se, minimise, paired
from tune_distill import KEYS, loss_for
from tune_teacher import _score

# the teacher's terms alone: what following the ensemble mean, and nothing else, reaches
TEACHER_ONLY = "b w_ssim=0 w_source_ssim=0 w_gradient=0 w_intensity=0"


def crop_window(shape: tuple[int, ...], crop: int) -> tuple[slice, slice]:
    h, w = (min(n, crop) if crop else n for n in shape)
    h, w = h // 16 * 16, w // 16 * 16
    top, left = (shape[0] - h) // 2, (shape[1] - w) // 2
    return slice(top, top + h), slice(left, left + w)


def chw(a: np.ndarray) -> torch.Tensor:
    """H×W or H×W×C array -> 1×C×H×W float32 tensor."""
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))[None]


class Coefficients(torch.nn.Module):
    """The student's blend with free coefficient maps in place of the network."""

    def __init__(self, height: int, width: int) -> None:
        from edgefuse.model import FusionProxy

        super().__init__()
        self.form = FusionProxy().requires_grad_(False)
        self.coef = torch.nn.Parameter(torch.zeros(1, 3, height // 4, width // 4))

    def forward(self, visible: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        return self.form.blend(self.coef, visible, thermal)


def fit(loss_fn: Any, batch: dict[str, torch.Tensor], iters: int) -> torch.Tensor:
    h, w = batch["visible"].shape[-2:]
    model = Coefficients(h, w)
    minimise(model.coef, lambda: loss_fn(model, batch)[0], iters, anneal=True)
    with torch.no_grad():
        return model(batch["visible"], batch["thermal"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", required=True, help="paired folder holding the cache's pairs")
    ap.add_argument("--cache", required=True)
    ap.add_argument("--config", action="append", default=[], help="ROW [name=value ...] (tune_distill.py's)")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--crop", type=int, default=0, help="centred square crop, a multiple of 16 (0: whole)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    from edgefuse.data import find_pairs
    from edgefuse.distill import mean_variance
    from edgefuse.inference import to_uint8
    from edgefuse.teacher.cache import TeacherCache

    torch.manual_seed(0)
    src, cache = find_pairs(args.rs), TeacherCache(args.cache)
    idx = [i for i in range(len(src)) if src.pairs[i].stem in cache.pairs][: args.limit]
    stems = [src.pairs[i].stem for i in idx]
    tau = mean_variance(cache, stems)
    configs = {"teacher terms only": TEACHER_ONLY, **{c: c for c in args.config}}
    losses = {name: loss_for(text, tau) for name, text in configs.items()}
    rows: dict[str, list] = {"target (ensemble mean)": [], **{k: [] for k in configs}}
    triples = []
    for i, stem in zip(idx, stems, strict=True):
        vis, ir = src[i]
        entry = cache.load(stem)
        window = crop_window(vis.shape[:2], args.crop)
        vis, ir, mean, var = (a[window] for a in (vis, ir, entry.mean, entry.var))
        batch = {"visible": chw(vis), "thermal": chw(ir), "mean": chw(mean), "var": chw(var)}
        triples.append((ir, vis))
        rows["target (ensemble mean)"].append(to_uint8(mean))
        t0 = time.perf_counter()
        for name, loss_fn in losses.items():
            rows[name].append(to_uint8(fit(loss_fn, batch, args.iters)[0].permute(1, 2, 0).numpy()))
        print(f"{stem}: {len(losses)} fits in {time.perf_counter() - t0:.0f} s", flush=True)  # long runs
    with ProcessPoolExecutor(2) as pool:
        per_pair = {
            k: list(pool.map(_score, [(f, t, v) for f, (t, v) in zip(fs, triples, strict=True)]))
            for k, fs in rows.items()
        }

    out = {
        "cache": args.cache,
        "pairs": stems,
        "iters": args.iters,
        "crop": args.crop,
        "tau": tau,
        "configs": configs,
        "metrics": {k: {m: mean_se([r[m] for r in rs]) for m in KEYS} for k, rs in per_pair.items()},
        "per_pair": per_pair,
    }
    if args.config:  # every fit against the first --config's, pair by pair
        first = args.config[0]
        out[f"minus {first}"] = {
            k: paired(per_pair[first], v, KEYS) for k, v in per_pair.items() if k != first
        }
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    for k, m in out["metrics"].items():
        print(f"{k}: " + " ".join(f"{n} {m[n]['mean']:.3f}" for n in KEYS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
