"""A paired folder of a set's training pairs plus a fixed synthetic-night copy of each, for teachers.

A per-pair teacher (``edgefuse teacher ascend``) can only give night targets for night frames it has seen,
so this writes, for every pair of the training split (``split_indices`` seed 0, 20 %: the split ``train`` and
``distill`` hold out), the pair itself (relative symlinks) and ``<stem>_night``: the visible frame darkened
once by ``edgefuse.augment.night_visible`` (γ ~ U(1.5, 3.5), rounded to 8 bits; the generator is seeded by the
stem, so the folder is reproducible) with the same thermal frame, or with ``--dark-thermal`` a thermal frame
moved once by ``edgefuse.augment.dark_thermal`` (mean U(0.08, 0.45), contrast kept: real night pairs have dark
thermal frames, and a teacher gives targets only for what it sees). The validation pairs are left out, so a
student distilled on this folder with ``--val-fraction 0`` never sees them.

    python scripts/night_copies.py --data .gpu/data/roadscene_train --out /tmp/rs_dn [--dark-thermal]
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--dark-thermal", action="store_true", help="night copies get a dark thermal frame too")
    args = ap.parse_args(argv)

    from PIL import Image

    from edgefuse.augment import dark_thermal, night_visible
    from edgefuse.data import find_pairs, split_indices
    from edgefuse.inference import to_uint8
    from edgefuse.io import atomic_path

    source = find_pairs(args.data)
    train, _ = split_indices(source.pairs, args.val_fraction, args.split_seed)
    out = Path(args.out)
    for sub in ("vi", "ir"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in train:
        pair = source.pairs[i]
        for sub, path in (("vi", Path(pair.visible)), ("ir", Path(pair.thermal))):
            for stem in (pair.stem, f"{pair.stem}_night"):
                if stem.endswith("_night") and (sub == "vi" or args.dark_thermal):
                    continue  # written below
                link = out / sub / f"{stem}{path.suffix}"
                if not link.exists():
                    os.symlink(os.path.relpath(path.resolve(), link.parent.resolve()), link)
        night = [out / "vi" / f"{pair.stem}_night.png"] + (
            [out / "ir" / f"{pair.stem}_night.png"] * args.dark_thermal
        )
        if all(f.exists() for f in night):
            continue  # fixed copies, written by an earlier call: a reader never sees a rewrite
        vis, ir = source[i]
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(pair.stem.encode()).digest()[:8], "little"))
        copies = [night_visible(vis, rng)]
        if args.dark_thermal:  # drawn after the visible's gamma, so the visible copies match the default's
            copies.append(dark_thermal(ir, rng))
        for path, img in zip(night, copies, strict=True):
            with atomic_path(path) as tmp:
                Image.fromarray(to_uint8(img)).save(tmp, format="PNG")
    kind = "night copies (dark thermal too)" if args.dark_thermal else "night copies"
    print(f"{out}: {len(train)} training pairs and their {kind}")
    return 0


if __name__ == "__main__":
    from edgefuse.cli._common import script_main

    script_main(main)
