"""How well a luminance prior denoises frames it never saw: its ε-prediction MSE on the held-out pairs.

A longer-trained prior is only "trained long enough to matter" if it predicts the noise better on frames it
did not train on, not just on its own. This scores each ``--prior`` on fixed 64² crops of the luminance of
the validation split's pairs (visible and thermal; the split ``train-prior`` left out, read from the prior's
``val_stems``) and of as many of its training pairs, at fixed timesteps with fixed noise (seed 0): the same
crops, noise and timesteps for every prior, so the numbers compare side by side.

    python scripts/prior_loss.py --data ../shared/data/roadscene_train --prior P1 --prior P2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

TIMESTEPS = (25, 100, 250, 500, 750)


def crops(frames: list[np.ndarray], n: int, size: int, seed: int) -> torch.Tensor:
    from edgefuse.teacher.prior import random_crops

    return random_crops(frames, n, size, np.random.default_rng(seed))


@torch.no_grad()
def eps_mse(prior, x0: torch.Tensor, seed: int = 0, batch: int = 256) -> dict[str, float]:
    """Mean ε-prediction MSE per timestep (fp32, the same noise for every prior)."""
    import diffusers

    alphas = diffusers.DDPMScheduler.from_config(prior.scheduler_config).alphas_cumprod
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for t in TIMESTEPS:
        noise = torch.randn(x0.shape, generator=gen)
        ab = float(alphas[t])
        xt = ab**0.5 * x0 + (1 - ab) ** 0.5 * noise
        err = 0.0
        for i in range(0, len(xt), batch):
            x = xt[i : i + batch].to(prior.device)
            steps = torch.full((len(x),), t, device=prior.device)
            pred = prior.unet(x, steps).sample.float().cpu()
            err += float(((pred - noise[i : i + batch]) ** 2).sum())
        out[str(t)] = err / noise.numel()
    out["mean"] = float(np.mean([out[str(t)] for t in TIMESTEPS]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the paired folder the priors trained on")
    ap.add_argument("--prior", action="append", required=True)
    ap.add_argument("--crops", type=int, default=2048)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)

    from edgefuse.data import find_pairs
    from edgefuse.teacher.prior import Prior, luminance_frames

    src = find_pairs(args.data)
    stem_index = {p.stem: i for i, p in enumerate(src.pairs)}
    priors = [Prior.load(p, device=args.device) for p in args.prior]
    meta = priors[0].meta
    if any(p.meta.get("val_stems") != meta.get("val_stems") for p in priors):
        ap.error("the priors were trained on different splits: their held-out frames differ")
    val = [stem_index[s] for s in meta["val_stems"] if s in stem_index]
    train = [stem_index[s] for s in meta["train_stems"] if s in stem_index][: len(val)]
    sets = {
        name: crops(luminance_frames(src, idx), args.crops, 64, 0)
        for name, idx in (("val", val), ("train", train))
    }
    rows = []
    for prior in priors:
        row = {
            "prior": str(prior.path),
            "sha256": prior.sha256,
            "steps": prior.meta.get("steps"),
            "seconds": prior.meta.get("seconds"),
            "final_loss_ema": prior.meta.get("final_loss_ema"),
        }
        for name, x0 in sets.items():
            row[name] = eps_mse(prior, x0)
        rows.append(row)
        print(
            f"{prior.path.name} ({row['steps']} steps): held-out ε MSE {row['val']['mean']:.5f}, "
            f"training pairs {row['train']['mean']:.5f}; per t (held out) "
            + " ".join(f"{t}: {row['val'][str(t)]:.5f}" for t in TIMESTEPS),
            flush=True,
        )
    with open(args.json, "w") as fh:
        json.dump(
            {"pairs": {"val": len(val), "train": len(train)}, "crops": args.crops, "rows": rows}, fh, indent=1
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
