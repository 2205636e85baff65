"""Reports without running a benchmark: the JSON schema round trip, Markdown, HTML, JUnit, the budget and
regression gates, and ``edgefuse report merge``. Reports are built here from fixed numbers."""

from __future__ import annotations

import copy
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from edgefuse.bench.gate import apply_checks, compare, junit_xml
from edgefuse.bench.html import merged_html, report_html
from edgefuse.bench.markdown import to_markdown
from edgefuse.bench.merge import merge, merged_markdown
from edgefuse.bench.records import SCHEMA, SCHEMA_VERSION
from edgefuse.bench.report import load_report, save_json
from edgefuse.cli import app
from edgefuse.errors import DataError
from edgefuse.io import jsonable

runner = CliRunner()
BUDGET = {"min_psnr_db": 35.0, "max_metric_change_pct": 2.0, "max_abs_8bit": 32.0}


def target(
    tid: str,
    p50: float,
    ratios: list[float],
    *,
    kind: str = "artifact",
    psnr: float = 50.0,
    misses: list[str] | None = None,
    device: str = "Intel Core i7-1165G7 (Tiger Lake)",
) -> dict[str, Any]:
    rng = np.random.default_rng(abs(hash(tid)) % 2**32)
    samples = list(p50 * (1 + 0.05 * rng.standard_normal(30)))
    lat = {
        "n": 30,
        "p50": p50,
        "p90": p50 * 1.1,
        "p99": p50 * 1.3,
        "mean": p50,
        "std": 0.05 * p50,
        "min": min(samples),
        "max": max(samples),
        "fps": 1000 / p50,
        "throughput_fps": 1000 / p50,
        "round_p50": [p50 * r / ratios[0] for r in ratios],
        "samples": samples,
    }
    rec: dict[str, Any] = {
        "id": tid,
        "kind": kind,
        "backend": "openvino" if kind == "artifact" else "torch",
        "precision": "int8",
        "device": "cpu",
        "batch": 1,
        "threads": 2,
        "runtime": "x",
        "status": "ok",
        "reason": "",
        "latency": lat,
        "load_seconds": 0.1,
        "memory": {"peak_rss_mb": 500.0},
        "artifact": {"bytes": 2**20},
        "ratio_to_reference": {
            "median": float(np.median(ratios)),
            "rounds": ratios,
            "noise_pct": 100 * (max(ratios) - min(ratios)) / (2 * float(np.median(ratios))),
        },
        "profile": None,
        "budgets": {"latency": None, "drift": BUDGET},
        "drift": None,
        "metrics": None,
    }
    if kind == "artifact":
        rec["profile"] = {"name": tid, "device": device, "size": "480x640", "budget_size": "480x640"}
        rec["budgets"]["latency"] = {"p50_ms": 5.0, "p99_ms": 10.0, "min_fps": 100.0}
        rec["drift"] = {
            "status": "failed" if misses else "passed",
            "misses": misses or [],
            "budget": BUDGET,
            "drift": {"psnr_min": psnr, "max_abs": 1.5},
            "metric_change_pct": {"SSIM": -0.4, "EN": 0.1},
        }
        rec["metrics"] = {
            "EN": {"reference": 7.0, "artifact": 7.007, "change_pct": 0.1, "gated": True},
            "Nabf": {"reference": 0.01, "artifact": 0.011, "change_pct": 10.0, "gated": False},
        }
    return rec


def make_report(label: str = "box-a", cpu: str = "AMD EPYC", scale: float = 1.0) -> dict[str, Any]:
    report = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": "2026-01-01T00:00:00+00:00",
        "edgefuse_version": "0.1.0",
        "command": "edgefuse bench",
        "wall_seconds": 42.0,
        "environment": {
            "label": label,
            "cpu": {"model": cpu, "arch": "x86_64"},
            "gpus": [],
            "board": "",
            "packages": {"torch": "2.13.0"},
            "backends": {"torch": {"available": True, "detail": "2"}},
        },
        "settings": {"device": "cpu", "threads": 2, "size": "480x640", "batch": 1},
        "data": {"source": "/data/pairs", "pairs": 8},
        "pipeline": {"decode": {"n": 4, "p50": 2.0, "p90": 2.5, "mean": 2.1}},
        "targets": [
            target("torch-cpu-fp32", 40.0 * scale, [1.0, 1.0, 1.0], kind="reference"),
            target("intel-cpu_openvino-int8_480x640", 20.0 * scale, [0.50, 0.52, 0.49], psnr=math.inf),
            target("generic-cpu_onnxruntime-int8_480x640", 30.0 * scale, [0.75, 0.74, 0.76]),
        ],
        "skipped": [{"id": "apple-m2_coreml-fp16_480x640", "reason": "coreml cannot run here"}],
        "notes": ["PyTorch timed with torch.set_flush_denormal(True)."],
    }
    apply_checks(report)
    return report


def test_json_round_trip_keeps_everything_and_writes_strict_json(tmp_path: Path) -> None:
    report = make_report()
    path = tmp_path / "r.json"
    save_json(report, path)
    text = path.read_text()
    assert "Infinity" not in text and '"psnr_min": "inf"' in text  # strict JSON: inf as a string
    back = load_report(path)
    assert back == json.loads(json.dumps(jsonable(report)))
    assert (
        back["schema_version"] == SCHEMA_VERSION and back["targets"][1]["drift"]["drift"]["psnr_min"] == "inf"
    )
    assert oct(path.stat().st_mode & 0o777) != "0o600"  # shareable, not mkstemp's private mode


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"schema": "something.else", "schema_version": 1}), "not an edgefuse.bench.report"),
        (json.dumps({"schema": SCHEMA, "schema_version": SCHEMA_VERSION + 1}), "newer than this edgefuse"),
        (
            json.dumps({"schema": SCHEMA, "schema_version": 1, "settings": {}, "targets": []}),
            "missing 'environment'",
        ),
    ],
)
def test_load_report_refuses_what_it_cannot_read(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_report(path)


def test_checks_drift_always_latency_only_on_its_device_ratio_anywhere() -> None:
    report = make_report(cpu="AMD EPYC")
    assert report["check"]["passed"]  # latency budgets are for an i7-1165G7: not applied on an EPYC
    t = report["targets"][2]
    assert t["check"]["status"] == "passed" and "not applied" in t["check"]["notes"][0]
    here = make_report(cpu="11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz")
    misses = here["check"]["misses"]  # on the budget's own device: p50 20 and 30 ms > 5 ms
    assert any("openvino-int8" in m and "p50 20.00 ms > 5 ms" in m for m in misses)
    assert any("FPS < 100" in m for m in misses)
    bad = make_report()
    bad["targets"][1]["drift"]["misses"] = ["PSNR 20.0 dB < 35 dB (worst pair)"]
    assert apply_checks(bad) == ["intel-cpu_openvino-int8_480x640: drift: PSNR 20.0 dB < 35 dB (worst pair)"]
    ratio = make_report()
    misses = apply_checks(ratio, "off", max_ratio=0.6)  # ORT int8 at 0.75× the reference's p50
    assert misses == [
        "generic-cpu_onnxruntime-int8_480x640: latency: p50 is 0.75× the torch reference's (budget 0.6×)"
    ]
    assert ratio["targets"][0]["check"]["status"] == "not_checked"


def test_regression_gate_ok_regressed_inconclusive_new_missing() -> None:
    base = make_report()
    now = copy.deepcopy(base)
    rows = {r["id"]: r for r in compare(now, base, 10.0)["rows"]}
    assert rows["intel-cpu_openvino-int8_480x640"]["status"] == "ok"
    assert rows["torch-cpu-fp32"]["status"] == "reference"
    slow = copy.deepcopy(base)
    t = slow["targets"][1]
    t["ratio_to_reference"] = {"median": 0.65, "rounds": [0.65, 0.66, 0.64], "noise_pct": 1.5}  # +30%
    noisy = slow["targets"][2]
    noisy["ratio_to_reference"] = {"median": 0.80, "rounds": [0.6, 0.8, 1.0], "noise_pct": 25.0}  # +7% ± 25%
    slow["targets"].append(target("rpi5_litert-int8_480x640", 9.0, [0.3, 0.3, 0.3]))
    del base["targets"][0]["ratio_to_reference"]  # an old report: reference id only in "now"
    gate = compare(slow, base, 10.0)
    rows = {r["id"]: r for r in gate["rows"]}
    assert rows["intel-cpu_openvino-int8_480x640"]["status"] == "regressed"
    assert rows["intel-cpu_openvino-int8_480x640"]["change_pct"] == pytest.approx(100 * (0.65 / 0.50 - 1))
    assert rows["generic-cpu_onnxruntime-int8_480x640"]["status"] == "inconclusive"
    assert rows["rpi5_litert-int8_480x640"]["status"] == "new"
    assert gate["regressed"] == ["intel-cpu_openvino-int8_480x640"] and not gate["passed"]
    gone = compare(make_report(), slow, 10.0)
    assert {r["id"]: r["status"] for r in gone["rows"]}["rpi5_litert-int8_480x640"] == "missing"


def test_regression_gate_falls_back_to_raw_medians_without_a_reference() -> None:
    base = make_report()
    now = make_report(scale=1.5)  # everything 50% slower, the reference too
    for r in (base, now):
        for t in r["targets"]:
            t["ratio_to_reference"] = None
    rows = {r["id"]: r for r in compare(now, base, 10.0)["rows"]}
    row = rows["intel-cpu_openvino-int8_480x640"]
    assert row["status"] == "regressed" and row["change_pct"] == pytest.approx(50.0)


def test_junit_is_valid_and_counts_failures_and_skips() -> None:
    report = make_report()
    report["targets"][1]["drift"]["misses"] = ["max |Δ| 40.00 > 32 (8-bit units)"]
    apply_checks(report)
    base = copy.deepcopy(report)
    base["targets"][2]["ratio_to_reference"]["median"] = 0.5  # ORT got 50% slower: regressed
    report["regression"] = compare(report, base, 10.0)
    root = ET.fromstring(junit_xml(report).split("\n", 1)[1])
    assert root.tag == "testsuite" and root.get("name") == "edgefuse.bench"
    cases = root.findall("testcase")
    # 3 budget cases + 3 regression cases + the profile that was not benchmarked (listed, skipped)
    assert int(root.get("tests")) == len(cases) == 7
    assert cases[-1].get("classname") == "edgefuse.bench.apple-m2_coreml-fp16_480x640"
    assert cases[-1].find("skipped") is not None
    failures = [c for c in cases if c.find("failure") is not None]
    assert int(root.get("failures")) == len(failures) == 2
    assert "max |Δ| 40.00" in failures[0].find("failure").get("message")
    assert failures[1].get("name") == "regression" and "regressed" in failures[1].find("failure").text
    assert int(root.get("skipped")) == len([c for c in cases if c.find("skipped") is not None]) >= 1


def test_markdown_and_html_contain_tables_and_plots() -> None:
    report = make_report()
    md = to_markdown(report)
    assert "| target | backend precision | p50 ms |" in md and "intel-cpu_openvino-int8_480x640" in md
    assert "coreml cannot run here (1): apple-m2_coreml-fp16_480x640" in md and "Nabf (not gated)" in md
    rng = np.random.default_rng(0)
    img = rng.random((48, 64, 3)).astype(np.float32)
    panels = {
        "stem": "pair_0",
        "visible": img,
        "thermal": img[..., 0],
        "reference": img,
        "outputs": {"intel-cpu_openvino-int8_480x640": np.clip(img + 0.01, 0, 1)},
    }
    page = report_html(report, panels)
    assert page.startswith("<!doctype html>") and page.count("<svg") == 3
    for title in ("latency distribution per platform", "drift vs latency", "fusion metric deltas"):
        assert f"<title>{title}</title>" in page
    assert "identical outputs (PSNR ∞)" in page  # the inf-PSNR artifact is drawn on its own line
    assert page.count('src="data:image/jpeg;base64,') == 5 and "0 → 2.55 (the largest" in page
    assert 'src="http' not in page and "<script" not in page  # self-contained, nothing fetched
    ET.fromstring(page[page.index("<svg") : page.index("</svg>") + 6])  # the SVG is well-formed XML


def test_html_fixes_of_issue_11() -> None:
    """Shown check labels (not raw not_checked), no exponent in latency labels, one |Δ| scale for every
    row, and "not benchmarked" lines grouped by reason."""
    from edgefuse.bench.html import panels_html
    from edgefuse.bench.plots import latency_distribution, ms
    from edgefuse.bench.report import grouped_skips

    report = make_report()
    report["skipped"] = [
        {"id": "a_litert-int8", "reason": "litert cannot run here"},
        {"id": "b_litert-fp16", "reason": "litert cannot run here"},
    ]
    page = report_html(report, None)
    assert ">not_checked<" not in page and "not checked" in page
    assert grouped_skips(report)[0] == "litert cannot run here (2): a_litert-int8, b_litert-fp16"
    assert ms(2750.4) == "2750" and ms(12.345) == "12.3" and "e+03" not in ms(2750.0)
    svg = latency_distribution([("slow", [2700.0, 2750.0, 2800.0], {"p50": 2750.0, "p99": 2800.0})])
    assert "e+03" not in svg and "p99 2800 ms" in svg
    img = np.full((16, 16, 3), 0.5, np.float32)
    small, big = np.clip(img + 0.001, 0, 1), np.clip(img + 0.2, 0, 1)
    page = panels_html({"stem": "s", "visible": img, "thermal": img[..., 0], "reference": img,
                        "outputs": {"fp32": small, "int8": big}})  # fmt: skip
    assert "one colour scale: 0 → 51" in page  # the int8 row's maximum scales the fp32 row too


def test_speedup_shows_its_noise() -> None:
    from edgefuse.bench.report import speedup

    assert speedup(0.5, 12.4) == "×2.00 ±12%"
    assert speedup(0.5, math.inf) == "×2.00" and speedup(math.nan, 3.0) == "-"


def test_merge_puts_machines_side_by_side(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    save_json(make_report("jetson"), a)
    other = make_report("x86-box", scale=0.5)
    other["targets"].pop(2)
    save_json(other, b)
    merged = merge([a, b])
    assert [h["label"] for h in merged["hosts"]] == ["jetson", "x86-box"]
    rows = {r["id"]: r["cells"] for r in merged["rows"]}
    assert rows["generic-cpu_onnxruntime-int8_480x640"]["x86-box"] is None
    assert rows["intel-cpu_openvino-int8_480x640"]["x86-box"]["p50"] == 10.0
    md = merged_markdown(merged)
    assert "| target | jetson | x86-box |" in md and "20.00 ms · 50 FPS · ×2.00" in md
    page = merged_html(merged)
    assert page.count("<svg") == 3 and "x86-box: intel-cpu_openvino-int8_480x640" in page
    dup = merge([a, a])
    assert [h["label"] for h in dup["hosts"]] == ["jetson", "jetson #2"]


def test_report_merge_cli_writes_every_format(tmp_path: Path) -> None:
    a = tmp_path / "a.json"
    save_json(make_report("mac"), a)
    out = {k: tmp_path / f"m.{k}" for k in ("json", "md", "html")}
    result = runner.invoke(
        app,
        [
            "report",
            "merge",
            str(a),
            str(a),
            "--json",
            str(out["json"]),
            "--md",
            str(out["md"]),
            "--html",
            str(out["html"]),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "mac #2" in result.output
    assert load_report(out["json"], schema="edgefuse.bench.merged")["hosts"][1]["label"] == "mac #2"
    assert out["md"].read_text().startswith("# edgefuse bench: cross-device comparison")
    missing = runner.invoke(app, ["report", "merge", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "no such report file" in missing.stderr


def test_unstable_reference_is_warned_about() -> None:
    from edgefuse.bench.suite import reference_stability
    from edgefuse.bench.targets import Target

    ref = Target("torch-cpu-fp32", "reference", "torch", "fp32")
    ref.latency = {"p50": 100.0, "p99": 120.0, "round_p50": [98.0, 100.0, 103.0]}
    assert reference_stability([ref]) == []
    ref.latency = {"p50": 119.0, "p99": 3125.0, "round_p50": [119.0, 670.0, 3125.0]}  # as seen in issue 11
    (warning,) = reference_stability([ref])
    assert warning.startswith("WARNING: the torch reference was unstable") and "--threads 1" in warning


def test_default_threads_leave_busy_cores_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgefuse.bench import env

    monkeypatch.setattr(env, "usable_cores", lambda: 2)
    monkeypatch.setattr(env.os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    assert env.default_threads()[0] == 1
    monkeypatch.setattr(env.os, "getloadavg", lambda: (0.1, 1.0, 1.0))
    assert env.default_threads()[0] == 2
    monkeypatch.setattr(env.os, "getloadavg", lambda: (7.0, 1.0, 1.0))
    assert env.default_threads()[0] == 1


def test_memory_probe_reports_each_targets_own_peak() -> None:
    """The peak of a target loaded first must not include what later targets allocate."""
    from edgefuse.bench.targets import MemoryProbe

    first = MemoryProbe()
    first.loaded()
    second = MemoryProbe()
    block = np.ones(64 * 2**20 // 8)  # 64 MB held by the second target
    second.loaded()
    first.start_drift()
    a = first.result()
    second.start_drift()
    b = second.result()
    del block
    if not first.reset_ok:
        pytest.skip("this kernel does not let a process reset its peak RSS")
    assert b["peak_added_mb"] >= 60 and a["peak_added_mb"] < 30


def test_merge_never_overwrites_an_input(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgefuse.cli import app

    a = tmp_path / "a.json"
    save_json(make_report("jetson"), a)
    before = a.read_text()
    result = CliRunner().invoke(app, ["report", "merge", str(a), "--json", str(a)])
    assert result.exit_code == 2 and "is also an input" in result.stderr
    assert a.read_text() == before
