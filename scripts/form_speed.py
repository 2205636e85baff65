"""GPU batch-1 latency of the two student forms (coefficients only vs + full-resolution selection), fp16,
CUDA graph replay, same size config, side by side in one process. Weights do not change the time."""

import statistics
from dataclasses import replace

import torch

from edgefuse.model import CONFIGS, FusionProxy, count_macs

torch.backends.cudnn.benchmark = True
v = torch.rand(1, 3, 480, 640, device="cuda", dtype=torch.float16)
t = torch.rand(1, 1, 480, 640, device="cuda", dtype=torch.float16)
res = {}
for _rnd in range(3):  # interleaved rounds
    for name in ("s", "n"):
        for select in (False, True):
            cfg = replace(CONFIGS[name], select=select)
            m = FusionProxy(cfg).cuda().half().eval()
            with torch.inference_mode():
                for _ in range(20):
                    m(v, t)
                g = torch.cuda.CUDAGraph()
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    m(v, t)
                torch.cuda.current_stream().wait_stream(s)
                with torch.cuda.graph(g):
                    m(v, t)
                times = []
                for _ in range(300):
                    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    a.record()
                    g.replay()
                    b.record()
                    b.synchronize()
                    times.append(a.elapsed_time(b))
            res.setdefault((name, select), []).append(statistics.median(times))
for (name, select), ms in res.items():
    macs = count_macs(FusionProxy(replace(CONFIGS[name], select=select))) / 1e9
    print(
        f"size {name} select={select}: median of round medians {statistics.median(ms):.3f} ms "
        f"(rounds {', '.join(f'{x:.3f}' for x in ms)}), {macs:.3f} GMAC"
    )
