"""GPU batch-1 latency of the two student forms (coefficients only vs + full-resolution selection), fp16,
CUDA graph replay, same size config, side by side in one process. Weights do not change the time."""

import statistics
from dataclasses import replace

import torch

from edgefuse.bench.timing import capture_graph
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
                g, _ = capture_graph(m, v, t, warmup=20)
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
