"""Runtime layer: registry, manifest checks, IO validation, round trips through every backend that runs here.

Artifacts are built in the test with each backend's real converter from a small seeded ``create_model("n")``
at 64×96 and compared with the PyTorch reference. Backends that cannot run here skip through their own
``is_available()``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgefuse.checkpoint import file_sha256, save_checkpoint
from edgefuse.errors import ArtifactMismatchError, DataError, NonFiniteOutputError, RuntimeUnavailableError
from edgefuse.exporters.onnxruntime import torch_to_onnx
from edgefuse.manifest import MANIFEST, read_manifest
from edgefuse.model import create_model
from edgefuse.profiles import get_profile
from edgefuse.runtimes.base import (
    BaseRuntime,
    Expect,
    check_finite,
    get_runtime,
    make_inputs,
    open_artifact,
    runtime_for,
    runtime_names,
)
from edgefuse.spec import IOSpec

IO = IOSpec(height=64, width=96)


def require_runtime(name: str) -> type[BaseRuntime]:
    cls = get_runtime(name)
    ok, why = cls.is_available()
    if not ok:
        pytest.skip(f"{name} unavailable: {why}")
    return cls


def write_manifest(folder: Path, backend: str, artifact: str, sha: str, io: IOSpec = IO) -> None:
    manifest = {
        "backend": backend,
        "artifact": artifact,
        "io": io.to_dict(),
        "checkpoint": {"file_sha256": sha},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model("n").eval()
    # the head starts at zero (output = fixed blend of the inputs): randomise it so the whole network counts
    torch.nn.init.normal_(m.head.weight, std=0.05)
    return m


@pytest.fixture(scope="module")
def checkpoint(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "n.safetensors", {"test": "runtimes"})


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return make_inputs(IO, seed=1)


@pytest.fixture(scope="module")
def reference(model: torch.nn.Module, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(inputs["visible"]), torch.from_numpy(inputs["thermal"])).numpy()


@pytest.fixture(scope="module")
def onnx_dir(model: torch.nn.Module, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("onnx")
    sample = tuple(torch.from_numpy(a) for a in make_inputs(IO).values())
    torch_to_onnx(model, sample, folder / "model.onnx", opset=17)  # the exporter's own call
    write_manifest(folder, "onnxruntime", "model.onnx", file_sha256(checkpoint))
    return folder


# --- registry -----------------------------------------------------------------------------------------------


def test_registry_names_and_aliases() -> None:
    assert set(runtime_names()) == {"torch", "onnxruntime", "openvino", "litert", "coreml", "tensorrt"}
    for name in runtime_names():
        cls = get_runtime(name)
        assert cls.name == name
        ok, detail = cls.is_available()
        assert isinstance(ok, bool) and detail
    assert get_runtime("onnx") is get_runtime("onnxruntime")
    assert get_runtime("tflite") is get_runtime("litert")
    assert get_runtime("PyTorch") is get_runtime("torch")


def test_unknown_runtime_suggests() -> None:
    with pytest.raises(RuntimeUnavailableError, match="openvino"):
        get_runtime("openvno")


# --- manifest -----------------------------------------------------------------------------------------------


def test_manifest_checks(tmp_path: Path) -> None:
    write_manifest(tmp_path, "onnxruntime", "model.onnx", "a" * 64)
    manifest = read_manifest(tmp_path)
    assert runtime_for(tmp_path) is get_runtime("onnxruntime")
    manifest.check(checkpoint_sha256="a" * 64, io=IO, backend="onnx")  # all match: no error
    with pytest.raises(ArtifactMismatchError, match="checkpoint"):
        manifest.check(checkpoint_sha256="b" * 64)
    with pytest.raises(ArtifactMismatchError, match="64x96"):
        manifest.check(io=IOSpec(480, 640))
    with pytest.raises(ArtifactMismatchError, match="openvino"):
        manifest.check(backend="openvino")


def test_missing_or_broken_manifest(tmp_path: Path) -> None:
    with pytest.raises(ArtifactMismatchError, match="no manifest"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactMismatchError, match="unreadable"):
        read_manifest(tmp_path)


def test_check_finite() -> None:
    check_finite({"fused": np.zeros((1, 3, 2, 2), np.float32)}, "x")
    bad = np.zeros((1, 3, 2, 2), np.float32)
    bad[0, 0, 0, 0] = np.inf
    bad[0, 1, 0, 0] = np.nan
    with pytest.raises(NonFiniteOutputError, match="2 NaN/Inf"):
        check_finite({"fused": bad}, "x")


# --- torch (the reference) ----------------------------------------------------------------------------------


def test_torch_round_trip(checkpoint: Path, inputs: dict[str, np.ndarray], reference: np.ndarray) -> None:
    rt = get_runtime("torch")(checkpoint, expect=Expect(checkpoint_sha256=file_sha256(checkpoint)))
    out = rt(inputs)
    assert set(out) == {"fused"} and out["fused"].dtype == np.float32
    np.testing.assert_array_equal(out["fused"], reference)
    assert rt.load_seconds > 0
    # any multiple-of-16 size runs through the same checkpoint
    assert rt(make_inputs(IOSpec(32, 48)))["fused"].shape == (1, 3, 32, 48)


def test_torch_refuses_other_checkpoint(checkpoint: Path) -> None:
    with pytest.raises(ArtifactMismatchError, match="sha256"):
        get_runtime("torch")(checkpoint, expect=Expect(checkpoint_sha256="0" * 64))


def test_torch_input_validation(checkpoint: Path, inputs: dict[str, np.ndarray]) -> None:
    rt = get_runtime("torch")(checkpoint, threads=1)
    with pytest.raises(DataError, match="missing"):
        rt({"visible": inputs["visible"]})
    with pytest.raises(DataError, match="unexpected"):
        rt({**inputs, "depth": inputs["thermal"]})
    with pytest.raises(DataError, match="float32"):
        rt({**inputs, "visible": inputs["visible"].astype(np.float64)})
    with pytest.raises(DataError, match="shape"):
        rt({**inputs, "thermal": inputs["visible"]})  # 3 channels where 1 is expected
    with pytest.raises(DataError, match="multiple of 16"):
        rt(make_inputs(IOSpec(64, 96)) | {"visible": np.zeros((1, 3, 60, 96), np.float32)})


def test_torch_nan_output_is_refused(checkpoint: Path, inputs: dict[str, np.ndarray]) -> None:
    rt = get_runtime("torch")(checkpoint)
    poisoned = inputs["visible"].copy()
    poisoned[0, :, 5, 5] = np.nan
    with pytest.raises(NonFiniteOutputError, match="fused"):
        rt({**inputs, "visible": poisoned})


def test_torch_device_errors(checkpoint: Path) -> None:
    with pytest.raises(RuntimeUnavailableError, match="fp16"):
        get_runtime("torch")(checkpoint, fp16=True)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeUnavailableError, match="CUDA"):
            get_runtime("torch")(checkpoint, device="cuda")


@pytest.mark.gpu
def test_torch_cuda_fp16_channels_last(
    checkpoint: Path, inputs: dict[str, np.ndarray], reference: np.ndarray
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rt = get_runtime("torch")(checkpoint, device="cuda", fp16=True, channels_last=True)
    out = rt(inputs)["fused"]
    assert np.abs(out - reference).max() < 1e-2  # fp16 arithmetic: a few 1e-3 at most


# --- onnxruntime --------------------------------------------------------------------------------------------


@pytest.mark.onnxruntime
def test_onnxruntime_round_trip(
    onnx_dir: Path, checkpoint: Path, inputs: dict[str, np.ndarray], reference: np.ndarray
) -> None:
    require_runtime("onnxruntime")
    rt = open_artifact(onnx_dir, threads=1, expect=Expect(checkpoint_sha256=file_sha256(checkpoint), io=IO))
    assert rt.name == "onnxruntime" and rt.model_path.name == "model.onnx"
    assert rt.input_shapes == {"visible": (1, 3, 64, 96), "thermal": (1, 1, 64, 96)}
    out = rt(inputs)["fused"]
    assert np.abs(out - reference).max() < 1e-5
    assert rt.load_seconds > 0


@pytest.mark.onnxruntime
def test_onnxruntime_profile_knobs(onnx_dir: Path) -> None:
    require_runtime("onnxruntime")
    rt = get_runtime("onnxruntime")(onnx_dir, profile=get_profile("generic-cpu_onnxruntime-fp32_480x640"))
    assert rt.providers == ["CPUExecutionProvider"]


@pytest.mark.onnxruntime
def test_onnxruntime_refuses_mismatched_artifact(onnx_dir: Path, inputs: dict[str, np.ndarray]) -> None:
    cls = require_runtime("onnxruntime")
    with pytest.raises(ArtifactMismatchError, match="checkpoint"):
        cls(onnx_dir, expect=Expect(checkpoint_sha256="f" * 64))
    with pytest.raises(ArtifactMismatchError, match="480x640"):
        cls(onnx_dir, expect=Expect(io=IOSpec(480, 640)))
    rt = cls(onnx_dir, threads=1)
    with pytest.raises(DataError, match="expected 1x3x64x96"):
        rt(make_inputs(IOSpec(32, 48)))
    with pytest.raises(DataError, match="inputs must be named"):
        rt({"rgb": inputs["visible"], "thermal": inputs["thermal"]})


@pytest.mark.onnxruntime
def test_onnxruntime_unknown_device(onnx_dir: Path) -> None:
    cls = require_runtime("onnxruntime")
    with pytest.raises(RuntimeUnavailableError, match="device"):
        cls(onnx_dir, device="tpu")


# --- openvino -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openvino_dir(model: torch.nn.Module, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_runtime("openvino")
    import openvino as ov

    folder = tmp_path_factory.mktemp("openvino")
    sample = tuple(torch.from_numpy(a) for a in make_inputs(IO).values())
    ov_model = ov.convert_model(model, example_input=sample)  # leaves the output unnamed
    ov.save_model(ov_model, str(folder / "model.xml"), compress_to_fp16=False)
    write_manifest(folder, "openvino", "model.xml", file_sha256(checkpoint))
    return folder


@pytest.mark.openvino
def test_openvino_round_trip(
    openvino_dir: Path, inputs: dict[str, np.ndarray], reference: np.ndarray
) -> None:
    rt = open_artifact(openvino_dir, threads=1)
    assert rt.name == "openvino" and (openvino_dir / "model.bin").is_file()
    # pinned to f32 even on CPUs whose default is bf16 (which would put this near 1e-2)
    assert rt.inference_precision == "f32"
    out = rt(inputs)
    assert set(out) == {"fused"}  # the unnamed output is mapped by position
    assert np.abs(out["fused"] - reference).max() < 1e-3


@pytest.mark.openvino
def test_openvino_profile_knobs(openvino_dir: Path) -> None:
    profile = get_profile("intel-cpu_openvino-fp32_480x640")
    rt = get_runtime("openvino")(openvino_dir / "model.xml", threads=1, profile=profile)
    assert rt.inference_precision == "f32"
    assert str(rt.compiled.get_property("PERFORMANCE_HINT")).endswith("LATENCY")


def test_cpu_has_vnni_reads_the_flags(tmp_path: Path) -> None:
    from edgefuse.runtimes.base import cpu_has_vnni

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert cpu_has_vnni(info) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert cpu_has_vnni(info) is False
    assert cpu_has_vnni(tmp_path / "absent") is None


@pytest.mark.onnxruntime
@pytest.mark.parametrize(
    ("details", "warns"),
    [
        ({"int8_kernels": "u8s8", "reduce_range": False}, True),
        ({"int8_kernels": "u8u8", "reduce_range": False}, False),
        ({"int8_kernels": "u8s8", "reduce_range": True}, False),
    ],
)
def test_onnxruntime_warns_when_full_range_u8s8_meets_a_cpu_without_vnni(
    onnx_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, details: dict, warns: bool
) -> None:
    import shutil
    import warnings

    from edgefuse.runtimes import base as runtime_base

    folder = tmp_path / "built"
    shutil.copytree(onnx_dir, folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "backend_details": details}))
    monkeypatch.setattr(runtime_base, "cpu_has_vnni", lambda: False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        open_artifact(folder, threads=1)
    assert any("no VNNI" in str(w.message) for w in seen) is warns
    monkeypatch.setattr(runtime_base, "cpu_has_vnni", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_artifact(folder, threads=1)


@pytest.mark.openvino
def test_openvino_warns_when_a_no_overflow_fix_int8_build_meets_a_cpu_without_vnni(
    openvino_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import warnings

    from edgefuse.runtimes import base as runtime_base

    folder = tmp_path / "built"
    shutil.copytree(openvino_dir, folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "backend_details": {"overflow_fix": "disable"}}))
    monkeypatch.setattr(runtime_base, "cpu_has_vnni", lambda: False)
    with pytest.warns(RuntimeWarning, match="no VNNI"):
        open_artifact(folder, threads=1)
    monkeypatch.setattr(runtime_base, "cpu_has_vnni", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_artifact(folder, threads=1)


# --- litert -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def litert_models(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real conversions: keyword inputs in NCHW, and positional inputs with NHWC IO."""
    require_runtime("litert")
    litert_torch = pytest.importorskip("litert_torch", reason="litert-torch (the converter) is not installed")
    folder = tmp_path_factory.mktemp("litert")
    v, t = (torch.from_numpy(a) for a in make_inputs(IO).values())
    paths = {"nchw": folder / "nchw.tflite", "nhwc": folder / "nhwc.tflite"}
    litert_torch.convert(model, sample_kwargs={"visible": v, "thermal": t}).export(str(paths["nchw"]))
    nhwc = litert_torch.to_channel_last_io(model, args=[0, 1], outputs=[0])
    litert_torch.convert(nhwc, (v.permute(0, 2, 3, 1), t.permute(0, 2, 3, 1))).export(str(paths["nhwc"]))
    return paths


@pytest.mark.tflite
@pytest.mark.slow
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_litert_round_trip(
    litert_models: dict[str, Path], layout: str, inputs: dict[str, np.ndarray], reference: np.ndarray
) -> None:
    rt = get_runtime("litert")(litert_models[layout], threads=1)
    assert rt.input_shapes == {"visible": (1, 3, 64, 96), "thermal": (1, 1, 64, 96)}
    assert {m.nhwc for m in rt._in.values()} == {layout == "nhwc"}
    assert not rt.quantized_io
    out = rt(inputs)["fused"]
    assert out.shape == (1, 3, 64, 96)
    assert np.abs(out - reference).max() < 1e-4
    with pytest.raises(DataError, match="shape"):
        rt(make_inputs(IOSpec(32, 48)))


@pytest.mark.tflite
@pytest.mark.slow
def test_litert_int8_quantized_input(
    model: torch.nn.Module, tmp_path: Path, inputs: dict[str, np.ndarray], reference: np.ndarray
) -> None:
    """A real pt2e int8 conversion: the thermal input becomes an int8 tensor with a scale and zero point."""
    require_runtime("litert")
    litert_torch = pytest.importorskip("litert_torch", reason="litert-torch (the converter) is not installed")
    from litert_torch.quantize import quant_config
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    sample = tuple(torch.from_numpy(a) for a in make_inputs(IO).values())
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(model, sample).module(), quantizer)
    for seed in range(8):  # calibration
        prepared(*(torch.from_numpy(a) for a in make_inputs(IO, seed=10 + seed).values()))
    converted = convert_pt2e(prepared, fold_quantize=False)
    config = quant_config.QuantConfig(pt2e_quantizer=quantizer)
    litert_torch.convert(converted, sample, quant_config=config).export(str(tmp_path / "int8.tflite"))
    rt = get_runtime("litert")(tmp_path / "int8.tflite", threads=1)
    assert rt.quantized_io and rt._in["thermal"].dtype == np.int8
    out = rt(inputs)["fused"]
    psnr = 10 * np.log10(1.0 / np.mean((out - reference) ** 2))
    assert psnr > 35.0 and np.abs(out - reference).max() < 0.05  # int8 budget, far from a broken mapping


def test_litert_quantized_io_mapping() -> None:
    from edgefuse.runtimes.litert import map_tensors

    details = {
        "args_0": {"shape": np.array([1, 64, 96, 3]), "dtype": np.float32, "quantization": (0.0, 0)},
        "args_1": {"shape": np.array([1, 64, 96, 1]), "dtype": np.int8, "quantization": (1 / 255, -128)},
    }
    maps = map_tensors(details, ("visible", "thermal"))
    assert maps["visible"].model_name == "args_0" and maps["thermal"].model_name == "args_1"
    assert maps["visible"].nhwc and maps["thermal"].nhwc
    x = np.random.default_rng(0).random((1, 1, 64, 96), dtype=np.float32)
    q = maps["thermal"].to_model(x)
    assert q.dtype == np.int8 and q.shape == (1, 64, 96, 1)
    back = maps["thermal"].from_model(q)
    assert back.shape == x.shape and np.abs(back - x).max() <= 0.5 / 255 + 1e-6


# --- coreml / tensorrt: availability reasons ----------------------------------------------------------------


@pytest.mark.coreml
@pytest.mark.skipif(sys.platform == "darwin", reason="checks the off-macOS reason")
def test_coreml_needs_macos(tmp_path: Path) -> None:
    cls = get_runtime("coreml")
    ok, why = cls.is_available()
    assert not ok and "macOS" in why
    with pytest.raises(RuntimeUnavailableError, match="macOS"):
        cls(tmp_path)


@pytest.mark.coreml
@pytest.mark.slow
def test_coreml_round_trip(
    model: torch.nn.Module, tmp_path: Path, inputs: dict[str, np.ndarray], reference
) -> None:
    cls = require_runtime("coreml")
    import coremltools as ct

    sample = tuple(torch.from_numpy(a) for a in make_inputs(IO).values())
    traced = torch.jit.trace(model, sample)
    mlmodel = ct.convert(
        traced,
        inputs=[ct.TensorType(name=k, shape=a.shape) for k, a in make_inputs(IO).items()],
        outputs=[ct.TensorType(name="fused")],
        compute_precision=ct.precision.FLOAT32,
        compute_units=ct.ComputeUnit.CPU_ONLY,
    )
    mlmodel.save(str(tmp_path / "model.mlpackage"))
    out = cls(tmp_path / "model.mlpackage")(inputs)["fused"]
    assert np.abs(out - reference).max() < 1e-3


@pytest.mark.tensorrt
def test_tensorrt_availability_reason(tmp_path: Path) -> None:
    cls = get_runtime("tensorrt")
    ok, why = cls.is_available()
    if ok:
        pytest.skip(f"tensorrt is available here ({why})")
    assert "tensorrt" in why or "CUDA" in why
    with pytest.raises(RuntimeUnavailableError):
        cls(tmp_path)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_tensorrt_round_trip(onnx_dir: Path, inputs: dict[str, np.ndarray], reference: np.ndarray) -> None:
    cls = require_runtime("tensorrt")
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT < 10 needs the explicit-batch flag; 10 has only explicit batch
    major = int(trt.__version__.split(".")[0])
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if major < 10 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse((onnx_dir / "model.onnx").read_bytes()), parser.get_error(0)
    engine = builder.build_serialized_network(network, builder.create_builder_config())
    (onnx_dir.parent / "trt").mkdir(exist_ok=True)
    path = onnx_dir.parent / "trt" / "model.engine"
    path.write_bytes(bytes(engine))
    out = cls(path, device="cuda")(inputs)["fused"]
    assert np.abs(out - reference).max() < 1e-3
