"""OpenVINO int8 latency of the two student forms, side by side in one process (interleaved rounds, 1 thread).

`edgefuse bench` measures one checkpoint per run, so two exported artifacts of different checkpoints are timed
here through the same runtime API instead. Make the artifacts first, e.g.:

    edgefuse export --target intel-cpu_openvino-int8_480x640 --calib DIR -o exp_old
    edgefuse export --target intel-cpu_openvino-int8_480x640 -c sel.safetensors --calib DIR -o exp_sel
    python scripts/form_latency.py exp_old/intel-cpu_openvino-int8_480x640 \
        exp_sel/intel-cpu_openvino-int8_480x640
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from edgefuse.runtimes import open_artifact


def main(paths: list[str], rounds: int = 7, runs: int = 20) -> int:
    rng = np.random.default_rng(0)
    feed = {
        "visible": rng.random((1, 3, 480, 640), dtype=np.float32),
        "thermal": rng.random((1, 1, 480, 640), dtype=np.float32),
    }
    models = {p: open_artifact(p, threads=1) for p in paths}
    for m in models.values():
        for _ in range(10):
            m(feed)
    res: dict[str, list[float]] = {p: [] for p in models}
    for _ in range(rounds):
        for p, m in models.items():
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                m(feed)
                ts.append(time.perf_counter() - t0)
            res[p].append(statistics.median(ts) * 1000)
    for p, ms in res.items():
        rounds_s = ", ".join(f"{x:.2f}" for x in ms)
        print(f"{p}: median of round medians {statistics.median(ms):.2f} ms ({rounds_s})")
    if len(paths) == 2:
        ratios = [b / a for a, b in zip(res[paths[0]], res[paths[1]], strict=True)]
        med, lo, hi = statistics.median(ratios), min(ratios), max(ratios)
        print(f"per-round ratio second/first: median {med:.3f} ({lo:.3f}–{hi:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
