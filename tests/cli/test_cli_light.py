"""`edgefuse --help` and every command's --help stay light: no backend SDK is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = (
    "onnx",
    "onnxruntime",
    "openvino",
    "nncf",
    "coremltools",
    "litert_torch",
    "ai_edge_litert",
    "tensorrt",
    "diffusers",
    "cv2",
    "matplotlib",
)
PROBE = """
import sys
from typer.testing import CliRunner
from edgefuse.cli import app
for args in {args!r}:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
print(",".join(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["fuse", "--help"], ["export", "--help"], ["bench", "--help"], ["teacher", "--help"]],
    ids=lambda a: " ".join(a),
)
def test_help_imports_no_backend(args: list[str]) -> None:
    code = PROBE.format(args=[args], heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"`edgefuse {' '.join(args)}` imported {out.stdout.strip()}"


def _edgefuse(*args: str, columns: int = 80) -> str:
    import os

    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "edgefuse", *args], capture_output=True, text=True, env=env, check=True
    ).stdout


def test_info_json_keeps_the_multiplication_sign() -> None:
    import json

    out = _edgefuse("info", "--json")
    assert "\\u00d7" not in out and "N×3×H×W" in out
    assert json.loads(out)["checkpoint"]["io"]["inputs"]["visible"] == "N×3×H×W"


def test_doctor_shows_whole_versions_at_80_columns() -> None:
    try:
        import openvino
    except ImportError:
        pytest.skip("openvino is not installed")
    out = _edgefuse("doctor")
    version = openvino.get_version()
    joined = "".join(line.split("│")[-2].strip() for line in out.splitlines() if line.count("│") > 2)
    assert version in joined and "…" not in out, out


def test_info_counts_any_size_as_fuse_runs_it() -> None:
    import json

    rows = json.loads(_edgefuse("info", "--json", "--size", "1080x1920"))["sizes"]
    assert rows[0]["resolution"] == "1080x1920 (padded to 1088x1920)" and rows[0]["gmac"] > 0
