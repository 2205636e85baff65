"""``edgefuse export`` through the Typer app: exit codes, messages, artifacts on disk."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from profile_copy import small_profile_file
from typer.testing import CliRunner, Result

from edgefuse.checkpoint import save_checkpoint
from edgefuse.cli import app
from edgefuse.model import create_model
from edgefuse.profiles import get_profile

runner = CliRunner()


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edgefuse.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = create_model("n").eval()
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.05)
    torch.manual_seed(1)
    other = create_model("n").eval()
    return {
        "ckpt": save_checkpoint(model, root / "n.safetensors"),
        "other": save_checkpoint(other, root / "other.safetensors"),
        "pairs": write_synthetic(root / "pairs", n=16, seed=5, height=120, width=160),
        "root": root,
    }


def small_profile(directory: Path, bundled: str, min_psnr: float | None = None) -> Path:
    """A copy of a bundled profile at 96×128 with 8 calibration frames, as a TOML file."""
    keys = {} if min_psnr is None else {"min_psnr_db": min_psnr}
    return small_profile_file(directory, bundled, 96, 128, 8, **keys)


def run(*args: str | Path) -> Result:
    return runner.invoke(app, ["export", *map(str, args)])


def test_unknown_target_suggests_and_exits_2() -> None:
    result = run("--target", "jetsn")
    assert result.exit_code == 2
    assert "unknown profile 'jetsn'" in result.stderr and "jetson" in result.stderr


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgefuse.errors import MissingExtraError
    from edgefuse.exporters import get_exporter

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    with pytest.raises(MissingExtraError, match=re.escape('pip install "edgefuse[openvino]"')):
        get_exporter("openvino").check(get_profile("intel-cpu_openvino-fp32_480x640"))
    result = run("--target", "intel-cpu")
    assert result.exit_code == 2
    assert 'pip install "edgefuse[openvino]"' in result.stderr


def test_malformed_profile_names_file_and_key(tmp_path: Path) -> None:
    path = small_profile(tmp_path, "generic-cpu_onnxruntime-fp32_480x640")
    path.write_text(path.read_text().replace("[drift]", "[drift]\nmin_psnr = 3"), encoding="utf-8")
    result = run("--target", path)
    assert result.exit_code == 2
    assert str(path) in result.stderr and "drift.min_psnr" in result.stderr


def test_calib_must_be_a_folder(assets: dict[str, Path], tmp_path: Path) -> None:
    profile = small_profile(tmp_path, "generic-cpu_onnxruntime-int8_480x640")
    result = run("--target", profile, "--calib", assets["ckpt"], "-c", assets["ckpt"], "-o", tmp_path / "out")
    assert result.exit_code == 2 and "--calib must be a folder" in result.stderr


@pytest.mark.onnxruntime
def test_export_validates_and_installs(assets: dict[str, Path], tmp_path: Path) -> None:
    targets = ",".join(
        str(small_profile(tmp_path, name))
        for name in ("generic-cpu_onnxruntime-fp32_480x640", "jetson-orin-nano_tensorrt-int8_480x640")
    )
    out = tmp_path / "exports"
    args = ("--target", targets, "-c", assets["ckpt"], "--calib", assets["pairs"], "-o", out, "--pairs", "3")
    result = run(*args)
    assert result.exit_code == 0, result.stdout + result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["generic-cpu_onnxruntime-fp32_96x128", "jetson-orin-nano_tensorrt-int8_96x128"]
    trt = json.loads((out / names[1] / "edgefuse.json").read_text())
    assert trt["validation"]["status"] == "passed" and (out / names[1] / "trtexec.sh").is_file()
    assert "TensorRT int8 numerics emulated via QDQ in ONNX Runtime" in result.stdout
    assert "passed" in result.stdout
    # again: up to date; from another checkpoint: refused without --force, replaced with it
    assert "up_to_date" in run(*args).stdout
    other = ("--target", targets, "-c", assets["other"], "--calib", assets["pairs"], "-o", out)
    refused = run(*other)
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert run(*other, "--force").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == names  # no temp or old directories left


@pytest.mark.onnxruntime
def test_budget_miss_exits_1_and_installs_nothing(assets: dict[str, Path], tmp_path: Path) -> None:
    profile = small_profile(tmp_path, "generic-cpu_onnxruntime-int8_480x640", min_psnr=150.0)
    out = tmp_path / "exports"
    result = run("--target", profile, "-c", assets["ckpt"], "--calib", assets["pairs"], "-o", out)
    assert result.exit_code == 1
    assert "1 of 1 exports failed" in result.stderr and "dB < 150 dB" in result.stderr
    assert [p.name for p in out.iterdir()] == ["generic-cpu_onnxruntime-int8_96x128.rejected"]
    rejected = out / "generic-cpu_onnxruntime-int8_96x128.rejected"
    manifest = json.loads((rejected / "edgefuse.json").read_text())
    assert manifest["validation"]["status"] == "failed" and manifest["mixed_precision"]["kept"]


# runs `edgefuse export ARGS` in a child that SIGKILLs itself inside the install swap: the previous
# artifact is already moved aside and the new one (complete, validated) is not yet renamed into place
KILL_IN_SWAP = """
import os, signal, sys
rename = os.rename
def dies(src, dst, *a, **k):
    if os.path.basename(str(src)).startswith(".{name}.tmp-") and os.path.basename(str(dst)) == "{name}":
        os.kill(os.getpid(), signal.SIGKILL)
    return rename(src, dst, *a, **k)
os.rename = dies
from edgefuse.cli import app
app({args!r})
"""


@pytest.mark.onnxruntime
def test_sigkilled_export_leaves_no_half_artifact_and_next_run_recovers(
    assets: dict[str, Path], tmp_path: Path
) -> None:
    profile = small_profile(tmp_path, "generic-cpu_onnxruntime-fp32_480x640")
    name, out = "generic-cpu_onnxruntime-fp32_96x128", tmp_path / "exports"
    args = ["--target", str(profile), "-c", str(assets["ckpt"]), "--calib", str(assets["pairs"]),
            "-o", str(out), "--pairs", "2"]  # fmt: skip
    assert run(*args).exit_code == 0
    first = json.loads((out / name / "edgefuse.json").read_text())
    code = KILL_IN_SWAP.format(name=name, args=["export", *args, "--force"])
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    left = sorted(p.name for p in out.iterdir())
    assert name not in left and all(n.startswith(f".{name}.") for n in left)  # nothing half-installed
    # (the lock file stays: the kernel released the lock with the process, the next run reuses the file)
    assert {n.removeprefix(f".{name}.").split("-")[0] for n in left} == {"old", "tmp", "lock"}
    # the next run puts the previous artifact back, drops the dead run's build, and finds it up to date
    again = run(*args)
    assert again.exit_code == 0 and "up_to_date" in again.stdout, again.stdout
    assert sorted(p.name for p in out.iterdir()) == [name]
    assert json.loads((out / name / "edgefuse.json").read_text())["created"] == first["created"]


@pytest.mark.coreml
@pytest.mark.slow
def test_coreml_not_validated_off_macos_exits_0(assets: dict[str, Path], tmp_path: Path) -> None:
    profile = small_profile(tmp_path, "apple-m2_coreml-fp16_480x640")
    out = tmp_path / "exports"
    result = run("--target", profile, "-c", assets["ckpt"], "--calib", assets["pairs"], "-o", out)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (out / "apple-m2_coreml-fp16_96x128" / "model.mlpackage").is_dir()
    if sys.platform != "darwin":
        assert "not validated here" in result.stdout and "macOS" in result.stdout


# --- the first hour without ../shared (issue 11) and verified reuse (issue 10) -----------------------------


@pytest.fixture
def no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No calibration sets anywhere: EDGEFUSE_DATA names an empty folder."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("EDGEFUSE_DATA", str(empty))
    return empty


@pytest.mark.onnxruntime
def test_without_pairs_int8_is_explained_and_the_rest_exports(
    assets: dict[str, Path], tmp_path: Path, no_data: Path
) -> None:
    fp32 = small_profile(tmp_path, "generic-cpu_onnxruntime-fp32_480x640")
    int8 = small_profile(tmp_path, "generic-cpu_onnxruntime-int8_480x640")
    out = tmp_path / "exports"
    result = run("--target", f"{fp32},{int8}", "-c", assets["ckpt"], "-o", out, "--pairs", "2")
    assert result.exit_code == 2, result.output
    assert (out / "generic-cpu_onnxruntime-fp32_96x128" / "edgefuse.json").is_file()  # exported anyway
    assert not (out / "generic-cpu_onnxruntime-int8_96x128").exists()
    lines = [line for line in result.stderr.splitlines() if "int8" in line]
    assert len(lines) == 1 and "--calib DIR" in lines[0] and "EDGEFUSE_DATA" in lines[0]
    assert "site-packages" not in result.output + result.stderr
    # validated on generated scenes: said on the console, not only in the manifest
    assert "SYNTHETIC" in result.stdout


@pytest.mark.onnxruntime
def test_exported_int8_is_reused_without_calibration_pairs(
    assets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    int8 = small_profile(tmp_path, "generic-cpu_onnxruntime-int8_480x640")
    out = tmp_path / "exports"
    first = run("--target", int8, "-c", assets["ckpt"], "--calib", assets["pairs"], "-o", out, "--pairs", "2")
    assert first.exit_code == 0, first.output
    monkeypatch.setenv("EDGEFUSE_DATA", str(tmp_path / "nothing-here"))
    again = run("--target", int8, "-c", assets["ckpt"], "-o", out, "--pairs", "2")
    assert again.exit_code == 0, again.output + again.stderr
    assert "up_to_date" in again.stdout


@pytest.mark.onnxruntime
def test_truncated_artifact_is_rebuilt_not_reused(assets: dict[str, Path], tmp_path: Path) -> None:
    profile = small_profile(tmp_path, "generic-cpu_onnxruntime-fp32_480x640")
    out = tmp_path / "exports"
    args = ["--target", profile, "-c", assets["ckpt"], "--calib", assets["pairs"], "-o", out, "--pairs", "2"]
    assert run(*args).exit_code == 0
    model = out / "generic-cpu_onnxruntime-fp32_96x128" / "model.onnx"
    whole = model.read_bytes()
    model.write_bytes(whole[: len(whole) // 2])
    again = run(*args)
    assert again.exit_code == 0, again.output
    assert "up_to_date" not in again.stdout and "passed" in again.stdout
    # the console says what to do with the artifact next (issue 11), and what its columns mean
    assert "next:" in again.stdout and "edgefuse bench" in again.stdout and "8-bit levels" in again.stdout
    assert model.read_bytes() == whole  # the export is deterministic: the same bytes are back


@pytest.mark.onnxruntime
def test_a_second_export_into_the_same_folder_stops_with_one_line(
    assets: dict[str, Path], tmp_path: Path
) -> None:
    import fcntl

    profile = small_profile(tmp_path, "generic-cpu_onnxruntime-fp32_480x640")
    out = tmp_path / "exports"
    out.mkdir()
    with open(out / ".generic-cpu_onnxruntime-fp32_96x128.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another export is running
        result = run("--target", profile, "-c", assets["ckpt"], "--calib", assets["pairs"], "-o", out)
    assert result.exit_code == 1
    assert "another edgefuse export is writing this artifact now" in result.stderr
    assert "ENOTEMPTY" not in result.output and "Traceback" not in result.output
