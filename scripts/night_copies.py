"""A paired folder of a set's training pairs plus a fixed synthetic-night copy of each, for teachers.

A per-pair teacher (``edgefuse teacher ascend``) can only give night targets for night frames it has seen,
so this writes, for every pair of the training split (``split_indices`` seed 0, 20 %: the split ``train`` and
``distill`` hold out), the pair itself (relative symlinks) and ``<stem>_night``: the visible frame darkened
once by ``edgefuse.augment.night_visible`` (γ ~ U(1.5, 3.5), rounded to 8 bits; the generator is seeded by the
stem, so the folder is reproducible) with the same thermal frame. The validation pairs are left out, so a
student distilled on this folder with ``--val-fraction 0`` never sees them.

    python scripts/night_copies.py --data .gpu/data/roadscene_train --out .gpu/data/rs_daynight
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--split-seed", type=int, default=0)
    args = ap.parse_args(argv)

    from PIL import Image

    from edgefuse.augment import night_visible
    from edgefuse.data import find_pairs, split_indices
    from edgefuse.inference import to_uint8

    source = find_pairs(args.data)
    train, _ = split_indices(source.pairs, args.val_fraction, args.split_seed)
    out = Path(args.out)
    for sub in ("vi", "ir"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in train:
        pair = source.pairs[i]
        for sub, path in (("vi", Path(pair.visible)), ("ir", Path(pair.thermal))):
            for stem in (pair.stem, f"{pair.stem}_night"):
                if sub == "vi" and stem.endswith("_night"):
                    continue
                link = out / sub / f"{stem}{path.suffix}"
                if not link.exists():
                    os.symlink(os.path.relpath(path.resolve(), link.parent.resolve()), link)
        vis, _ = source[i]
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(pair.stem.encode()).digest()[:8], "little"))
        Image.fromarray(to_uint8(night_visible(vis, rng))).save(out / "vi" / f"{pair.stem}_night.png")
    print(f"{out}: {len(train)} training pairs and their night copies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
