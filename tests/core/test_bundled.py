"""The bundled fusionproxy-s: shipped as package data, within its size budget, better than trivial fusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefuse.checkpoint import load_model
from edgefuse.model import count_macs, count_params


def test_bundled_loads_and_meets_size_budget() -> None:
    model, info = load_model()
    assert info.config.name == "s"
    # distilled with routing (eleventh session): the provenance names the method, the teacher it learnt from
    # and the backbone whose feature variance routed the alignment
    assert info.provenance["method"] == "distill (pixels variance, routing feature)"
    assert info.provenance["teacher_cache"]["teacher"]["kind"] == "ascent"
    assert info.provenance["backbone"]["spec"] == "prior"
    assert count_params(model) <= 300_000
    assert count_macs(model, 480, 640) <= 2.0e9


@pytest.mark.real_data
def test_bundled_never_saw_the_validation_split(roadscene: Path) -> None:
    from edgefuse.data import find_pairs, split_pairs

    pairs = find_pairs(roadscene).pairs
    _, val = split_pairs(pairs, val_fraction=0.2, seed=0)
    # RoadScene training pairs and their synthetic night copies (scripts/night_copies.py: <stem>_night)
    trained = {s.removesuffix("_night") for s in load_model().info.provenance["train_pairs"]}
    assert trained and trained <= {p.stem for p in pairs} and not trained & {p.stem for p in val}


@pytest.mark.real_data
@pytest.mark.slow
def test_bundled_beats_mean_fusion_on_held_out_pairs(roadscene: Path) -> None:
    """On 6 validation pairs: VIF and Qabf above the per-pixel mean of the sources, SSIM (sum) >= 0.95."""
    from edgefuse.data import find_pairs, split_indices
    from edgefuse.inference import fuse, to_uint8
    from edgefuse.metrics import fusion_metrics, mean_metrics

    source = find_pairs(roadscene)
    _, val = split_indices(source.pairs, val_fraction=0.2, seed=0)
    model = load_model().model
    ours, mean = [], []
    for i in val[:6]:
        vis, ir = source[i]
        v8, t8 = to_uint8(vis), to_uint8(ir)
        names = ("VIF", "Qabf", "SSIM")
        ours.append(fusion_metrics(to_uint8(fuse(vis, ir, model=model)), t8, v8, names))
        avg = np.round((v8.astype(np.float32) + t8[..., None]) / 2).astype(np.uint8)
        mean.append(fusion_metrics(avg, t8, v8, names))
    o, m = mean_metrics(ours), mean_metrics(mean)
    assert o["VIF"] > m["VIF"] and o["Qabf"] > m["Qabf"], (o, m)
    assert o["SSIM"] >= 0.95, o
