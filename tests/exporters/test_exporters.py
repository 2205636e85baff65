"""Exporters: round trips per target on a small seeded model, the pipeline's guarantees, calibration, drift.

Every round trip exports at 96×128 with calibration and validation frames from synthetic pairs written to a
temporary folder, loads the artifact with its runtime and compares with the fp32 PyTorch model within that
precision's two-sided tolerance (and a deliberately broken int8 model must be rejected).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgefuse import drift
from edgefuse.calibration import calibration_frames, fit, ort_reader, spread, validation_frames
from edgefuse.checkpoint import load_model, save_checkpoint
from edgefuse.data import find_pairs, split_pairs
from edgefuse.errors import ArtifactMismatchError, ExportError
from edgefuse.exporters import get_exporter
from edgefuse.exporters.base import ExportSession, group_nodes
from edgefuse.exporters.pipeline import export_profile
from edgefuse.metrics import fusion_metrics, relative_change
from edgefuse.model import FusionProxy, create_model
from edgefuse.profiles import Calibration, DriftBudget, Precision, get_profile
from edgefuse.spec import IOSpec

H, W = 96, 128
LOOSE = DriftBudget(min_psnr_db=20.0, max_metric_change_pct=50.0, max_abs_8bit=128.0)


def _small_model(seed: int) -> FusionProxy:
    torch.manual_seed(seed)
    model = create_model("n").eval()
    with torch.no_grad():  # the head starts at zero (a plain average): give the body something to say
        model.head.weight.normal_(0.0, 0.05)
    return model


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edgefuse.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("exporters")
    ckpt = save_checkpoint(_small_model(0), root / "n.safetensors")
    other = save_checkpoint(_small_model(1), root / "other.safetensors")
    pairs = write_synthetic(root / "pairs", n=20, seed=3, height=120, width=160)
    return {"root": root, "ckpt": ckpt, "other": other, "pairs": pairs}


@pytest.fixture(scope="module")
def session(assets: dict[str, Path]) -> ExportSession:
    with ExportSession(load_model(assets["ckpt"]), calib_dir=assets["pairs"], val_pairs=3, threads=1) as s:
        yield s


def small(name: str, precision: str | None = None, budget: DriftBudget | None = None, **kw: object):
    """A bundled profile at 96×128 with 8 calibration frames (precision and budget optionally changed)."""
    base = get_profile(name)
    changes: dict[str, object] = {
        "name": f"{name}-test",
        "io": IOSpec(H, W),
        "calibration": Calibration(set=base.calibration.set, count=8),
        **kw,
    }
    if precision:
        changes["precision"] = Precision(precision)
    if budget:
        changes["drift"] = budget
    return dataclasses.replace(base, **changes)


def export(session: ExportSession, profile, out: Path, **kw: object):
    return export_profile(session, profile, get_exporter(profile.backend), out, **kw)


def torch_and_artifact(session: ExportSession, outcome, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """fp32 torch output and the artifact's output (through its runtime) on one held-out frame."""
    from edgefuse.runtimes.base import get_runtime

    frames = validation_frames(small("generic-cpu_onnxruntime-fp32_480x640"), session.calib_dir, 1)
    item = next(iter(frames))
    with torch.inference_mode():
        ref = session.model(torch.from_numpy(item["visible"]), torch.from_numpy(item["thermal"])).numpy()
    with get_runtime(backend)(outcome.path, threads=1) as rt:
        out = rt(item)["fused"]
    return ref, out


def assert_int8_close(ref: np.ndarray, out: np.ndarray) -> None:
    """int8's two-sided tolerance: visibly quantized, close on the whole (PSNR, 99th percentile), with room
    for a few saturated pixels where a frame leaves the calibrated range."""
    diff = np.abs(ref.astype(np.float64) - out) * 255.0
    assert diff.max() > 0.5, "no quantization error at all: the int8 path did not run"
    assert psnr(ref, out) > 35.0 and np.percentile(diff, 99) < 6.0, (psnr(ref, out), np.percentile(diff, 99))


def psnr(ref: np.ndarray, out: np.ndarray) -> float:
    mse = float(np.mean(((ref.astype(np.float64) - out) * 255.0) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-20))


# --- registry, groups, calibration, drift (fast) ---------------------------------------------------------


def test_registry_is_lazy_and_suggests() -> None:
    heavy = "('openvino', 'coremltools', 'litert_torch', 'nncf', 'onnxruntime')"
    code = "import sys, edgefuse.exporters as e; e.get_exporter('onnx'); "
    code += f"print([m for m in {heavy} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert type(get_exporter("tflite")).__name__ == "LiteRTExporter"
    with pytest.raises(ExportError, match="openvino"):
        get_exporter("openvno")


def test_group_nodes_assigns_modules_glue_and_tail() -> None:
    names = ["/Mul", "/ReduceSum", "/stem/stem.0/Conv", "/enc.1/enc.1.0/dw/Conv", "/lateral.0/Conv",
             "/Resize", "/dec.0/Add", "/head/Conv", "/Resize_2", "/Mul_1", "/Clip"]  # fmt: skip
    groups = group_nodes(names, create_model("s"))
    assert groups == {
        "input": ["/Mul", "/ReduceSum"],
        "stem": ["/stem/stem.0/Conv"],
        "enc.1": ["/enc.1/enc.1.0/dw/Conv"],
        "lateral.0": ["/lateral.0/Conv"],
        "lateral.0:join": ["/Resize"],
        "dec.0": ["/dec.0/Add"],
        "head": ["/head/Conv"],
        "tail": ["/Resize_2", "/Mul_1", "/Clip"],
    }
    ov = group_nodes(["__module.enc.2.3.dw/aten::_convolution/Add", "aten::mul/Multiply"], create_model("s"))
    assert ov == {
        "enc.2": ["__module.enc.2.3.dw/aten::_convolution/Add"],
        "enc.2:join": ["aten::mul/Multiply"],
    }


def test_fit_covers_and_centre_crops() -> None:
    vis = np.zeros((100, 300, 3), np.float32)
    vis[:, 100:200] = 1.0  # a bright middle third survives the centre crop, the dark sides are cut
    ir = np.full((100, 300), 0.5, np.float32)
    v, t = fit(vis, ir, 96, 128)
    assert v.shape == (1, 3, 96, 128) and t.shape == (1, 1, 96, 128)
    assert v.dtype == np.float32 and v[0, :, :, 40:88].min() > 0.99
    assert np.allclose(t, 0.5, atol=1e-6)
    assert spread(10, 4) == [0, 3, 6, 9] and spread(3, 8) == [0, 1, 2]


def test_calibration_and_validation_frames_are_disjoint_and_deterministic(assets: dict[str, Path]) -> None:
    profile = small("generic-cpu_onnxruntime-int8_480x640")
    cal = calibration_frames(profile, assets["pairs"])
    val = validation_frames(profile, assets["pairs"], 2)
    train, _ = split_pairs(find_pairs(assets["pairs"]).pairs)
    assert len(cal) == min(8, len(train)) >= 4 and len(val) == 2 and not set(cal.stems) & set(val.stems)
    assert calibration_frames(profile, assets["pairs"]).stems == cal.stems
    assert cal.to_dict()["source"] == str(assets["pairs"]) and cal.to_dict()["pairs"] == len(cal)
    reader = ort_reader(cal)
    first = [reader.get_next() for _ in range(len(cal) + 1)]
    assert first[-1] is None and set(first[0]) == {"visible", "thermal"}
    reader.rewind()
    assert np.array_equal(reader.get_next()["visible"], first[0]["visible"])


def test_drift_check_names_each_miss() -> None:
    budget = {"min_psnr_db": 45.0, "max_abs_8bit": 4.0, "max_metric_change_pct": 1.0}
    misses = drift.check({"psnr_min": 40.0, "max_abs": 9.0, "nonfinite": 0}, {"VIF": -1.5, "EN": 0.2}, budget)
    assert misses == [
        "PSNR 40.0 dB < 45 dB (worst pair)",
        "max |Δ| 9.00 > 4 (8-bit units)",
        "VIF -1.50% (budget ±1%)",
    ]
    assert drift.check({"psnr_min": 50.0, "max_abs": 1.0, "nonfinite": 0}, {"VIF": 0.9}, budget) == []


def test_drift_measure_passes_identity_and_fails_nan(session: ExportSession) -> None:
    profile = small("generic-cpu_onnxruntime-fp32_480x640")
    ref = session.reference(profile)
    model = session.model

    def same(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            return {"fused": model(torch.from_numpy(x["visible"]), torch.from_numpy(x["thermal"])).numpy()}

    ok = drift.measure(same, ref, profile.drift)
    assert ok.passed and ok.drift["max_abs"] == 0.0 and set(ok.metric_change_pct) == set(drift.METRICS)
    bad = drift.measure(lambda x: {"fused": same(x)["fused"] * np.nan}, ref, profile.drift)
    assert bad.status == "failed" and "non-finite" in bad.misses[0]
    assert drift.DriftResult.from_dict(json.loads(json.dumps(ok.to_dict()))).passed
    # outputs whose 8-bit grey images equal the reference's reuse its metrics; the others are scored,
    # and either way the numbers are what scoring every output from scratch gives
    rng = np.random.default_rng(0)
    outs = [same(x)["fused"] for x in ref.frames]
    on_grid = [np.floor(np.clip(o, 0, 1) * 255 + 0.5) / 255 for o in outs]  # other floats, same 8-bit image
    noisy = [np.clip(o + rng.normal(0, 0.01, o.shape), 0, 1) for o in outs]
    outs = [on_grid[i] if i % 2 else noisy[i] for i in range(len(outs))]
    it = iter(outs)
    got = drift.measure(lambda x: {"fused": next(it).astype(np.float32)}, ref, LOOSE, workers=2)
    for row, out, item, before in zip(got.per_pair, outs, ref.frames, ref.metrics, strict=True):
        hwc = out[0].transpose(1, 2, 0).astype(np.float32)
        direct = fusion_metrics(
            hwc, item["thermal"][0, 0], item["visible"][0].transpose(1, 2, 0), drift.METRICS
        )
        assert row["metric_change_pct"] == relative_change(before, direct)
    assert got.per_pair[1]["max_abs"] > 0
    assert got.per_pair[1]["metric_change_pct"] == dict.fromkeys(drift.METRICS, 0.0)
    assert got.per_pair[0]["metric_change_pct"] != dict.fromkeys(drift.METRICS, 0.0)
    lazy = drift.measure(
        lambda x: {"fused": same(x)["fused"] * 0.5}, ref, profile.drift, metrics_if_drift_passes=True
    )
    assert lazy.status == "failed" and not lazy.metric_change_pct and lazy.misses[0].startswith("PSNR")


# --- round trips -------------------------------------------------------------------------------------------


@pytest.mark.onnxruntime
def test_onnx_fp32_round_trip_and_manifest(
    session: ExportSession, assets: dict[str, Path], tmp_path: Path
) -> None:
    profile = small("generic-cpu_onnxruntime-fp32_480x640")
    outcome = export(session, profile, tmp_path)
    assert outcome.status == "passed", outcome.message
    ref, out = torch_and_artifact(session, outcome, "onnxruntime")
    assert np.abs(ref - out).max() < 1e-5
    m = json.loads((outcome.path / "edgefuse.json").read_text())
    assert m["schema_version"] == 1 and m["backend"] == "onnxruntime" and m["precision"] == "fp32"
    assert m["checkpoint"]["weights_sha256"] == session.info.weights_sha256
    assert m["checkpoint"]["file_sha256"] == session.info.file_sha256
    assert (
        m["artifact"] == "model.onnx" and m["artifact_bytes"] == (outcome.path / "model.onnx").stat().st_size
    )
    assert m["io"]["inputs"] == {"visible": [1, 3, H, W], "thermal": [1, 1, H, W]}
    assert {"torch", "onnx", "onnxruntime"} <= set(m["tools"])
    assert m["backend_details"]["inputs"] == ["visible", "thermal"] and m["backend_details"]["opset"] == 17
    assert m["validation"]["status"] == "passed" and m["validation"]["frames"]["role"] == "validation"
    assert m["calibration"] is None and m["created"].endswith("+00:00")
    assert sorted(p.name for p in tmp_path.iterdir()) == [profile.name]  # no temp dirs left


@pytest.mark.onnxruntime
def test_onnx_fp16_round_trip(session: ExportSession, tmp_path: Path) -> None:
    outcome = export(session, small("generic-cpu_onnxruntime-fp32_480x640", "fp16", LOOSE), tmp_path)
    assert outcome.status == "passed", outcome.message
    ref, out = torch_and_artifact(session, outcome, "onnxruntime")
    err = np.abs(ref - out).max() * 255
    assert 0.0 < err < 2.0 and psnr(ref, out) > 50  # fp16 really ran (not bit-exact), and stayed close


@pytest.mark.onnxruntime
def test_onnx_int8_round_trip_and_broken_model_rejected(session: ExportSession, tmp_path: Path) -> None:
    import onnx

    profile = small("generic-cpu_onnxruntime-int8_480x640", budget=LOOSE)
    outcome = export(session, profile, tmp_path)
    assert outcome.status == "passed", outcome.message
    ref, out = torch_and_artifact(session, outcome, "onnxruntime")
    assert_int8_close(ref, out)
    manifest = json.loads((outcome.path / "edgefuse.json").read_text())
    assert manifest["calibration"]["pairs"] >= 4 and "uint8 activations" in manifest["precision_detail"]
    # a broken int8 model (one weight scale 8x off) must fail a real budget
    model = onnx.load(str(outcome.path / "model.onnx"))
    scale = next(t for t in model.graph.initializer if t.name.endswith("weight_scale") and "head" in t.name)
    arr = onnx.numpy_helper.to_array(scale) * 8
    scale.CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), scale.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    strict = get_profile("generic-cpu_onnxruntime-int8_480x640").drift
    result = drift.validate_artifact(
        broken, session.reference(profile), strict, backend="onnxruntime", threads=1
    )
    assert result.status == "failed" and result.misses


@pytest.mark.onnxruntime
@pytest.mark.parametrize(
    ("knobs", "dtype", "bound", "said"),
    [
        ({}, np.int8, 127, "per-channel symmetric int8 weights"),
        ({"weight_type": "uint8"}, np.uint8, 255, "per-channel asymmetric uint8 weights"),
        ({"reduce_range": True}, np.int8, 64, "(7-bit: reduce_range)"),
    ],
)
def test_onnx_int8_weights_follow_the_profile(
    session: ExportSession, tmp_path: Path, knobs: dict, dtype: type, bound: int, said: str
) -> None:
    """u8s8 kernels saturate on CPUs without VNNI: a profile for one asks for uint8 or 7-bit weights."""
    import onnx

    base = get_profile("generic-cpu_onnxruntime-int8_480x640")
    profile = small(base.name, budget=LOOSE, knobs=dataclasses.replace(base.onnxruntime, **knobs))
    outcome = export(session, profile, tmp_path)
    assert outcome.status == "passed", outcome.message
    assert said in json.loads((outcome.path / "edgefuse.json").read_text())["precision_detail"]
    model = onnx.load(str(outcome.path / "model.onnx"))
    weights = [
        onnx.numpy_helper.to_array(t)
        for t in model.graph.initializer
        if t.name.endswith("weight_quantized") and len(t.dims) == 4
    ]
    assert weights and all(w.dtype == dtype for w in weights)
    assert max(int(np.abs(w.astype(int)).max()) for w in weights) == bound
    ref, out = torch_and_artifact(session, outcome, "onnxruntime")
    assert_int8_close(ref, out)


@pytest.mark.onnxruntime
def test_tensorrt_int8_writes_trtexec_and_emulates(session: ExportSession, tmp_path: Path) -> None:
    profile = small("jetson-orin-nano_tensorrt-int8_480x640", budget=LOOSE)
    outcome = export(session, profile, tmp_path)
    assert outcome.status == "passed", outcome.message
    script = (outcome.path / "trtexec.sh").read_text()
    assert "--onnx=model.onnx --saveEngine=model.engine --int8 --fp16 --memPoolSize=workspace:1024" in script
    m = json.loads((outcome.path / "edgefuse.json").read_text())
    assert m["validation"]["emulation"] == "TensorRT int8 numerics emulated via QDQ in ONNX Runtime"
    assert (
        m["backend_details"]["engine"]["file"] is None and "build_on_device" in m["backend_details"]["engine"]
    )
    assert "symmetric int8 activations" in m["precision_detail"]
    import onnx

    zero_points = [
        t for t in onnx.load(str(outcome.path / "model.onnx")).graph.initializer if "zero_point" in t.name
    ]
    assert zero_points and all(not onnx.numpy_helper.to_array(z).any() for z in zero_points)  # TensorRT: zp 0


@pytest.mark.onnxruntime
def test_tensorrt_nano_uses_opset13_and_old_workspace_flag(session: ExportSession, tmp_path: Path) -> None:
    import onnx

    outcome = export(session, small("jetson-nano_tensorrt-fp16_480x640", budget=LOOSE), tmp_path)
    assert outcome.status == "passed", outcome.message
    model = onnx.load(str(outcome.path / "model.onnx"))
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 13
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 graph + --fp16
    assert "--fp16 --workspace=512" in (outcome.path / "trtexec.sh").read_text()
    assert outcome.validation["emulation"].startswith("TensorRT fp16 numerics emulated")


@pytest.mark.openvino
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_round_trip(session: ExportSession, tmp_path: Path, precision: str) -> None:
    profile = small(f"intel-cpu_openvino-{precision}_480x640", budget=LOOSE)
    outcome = export(session, profile, tmp_path)
    assert outcome.status == "passed", outcome.message
    ref, out = torch_and_artifact(session, outcome, "openvino")
    if precision == "fp32":
        assert np.abs(ref - out).max() < 1e-5
    else:
        assert_int8_close(ref, out)
    assert (outcome.path / "model.xml").is_file() and (outcome.path / "model.bin").is_file()
    if precision == "int8":
        assert outcome.validation["drift"]["max_abs"] > 0.1  # really quantized
        assert (
            json.loads((outcome.path / "edgefuse.json").read_text())["backend_details"]["fake_quantize_ops"]
            > 0
        )


@pytest.mark.openvino
@pytest.mark.slow
def test_openvino_overflow_fix_sets_the_first_convolutions_weight_range(
    session: ExportSession, tmp_path: Path
) -> None:
    """NNCF's default halves the first convolution's int8 range (−63…63: CPUs without VNNI saturate); a
    profile for a VNNI device may turn that off and get the whole range."""
    import openvino as ov

    from edgefuse.backends import OpenVINOKnobs

    def first_conv_weights(fix: str) -> np.ndarray:
        base = get_profile("intel-cpu_openvino-int8_480x640")
        knobs = dataclasses.replace(base.openvino, overflow_fix=fix)
        outcome = export(session, small(base.name, budget=LOOSE, knobs=knobs), tmp_path / fix)
        assert outcome.status == "passed", outcome.message
        manifest = json.loads((outcome.path / "edgefuse.json").read_text())
        assert f"overflow fix {fix}" in manifest["precision_detail"]
        model = ov.Core().read_model(str(outcome.path / "model.xml"))
        conv = next(op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution")
        todo = [conv.input_value(1).get_node()]  # Multiply(scale, Convert(int8 Constant))
        while todo:
            node = todo.pop()
            if node.get_type_name() == "Constant" and node.get_element_type().get_type_name() == "i8":
                return node.get_data()
            todo += [v.get_node() for v in node.input_values()]
        raise AssertionError("the first convolution has no int8 weights")

    assert OpenVINOKnobs().overflow_fix == "first_layer_only"  # NNCF's own default
    assert np.abs(first_conv_weights("first_layer_only").astype(int)).max() <= 63
    full = first_conv_weights("disable")
    assert full.dtype == np.int8 and np.abs(full.astype(int)).max() == 127


@pytest.mark.tflite
@pytest.mark.slow
def test_litert_int8_round_trip_float_io_and_worker(
    session: ExportSession, assets: dict[str, Path], tmp_path: Path
) -> None:
    """Round trip; and the background worker (started first, running meanwhile) converts and calibrates
    byte-for-byte what the session does in-process, while a worker that died leaves the work to it."""
    from edgefuse.exporters import litert, litert_worker
    from edgefuse.exporters.base import Job

    profile = small("rpi5_litert-int8_480x640", budget=LOOSE)
    with ExportSession(load_model(assets["ckpt"]), calib_dir=assets["pairs"], val_pairs=3, threads=1) as bg:
        get_exporter("litert").prefetch([Job(bg, small("rpi5_litert-fp16_480x640")), Job(bg, profile)])
        outcome = export(session, profile, tmp_path)
        assert outcome.status == "passed", outcome.message
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(str(outcome.path / "model.tflite"))
        runner = interp.get_signature_list()["serving_default"]
        assert sorted(runner["inputs"]) == ["thermal", "visible"] and runner["outputs"] == ["fused"]
        assert all(d["dtype"] == np.float32 for d in interp.get_input_details())
        ref, out = torch_and_artifact(session, outcome, "litert")
        assert_int8_close(ref, out)

        here = Job(session, profile)
        src = litert.fp32_tflite(here)
        ranges = litert._calibrated(here, src)
        done = litert_worker.result(bg, profile.io)
        assert done is not None, next((bg.scratch / "litert-worker").rglob("worker.log")).read_text()
        assert done.model.read_bytes() == src.read_bytes()
        frames = bg.calibration(profile)
        assert done.calibrated_on == (frames.source, frames.stems) == (str(assets["pairs"]), frames.stems)
        theirs = done.qsvs()
        assert theirs.keys() == ranges.keys() and all(
            theirs[t][k].dtype == ranges[t][k].dtype and np.array_equal(theirs[t][k], ranges[t][k])
            for t in ranges
            for k in ("min", "max")
        )
        assert litert.fp32_tflite(Job(bg, profile)) == done.model  # the session takes the worker's model
    with ExportSession(load_model(assets["ckpt"]), calib_dir=assets["pairs"], val_pairs=3, threads=1) as s:
        litert_worker.start(s, profile.io, None)
        s.worker(("litert", profile.io)).stop()  # killed mid-way
        assert litert_worker.result(s, profile.io) is None  # so the build converts in-process


@pytest.mark.coreml
@pytest.mark.slow
def test_coreml_converts_and_skips_prediction_off_macos(session: ExportSession, tmp_path: Path) -> None:
    outcome = export(session, small("apple-m2_coreml-fp16_480x640"), tmp_path)
    assert (outcome.path / "model.mlpackage").is_dir()
    m = json.loads((outcome.path / "edgefuse.json").read_text())
    assert m["backend_details"]["inputs"] == ["visible", "thermal"] and m["backend_details"]["outputs"] == [
        "fused"
    ]
    if sys.platform != "darwin":
        assert outcome.status == "not_validated" and "macOS" in outcome.message
        assert m["validation"]["status"] == "not_run"
    else:
        assert outcome.status == "passed", outcome.message


# --- the pipeline's guarantees -----------------------------------------------------------------------------


@pytest.mark.onnxruntime
def test_mixed_precision_fallback_keeps_measured_groups(session: ExportSession, tmp_path: Path) -> None:
    loose = export(session, small("jetson-orin-nano_tensorrt-int8_480x640", budget=LOOSE), tmp_path / "a")
    psnr_int8 = loose.validation["drift"]["psnr_min"]
    tight = DriftBudget(min_psnr_db=psnr_int8 + 3.0, max_metric_change_pct=50.0, max_abs_8bit=128.0)
    outcome = export(session, small("jetson-orin-nano_tensorrt-int8_480x640", budget=tight), tmp_path / "b")
    m = json.loads((outcome.path / "edgefuse.json").read_text())
    mixed = m["mixed_precision"]
    assert mixed["trigger"][0].startswith("PSNR") and mixed["kept"] == m["kept_in_higher_precision"]
    assert set(mixed["sensitivity"]) >= {"input", "stem", "head", "tail"} and mixed["kept"]
    assert mixed["kept"][0] == next(iter(mixed["sensitivity"]))  # the most sensitive group went first
    if mixed["met_budget"]:
        assert outcome.status == "passed" and m["validation"]["drift"]["psnr_min"] >= tight.min_psnr_db
    else:
        assert outcome.status == "failed" and outcome.path.name.endswith(".rejected")


@pytest.mark.onnxruntime
def test_killed_export_leaves_nothing(
    session: ExportSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = small("generic-cpu_onnxruntime-fp32_480x640")
    exporter = get_exporter("onnxruntime")
    real = exporter.build

    def dies(job, out, *a, **k):
        real(job, out, *a, **k)  # halfway: the model file is written, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(exporter, "build", dies)
    with pytest.raises(KeyboardInterrupt):
        export_profile(session, profile, exporter, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_dead_exports_are_tidied_live_ones_kept(tmp_path: Path) -> None:
    from edgefuse.exporters.pipeline import clean_interrupted

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    name, live = "p", str(os.getpid())
    for leftover in (f".{name}.tmp-{dead}-a", f".{name}.tmp-{live}-b", f".{name}.old-{dead}-c",
                     f".{name}.rejected.old-{dead}-d", f".{name}x.tmp-{dead}-e"):  # fmt: skip
        (tmp_path / leftover).mkdir()
    (tmp_path / f".{name}.old-{dead}-c" / "edgefuse.json").write_text("{}")
    (tmp_path / f"{name}.rejected").mkdir()
    clean_interrupted(tmp_path, name)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".{name}.tmp-{live}-b", name, f"{name}.rejected", f".{name}x.tmp-{dead}-e"]
    )  # the swap undone (old artifact back), the finished swap's leftover and the dead build gone
    assert (tmp_path / name / "edgefuse.json").is_file()


def test_build_order_runs_tensorrt_int8_first() -> None:
    from edgefuse.exporters.pipeline import build_order
    from edgefuse.profiles import resolve_target

    profiles = resolve_target("all")
    ordered = build_order(profiles)
    first = [p for p in profiles if p.backend == "tensorrt" and p.precision.value == "int8"]
    assert first and ordered[: len(first)] == first
    assert ordered[len(first) :] == [p for p in profiles if p not in first]


@pytest.mark.onnxruntime
def test_existing_artifacts_reused_refused_or_replaced(
    session: ExportSession, assets: dict[str, Path], tmp_path: Path
) -> None:
    from edgefuse.runtimes.base import Expect, get_runtime

    profile = small("generic-cpu_onnxruntime-fp32_480x640")
    first = export(session, profile, tmp_path)
    again = export(session, profile, tmp_path)
    assert again.status == "up_to_date" and again.validation["status"] == "passed"
    with ExportSession(
        load_model(assets["other"]), calib_dir=assets["pairs"], val_pairs=2, threads=1
    ) as other:
        with pytest.raises(ExportError, match="--force"):
            export(other, profile, tmp_path)
        replaced = export(other, profile, tmp_path, force=True)
        assert replaced.status == "passed" and replaced.path == first.path
        # a runtime refuses the artifact for the checkpoint it was not built from (stale artifact)
        with pytest.raises(ArtifactMismatchError, match="built from checkpoint"):
            get_runtime("onnxruntime")(
                first.path, expect=Expect(checkpoint_sha256=session.info.weights_sha256)
            )
        rt = get_runtime("onnxruntime")(
            first.path, expect=Expect(checkpoint_sha256=other.info.weights_sha256)
        )
        rt.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [profile.name]


@pytest.mark.real_data
@pytest.mark.onnxruntime
def test_real_pairs_calibrate_from_training_split(roadscene: Path) -> None:
    profile = small("generic-cpu_onnxruntime-int8_480x640")
    cal = calibration_frames(profile, roadscene, count=4)
    val = validation_frames(profile, roadscene, 4)
    assert len(cal) == 4 and len(val) == 4 and not set(cal.stems) & set(val.stems)
    assert cal.visible[0].shape == (1, 3, H, W) and 0.0 <= float(cal.visible[0].min()) <= 1.0


@pytest.mark.openvino
@pytest.mark.slow
def test_openvino_probe_puts_excluded_float_weights_back(session: ExportSession, tmp_path: Path) -> None:
    import nncf
    import openvino as ov

    from edgefuse.calibration import nncf_dataset
    from edgefuse.exporters.openvino import strip_quantizers

    profile = small("intel-cpu_openvino-int8_480x640")
    frames = calibration_frames(profile, session.calib_dir, 8)
    item = next(iter(frames))
    example = (torch.from_numpy(item["visible"]), torch.from_numpy(item["thermal"]))
    fp32, int8 = tmp_path / "fp32.xml", tmp_path / "int8.xml"
    ov.save_model(ov.convert_model(session.model, example_input=example), str(fp32), compress_to_fp16=False)
    quantized = nncf.quantize(ov.Core().read_model(str(fp32)), nncf_dataset(frames), subset_size=8)
    ov.save_model(quantized, str(int8), compress_to_fp16=False)

    def stem(path: Path):  # the first convolution and its weight input
        model = ov.Core().read_model(str(path))
        conv = next(op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution")
        return conv.get_friendly_name(), conv.input_value(1).get_node()

    name, float_weights = stem(fp32)
    assert stem(int8)[1].get_type_name() != "Constant"  # int8 weights, decompressed in the graph
    strip_quantizers(int8, tmp_path / "old.xml", [name])
    assert stem(tmp_path / "old.xml")[1].get_type_name() != "Constant"  # activations only: weights int8
    strip_quantizers(int8, tmp_path / "probe.xml", [name], fp32=fp32)
    probe = stem(tmp_path / "probe.xml")[1]
    assert probe.get_type_name() == "Constant"
    np.testing.assert_array_equal(probe.get_data(), float_weights.get_data())
    model = ov.Core().read_model(str(tmp_path / "probe.xml"))  # the other convolutions stay int8
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"][1:]
    assert convs and all(op.input_value(1).get_node().get_type_name() != "Constant" for op in convs)


@pytest.mark.onnxruntime
def test_onnx_probe_puts_excluded_float_weights_back(session: ExportSession, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from edgefuse.exporters.base import Job
    from edgefuse.exporters.onnxruntime import fp32_onnx, full_int8, strip_qdq

    job = Job(session, small("generic-cpu_onnxruntime-int8_480x640"))
    fp32, int8 = fp32_onnx(job)[0], full_int8(job, symmetric=False)

    def convs(path: Path) -> tuple[onnx.GraphProto, list[onnx.NodeProto]]:
        graph = onnx.load(str(path)).graph
        return graph, [n for n in graph.node if n.op_type == "Conv"]

    def weight(graph: onnx.GraphProto, node: onnx.NodeProto) -> np.ndarray | None:
        """The Conv's weight if it is a float initializer; None if a DequantizeLinear produces it."""
        inits = {t.name: t for t in graph.initializer}
        name = node.input[1]
        return onnx.numpy_helper.to_array(inits[name]) if name in inits else None

    g32, c32 = convs(fp32)
    stem = c32[0]
    strip_qdq(int8, tmp_path / "old.onnx", [stem.name])
    g, c = convs(tmp_path / "old.onnx")
    assert weight(g, next(n for n in c if n.name == stem.name)) is None  # activations only: weights int8
    strip_qdq(int8, tmp_path / "probe.onnx", [stem.name], weights_from=fp32)
    g, c = convs(tmp_path / "probe.onnx")
    np.testing.assert_array_equal(weight(g, next(n for n in c if n.name == stem.name)), weight(g32, stem))
    assert all(weight(g, n) is None for n in c if n.name != stem.name)  # the other convolutions stay int8
    sess = ort.InferenceSession(str(tmp_path / "probe.onnx"), providers=["CPUExecutionProvider"])
    feeds = {}
    for i in sess.get_inputs():
        feeds[i.name] = np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
    assert all(np.isfinite(o).all() for o in sess.run(None, feeds))
