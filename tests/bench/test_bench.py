"""``edgefuse bench`` end to end on real small artifacts (ONNX Runtime, OpenVINO) and its building blocks.

A seeded ``create_model("n")`` is exported for two small copies of bundled profiles (64×96) by the bench
itself, then benchmarked again from the cache, directly from the artifact directories, and from a
deliberately perturbed copy. Nothing here asserts on a measured time: exit codes and report contents
depend only on numerics and on budgets that no real timing can meet or miss.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from profile_copy import small_profile_file
from typer.testing import CliRunner

from edgefuse.bench.env import device_matches
from edgefuse.bench.timing import Timed, TimingConfig, ratio_to, run_rounds, summarize
from edgefuse.bench.torch_variants import TorchVariant, Variant, _triton_net, cuda_variants
from edgefuse.checkpoint import save_checkpoint
from edgefuse.cli import app
from edgefuse.errors import RuntimeUnavailableError
from edgefuse.model import create_model
from edgefuse.runtimes.base import get_runtime

runner = CliRunner()
SIZE = (64, 96)
FAST = ["--timing", "quick", "--rounds", "2", "--pairs", "2", "--no-variants"]


def need(backend: str) -> None:
    ok, why = get_runtime(backend).is_available()
    if not ok:
        pytest.skip(f"{backend} unavailable: {why}")


def small_profile(directory: Path, bundled: str, **latency: float) -> Path:
    """A bundled profile at 64×96 with 4 calibration pairs (and optionally other latency budgets)."""
    return small_profile_file(directory, bundled, SIZE[0], SIZE[1], 4, **latency)


def bench(*args: str | Path) -> object:
    return runner.invoke(app, ["bench", *map(str, args)])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One bench run that exports two small profiles, with every report format written."""
    need("onnxruntime")
    need("openvino")
    from edgefuse.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    model = create_model("n").eval()
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.05)
    ckpt = save_checkpoint(model, root / "n.safetensors")
    pairs = write_synthetic(root / "pairs", n=12, seed=3, height=80, width=112)
    profiles = [
        small_profile(root, "generic-cpu_onnxruntime-fp32_480x640"),
        small_profile(root, "intel-cpu_openvino-fp32_480x640"),
    ]
    out = {k: root / f"report.{k}" for k in ("json", "md", "html", "xml")}
    args = ["-c", ckpt, "--data", pairs, "--exports", root / "exports", *FAST, "--check"]
    for p in profiles:
        args += ["-p", p]
    result = bench(
        *args, "--json", out["json"], "--md", out["md"], "--html", out["html"], "--junit", out["xml"]
    )
    return {
        "result": result,
        "root": root,
        "ckpt": ckpt,
        "pairs": pairs,
        "profiles": profiles,
        "out": out,
        "args": args,
        "report": json.loads(out["json"].read_text()) if out["json"].exists() else None,
    }


def artifact_dirs(run: dict) -> list[Path]:
    return sorted(p for p in (run["root"] / "exports").rglob("edgefuse.json"))


@pytest.mark.onnxruntime
@pytest.mark.openvino
def test_default_style_run_exports_benchmarks_and_passes(run: dict) -> None:
    result = run["result"]
    assert result.exit_code == 0, result.output + str(result.stderr)
    report = run["report"]
    ids = [t["id"] for t in report["targets"]]
    assert ids[0] == "torch-cpu-fp32" and len(ids) == 3
    for t in report["targets"][1:]:
        assert t["status"] == "ok" and t["check"]["status"] == "passed"
        assert t["artifact"]["export"]["status"] == "exported"
        assert t["drift"]["drift"]["psnr_min"] != "nan" and t["drift"]["status"] == "passed"
        assert t["latency"]["n"] == len(t["latency"]["samples"]) >= 2 * 5
        assert len(t["ratio_to_reference"]["rounds"]) == 2
        # latency budgets of another machine's profile are not applied here, and the report says why
        assert any("not applied" in n for n in t["check"]["notes"])
        assert set(t["metrics"]) >= {"EN", "SSIM", "Qabf", "Nabf"} and t["metrics"]["Nabf"]["gated"] is False
    assert report["settings"]["torch_flush_denormal"] is True
    assert report["data"]["pairs"] == 2 and not report["data"].get("synthetic")
    assert {"decode", "resize", "layout", "postprocess"} <= set(report["pipeline"])
    assert report["environment"]["backends"]["onnxruntime"]["available"] is True
    assert "p50 ms" in result.output and "wall time" in result.output
    # not a terminal: a timestamped progress line per step instead of a spinner nobody sees (issue 11)
    assert "s] loading the checkpoint and frames" in result.stderr and "s] drift of" in result.stderr


@pytest.mark.onnxruntime
@pytest.mark.openvino
def test_second_run_reuses_the_cached_exports(run: dict) -> None:
    result = bench(*run["args"], "--json", run["root"] / "again.json")
    assert result.exit_code == 0, result.output
    report = json.loads((run["root"] / "again.json").read_text())
    assert [t["artifact"]["export"]["status"] for t in report["targets"][1:]] == ["reused", "reused"]


@pytest.mark.onnxruntime
def test_perturbed_artifact_fails_the_drift_budget(run: dict, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    src = next(p.parent for p in artifact_dirs(run) if "onnxruntime-fp32" in str(p))
    bad = tmp_path / "perturbed"
    shutil.copytree(src, bad)
    model = onnx.load(str(bad / "model.onnx"))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(init).copy()
    weights += np.random.default_rng(0).normal(0.0, 0.05, weights.shape).astype(weights.dtype)
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    onnx.save(model, str(bad / "model.onnx"))
    # edited behind the manifest's back: refused before anything runs (issue 10), one line, exit 2
    tampered = bench(bad, "-c", run["ckpt"], "--data", run["pairs"], *FAST, "--check")
    assert tampered.exit_code == 2, tampered.output
    assert "model.onnx" in tampered.stderr and "recorded" in tampered.stderr
    _rehash(bad)  # a build that says what it is: measured, and its drift fails the budget
    result = bench(bad, "-c", run["ckpt"], "--data", run["pairs"], *FAST, "--check")
    assert result.exit_code == 1, result.output
    assert "budget miss" in result.stderr and "drift: PSNR" in result.stderr
    ok = bench(src, "-c", run["ckpt"], "--data", run["pairs"], *FAST, "--check")  # the original passes
    assert ok.exit_code == 0, ok.output


def _rehash(folder: Path) -> None:
    """Record the current files of an artifact directory in its manifest (as an export would)."""
    from edgefuse.io import sha256_path, size_bytes

    manifest = json.loads((folder / "edgefuse.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = {"sha256": sha256_path(folder / name), "bytes": size_bytes(folder / name)}
    manifest["artifact_sha256"] = manifest["files"][manifest["artifact"]]["sha256"]
    manifest["artifact_bytes"] = manifest["files"][manifest["artifact"]]["bytes"]
    (folder / "edgefuse.json").write_text(json.dumps(manifest))


@pytest.mark.onnxruntime
def test_report_hashes_are_computed_not_copied(run: dict, tmp_path: Path) -> None:
    from edgefuse.io import sha256_path

    src = next(p.parent for p in artifact_dirs(run) if "onnxruntime-fp32" in str(p))
    report = run["report"]
    target = next(t for t in report["targets"] if t["id"].startswith("generic-cpu_onnxruntime"))
    assert target["artifact"]["sha256"] == sha256_path(src / "model.onnx")
    assert target["artifact"]["verified"] is True


@pytest.mark.onnxruntime
def test_checkpoint_path_in_manifest_is_verified_before_use(run: dict, tmp_path: Path) -> None:
    src = next(p.parent for p in artifact_dirs(run) if "onnxruntime-fp32" in str(p))
    moved = tmp_path / "art"
    shutil.copytree(src, moved)
    torch.manual_seed(7)
    other = save_checkpoint(create_model("n"), tmp_path / "other.safetensors")
    manifest = json.loads((moved / "edgefuse.json").read_text())
    manifest["checkpoint"]["path"] = str(other)  # redirected to other weights
    (moved / "edgefuse.json").write_text(json.dumps(manifest))
    result = bench(moved, "--data", run["pairs"], *FAST, "--check")
    assert result.exit_code == 2, result.output
    assert "no longer has the sha256 recorded" in result.stderr


@pytest.mark.onnxruntime
@pytest.mark.openvino
def test_named_target_that_does_not_run_fails_check(run: dict, tmp_path: Path) -> None:
    """A requested profile whose runtime is missing used to be "not checked" and exit 0 (issue 10 #4)."""
    from edgefuse.bench.gate import apply_checks, junit_xml

    report = json.loads(json.dumps(run["report"]))
    target = report["targets"][1]
    target["status"], target["reason"] = "not_run", "openvino cannot run here: not installed"
    report["skipped"] = [{"id": "rpi5_litert-int8_480x640", "reason": "litert cannot run here"}]
    report["settings"]["requested"] = [target["id"]]
    misses = apply_checks(report)
    assert any("requested but did not run" in m for m in misses)
    assert not any("rpi5" in m for m in misses)  # not named: reported, not gated
    report["settings"]["requested"] = [target["id"], "rpi5_litert-int8_480x640"]
    assert any("rpi5_litert-int8_480x640: requested but not benchmarked" in m for m in apply_checks(report))
    xml = junit_xml(report)
    assert 'classname="edgefuse.bench.rpi5_litert-int8_480x640"' in xml and "not benchmarked" in xml


@pytest.mark.onnxruntime
@pytest.mark.openvino
def test_synthetic_drift_fails_check_unless_allowed(run: dict) -> None:
    from edgefuse.bench.gate import apply_checks

    report = json.loads(json.dumps(run["report"]))
    report["data"]["synthetic"] = True
    assert any("SYNTHETIC" in m for m in apply_checks(report))
    report["settings"]["allow_synthetic"] = True
    assert apply_checks(report) == []
    assert report["check"]["latency_applied"] == "0 of 2"


@pytest.mark.onnxruntime
def test_latency_budget_gates_only_when_it_applies(run: dict, tmp_path: Path) -> None:
    src = next(p.parent for p in artifact_dirs(run) if "onnxruntime-fp32" in str(p))
    tight = tmp_path / "tight"
    shutil.copytree(src, tight)
    manifest = json.loads((tight / "edgefuse.json").read_text())
    manifest["profile_spec"]["latency"].update(p50_ms=1e-6, p99_ms=1e-6, min_fps=1e9)  # no machine meets it
    (tight / "edgefuse.json").write_text(json.dumps(manifest))
    common = [tight, "-c", run["ckpt"], "--data", run["pairs"], *FAST, "--check"]
    assert bench(*common).exit_code == 0  # auto: the budget is for a 4-core x86 laptop, not this host
    result = bench(*common, "--latency-budgets", "on")
    assert result.exit_code == 1
    assert "latency: p50" in result.stderr and "FPS <" in result.stderr


def test_unknown_profile_suggests_and_exits_2() -> None:
    result = bench("-p", "intel-cpu_openvino-int9_480x640")
    assert result.exit_code == 2
    assert "unknown profile" in result.stderr and "intel-cpu_openvino-int8_480x640" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no/such/artifact"], "no such artifact directory"),
        (["--baseline", "no/such.json"], "no such report file"),
        (["--size", "480by640"], "size must look like 480x640"),
        (["--max-regression", "ten"], "--max-regression must look like 10%"),
        (["--latency-budgets", "maybe"], "--latency-budgets must be one of"),
        (["--timing", "slow"], "--timing must be one of"),
        (["--batches", "16,0"], "--batches must be comma-separated positive batch sizes"),
        (["--batches", "16,x"], "--batches must be comma-separated positive batch sizes"),
        (["--max-regression", "inf"], "--max-regression must be a percentage in"),
        (["--max-regression", "nan%"], "--max-regression must be a percentage in"),
        (["--max-regression", "-5%"], "--max-regression must be a percentage in"),
        (["--max-ratio", "inf"], "--max-ratio"),
        (["--json", "."], "is a folder; give a file name"),  # before the run, not after it
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = bench(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_baseline_that_is_not_a_report_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"backend": "onnxruntime"}))
    result = bench("--baseline", path)
    assert result.exit_code == 2 and "not an edgefuse.bench.report document" in result.stderr


def test_a_baseline_with_a_malformed_body_is_refused_before_the_run(tmp_path: Path) -> None:
    from edgefuse.bench.report import SCHEMA

    path = tmp_path / "base.json"
    body = {"schema": SCHEMA, "schema_version": 1, "environment": {}, "settings": {}, "targets": [{"id": 3}]}
    path.write_text(json.dumps(body))
    result = bench("--baseline", path)
    assert result.exit_code == 2, result.output
    assert "malformed report: targets[0].id must be a non-empty string" in result.stderr
    assert "Traceback" not in result.output


def test_artifact_from_another_checkpoint_is_refused(run: dict, tmp_path: Path) -> None:
    if run["report"] is None:
        pytest.skip("no artifacts (backends unavailable)")
    other = save_checkpoint(create_model("n"), tmp_path / "other.safetensors")
    src = artifact_dirs(run)[0].parent
    result = bench(src, "-c", other, *FAST)
    assert result.exit_code == 2 and "built from checkpoint" in result.stderr


# --- building blocks --------------------------------------------------------------------------------------


def test_device_matching_is_strict() -> None:
    env = {"cpu": {"model": "11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz"}, "board": "", "gpus": []}
    assert device_matches("Intel Core i7-1165G7 (Tiger Lake, 4 cores / 8 threads)", env)
    assert not device_matches("Generic x86-64 CPU, 4 cores with AVX2+FMA @ 3.0 GHz", env)
    orin = {"cpu": {"model": "ARMv8 Processor rev 1 (v8l)"}, "board": "NVIDIA Jetson Orin Nano Developer Kit"}
    assert device_matches("NVIDIA Jetson Orin Nano 8GB (15 W mode)", orin)
    assert not device_matches("NVIDIA Jetson Nano 4GB (original, 10 W)", orin)
    assert not device_matches("NVIDIA Jetson AGX Orin 64GB (MAXN)", orin)
    pi = {"cpu": {"model": "Cortex-A76"}, "board": "Raspberry Pi 5 Model B Rev 1.0"}
    assert device_matches("Raspberry Pi 5 (BCM2712, 4x Cortex-A76 @ 2.4 GHz)", pi)
    gpu = {"cpu": {"model": "AMD EPYC"}, "gpus": [{"name": "NVIDIA GeForce RTX 4090"}]}
    assert device_matches("NVIDIA GeForce RTX 4090", gpu) and not device_matches(
        "NVIDIA GeForce RTX 3060 12GB", gpu
    )
    assert not device_matches("Apple M2 (Neural Engine)", {"cpu": {"model": "AMD EPYC 9M24"}})


def test_summary_statistics() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 10.0], batch=4)
    assert s["n"] == 5 and s["p50"] == 3.0 and s["min"] == 1.0 and s["max"] == 10.0
    assert s["mean"] == 4.0 and s["fps"] == pytest.approx(4000 / 3) and s["throughput_fps"] == 1000.0
    assert s["p90"] == pytest.approx(7.6) and s["std"] == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1))


def test_rounds_interleave_rotate_and_survive_a_failing_target() -> None:
    order: list[str] = []
    calls = {"n": 0}

    def make(key: str, ms: float):
        def clock(fn):  # a clock that returns fixed times: nothing here depends on the machine
            fn()
            return ms

        return Timed(key, lambda: order.append(key), clock=clock)

    def broken() -> None:
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("backend crashed")

    items = [make("a", 2.0), make("b", 1.0), Timed("c", broken, clock=lambda fn: (fn(), 5.0)[1])]
    cfg = TimingConfig(
        warmup_iters=1, warmup_seconds=0.0, rounds=3, min_iters=2, min_seconds=0.0, block_warmup_iters=0
    )
    run_rounds(items, cfg)
    a, b, c = items
    assert [len(r) for r in a.rounds] == [2, 2, 2] and c.error == "RuntimeError: backend crashed"
    assert ratio_to(b, a) == {"median": 0.5, "rounds": [0.5, 0.5, 0.5], "noise_pct": 0.0}
    batched = Timed("b16", lambda: None, batch=16, rounds=[[8.0], [8.0], [8.0]])
    assert ratio_to(batched, a)["median"] == 0.25  # per frame: 8 ms / 16 frames vs 2 ms / frame
    measured = [k for k in order if k != "c"][2:]  # after the warm-ups: round 2 starts with b
    assert measured[:4] == ["a", "a", "b", "b"] and measured[4:8] == ["b", "b", "a", "a"]


def test_torch_variants_cpu_path_matches_the_model() -> None:
    torch.manual_seed(0)
    model = create_model("n").eval()
    item = {
        "visible": np.random.default_rng(0).random((1, 3, 32, 48), dtype=np.float32),
        "thermal": np.random.default_rng(1).random((1, 1, 32, 48), dtype=np.float32),
    }
    with torch.inference_mode():
        want = model(torch.from_numpy(item["visible"]), torch.from_numpy(item["thermal"])).numpy()
    for variant in (Variant("fp32", "eager"), Variant("fp32", "channels_last", batch=3)):
        v = TorchVariant(model, variant, "cpu", 32, 48)
        got = v(item)["fused"]
        assert got.shape == (1, 3, 32, 48) and np.abs(got - want).max() < 1e-5
        v.step()
        assert v.output is not None and tuple(v.output.shape) == (variant.batch, 3, 32, 48)
    with pytest.raises(RuntimeUnavailableError, match="CUDA only"):
        TorchVariant(model, Variant("fp32", "cuda_graph"), "cpu", 32, 48)
    with pytest.raises(RuntimeUnavailableError, match="fp16"):
        TorchVariant(model, Variant("fp16", "eager"), "cpu", 32, 48)
    with pytest.raises(RuntimeUnavailableError, match="CUDA only"):
        TorchVariant(model, Variant("fp16", "triton"), "cpu", 32, 48)
    for variant, h in ((Variant("fp16", "triton", batch=2), 32), (Variant("fp16", "triton"), 40)):
        with pytest.raises(RuntimeUnavailableError, match="batch 1|divisible by 16"):
            _triton_net(model, variant, torch.device("cpu"), h, 48)
    plan = cuda_variants((16,), compile=False, triton=False)
    assert not any(v.mode == "triton" for v in plan)
    with_triton = cuda_variants((16,), compile=False)
    assert [v for v in with_triton if v.mode == "triton"] == [Variant("fp16", "triton")]
    assert Variant("fp16", "cuda_graph", 16) in plan and not any(v.mode == "compile" for v in plan)
    full = cuda_variants((16, 64))
    assert {(v.dtype, v.batch) for v in full if v.mode == "compile"} == {("fp16", 1), ("fp16", 16)}
    assert {v.dtype for v in plan if v.batch == 1} == {"fp32", "fp16"}
    # `--batches 1,16,16` ran every variant and then failed on the report's repeated ids (an H200, 12-01)
    again = cuda_variants((1, 16, 16, 64))
    assert again == full and len({v.key("cuda") for v in again}) == len(again)


@pytest.mark.onnxruntime
@pytest.mark.openvino
def test_real_run_writes_markdown_html_and_valid_junit(run: dict) -> None:
    import xml.etree.ElementTree as ET

    out = run["out"]
    md = out["md"].read_text()
    assert (
        md.startswith("# edgefuse bench:")
        and "| torch-cpu-fp32 |" in md
        and "## Pre- and post-processing" in md
    )
    page = out["html"].read_text()
    assert page.count("<svg") == 3 and "latency distribution per platform" in page
    assert page.count('src="data:image/jpeg;base64,') == 2 * 5  # two artifacts: five panels each
    assert 'src="http' not in page and "<script" not in page
    root = ET.parse(out["xml"]).getroot()
    assert root.tag == "testsuite" and root.get("failures") == "0"
    skipped = [s["id"] for s in run["report"]["skipped"]]
    assert root.get("tests") == str(3 + len(skipped))  # profiles left out are listed as skipped
    assert {c.get("classname") for c in root.iter("testcase")} == {
        f"edgefuse.bench.{t}" for t in [*(t["id"] for t in run["report"]["targets"]), *skipped]
    }


def test_variant_target_cpu_path_and_cuda_refusal() -> None:
    from edgefuse.bench.targets import variant_target

    torch.manual_seed(0)
    model = create_model("n").eval()
    t = variant_target(model, Variant("fp32", "channels_last", batch=2), "cpu", 32, 48, "v")
    frame = {"visible": np.zeros((1, 3, 32, 48), np.float32), "thermal": np.ones((1, 1, 32, 48), np.float32)}
    step = t.make_step([frame])
    step()
    assert t.predict(frame)["fused"].shape == (1, 3, 32, 48) and t.batch == 2 and t.device == "cpu"
    t.fail(RuntimeError("first line\n" + "compiler log " * 100))
    assert t.status == "error" and t.reason == "RuntimeError: first line" and t.predict is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_device_cuda_without_a_gpu_is_refused() -> None:
    result = bench("--device", "cuda")
    assert result.exit_code == 2 and "torch sees no CUDA device" in result.stderr


@pytest.mark.onnxruntime
def test_int8_already_exported_is_benchmarked_without_pairs(
    run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: right after `edgefuse export` wrote an int8 artifact, default bench skipped it."""
    int8 = small_profile(tmp_path, "generic-cpu_onnxruntime-int8_480x640")
    exports = tmp_path / "exports"
    made = runner.invoke(
        app, ["export", "--target", str(int8), "-c", str(run["ckpt"]), "--calib", str(run["pairs"]),
              "-o", str(exports), "--pairs", "2"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    monkeypatch.setenv("EDGEFUSE_DATA", str(tmp_path / "no-data"))  # no calibration pairs anywhere
    out = tmp_path / "r.json"
    result = bench("-p", int8, "-c", run["ckpt"], "--exports", exports, *FAST, "--json", out)
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(out.read_text())
    assert report["skipped"] == []
    target = report["targets"][1]
    assert target["id"] == "generic-cpu_onnxruntime-int8_64x96" and target["status"] == "ok"
    assert target["artifact"]["export"]["status"] == "reused"
    assert "SYNTHETIC" in result.stdout  # no --data: drift on generated scenes, said on the console


@pytest.mark.onnxruntime
@pytest.mark.openvino
def test_a_rejected_export_is_exported_again_not_replayed(run: dict, tmp_path: Path) -> None:
    strict = small_profile_file(tmp_path, "generic-cpu_onnxruntime-fp32_480x640", *SIZE, 4, min_psnr_db=999)
    args = ["-c", run["ckpt"], "--data", run["pairs"], "--exports", tmp_path / "exports", *FAST, "-p", strict]
    reports = []
    for i in range(2):
        result = bench(*args, "--json", tmp_path / f"r{i}.json")
        assert result.exit_code == 0, result.output  # no --check: a budget miss is reported, not fatal
        reports.append(json.loads((tmp_path / f"r{i}.json").read_text())["targets"][1]["artifact"]["export"])
    for export in reports:
        assert export["status"] == "rejected" and "PSNR" in export["message"]
    assert reports[1]["seconds"] > 0  # built again (a reused artifact costs no export time)
