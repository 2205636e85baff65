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
