"""Training pace of the coefficient-space teacher by batch size: steps a second of the real training loop
(`train_coefficients`, the settings of scripts/coef_chain.sh) on random items of RoadScene's size, and the
crop loader's share of it. The nineteenth session trained 9.6 steps a second at batch 128 on an H200. Run
there after it (warm): batch 128 10.8 steps a second, batch 512 4.5, so a 4x batch gives 1.7x the crops.

    python3 scripts/coef_train_speed.py --batches 128,512 --steps 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from edgefuse.checkpoint import save_checkpoint
from edgefuse.model import create_model
from edgefuse.teacher.coefficient import CoefficientScale, coefficient_crops, train_coefficients
from edgefuse.teacher.denoiser import DenoiserConfig


def items(n: int, h4: int, w4: int, k: int = 3) -> list:
    rng = np.random.default_rng(0)
    return [
        (
            rng.random((2, 4 * h4, 4 * w4)).astype(np.float16),
            rng.normal(0, 0.3, (3, h4, w4)).astype(np.float32),
            rng.normal(0, 0.3, (k, 3, h4, w4)).astype(np.float32),
        )
        for _ in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="128,512")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--pairs", type=int, default=64)
    a = ap.parse_args()
    data = items(a.pairs, 128, 160)
    scale = CoefficientScale.fit(data)
    with tempfile.TemporaryDirectory() as tmp:
        start = Path(tmp) / "start.safetensors"
        save_checkpoint(create_model("s"), start)
        for batch in (int(b) for b in a.batches.split(",")):
            rng = np.random.default_rng(1)
            t0 = time.perf_counter()
            for _ in range(20):
                coefficient_crops(data, batch, 32, rng, scale)
            loader_ms = (time.perf_counter() - t0) / 20 * 1e3
            cfg = DenoiserConfig(
                crop=32,
                channels=(32, 64, 128, 256),
                batch_size=batch,
                max_steps=a.steps,
                device=a.device,
                prediction="v_prediction",
            )
            info = train_coefficients(data, Path(tmp) / f"coef{batch}", cfg, start)
            rate = info["steps"] / info["seconds"]
            print(
                f"batch {batch}: {rate:.1f} steps/s over {info['steps']} steps ({info['seconds']:.1f} s, "
                f"incl. start-up), {rate * batch:.0f} crops/s; crop loader {loader_ms:.1f} ms a batch"
            )


if __name__ == "__main__":
    main()
