"""CUDA-graph latency of the Triton FusedFusionProxy against the plain model (fp16, channels-last, CUDA
graph: gpu_speed.py's graph_cl), their max abs difference from the fp32 eager model, and kernels per forward.

    python scripts/fused_speed.py                      # fusionproxy-s, 480x640, batch 1
    python scripts/fused_speed.py --select --json out.json

The variants are timed in interleaved rounds (so clock or neighbour drift hits all of them alike); "fused"
unrolls each block's 9 depthwise taps, "fused_loop" runs them as a loop (fewer registers, serial loads).
Measured on an H200 on 2026-12-01: docs/results/session12_fused_speed.json and session13_fused_speed.json
(batch 1 and 4; edgefuse/gpu_fused.py's status).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from dataclasses import replace
from typing import Any

import torch
from gpu_speed import gpu_env, graphed, timed  # scripts/ is on the path when this runs as a script

from edgefuse.checkpoint import load_model
from edgefuse.gpu_fused import FusedFusionProxy
from edgefuse.model import FusionProxy
from edgefuse.spec import parse_size


def kernels_per_call(fn) -> int | None:
    """GPU kernels one call runs (CUPTI, through torch.profiler); None where the profiler fails."""
    try:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        names = [e.name for e in prof.events() if e.device_type == DeviceType.CUDA]
        return sum(not n.startswith(("Memcpy", "Memset")) for n in names) or None
    except Exception as exc:  # the count is optional: report and carry on
        print(f"kernel count unavailable: {exc}")
        return None


def frames(n: int, h: int, w: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """A random pair and a smooth one (gradients, a warm blob in the thermal), fp16-exact values."""
    g = torch.Generator().manual_seed(0)
    across, down = torch.linspace(0, 1, w).expand(h, w), torch.linspace(0, 1, h)[:, None].expand(h, w)
    blob = torch.exp(-((across - 0.6) ** 2 + (down - 0.4) ** 2) / 0.02)
    smooth = (torch.stack([across, down, 0.5 * (across + down)]), (0.3 * (1 - down) + 0.7 * blob)[None])
    pairs = {
        "random": (torch.rand(n, 3, h, w, generator=g), torch.rand(n, 1, h, w, generator=g)),
        "smooth": (smooth[0].expand(n, 3, h, w), smooth[1].expand(n, 1, h, w)),
    }
    return {k: (v.half().cuda(), t.half().cuda()) for k, (v, t) in pairs.items()}


def build(checkpoint: str, select: bool) -> FusionProxy:
    model = load_model(checkpoint, map_location="cuda").model
    if select and not model.config.select:  # the checkpoint's backbone under a random 5-channel head
        sel = FusionProxy(replace(model.config, select=True)).cuda()
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
        sel.load_state_dict(state, strict=False)
        torch.manual_seed(0)
        torch.nn.init.normal_(sel.head.weight, std=0.05)
        model = sel
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="fusionproxy-s")
    ap.add_argument("--size", default="480x640")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--select", action="store_true", help="time the select=True form (random head)")
    ap.add_argument("--variants", default="graph_cl,fused,fused_loop")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("fused_speed.py needs a CUDA GPU")
    h, w = parse_size(args.size)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # an fp32 reference
    model = build(args.checkpoint, args.select)
    inputs = frames(args.batch, h, w)
    with torch.inference_mode():
        reference = {k: model(v.float(), t.float()) for k, (v, t) in inputs.items()}
        half = copy.deepcopy(model).half().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        makers = {
            "graph_cl": (half, torch.channels_last),
            "fused": (FusedFusionProxy(model, torch.float16, unroll=True), torch.contiguous_format),
            "fused_loop": (FusedFusionProxy(model, torch.float16, unroll=False), torch.contiguous_format),
        }
        rows: dict[str, dict[str, Any]] = {}
        runs = {}
        for name in args.variants.split(","):
            fn, fmt = makers[name]
            t0 = time.perf_counter()
            v = torch.empty_like(inputs["random"][0]).contiguous(memory_format=fmt)
            t = torch.empty_like(inputs["random"][1]).contiguous(memory_format=fmt)
            v.copy_(inputs["random"][0])
            t.copy_(inputs["random"][1])
            replay, out = graphed(fn, v, t)
            eager_kernels = kernels_per_call(lambda fn=fn, v=v, t=t: fn(v, t))  # warm: no autotuning
            diffs = {}
            for key, (vi, ti) in inputs.items():  # replays on new frames: the graph reads v, t in place
                v.copy_(vi)
                t.copy_(ti)
                replay()
                torch.cuda.synchronize()
                diffs[key] = (out.float() - reference[key]).abs().max().item()
            runs[name] = replay  # it holds v, t (gpu_speed.graphed): rebinding them later frees nothing
            rows[name] = {
                "setup_s": round(time.perf_counter() - t0, 1),
                "max_abs_diff_vs_fp32": diffs,
                "kernels_per_forward": eager_kernels,
                "kernels_per_replay": kernels_per_call(replay),
                "ms": [],
            }
            print(f"{name:10s} ready in {rows[name]['setup_s']:5.1f} s, max |diff| vs fp32 {diffs}")
        for _ in range(args.rounds):
            for name, replay in runs.items():
                rows[name]["ms"].append(timed(replay, args.iters, warmup=30))
    for name, row in rows.items():
        rounds = row.pop("ms")
        ms = [m for r in rounds for m in r]
        row["round_p50_ms"] = [statistics.median(r) for r in rounds]
        row["p50_ms"] = statistics.median(ms)
        row["p99_ms"] = sorted(ms)[int(0.99 * (len(ms) - 1))]
        print(
            f"{name:10s} p50 {row['p50_ms']:.4f} ms  p99 {row['p99_ms']:.4f} ms  "
            f"kernels {row['kernels_per_forward']}  max|diff| {max(row['max_abs_diff_vs_fp32'].values()):.2e}"
        )
    if "graph_cl" in rows:
        for name in (k for k in rows if k != "graph_cl"):
            speedup = rows["graph_cl"]["p50_ms"] / rows[name]["p50_ms"]
            print(f"{name}: {speedup:.2f}x graph_cl at p50 (target: <= 0.2 ms p50)")
    env = {
        **gpu_env(),
        "triton": __import__("triton").__version__,
        "checkpoint": args.checkpoint,
        "select": args.select,
        "size": args.size,
        "batch": args.batch,
        "rounds": args.rounds,
        "iters": args.iters,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"env": env, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
