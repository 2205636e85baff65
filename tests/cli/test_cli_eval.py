"""``edgefuse eval`` through Typer's CliRunner: a tiny folder written here, and real RoadScene pairs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgefuse.cli import app
from edgefuse.metrics import METRIC_NAMES, fusion_metrics


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _textured(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    from scipy import ndimage

    x = ndimage.gaussian_filter(rng.random(shape), [2, 2, 0][: len(shape)])
    return np.round((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """data/{vi,ir} with stems a, b, c (48×64); fused/ holds a.png and b.tif (c is missing)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for stem in ("a", "b", "c"):
        vis, ir = _textured(rng, (48, 64, 3)), _textured(rng, (48, 64))
        _write(tmp_path / "data" / "vi" / f"{stem}.png", vis)
        _write(tmp_path / "data" / "ir" / f"{stem}.png", ir)
        fused = ((vis.astype(np.uint16) + ir[..., None]) // 2).astype(np.uint8)
        arrays[stem] = (fused, ir, vis)
    _write(tmp_path / "fused" / "a.png", arrays["a"][0])
    _write(tmp_path / "fused" / "b.tif", arrays["b"][0])
    return tmp_path / "data", tmp_path / "fused", arrays


def test_eval_tiny_folder(runner: CliRunner, tiny, tmp_path: Path) -> None:
    data, fused, arrays = tiny
    out_json, out_csv = tmp_path / "out" / "m.json", tmp_path / "out" / "m.csv"
    args = [
        "eval",
        "--fused",
        str(fused),
        "--data",
        str(data),
        "--json",
        str(out_json),
        "--csv",
        str(out_csv),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "convention A, no min-max stretching" in result.stdout
    assert all(name in result.stdout for name in METRIC_NAMES)
    assert "2 pairs" in result.stdout
    assert "no fused image for 1 of 3 pairs: c" in result.stderr

    payload = json.loads(out_json.read_text())
    assert payload["pairs"] == 2 and payload["convention"] == "A"
    assert list(payload["per_pair"]) == ["a", "b"]
    for stem in ("a", "b"):
        assert payload["per_pair"][stem] == pytest.approx(fusion_metrics(*arrays[stem]), rel=1e-12)
    for name in METRIC_NAMES:
        expected = (payload["per_pair"]["a"][name] + payload["per_pair"]["b"][name]) / 2
        assert payload[name] == pytest.approx(expected, rel=1e-12)

    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["stem", *METRIC_NAMES]
    assert [r[0] for r in rows[1:]] == ["a", "b", "mean"]
    assert [float(v) for v in rows[3][1:]] == pytest.approx([payload[n] for n in METRIC_NAMES], rel=1e-12)
    assert not list(out_json.parent.glob(".*tmp"))  # atomic writes leave no temp files


def test_eval_none_matched_exits_2(runner: CliRunner, tiny, tmp_path: Path) -> None:
    data, _, arrays = tiny
    other = tmp_path / "other"
    _write(other / "zzz.png", arrays["a"][0])
    result = runner.invoke(app, ["eval", "--fused", str(other), "--data", str(data)])
    assert result.exit_code == 2
    assert "no fused image matches a pair" in result.output


def test_eval_size_mismatch_exits_2(runner: CliRunner, tiny) -> None:
    data, fused, arrays = tiny
    _write(fused / "a.png", arrays["a"][0][:40])
    result = runner.invoke(app, ["eval", "--fused", str(fused), "--data", str(data)])
    assert result.exit_code == 2
    assert "a.png: fused image is 64×40 but the pair a is 64×48" in result.output


def test_eval_bad_folders_exit_2(runner: CliRunner, tiny, tmp_path: Path) -> None:
    data, fused, _ = tiny
    result = runner.invoke(app, ["eval", "--fused", str(tmp_path / "nope"), "--data", str(data)])
    assert result.exit_code == 2 and "fused-image folder not found" in result.output
    result = runner.invoke(app, ["eval", "--fused", str(fused), "--data", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "paired-image folder not found" in result.output


def test_eval_duplicate_stems_exit_2(runner: CliRunner, tiny) -> None:
    data, fused, arrays = tiny
    _write(fused / "a.bmp", arrays["a"][0])
    result = runner.invoke(app, ["eval", "--fused", str(fused), "--data", str(data)])
    assert result.exit_code == 2 and "two fused images share the stem 'a'" in result.output


@pytest.mark.real_data
def test_eval_real_pairs(runner: CliRunner, roadscene: Path, tmp_path: Path) -> None:
    from edgefuse.data import find_pairs

    folder = find_pairs(roadscene)
    stems = [p.stem for p in folder.pairs[:3]]
    for i, stem in enumerate(stems):
        vis, ir = folder[i]
        mean = (np.clip((vis + ir[..., None]) / 2, 0, 1) * 255 + 0.5).astype(np.uint8)
        _write(tmp_path / "fused" / f"{stem}.png", mean)
    out_json = tmp_path / "real.json"
    args = ["eval", "--fused", str(tmp_path / "fused"), "--data", str(roadscene), "--json", str(out_json)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"no fused image for {len(folder) - 3} of {len(folder)} pairs" in result.stderr
    payload = json.loads(out_json.read_text())
    assert payload["pairs"] == 3 and sorted(payload["per_pair"]) == sorted(stems)
    assert 5 < payload["EN"] < 8 and 0.5 < payload["SSIM"] < 2.0 and 0.2 < payload["Qabf"] < 0.8


def test_eval_refuses_an_unwritable_output_before_scoring(runner: CliRunner, tiny, tmp_path: Path) -> None:
    data, fused, _ = tiny
    folder = tmp_path / "a-folder"
    folder.mkdir()
    result = runner.invoke(app, ["eval", "--fused", str(fused), "--data", str(data), "--json", str(folder)])
    assert result.exit_code == 2 and "is a folder; give a file name" in result.stderr
    blocked = tmp_path / "file"
    blocked.write_text("x")
    args = ["eval", "--fused", str(fused), "--data", str(data), "--csv", str(blocked / "out.csv")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "is not a folder" in result.stderr
