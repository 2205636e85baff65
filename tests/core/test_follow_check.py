"""scripts/follow_check.py: a student that is its teacher's mean follows it; another keeps none of it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))  # the scripts import their siblings by name


def test_a_teacher_made_of_one_student_is_followed_by_it(tiny_pairs: Path, tmp_path: Path) -> None:
    import follow_check

    from edgefuse.checkpoint import load_model, save_checkpoint
    from edgefuse.data import find_pairs
    from edgefuse.inference import fuse
    from edgefuse.model import create_model
    from edgefuse.teacher.cache import ensemble_stats, write_entry, write_manifest

    shipped = load_model("fusionproxy-s").model
    source, entries = find_pairs(tiny_pairs), {}
    for i, pair in enumerate(source.pairs):  # two samples ± 0.01 around the shipped student's fusion
        out = fuse(*source[i], model=shipped)
        samples = np.clip(np.stack([out - 0.01, out + 0.01]), 0, 1).astype(np.float32)
        mean, var, ys = ensemble_stats(samples)
        entries[pair.stem] = write_entry(tmp_path / "cache", pair.stem, mean, var, ys)
    write_manifest(tmp_path / "cache", entries, {"teacher": {"kind": "test"}, "k": 2, "has_samples": True})
    other = tmp_path / "other.safetensors"
    save_checkpoint(create_model("n"), other)  # untrained: far from the teacher

    out = tmp_path / "follow.json"
    args = ["--cache", str(tmp_path / "cache"), "--data", str(tiny_pairs), "--workers", "1"]
    args += ["--base", "other"]
    args += ["--student", "shipped=fusionproxy-s", "--student", f"other={other}", "--json", str(out)]
    assert follow_check.main(args) == 0
    result = json.loads(out.read_text())
    assert result["pairs"] == 4 and set(result["scores"]) == {"teacher", "shipped", "other"}
    l1 = result["l1_to_teacher_levels"]
    assert l1["shipped"] < 0.5 < 5 * l1["shipped"] < l1["other"]  # float16 storage and clipping only
    kept = result["gain_kept_over_base"]
    assert abs(kept["shipped"]["VIF"] - 1) < 0.05 and abs(kept["shipped"]["Qabf"] - 1) < 0.05
    assert kept["other"] == {"VIF": 0.0, "Qabf": 0.0}
