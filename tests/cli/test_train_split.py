"""Students of several seeds must be scored on the same held-out pairs: the split has its own seed."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from edgefuse.checkpoint import load_model
from edgefuse.cli import app
from edgefuse.data import find_pairs, split_indices


def _train(pairs: Path, out: Path, *extra: str) -> dict:
    args = [
        "train",
        "--data",
        str(pairs),
        "-o",
        str(out),
        "--epochs",
        "1",
        "--crop",
        "32",
        "--batch-size",
        "2",
    ]
    args += ["--val-fraction", "0.5", "--workers", "0", *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return load_model(out).info.provenance


def test_training_seed_does_not_move_the_validation_split(tiny_pairs: Path, tmp_path: Path) -> None:
    pairs = find_pairs(tiny_pairs).pairs
    expected = {s: [pairs[i].stem for i in split_indices(pairs, 0.5, seed=s)[1]] for s in (0, 1)}
    p0 = _train(tiny_pairs, tmp_path / "s0.safetensors", "--seed", "0")
    p1 = _train(tiny_pairs, tmp_path / "s1.safetensors", "--seed", "1")
    assert p0["val_pairs"] == p1["val_pairs"] == expected[0]
    p2 = _train(tiny_pairs, tmp_path / "split1.safetensors", "--seed", "0", "--split-seed", "1")
    assert p2["val_pairs"] == expected[1]


def test_loss_weights_reach_the_loss_and_the_provenance(tiny_pairs: Path, tmp_path: Path) -> None:
    """--w-intensity 0 trains without the max-intensity term (another model) and says so in the checkpoint;
    the defaults are the bundled recipe's weights."""
    default = tmp_path / "default.safetensors"
    no_int = tmp_path / "no_int.safetensors"
    p_default = _train(tiny_pairs, default)
    p_no_int = _train(tiny_pairs, no_int, "--w-intensity", "0", "--w-gradient", "10", "--w-base", "2")
    assert p_default["loss_weights"] == {"intensity": 0.5, "gradient": 10.0, "ssim": 1.0, "base": 0.0}
    assert p_no_int["loss_weights"] == {"intensity": 0.0, "gradient": 10.0, "ssim": 1.0, "base": 2.0}
    a, b = load_model(default).model.state_dict(), load_model(no_int).model.state_dict()
    assert any(not a[k].equal(b[k]) for k in a)


def test_night_augmentation_trains_another_model_and_is_recorded(tiny_pairs: Path, tmp_path: Path) -> None:
    day, night = tmp_path / "day.safetensors", tmp_path / "night.safetensors"
    p_day, p_night = _train(tiny_pairs, day, "--night", "0"), _train(tiny_pairs, night, "--night", "1")
    assert (p_day["night"], p_night["night"]) == (0.0, 1.0)
    assert _train(tiny_pairs, tmp_path / "default.safetensors")["night"] == 0.5  # the bundled recipe
    a, b = load_model(day).model.state_dict(), load_model(night).model.state_dict()
    assert any(not a[k].equal(b[k]) for k in a)
    res = CliRunner().invoke(
        app, ["train", "--data", str(tiny_pairs), "-o", str(tmp_path / "x.safetensors"), "--night", "1.5"]
    )
    assert res.exit_code != 0


def test_init_starts_from_a_checkpoint_and_refuses_another_form(tiny_pairs: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.safetensors"
    _train(tiny_pairs, first, "--thermal-level", "1")
    start = load_model(first)
    # lr 0: the fine-tune keeps the start's weights exactly, so they did come from --init
    tuned = _train(tiny_pairs, tmp_path / "tuned.safetensors", "--init", str(first), "--lr", "0")
    assert tuned["init"]["weights_sha256"] == start.info.weights_sha256
    assert tuned["init"]["provenance"]["thermal_level"] == 1.0  # the start's recipe is kept
    assert start.info.provenance["thermal_level"] == 1.0
    a, b = start.model.state_dict(), load_model(tmp_path / "tuned.safetensors").model.state_dict()
    assert all(a[k].equal(b[k]) for k in a)
    args = ["train", "--data", str(tiny_pairs), "-o", str(tmp_path / "m.safetensors"), "--size", "m"]
    res = CliRunner().invoke(app, [*args, "--init", str(first), "--epochs", "1", "--crop", "32"])
    assert res.exit_code != 0 and "--init is not a size m student" in res.output
    assert not (tmp_path / "m.safetensors").exists()
