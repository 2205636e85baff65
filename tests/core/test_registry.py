"""The backend registry, and README's recipe for adding a backend followed to the letter with a toy one.

The toy backend is real code, not a mock: its converter writes the weights as a safetensors file, its
runtime runs them with PyTorch. Registered for the test, it goes through profile parsing (its own knobs
table), ``edgefuse doctor``'s rows, the export pipeline (build, validation against its drift budget,
manifest) and ``open_artifact``, none of which names it anywhere.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgefuse import _optional, backends
from edgefuse.checkpoint import load_model, save_checkpoint
from edgefuse.errors import ExportError, MissingExtraError, ProfileError, RuntimeUnavailableError
from edgefuse.exporters import get_exporter
from edgefuse.exporters.base import ExportSession
from edgefuse.exporters.pipeline import export_profile
from edgefuse.model import create_model
from edgefuse.profiles import load_profile
from edgefuse.runtimes.base import get_runtime, make_inputs, open_artifact, runtime_names

# step 1 and 2 of the recipe: a converter module and a runtime module with the same name
CONVERTER = """
from dataclasses import dataclass, field

from edgefuse.checkpoint import save_checkpoint
from edgefuse.exporters.base import Build, Exporter, Validation


@dataclass(frozen=True)
class ToyKnobs:
    scale: int = field(default=1, metadata={"min": 1})


class ToyExporter(Exporter):
    backend = "toy"
    modules = ("numpy",)

    def build(self, job, out, exclude=(), quick=False):
        path = save_checkpoint(job.model, out / "model.safetensors")
        detail = f"fp32 weights, scale {job.profile.toy.scale}"
        return Build("model.safetensors", detail, Validation("toy", path))
"""
RUNTIME = """
import numpy as np
import torch

from edgefuse.checkpoint import load_model
from edgefuse.runtimes.base import BaseRuntime


class ToyRuntime(BaseRuntime):
    name = "toy"
    suffixes = (".safetensors",)

    @classmethod
    def is_available(cls):
        return True, "toy 1.0"

    def _load(self, path):
        self.model, _ = load_model(path)
        io = self.io or (self.profile.io if self.profile is not None else None)  # manifest, else profile
        dynamic = {"visible": (-1, 3, -1, -1), "thermal": (-1, 1, -1, -1)}
        self.input_shapes = dict(io.inputs) if io else dynamic

    def _run(self, inputs):
        with torch.no_grad():
            out = self.model(torch.from_numpy(inputs["visible"]), torch.from_numpy(inputs["thermal"]))
        return {"fused": out.numpy().astype(np.float32)}
"""
# step 4: a profile TOML
PROFILE = """
name = "toybox_toy-fp32_64x96"
backend = "toy"
precision = "fp32"

[device]
name = "A toy box"
arch = "x86_64"

[input]
height = 64
width = 96

[calibration]
set = "{pairs}"
count = 4

[latency]
p50_ms = 100
p99_ms = 200
min_fps = 5

[drift]
min_psnr_db = 60.0
max_metric_change_pct = 0.5
max_abs_8bit = 0.5

[toy]
scale = {scale}
"""


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[backends.BackendSpec]:
    for package, source in (("toy_exporters", CONVERTER), ("toy_runtimes", RUNTIME)):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "toy.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    from toy_exporters.toy import ToyKnobs  # type: ignore[import-not-found]

    # step 3: one registry entry naming both
    spec = backends.register(
        backends.BackendSpec(
            name="toy",
            converter="toy_exporters.toy:ToyExporter",
            runtime="toy_runtimes.toy:ToyRuntime",
            aliases=("toybox",),
            extra="toy",
            modules={"toy_sdk": "toy-sdk"},
            converter_tools=("toy-sdk",),
            knobs=ToyKnobs,
        )
    )
    yield spec
    backends.unregister("toy")


def test_builtin_backends_and_aliases() -> None:
    assert backends.names_of(exportable=True) == ("onnxruntime", "openvino", "litert", "coreml", "tensorrt")
    assert runtime_names() == ("torch", "onnxruntime", "openvino", "litert", "coreml", "tensorrt")
    for spec in backends.specs(exportable=True):
        assert spec.module == spec.name  # converter and runtime modules are named after the backend
        assert get_exporter(spec.name).backend == spec.name
        assert get_runtime(spec.name).name == spec.name
    assert backends.canonical("TFLite") == "litert" and backends.canonical("trt") == "tensorrt"
    assert backends.runs_on("onnxruntime", "cuda:0") and not backends.runs_on("openvino", "cuda")
    assert _optional.extra_for("nncf") == ("nncf", "openvino")
    assert _optional.extra_for("ai_edge_litert.interpreter") == ("ai-edge-litert", "tflite")
    assert _optional.extra_for("cv2") == ("opencv-python-headless", "video")


def test_unknown_names_suggest_the_close_ones() -> None:
    with pytest.raises(ExportError, match="did you mean openvino"):
        get_exporter("openvin")
    with pytest.raises(ExportError, match="no exporter for backend 'torch'"):
        get_exporter("torch")  # a runtime without a converter
    with pytest.raises(RuntimeUnavailableError, match="did you mean"):
        get_runtime("onnxrt")


def test_a_spec_is_checked_when_registered() -> None:
    with pytest.raises(ValueError, match="same name"):
        backends.BackendSpec("bad", runtime="a.runtimes.bad:R", converter="a.exporters.other:E", knobs=object)
    with pytest.raises(ValueError, match="needs a knobs dataclass"):
        backends.BackendSpec("bad", runtime="a.runtimes.bad:R", converter="a.exporters.bad:E")
    with pytest.raises(ValueError, match="taken by 'litert'"):
        backends.register(backends.BackendSpec("tflite", runtime="a.runtimes.tflite:R"))
    assert backends.canonical("tflite") == "litert"


def test_a_toy_backend_added_by_the_readme_recipe_exports_validates_and_runs(
    toy: backends.BackendSpec, tiny_pairs: Path, tmp_path: Path
) -> None:
    toml = tmp_path / "toybox_toy-fp32_64x96.toml"
    toml.write_text(PROFILE.format(pairs=tiny_pairs, scale=3), encoding="utf-8")
    profile = load_profile(toml)
    assert profile.backend == "toy" and profile.knobs.scale == 3 and profile.to_dict()["toy"] == {"scale": 3}
    toml.write_text(PROFILE.format(pairs=tiny_pairs, scale=0), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"toy\.scale: 0 is below the minimum 1"):
        load_profile(toml)
    toml.write_text(PROFILE.format(pairs=tiny_pairs, scale=2), encoding="utf-8")
    profile = load_profile(toml)

    # doctor lists it; a missing SDK module names its extra
    from edgefuse.cli.doctor import backend_rows, converter_rows

    assert {"runtime": "toy", "available": True, "detail": "toy 1.0", "profiles": 0} in backend_rows()
    assert "toy-sdk" in [r["package"] for r in converter_rows()]
    with pytest.raises(MissingExtraError, match=r"edgefuse\[toy\]"):
        _optional.require("toy_sdk")

    ckpt = save_checkpoint(create_model("n").eval(), tmp_path / "n.safetensors")
    out = tmp_path / "exports"
    with ExportSession(load_model(ckpt), calib_dir=tiny_pairs, val_pairs=2, threads=1) as session:
        outcome = export_profile(session, profile, get_exporter("toybox"), out)
    assert outcome.status == "passed", outcome.message
    assert outcome.validation["drift"]["max_abs"] == 0.0  # the same weights, the same kernels
    with open_artifact(outcome.path) as rt:
        assert type(rt).__name__ == "ToyRuntime"
        fused = rt(make_inputs(profile.io))["fused"]
    assert fused.shape == (1, 3, 64, 96) and np.isfinite(fused).all()
