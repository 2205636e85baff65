"""Torch-on-CUDA speed of the student at one resolution: fp32/fp16, eager / channels-last / CUDA graphs /
torch.compile, batch 1 latency and batched throughput. Prints a table and writes JSON.

    python scripts/gpu_speed.py --checkpoint fusionproxy-s --size 480x640 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from edgefuse.bench.timing import capture_graph
from edgefuse.checkpoint import load_model
from edgefuse.spec import parse_size


def gpu_env() -> dict[str, str | None]:
    """The GPU, torch and CUDA of a measurement, and when it was taken (each report's "env")."""
    return {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def timed(fn, iters: int, warmup: int) -> list[float]:
    """Per-call milliseconds, CUDA events around each call (device time incl. launch gaps)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b))
    return out


def graphed(fn, v: torch.Tensor, t: torch.Tensor):
    """A CUDA graph of fn(v, t) on static inputs: (replay, output). The replay holds v and t: the graph
    reads them by address, so they must outlive it."""
    g, out = capture_graph(fn, v, t)

    def replay(_inputs=(v, t)) -> None:
        g.replay()

    return replay, out


def variant(model, batch: int, h: int, w: int, dtype, mode: str):
    m = model.to(dtype=dtype)
    mf = torch.channels_last if mode in ("channels_last", "compile", "graph_cl") else torch.contiguous_format
    m = m.to(memory_format=mf)
    v = torch.rand(batch, 3, h, w, device="cuda", dtype=dtype).contiguous(memory_format=mf)
    t = torch.rand(batch, 1, h, w, device="cuda", dtype=dtype).contiguous(memory_format=mf)
    if mode == "compile":
        cm = torch.compile(m, mode="max-autotune", fullgraph=True)
        return lambda: cm(v, t)
    if mode.startswith("graph"):
        return graphed(m, v, t)[0]
    return lambda: m(v, t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="fusionproxy-s")
    ap.add_argument("--size", default="480x640")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--json", default=None)
    ap.add_argument("--modes", default="eager,channels_last,graph,graph_cl,compile")
    ap.add_argument("--dtypes", default="fp32,fp16")
    args = ap.parse_args()
    h, w = parse_size(args.size)
    torch.backends.cudnn.benchmark = True
    rows = []
    with torch.inference_mode():
        dtypes = {"fp32": torch.float32, "fp16": torch.float16}
        for dtype in [dtypes[d] for d in args.dtypes.split(",")]:
            for mode in args.modes.split(","):
                for batch in [int(b) for b in args.batches.split(",")]:
                    model = load_model(args.checkpoint, map_location="cuda").model
                    try:
                        fn = variant(model, batch, h, w, dtype, mode)
                        ms = timed(fn, args.iters, warmup=30)
                    except Exception as exc:  # report, keep measuring the others
                        rows.append(
                            {"dtype": str(dtype), "mode": mode, "batch": batch, "error": str(exc)[:200]}
                        )
                        continue
                    p50 = statistics.median(ms)
                    rows.append(
                        {
                            "dtype": str(dtype).replace("torch.", ""),
                            "mode": mode,
                            "batch": batch,
                            "p50_ms": p50,
                            "p99_ms": sorted(ms)[int(0.99 * (len(ms) - 1))],
                            "fps_batch1": 1000.0 / p50 if batch == 1 else None,
                            "frames_per_s": batch * 1000.0 / p50,
                        }
                    )
                    r = rows[-1]
                    print(
                        f"{r['dtype']:8s} {mode:14s} b{batch:<3d} p50 {p50:8.3f} ms "
                        f"{r['frames_per_s']:10.0f} frames/s"
                    )
    env = {**gpu_env(), "size": args.size, "checkpoint": args.checkpoint}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"env": env, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
