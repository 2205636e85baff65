"""Where a student's int8 drift comes from, in PyTorch (no backend): one layer at a time, round its weights to
int8 (symmetric, per output channel, scale max|w|/127: a model of the backends' rounding, not their graphs)
or its output to uint8 (per tensor, min/max over calibration frames), and measure the fused frame's change in
8-bit levels; then say where the large changes sit (mean visible luma Y and thermal T there, and the change
of the coefficient maps a, b, c). docs/export.md has what it found, and a case it does not explain.

Frames are RoadScene training pairs (``split_indices`` seed 0): every 8th calibrates, every 8th from the 4th
on is scored, so the held-out pairs stay unseen.

    python scripts/int8_sensitivity.py --data ../shared/data/roadscene_train \
        --checkpoint bundled=fusionproxy-s --checkpoint c_s0=runs/s7/c_s0.safetensors --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

Frames = list[tuple[torch.Tensor, torch.Tensor]]


def load_frames(data: str) -> tuple[Frames, Frames]:
    from edgefuse.data import find_pairs, split_indices

    source = find_pairs(data)
    train = split_indices(source.pairs, 0.2, 0)[0]
    out: list[Frames] = [[], []]
    for k, ids in enumerate((train[::8], train[4::8])):
        for i in ids:
            v, t = source[i]
            h, w = (v.shape[0] // 16) * 16, (v.shape[1] // 16) * 16  # the model's multiple of 16
            vis = torch.from_numpy(v[:h, :w]).permute(2, 0, 1)[None].float()
            out[k].append((vis, torch.from_numpy(t[:h, :w])[None, None].float()))
    return out[0], out[1]


def round_weights(conv: nn.Conv2d) -> Callable[[], None]:
    """Put ``conv``'s weights on the int8 grid (:func:`edgefuse.snap.int8_grid`); returns the undo."""
    from edgefuse.snap import int8_grid

    w0 = conv.weight.data.clone()
    conv.weight.data = int8_grid(w0)
    return lambda: setattr(conv.weight, "data", w0)


def uint8_output(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-12) / 255
    zero = round(-lo / scale)
    return (torch.clamp((x / scale).round() + zero, 0, 255) - zero) * scale


@torch.no_grad()
def drift(model: nn.Module, frames: Frames, ref: list[torch.Tensor]) -> torch.Tensor:
    """Per-pixel max-over-RGB |Δ| in 8-bit levels, all frames flattened."""
    pairs = zip(frames, ref, strict=True)
    return torch.cat([((model(v, t) - r).abs().amax(1) * 255).flatten() for (v, t), r in pairs])


def summary(d: torch.Tensor) -> dict[str, float]:
    return {"max": float(d.max()), "p99": float(d.quantile(0.99)), "over_8": int((d > 8).sum())}


@torch.no_grad()
def where(model: nn.Module, perturb: Callable[[], Callable[[], None]], frames: Frames) -> dict[str, float]:
    """Mean Y, T and |Δa|, |Δb|, |Δc| (coefficients upsampled as the model does) where |Δ| > 8 levels."""
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in ("d", "Y", "T", "a", "b", "c")}
    for v, t in frames:
        ref, coef = model(v, t), model.coefficients(v, t)
        undo = perturb()
        out, dcoef = model(v, t), model.coefficients(v, t) - coef
        undo()
        up = F.interpolate(dcoef[:, :3], scale_factor=4.0, mode="bilinear", align_corners=False)
        cols["d"].append(((out - ref).abs().amax(1) * 255).flatten())
        cols["Y"].append((v * luma).sum(1).flatten())
        cols["T"].append(t.flatten())
        for i, k in enumerate("abc"):
            cols[k].append(up[:, i].abs().flatten())
    c = {k: torch.cat(v) for k, v in cols.items()}
    big = c["d"] > 8
    if not bool(big.any()):
        return {"pixels": 0}
    stats = {"pixels": int(big.sum()), "Y_all": float(c["Y"].mean()), "T_all": float(c["T"].mean())}
    stats.update({k: float(c[k][big].mean()) for k in ("Y", "T", "a", "b", "c")})
    return stats


def analyse(model: nn.Module, cal: Frames, val: Frames) -> dict:
    for mod in model.modules():
        if isinstance(mod, nn.ReLU):
            mod.inplace = False  # hooks must see the convolution's own output
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    ranges: dict[str, tuple[float, float]] = {}

    def record(name: str) -> Callable:
        def hook(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
            lo, hi = ranges.get(name, (float("inf"), float("-inf")))
            ranges[name] = (min(lo, float(out.min())), max(hi, float(out.max())))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in convs.items()]
    for v, t in cal:
        model(v, t)
    for h in handles:
        h.remove()
    ref = [model(v, t) for v, t in val]
    layers: dict[str, dict] = {}
    for name, conv in convs.items():
        undo = round_weights(conv)
        weights = summary(drift(model, val, ref))
        undo()
        h = conv.register_forward_hook(lambda _m, _i, o, n=name: uint8_output(o, *ranges[n]))
        acts = summary(drift(model, val, ref))
        h.remove()
        layers[name] = {"weights_int8": weights, "output_uint8": acts}
    worst = max(layers, key=lambda n: layers[n]["weights_int8"]["max"])
    perturb = partial(round_weights, convs[worst])
    return {"layers": layers, "worst_weights": worst, "where_worst": where(model, perturb, val)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="RoadScene paired folder (its training split is used)")
    ap.add_argument("--checkpoint", action="append", required=True, help="NAME=CHECKPOINT (file or bundled)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from edgefuse.checkpoint import load_model

    torch.set_grad_enabled(False)
    cal, val = load_frames(args.data)
    out = {"calibration_frames": len(cal), "scored_frames": len(val), "checkpoints": {}}
    for spec in args.checkpoint:
        name, _, path = spec.partition("=")
        res = analyse(load_model(path).model.eval(), cal, val)
        out["checkpoints"][name] = res
        top = sorted(res["layers"].items(), key=lambda kv: -kv[1]["weights_int8"]["max"])[:3]
        w = res["where_worst"]
        worst = ", ".join(
            f"{n} {r['weights_int8']['max']:.1f} ({r['weights_int8']['over_8']} px > 8)" for n, r in top
        )
        acts = max(r["output_uint8"]["max"] for r in res["layers"].values())
        print(f"{name}: weights int8, worst layers {worst}; outputs uint8, worst {acts:.1f}")
        if w["pixels"]:
            print(
                f"   where {res['worst_weights']} moves > 8 levels: Y {w['Y']:.2f} (all {w['Y_all']:.2f}), "
                f"T {w['T']:.2f} (all {w['T_all']:.2f}), "
                f"|Δa| {w['a']:.3f} |Δb| {w['b']:.3f} |Δc| {w['c']:.3f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
