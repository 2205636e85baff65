"""Training pairs as two scoring sets, for choices that must not look at held-out pairs: a fixed subset of
RoadScene's training split (``split_indices`` seed 0, 20 %) as it is ("day"), and the same pairs as the night
proxy of the sixth session (visible V^2.5, thermal mean moved to 0.12 with its contrast kept, both 8-bit),
which orders checkpoints as LLVIP's real night pairs do (docs/results/night_coefficients.md).

    python scripts/proxy_pairs.py --data ../shared/data/roadscene_train --out /tmp/proxy --pairs 34
    python scripts/evaluate_students.py --extra /tmp/proxy/rs_train_day \
        --extra /tmp/proxy/rs_train_night_proxy --student c_s0=runs/c_s0.safetensors ...
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

GAMMA = 2.5
THERMAL_MEAN = 0.12


def night_proxy(vis: np.ndarray, ir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A night pair made of a day pair: V^2.5, and the thermal mean at 0.12 (a cold night background under the
    camera's gain control; RoadScene's thermal frames average ~0.48), clipped and rounded to 8-bit levels."""
    dark = np.round(np.power(vis, GAMMA) * 255) / 255
    cold = np.clip(np.round((ir - ir.mean() + THERMAL_MEAN) * 255) / 255, 0, 1)
    return dark.astype(np.float32), cold.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="RoadScene paired folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--pairs", type=int, default=34, help="evenly spaced training pairs")
    args = ap.parse_args(argv)

    from PIL import Image

    from edgefuse.data import find_pairs, split_indices
    from edgefuse.inference import to_uint8

    source = find_pairs(args.data)
    train = split_indices(source.pairs, 0.2, 0)[0]
    picked = [train[int(i)] for i in np.linspace(0, len(train) - 1, min(args.pairs, len(train))).round()]
    day, night = Path(args.out) / "rs_train_day", Path(args.out) / "rs_train_night_proxy"
    for d in (day, night):
        for sub in ("vi", "ir"):
            (d / sub).mkdir(parents=True, exist_ok=True)
    for i in picked:
        pair = source.pairs[i]
        for sub, path in (("vi", Path(pair.visible)), ("ir", Path(pair.thermal))):
            link = day / sub / path.name
            if not link.exists():
                os.symlink(os.path.relpath(path.resolve(), link.parent.resolve()), link)
        vis, ir = night_proxy(*source[i])
        Image.fromarray(to_uint8(vis)).save(night / "vi" / f"{pair.stem}.png")
        Image.fromarray(to_uint8(ir)).save(night / "ir" / f"{pair.stem}.png")
    print(f"{day}, {night}: {len(picked)} training pairs each")
    return 0


if __name__ == "__main__":
    from edgefuse.cli._common import script_main

    script_main(main)
