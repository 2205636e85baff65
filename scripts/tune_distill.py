"""Choose the distillation loss's weights on RoadScene's *training* pairs only (a nested split).

The students train on the training split minus its tuning quarter (every 4th pair, ``tune_teacher``'s
subset) and are scored on that quarter; the validation split and LLVIP stay unseen. A short CPU recipe
(crop 128, batch 16) is enough to rank loss terms; each config runs with several seeds (mean ± std).

    python scripts/tune_distill.py --rs ../shared/data/roadscene_train --cache CACHE \
        --config a --config "c w_gradient=0 w_intensity=0" --config c --seeds 0 1 2 --json out.json

A config is a row letter (``a``: ``fusion_loss`` with its Python defaults, intensity 1 / gradient 5 / SSIM 1,
the first bundled loss (``edgefuse train``'s defaults changed on 2026-11-30), optionally with other weights as
``name=value``, the teacher-free control; ``b``/``c``: distillation with uniform / variance-weighted pixels,
no routing, followed by ``DistillConfig`` fields as ``name=value``). Any row takes ``night=P``,
``night_noise=S`` and ``thermal_level=P`` (train's and distill's augmentations).

``--union DIR`` (``scripts/night_copies.py``'s folder, the cache built on it) trains the distilled rows as the
bundled recipe does: on the fit pairs *and* their ``<stem>_night`` copies, every one with a teacher target,
at half the repeat (twice the pairs); row ``a`` stays on the fit pairs. The tuning quarter's copies are left
out with their pairs.
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import json
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch
from tune_teacher import mean_scores, tuning_indices

KEYS = ("VIF", "Qabf", "SSIM", "EN", "SD", "SF", "MI", "SCD")
DATA_FIELDS = ("night", "night_noise", "thermal_level")  # a config's augmentation fields, not loss weights


def pace(tag: str, epoch: int, logs: dict[str, float]) -> None:
    """A run's pace, in its log (the lent machines show nothing else while it runs)."""
    print(f"{tag} epoch {epoch}: loss {logs['loss']:.4f} ({logs['seconds']:.0f} s)", flush=True)


def split_spec(spec: str) -> tuple[str, dict[str, float], dict[str, float]]:
    """A config -> (row letter, its loss weights, its augmentation fields with their defaults of 0)."""
    row, *fields = spec.split()
    values = {k: float(v) for k, v in (f.split("=") for f in fields)}
    weights = {k: v for k, v in values.items() if k not in DATA_FIELDS}
    return row, weights, {k: values.get(k, 0.0) for k in DATA_FIELDS}


def loss_for(spec: str, tau: float) -> Any:
    from edgefuse.distill import DistillConfig, DistillLoss
    from edgefuse.losses import fusion_loss

    row, kw, _ = split_spec(spec)
    if row == "a":  # edgefuse train's loss; fields: its weights w_intensity, w_gradient, w_ssim (a control)
        return lambda m, b: fusion_loss(m(b["visible"], b["thermal"]), b["visible"], b["thermal"], **kw)
    weighting = {"b": "uniform", "c": "variance"}[row]
    return DistillLoss(DistillConfig(pixel_weighting=weighting, routing="none", **kw), tau)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", required=True)
    ap.add_argument("--cache", required=True, help="teacher cache of the RoadScene pairs")
    ap.add_argument("--config", action="append", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument(
        "--night-gamma",
        type=float,
        default=0.0,
        help="also score the tuning pairs with the visible frame darkened to V**gamma (a synthetic night: "
        "the training pairs are all daylight, so this is the only night check that stays on them)",
    )
    ap.add_argument(
        "--noisy-night", type=float, default=0.0, help="also score the night copy + noise of this std"
    )
    ap.add_argument("--union", default="", help="night_copies.py folder the distilled rows train on")
    ap.add_argument("--device", default="cpu", help="training device (cpu, cuda)")
    ap.add_argument("--metric-workers", type=int, default=2)
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default; set it when several runs share a machine)",
    )
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` prints where a slow run is (lent machines)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.noisy_night and not args.night_gamma:
        ap.error("--noisy-night adds noise to the --night-gamma copy: give both")

    from edgefuse.data import find_pairs, split_indices
    from edgefuse.distill import DistillDataset, mean_variance
    from edgefuse.inference import fuse, to_uint8
    from edgefuse.model import create_model
    from edgefuse.teacher.cache import TeacherCache
    from edgefuse.training import TrainConfig, Trainer, seed_everything

    src = find_pairs(args.rs)
    cache = TeacherCache(args.cache)
    train, _ = split_indices(src.pairs, val_fraction=0.2, seed=0)
    tune = tuning_indices(src)
    fit_idx = [i for i in train if i not in set(tune)]
    pairs = [src[i] for i in tune]
    union = find_pairs(args.union) if args.union else None
    fit_stems = {src.pairs[i].stem for i in fit_idx}
    union_idx = (
        [i for i, p in enumerate(union.pairs) if p.stem.removesuffix("_night") in fit_stems] if union else []
    )
    tau = mean_variance(cache, [union.pairs[i].stem for i in union_idx] if union else list(fit_stems))
    sets = {"day": pairs}
    if args.night_gamma:
        sets["night"] = [(np.power(v, args.night_gamma, dtype=np.float32), t) for v, t in pairs]
    if args.noisy_night:  # the same frames with sensor noise, rounded to 8 bits (fixed noise, seed 0)
        rng = np.random.default_rng(0)
        sets["noisy"] = [
            (
                np.round(np.clip(v + rng.normal(0, args.noisy_night, v.shape), 0, 1) * 255).astype(np.float32)
                / 255,
                t,
            )
            for v, t in sets["night"]
        ]
    pool = ProcessPoolExecutor(args.metric_workers)
    rows = []
    for spec in args.config:
        per_seed = []
        row, _, aug = split_spec(spec)
        on_union = union is not None and row != "a"
        data, idx = (union, union_idx) if on_union else (src, fit_idx)
        repeat = max(1, args.repeat // 2) if on_union else args.repeat
        for seed in args.seeds:
            t0 = time.perf_counter()
            ds = DistillDataset(data, cache, idx, crop=args.crop, train=True, seed=seed, repeat=repeat, **aug)
            seed_everything(seed)
            cfg = TrainConfig(epochs=args.epochs, batch_size=16, seed=seed, device=args.device, workers=0)
            out = f"/tmp/tune_distill_{'_'.join(spec.split()).replace('=', '')}_{seed}.safetensors"
            tag = f"  {spec} seed {seed}"
            log = functools.partial(pace, tag)
            trainer = Trainer(create_model("s"), loss_for(spec, tau), ds, out, cfg, on_epoch=log)
            trainer.fit(progress=False)
            t_fit = time.perf_counter() - t0
            scores = {}
            model = trainer.ema.eval().to("cpu")  # scored as everywhere else: on the CPU
            for name, scored in sets.items():
                with torch.no_grad():
                    fused = [to_uint8(fuse(v, t, model=model)) for v, t in scored]
                m = mean_scores(pool, [(f, t, v) for f, (v, t) in zip(fused, scored, strict=True)])
                scores[name] = {k: m[k] for k in KEYS}
            per_seed.append(
                scores["day"]
                | {f"{name}_{k}": v for name in ("night", "noisy") for k, v in scores.get(name, {}).items()}
            )
            print(
                f"{spec} seed {seed}: "
                + " ".join(f"{k} {per_seed[-1][k]:.3f}" for k in per_seed[-1] if k.split("_")[-1] in KEYS[:3])
                + f" (fit {t_fit:.0f} s, scored in {time.perf_counter() - t0 - t_fit:.0f} s)",
                flush=True,
            )
        ddof = 1 if len(per_seed) > 1 else 0  # sample std over seeds, as scripts/seed_table.py
        agg = {
            k: (float(np.mean([r[k] for r in per_seed])), float(np.std([r[k] for r in per_seed], ddof=ddof)))
            for k in per_seed[0]
        }
        rows.append({"config": spec, "seeds": args.seeds, "per_seed": per_seed, "mean_std": agg})
        shown = [k for k in agg if k.split("_")[-1] in KEYS[:3]]
        print(f"== {spec}: " + " ".join(f"{k} {agg[k][0]:.3f}±{agg[k][1]:.3f}" for k in shown), flush=True)
    with open(args.json, "w") as fh:
        json.dump(
            {
                "tuning_stems": [src.pairs[i].stem for i in tune],
                "fit_pairs": len(fit_idx),
                "union_pairs": len(union_idx) or None,
                "recipe": {"epochs": args.epochs, "repeat": args.repeat, "crop": args.crop, "batch": 16},
                "night_gamma": args.night_gamma or None,
                "rows": rows,
            },
            fh,
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
