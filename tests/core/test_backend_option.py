"""``pytest --backend NAME`` (README, Contributing): tests marked for other backends only are skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _pytest(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args]
    return subprocess.run(cmd, cwd=TESTS, capture_output=True, text=True, timeout=600)


def test_other_backends_are_skipped_and_unknown_names_refused() -> None:
    # only onnxruntime-marked tests are selected (-m); --backend tflite (an alias of litert) skips them all
    run = _pytest("runtimes/test_runtimes.py", "-m", "onnxruntime and not tflite", "--backend", "tflite")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "--backend litert given" in run.stdout and " passed" not in run.stdout, run.stdout
    bad = _pytest("runtimes/test_runtimes.py", "--backend", "openvin", "--co")
    assert bad.returncode != 0 and "did you mean openvino" in bad.stdout + bad.stderr
