"""Hardware profiles: every bundled TOML loads and its budgets add up; malformed files are refused by key."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from edgefuse.errors import ProfileError
from edgefuse.model import count_macs, create_model
from edgefuse.profiles import (
    ALIASES,
    Precision,
    get_profile,
    list_profiles,
    load_profile,
    parse_profile,
    resolve_target,
    version_in_range,
)

BASE = "intel-cpu_openvino-int8_480x640"


def bundled_text(name: str = BASE) -> str:
    return Path(get_profile(name).source).read_text()


def write(tmp_path: Path, text: str, name: str = BASE) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


# --- bundled profiles -------------------------------------------------------------------------------------


def test_every_bundled_profile_loads() -> None:
    profiles = list_profiles()
    assert len(profiles) >= 15
    for p in profiles:
        assert Path(p.source).stem == p.name
        assert p.latency.derivation and p.device.notes
        assert p.latency.p99_ms >= p.latency.p50_ms > 0
        assert isinstance(p.precision, Precision)
        assert p.knobs is getattr(p, p.backend)


def test_required_targets_are_shipped() -> None:
    have = {(p.name.split("_")[0], p.backend, p.precision.value) for p in list_profiles()}
    for want in [
        ("jetson-orin-nano", "tensorrt", "fp16"),
        ("jetson-orin-nano", "tensorrt", "int8"),
        ("jetson-agx-orin", "tensorrt", "fp16"),
        ("jetson-agx-orin", "tensorrt", "int8"),
        ("jetson-nano", "tensorrt", "fp16"),
        ("rtx4090", "tensorrt", "fp16"),
        ("intel-cpu", "openvino", "fp32"),
        ("intel-cpu", "openvino", "fp16"),
        ("intel-cpu", "openvino", "int8"),
        ("apple-m2", "coreml", "fp16"),
        ("rpi5", "litert", "int8"),
        ("rpi5", "litert", "fp16"),
        ("generic-cpu", "onnxruntime", "fp32"),
        ("generic-cpu", "onnxruntime", "int8"),
    ]:
        assert want in have, want


def test_drift_budgets_per_precision() -> None:
    expected = {"fp32": 60.0, "fp16": 45.0, "int8": 35.0}
    for p in list_profiles():
        assert p.drift.min_psnr_db == expected[p.precision.value], p.name
        if p.precision is Precision.INT8:
            assert p.drift.max_metric_change_pct == 2.0
        # tighter precisions get tighter budgets: fp16 never looser than int8
        assert p.drift.max_abs_8bit <= {"fp32": 1, "fp16": 8, "int8": 64}[p.precision.value]


def test_latency_arithmetic_is_what_the_derivation_says() -> None:
    """Each derivation's numbers recompute to its budget, from the model's real MAC count."""
    gmac = count_macs(create_model("s"), 480, 640) / 1e9
    for p in list_profiles():
        d = p.latency.derivation
        assert f"{gmac:.3f} GMAC" in d, p.name
        terms = [float(x) for x in re.findall(r"= (\d+(?:\.\d+)?) ms;", d)]
        assert len(terms) == 3, (p.name, d)  # compute, memory, overhead
        estimate = float(re.search(r"estimate (\d+(?:\.\d+)?) ms", d).group(1))
        assert math.isclose(sum(terms), estimate, abs_tol=0.02), p.name
        assert estimate <= p.latency.p50_ms <= estimate * 1.15, p.name
        jitter = float(re.search(r"p99 = (\d+(?:\.\d+)?) x p50", d).group(1))
        assert p.latency.p99_ms >= jitter * p.latency.p50_ms - 1e-9, p.name
        assert p.latency.min_fps == math.floor(1000 / p.latency.p99_ms), p.name


def test_device_specific_constraints() -> None:
    nano = get_profile("jetson-nano_tensorrt-fp16_480x640")
    assert nano.constraints.onnx_opset <= 13
    assert version_in_range(nano, "8.2.1") and not version_in_range(nano, "8.6.1")
    for p in list_profiles():
        if p.backend == "openvino" and p.precision is Precision.FP32:
            assert p.openvino.inference_precision == "f32"  # bf16 CPUs would otherwise run bf16
        if p.backend == "tensorrt" and "orin-nano" in p.name:
            assert p.tensorrt.dla_core == -1  # the Orin Nano has no DLA


def test_precision_is_coerced() -> None:
    p = dataclasses.replace(get_profile(BASE), precision="fp16")
    assert p.precision is Precision.FP16
    with pytest.raises(ValueError):
        dataclasses.replace(p, precision="fp8")


def test_calibration_path() -> None:
    cal = get_profile(BASE).calibration
    assert cal.path(Path("/data")) == Path("/data/roadscene_train")
    assert dataclasses.replace(cal, set="/some/where").path() == Path("/some/where")


# --- malformed files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "key", "problem"),
    [
        (lambda t: t.replace("[latency]\n", "[latency]\np50 = 3\n"), "latency.p50", "unknown key"),
        (lambda t: "colour = 1\n" + t, "colour", "unknown key"),
        (lambda t: t.replace('precision = "int8"', 'precision = "int4"'), "precision", "not one of"),
        (lambda t: re.sub(r"p50_ms = [\d.]+", "p50_ms = -2.0", t), "latency.p50_ms", "must be > 0"),
        (
            lambda t: re.sub(r"min_psnr_db = [\d.]+", 'min_psnr_db = "high"', t),
            "drift.min_psnr_db",
            "expected",
        ),
        (lambda t: t.replace("num_streams = 1", "num_streams = -3"), "openvino.num_streams", "below"),
        (lambda t: t.replace('"LATENCY"', '"LATENCYY"'), "openvino.performance_hint", "did you mean"),
        (lambda t: t.replace("height = 480", "height = 470"), "input", "multiples of 16"),
        (lambda t: re.sub(r"\[drift\][^\[]*", "", t), "drift", "required"),
        (lambda t: t + "\n[tensorrt]\nworkspace_mb = 64\n", "tensorrt", "whose backend is openvino"),
        (lambda t: re.sub(r"p99_ms = [\d.]+", "p99_ms = 0.1", t), "latency.p99_ms", "below"),
        (
            lambda t: t.replace('min_backend_version = "2024.4"', 'min_backend_version = "new"'),
            "constraints.min_backend_version",
            "not a version",
        ),
        (lambda t: t.replace("onnx_opset = 17", "onnx_opset = 99"), "constraints.onnx_opset", "above"),
        (lambda t: t.replace("[device]", "[device\n"), "", "not valid TOML"),
        # bounded counts and sizes, calibration sets in sensible places (issue 10)
        (lambda t: re.sub(r"(?m)^count = \d+$", "count = 10000000", t), "calibration.count", "above"),
        (lambda t: t.replace("height = 480", "height = 160000"), "input.height", "above"),
        (lambda t: t.replace('set = "roadscene_train"', 'set = "/etc"'), "calibration.set", "system"),
        (lambda t: t.replace('set = "roadscene_train"', 'set = "../../x"'), "calibration.set", ".."),
    ],
)
def test_malformed_profiles_name_file_and_key(tmp_path: Path, edit, key: str, problem: str) -> None:
    text = edit(bundled_text())
    assert text != bundled_text()
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    msg = str(info.value)
    assert str(path) in msg and key in msg and problem in msg
    assert "\n" not in msg


@pytest.mark.parametrize("name", [".", "..", "a/b", "", "-x"])
def test_profile_name_must_be_a_plain_directory_name(name: str) -> None:
    """A profile named "." exported into the output folder itself (and --force moved it aside)."""
    data = tomllib.loads(bundled_text())
    data["name"] = name
    with pytest.raises(ProfileError, match="name: .* does not look like"):
        parse_profile(data, "test.toml")


def test_profiles_list_fits_80_columns_and_names_alias_members() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run(
        [sys.executable, "-m", "edgefuse", "profiles", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "Jetson Orin Nano" in out and "p50/p99 ms" in out  # device column kept, headers whole
    assert "jetson (5): jetson-orin-nano_tensorrt-fp16_480x640" in out


def test_name_must_equal_stem(tmp_path: Path) -> None:
    path = write(tmp_path, bundled_text(), name="my-board_openvino-int8_480x640")
    with pytest.raises(ProfileError, match=r"name: .* must equal the file name stem 'my-board"):
        load_profile(path)


def test_name_must_agree_with_fields(tmp_path: Path) -> None:
    name = "intel-cpu_openvino-fp16_480x640"
    text = bundled_text().replace(f'name = "{BASE}"', f'name = "{name}"')
    with pytest.raises(ProfileError, match=r"name: .*says"):
        load_profile(write(tmp_path, text, name=name))


def test_fp32_openvino_must_pin_f32(tmp_path: Path) -> None:
    name = "intel-cpu_openvino-fp32_480x640"
    text = bundled_text(name).replace('inference_precision = "f32"', 'inference_precision = "bf16"')
    with pytest.raises(ProfileError, match=r"openvino\.inference_precision"):
        load_profile(write(tmp_path, text, name=name))


def test_user_profile_by_path(tmp_path: Path) -> None:
    name = "my-board_openvino-int8_480x640"
    path = write(tmp_path, bundled_text().replace(f'name = "{BASE}"', f'name = "{name}"'), name=name)
    assert get_profile(str(path)).name == name
    assert resolve_target(f"{path},intel-cpu")[0].name == name
    with pytest.raises(ProfileError, match="no such profile file"):
        get_profile(str(tmp_path / "missing.toml"))


# --- aliases ------------------------------------------------------------------------------------------------


def test_aliases_resolve_to_bundled_profiles() -> None:
    names = {p.name for p in list_profiles()}
    for alias, members in ALIASES.items():
        assert set(members) <= names, alias
    # a family names every profile of its devices (issue 11: jetson exported one of five)
    jetson = [p.name for p in resolve_target("jetson")]
    assert sorted(jetson) == sorted(p.name for p in list_profiles() if p.name.startswith("jetson"))
    assert len(jetson) == 5
    assert [p.name for p in resolve_target("rpi5")] == [p.name for p in resolve_target("arm")]
    intel = resolve_target("intel-cpu")
    assert {p.precision.value for p in intel} == {"fp32", "fp16", "int8"} and {p.backend for p in intel} == {
        "openvino"
    }
    assert {p.backend for p in resolve_target("apple")} == {"coreml"}
    assert {p.backend for p in resolve_target("arm")} == {"litert"}
    assert {p.backend for p in resolve_target("onnx")} == {"onnxruntime"}
    assert all(p.name.startswith("rtx") for p in resolve_target("desktop-gpu"))
    assert len(resolve_target("all")) == len(names)
    # comma lists keep order and drop duplicates
    both = resolve_target(
        "jetson-orin-nano_tensorrt-fp16_480x640, jetson-orin-nano_tensorrt-fp16_480x640,apple"
    )
    assert [p.backend for p in both] == ["tensorrt", "coreml"]


@pytest.mark.parametrize(
    ("target", "suggestion"),
    [("jetsn", "jetson"), ("intel", "intel-cpu"), ("orin", "jetson-agx-orin"), ("rpi5_litert-int", "rpi5")],
)
def test_unknown_target_suggests(target: str, suggestion: str) -> None:
    with pytest.raises(ProfileError, match=f"unknown profile '{target}'.*did you mean.*{suggestion}"):
        resolve_target(target)


def test_unknown_target_without_neighbours_lists_aliases() -> None:
    with pytest.raises(ProfileError, match="known aliases: jetson"):
        resolve_target("zzzz")


# --- CLI ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def test_cli_list_and_show(runner: CliRunner) -> None:
    from edgefuse.cli import app

    res = runner.invoke(app, ["profiles", "list", "--json"])
    assert res.exit_code == 0, res.output
    assert {d["name"] for d in json.loads(res.output)} == {p.name for p in list_profiles()}
    res = runner.invoke(app, ["profiles", "list", "arm"])
    assert res.exit_code == 0 and "rpi5_litert-int8_480x640" in res.output and "jetson-orin" not in res.output
    res = runner.invoke(app, ["profiles", "show", "jetson-nano_tensorrt-fp16_480x640"])
    assert res.exit_code == 0 and "opset" in res.output and "estimate" in res.output
    res = runner.invoke(app, ["profiles", "show", BASE, "--json"])
    assert json.loads(res.output)["openvino"]["inference_precision"] == "f32"
    res = runner.invoke(app, ["profiles", "show", "jetsn"])
    assert res.exit_code == 2 and "did you mean" in res.output


def test_cli_validate(runner: CliRunner, tmp_path: Path) -> None:
    from edgefuse.cli import app

    res = runner.invoke(app, ["profiles", "validate"])
    assert res.exit_code == 0, res.output
    good = write(tmp_path, bundled_text())
    bad_name = "x_openvino-int8_480x640"
    bad_text = bundled_text().replace(BASE, bad_name).replace('"LATENCY"', '"FAST"')
    bad = write(tmp_path, bad_text, name=bad_name)
    res = runner.invoke(app, ["profiles", "validate", str(tmp_path)])
    assert res.exit_code == 1
    assert "1 of 2 profile files are invalid" in res.output
    assert f"invalid {bad}: openvino.performance_hint: 'FAST' is not one of" in res.output
    assert f"ok {good}" in res.output


def test_cli_doctor_json(runner: CliRunner) -> None:
    from edgefuse.cli import app

    res = runner.invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    rows = {r["runtime"]: r for r in report["runtimes"]}
    assert set(rows) == {"torch", "onnxruntime", "openvino", "litert", "coreml", "tensorrt"}
    assert rows["torch"]["available"] and all(r["detail"] for r in rows.values())
    assert report["cpu"]["logical_cores"] >= 1 and report["cpu"]["model"]
    assert report["torch"]["version"]
    res = runner.invoke(app, ["doctor"])
    assert res.exit_code == 0 and "onnxruntime" in res.output and "CPU:" in res.output
