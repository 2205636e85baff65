"""Adversarial inputs, generated (hypothesis): checkpoint metadata, artifact manifests, report JSON and
profile TOML. What must hold for every input (issue 10): no traceback, only the library's one-line errors
(``EdgefuseError``, no newline in the message), and nothing that fails verification is loaded."""

from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomllib
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from edgefuse.bench.gate import apply_checks, compare, junit_xml
from edgefuse.bench.html import report_html
from edgefuse.bench.markdown import to_markdown
from edgefuse.bench.records import SCHEMA_VERSION
from edgefuse.bench.report import SCHEMA, load_report
from edgefuse.checkpoint import load_model, save_checkpoint, weights_sha256
from edgefuse.errors import EdgefuseError
from edgefuse.io import sha256_path, size_bytes
from edgefuse.manifest import MANIFEST, ArtifactManifest, read_manifest
from edgefuse.model import create_model
from edgefuse.profiles import get_profile, parse_profile
from edgefuse.profiles.schema import MAX_CALIBRATION, MAX_SIDE, NAME_PATTERN

FAST = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def one_line(exc: EdgefuseError) -> None:
    assert "\n" not in str(exc) and str(exc), repr(exc)


# --- checkpoint metadata ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.float().contiguous() for k, v in create_model("n").state_dict().items()}


ints = st.integers(-10, 10) | st.integers(-(10**9), 10**9) | st.sampled_from([0, 1, 8, 16, 32, 64, 200000])
configs = (
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.text(max_size=5) | ints,
            "stem": ints | st.floats() | st.text(max_size=3),
            "widths": st.lists(ints, max_size=4) | json_values,
            "depths": st.lists(ints, max_size=4) | json_values,
            "expansion": ints | st.booleans(),
        },
    )
    | json_values
)


@FAST
@given(
    config=configs,
    io=st.one_of(st.none(), st.text(max_size=20), json_values.map(json.dumps)),
    claimed=st.one_of(st.none(), st.text(max_size=64), st.just("0" * 64)),
    dtype=st.sampled_from([None, torch.int8, torch.int64, torch.float16, torch.bfloat16, torch.float64]),
)
def test_checkpoint_metadata_never_escapes_as_a_traceback(
    tiny_state: dict[str, torch.Tensor], config: Any, io: str | None, claimed: str | None, dtype: Any
) -> None:
    state = dict(tiny_state)
    if dtype is not None:
        key = sorted(state)[0]
        state[key] = state[key].to(dtype)
    meta = {"format": "pt", "edgefuse.arch": "fusionproxy", "edgefuse.config": json.dumps(config)}
    if io is not None:
        meta["edgefuse.io"] = io
    if claimed is not None:
        meta["edgefuse.weights_sha256"] = claimed
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "forged.safetensors"
        save_file(state, str(path), metadata=meta)
        try:
            model, info = load_model(path)
        except EdgefuseError as exc:
            one_line(exc)
            return
    # loaded: then it is exactly what the tensors say, with their real hash
    assert info.config.to_dict() == create_model("n").config.to_dict() | {"name": info.config.name}
    assert info.weights_sha256 == weights_sha256(state)
    assert claimed in (None, "", info.weights_sha256)
    assert all(p.is_floating_point() for p in model.parameters())


# --- manifests ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("adv") / "art"
    folder.mkdir()
    torch.manual_seed(0)
    model = create_model("n").eval()
    ck = save_checkpoint(model, folder.parent / "n.safetensors")
    sample = (torch.rand(1, 3, 32, 48), torch.rand(1, 1, 32, 48))
    torch.onnx.export(model, sample, str(folder / "model.onnx"), input_names=["visible", "thermal"],
                      output_names=["fused"], opset_version=17, dynamo=False)  # fmt: skip
    path = folder / "model.onnx"
    ArtifactManifest(
        backend="onnxruntime",
        artifact="model.onnx",
        checkpoint={"path": str(ck)},
        artifact_sha256=sha256_path(path),
        artifact_bytes=size_bytes(path),
        files={"model.onnx": {"sha256": sha256_path(path), "bytes": size_bytes(path)}},
    ).write(folder)
    (folder.parent / "outside.onnx").write_bytes(path.read_bytes())
    return folder


names = st.sampled_from(
    [
        "model.onnx",
        "../outside.onnx",
        "/etc/passwd",
        "sub/../../outside.onnx",
        "",
        ".",
        "..",
        "model.bin",
        "~/x.onnx",
        "a\x00b",
        "./model.onnx",
    ]
) | st.text(max_size=10)
file_records = (
    st.fixed_dictionaries({}, optional={"sha256": st.text(max_size=64) | json_scalars, "bytes": json_scalars})
    | json_values
)


@FAST
@given(
    changes=st.fixed_dictionaries(
        {},
        optional={
            "artifact": names | json_scalars,
            "files": st.dictionaries(names, file_records, max_size=3) | json_values,
            "artifact_sha256": st.text(max_size=64) | json_scalars,
            "artifact_bytes": json_scalars,
            "backend": st.sampled_from(["onnxruntime", "onnx", "torch", "nope", ""]) | json_scalars,
            "io": json_values,
            "checkpoint": json_values,
        },
    ),
    tamper=st.sampled_from(["none", "truncate", "flip", "symlink-out"]),
)
def test_a_manifest_never_loads_what_fails_verification(artifact: Path, changes: dict, tamper: str) -> None:
    from edgefuse.runtimes.base import open_artifact

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "art"
        shutil.copytree(artifact, folder)
        shutil.copy(artifact.parent / "outside.onnx", Path(tmp) / "outside.onnx")
        data = json.loads((folder / MANIFEST).read_text())
        data.update(changes)
        (folder / MANIFEST).write_text(json.dumps(data))
        model = folder / "model.onnx"
        original = model.read_bytes()
        if tamper == "truncate":
            model.write_bytes(original[: len(original) // 2])
        elif tamper == "flip":
            model.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        elif tamper == "symlink-out":
            model.unlink()
            model.symlink_to(Path(tmp) / "outside.onnx")
        try:
            with open_artifact(folder) as rt:
                loaded = rt.model_path
        except EdgefuseError as exc:
            one_line(exc)
            return
        # it loaded: the file it loaded is inside the folder, and untampered unless no hash vouched for it
        assert loaded.resolve().is_relative_to(folder.resolve())
        assert tamper == "none" or not read_manifest(folder).recorded_files()


# --- report JSON --------------------------------------------------------------------------------------------


def _report() -> dict[str, Any]:
    lat = {"p50": 10.0, "p99": 12.0, "mean": 10.5, "fps": 100.0, "n": 3, "samples": [9.0, 10.0, 12.0],
           "round_p50": [10.0, 10.0]}  # fmt: skip

    def target(tid: str, kind: str) -> dict[str, Any]:
        return {
            "id": tid, "kind": kind, "backend": "onnxruntime", "precision": "fp32", "device": "cpu",
            "batch": 1,
            "status": "ok", "reason": "", "latency": dict(lat), "memory": {"peak_added_mb": 3.0},
            "artifact": {"bytes": 1024}, "ratio_to_reference": {"median": 0.5, "rounds": [0.5, 0.5],
                                                                 "noise_pct": 1.0},
            "profile": {"name": tid, "device": "x", "size": "32x48", "budget_size": "32x48"},
            "budgets": {"latency": {"p50_ms": 5.0, "p99_ms": 9.0, "min_fps": 10.0}, "drift": {}},
            "drift": {"status": "passed", "misses": [], "drift": {"psnr_min": 50.0, "max_abs": 1.0},
                      "metric_change_pct": {"EN": 0.1}},
            "metrics": {"EN": {"reference": 7.0, "artifact": 7.0, "change_pct": 0.1, "gated": True}},
        }  # fmt: skip

    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "created": "2026-01-01T00:00:00+00:00",
        "environment": {"label": "box", "cpu": {"model": "cpu"}, "gpus": []},
        "settings": {"device": "cpu", "threads": 1, "size": "32x48", "requested": ["a"]},
        "data": {"pairs": 2}, "targets": [target("torch-cpu-fp32", "reference"), target("a", "artifact")],
        "skipped": [{"id": "b", "reason": "x"}], "notes": [], "wall_seconds": 1.0,
    }  # fmt: skip


def _paths(d: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _paths(v, (*prefix, i))
    return out


@FAST
@given(data=st.data())
def test_a_malformed_report_is_refused_in_one_line_or_renders(data: st.DataObject) -> None:
    report = _report()
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from([p for p in _paths(report) if p]))
        node = report
        for key in where[:-1]:
            node = node[key]
        if data.draw(st.booleans()) and isinstance(node, dict):
            del node[where[-1]]
        else:
            node[where[-1]] = data.draw(json_values)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.json"
        path.write_text(json.dumps(report, allow_nan=True))
        try:
            loaded = load_report(path)
        except EdgefuseError as exc:
            one_line(exc)
            return
    # accepted: every consumer of a report (the gates, the regression gate, every renderer) copes
    baseline = copy.deepcopy(loaded)
    apply_checks(loaded)
    loaded["regression"] = compare(loaded, baseline, 10.0)
    to_markdown(loaded)
    report_html(loaded, None)
    junit_xml(loaded)


# --- profile TOML -------------------------------------------------------------------------------------------


BASE = "intel-cpu_openvino-int8_480x640"


@FAST
@given(data=st.data())
def test_a_mutated_profile_is_refused_in_one_line_or_is_sane(data: st.DataObject) -> None:
    doc = tomllib.loads(Path(get_profile(BASE).source).read_text(encoding="utf-8"))
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from([p for p in _paths(doc) if p]))
        node = doc
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = data.draw(
            json_values
            | st.sampled_from(
                [".", "..", "a/b", "/etc", "../../x", 0, -1, 10**12, math.inf, math.nan, "int4"]
            )
        )
    try:
        profile = parse_profile(doc, "mutated.toml")
    except EdgefuseError as exc:
        one_line(exc)
        return
    import re

    assert re.fullmatch(NAME_PATTERN, profile.name)
    assert 1 <= profile.calibration.count <= MAX_CALIBRATION
    assert 1 <= profile.io.height <= MAX_SIDE and 1 <= profile.io.width <= MAX_SIDE
    assert ".." not in Path(profile.calibration.set).parts
    for value in (profile.latency.p50_ms, profile.latency.p99_ms, profile.drift.min_psnr_db):
        assert math.isfinite(value) or value == math.inf
