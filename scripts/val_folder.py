"""A paired folder of links to the RoadScene validation split (the pairs `edgefuse train` holds out: 20 %,
seed 0), for commands that take a folder rather than a split (sample-cond, spread_error.py).

    python scripts/val_folder.py ../shared/data/roadscene_train /tmp/w/data_rsval
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from edgefuse.data import find_pairs, split_indices


def main(argv: list[str]) -> int:
    src, dst = find_pairs(argv[0]), Path(argv[1])
    for sub in ("vi", "ir"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    for i in split_indices(src.pairs, 0.2, 0)[1]:
        for sub, f in (("vi", src.pairs[i].visible), ("ir", src.pairs[i].thermal)):
            if not (dst / sub / f.name).exists():
                os.symlink(f.resolve(), dst / sub / f.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
