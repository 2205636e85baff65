"""Where a conditional-teacher DDIM step spends its time on a GPU: the UNet, and drawing the per-seed noise
on the CPU (then copying it over) versus on the device; and the UNet's forward and a whole sample() with its
weights in the default (NCHW) layout against channels-last, the latter timed in alternation (channels-last was
1.2-1.6x slower on an H200, so neither teacher uses it). The UNet is untrained (speed does not depend on its
weights), of the size scripts/cond_chain.sh trains; `--in-channels 1 --forward-only` times a prior's instead.

    python3 scripts/cond_speed.py --height 1024 --width 1280 --k 6 --steps 20
    python3 scripts/cond_speed.py --in-channels 1 --channels 16,32,64,128 --forward-only
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from edgefuse.teacher.conditional import COND_META, ConditionalTeacher
from edgefuse.teacher.denoiser import DenoiserConfig, build_unet

T = TypeVar("T")


def timed(fn: Callable[[], T], device: torch.device) -> tuple[float, T]:
    """(milliseconds, result) of one call, the device's queue drained before and after."""
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    return (time.perf_counter() - t0) * 1e3, out


def median_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up (autotuning, allocation)
    return statistics.median(timed(fn, device)[0] for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--channels", default="32,64,128,128")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--in-channels", type=int, default=3, help="3: the conditional teacher, 1: a prior")
    ap.add_argument("--forward-only", action="store_true", help="only the UNet forward, by weight layout")
    a = ap.parse_args()
    device = torch.device(a.device)
    cfg = DenoiserConfig(channels=tuple(int(c) for c in a.channels.split(",")), device=a.device)
    unet = build_unet(cfg, in_channels=a.in_channels).to(device).eval()
    shape = (1, a.height, a.width)
    x = torch.randn(a.k, a.in_channels, a.height, a.width, device=device)
    t = torch.tensor(500, device=device)
    amp = device.type == "cuda"

    def forward() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            unet(x, t)

    cpu_gens = [torch.Generator().manual_seed(s) for s in range(a.k)]
    dev_gens = [torch.Generator(device=device).manual_seed(s) for s in range(a.k)]
    forward_by_layout = {}
    for name, fmt in (("NCHW", torch.contiguous_format), ("channels-last", torch.channels_last)):
        unet.to(memory_format=fmt)
        forward_by_layout[name] = median_ms(forward, device, a.repeats)
    unet.to(memory_format=torch.contiguous_format)
    by = ", ".join(f"{n} {v:.1f} ms" for n, v in forward_by_layout.items())
    if a.forward_only:
        print(
            f"{a.height}x{a.width}, batch {a.k}, UNet {a.in_channels} ch {a.channels}, forward (bf16): {by}"
        )
        return
    cpu_ms = median_ms(
        lambda: torch.stack([torch.randn(shape, generator=g) for g in cpu_gens]).to(device), device, a.repeats
    )
    dev_ms = median_ms(
        lambda: torch.stack([torch.randn(shape, generator=g, device=device) for g in dev_gens]),
        device,
        a.repeats,
    )
    sched = {"num_train_timesteps": 1000, "prediction_type": "v_prediction"}
    vis = torch.rand(3, a.height, a.width)
    ir = torch.rand(1, a.height, a.width)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        unet.save_pretrained(Path(tmp) / "unet")  # the teacher records its UNet's hash and meta
        (Path(tmp) / COND_META).write_text("{}")
        teacher = ConditionalTeacher(unet, sched, Path(tmp), "bf16")
        layouts: dict[str, list[float]] = {"NCHW": [], "channels-last": []}
        formats = {"NCHW": torch.contiguous_format, "channels-last": torch.channels_last}
        outs = {}
        for fmt in formats.values():  # warm-up of each layout (cuDNN picks its kernels per layout)
            teacher.unet.to(memory_format=fmt)
            teacher.sample(vis, ir, range(a.k), a.steps, 1.0)
        for _ in range(a.repeats // 2 or 1):  # alternate, so a drifting clock hits both layouts alike
            for name, fmt in formats.items():
                teacher.unet.to(memory_format=fmt)
                ms, outs[name] = timed(lambda: teacher.sample(vis, ir, range(a.k), a.steps, 1.0), device)
                layouts[name].append(ms)
        delta = float((outs["NCHW"] - outs["channels-last"]).abs().max()) * 255
    gpu = torch.cuda.get_device_name(device) if amp else "cpu"
    print(f"{a.height}x{a.width}, K={a.k}, UNet {a.channels}, {gpu}")
    print(f"UNet forward (bf16), median of {a.repeats}: {by}")
    print(f"noise per step, CPU draw + copy: {cpu_ms:.1f} ms; on the device: {dev_ms:.2f} ms")
    med = {n: statistics.median(v) for n, v in layouts.items()}
    per_step = med["NCHW"] / a.steps
    print(f"sample(), {a.steps} steps, eta 1, device noise: {med['NCHW']:.0f} ms ({per_step:.1f} ms a step)")
    print(
        f"sample() by weight layout, median of {len(layouts['NCHW'])} alternating: "
        f"NCHW {med['NCHW']:.0f} ms, "
        f"channels-last {med['channels-last']:.0f} ms (x{med['NCHW'] / med['channels-last']:.2f}); "
        f"max |diff| {delta:.3f} levels"
    )


if __name__ == "__main__":
    main()
