"""docs/bench.md's JSON schema against the records that write it (bench/records.py)."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import pytest

from edgefuse.bench.records import Report, TargetRecord
from edgefuse.errors import DataError

DOC = Path(__file__).resolve().parents[2] / "docs" / "bench.md"


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def _top_level_names(text: str) -> set[str]:
    """Backticked names outside any (...) or {...}: the fields of the record being described."""
    names, depth, i = set(), 0, 0
    while i < len(text):
        c = text[i]
        if c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
        elif c == "`":
            j = text.index("`", i + 1)
            if depth == 0:
                names.add(text[i + 1 : j].removesuffix("[]"))
            i = j
        i += 1
    return names


def test_the_report_fields_are_the_documented_ones() -> None:
    table = _section(DOC.read_text(encoding="utf-8"), "| field | content |", "\n\n")
    documented = set()
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        documented |= {n.removesuffix("[]") for n in re.findall(r"`([^`]+)`", first)}
    assert documented == {f.name for f in dataclasses.fields(Report)}


def test_the_target_fields_are_the_documented_ones() -> None:
    text = DOC.read_text(encoding="utf-8")
    paragraph = _section(text, "A target: ", "\n\n").removeprefix("A target: ")
    assert _top_level_names(paragraph) == {f.name for f in dataclasses.fields(TargetRecord)}


def test_records_keep_the_json_field_order() -> None:
    fields = {f.name: None for f in dataclasses.fields(TargetRecord)}
    fields.update(budgets={}, notes=[])
    d = TargetRecord(**fields).to_dict()  # type: ignore[arg-type]
    assert list(d)[:3] == ["id", "kind", "backend"] and list(d)[-1] == "notes" and "check" not in d
    report = {f.name: None for f in dataclasses.fields(Report) if f.name not in Report.LATE}
    r = Report(**report).to_dict()  # type: ignore[arg-type]
    assert list(r)[:2] == ["schema", "schema_version"] and list(r)[-1] == "notes"
    r = Report(**report, check={}, wall_seconds=1.0).to_dict()  # type: ignore[arg-type]
    assert list(r)[-2:] == ["check", "wall_seconds"]


def _minimal() -> dict:
    return {
        "environment": {"label": "box"},
        "settings": {"size": "32x48"},
        "targets": [
            {"id": "torch-cpu-fp32", "kind": "reference", "status": "ok", "latency": {"p50": "inf"}},
            {"id": "a", "kind": "artifact", "status": "not_run", "load_seconds": "nan", "budgets": None},
        ],
    }


def test_from_dict_reads_what_the_loader_accepts_with_the_readers_defaults() -> None:
    report = Report.from_dict(_minimal())
    ref, art = report.target_records()
    assert (report.skipped, report.notes, report.data, report.wall_seconds) == ([], [], {}, None)
    assert ref.latency == {"p50": "inf"} and ref.budgets == {} and ref.reason == "" and ref.batch == 1
    assert art.budgets == {} and math.isnan(art.load_seconds) and art.check is None


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ((), [], "malformed report: not an object but list"),
        (("targets",), {}, "malformed report: 'targets' must be a list"),
        (("settings",), None, "malformed report: settings must be an object"),
        (("wall_seconds",), "soon", "malformed report: wall_seconds must be a number"),
        (("targets", 1, "reason"), 3, "malformed report: targets[1].reason must be a string"),
        (("targets", 0, "threads"), True, "malformed report: targets[0].threads must be an integer"),
        (("targets", 1, "latency"), [], "malformed report: targets[1].latency must be an object"),
    ],
)
def test_from_dict_refuses_a_malformed_report_in_one_line(where: tuple, value: Any, message: str) -> None:
    data: Any = _minimal()
    if not where:
        data = value
    else:
        node = data
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value
    with pytest.raises(DataError) as err:
        Report.from_dict(data)
    assert str(err.value) == message
    if where[:1] == ("targets",) and len(where) == 3:  # the same target alone says what is wrong with it
        with pytest.raises(DataError, match=f"^malformed report target: {where[2]} must be"):
            TargetRecord.from_dict(data["targets"][where[1]])


def test_a_written_report_reads_back_unchanged() -> None:
    target = TargetRecord(
        id="a", kind="artifact", backend="onnxruntime", precision="int8", device="cpu", batch=1, threads=2,
        runtime="onnxruntime 1.20", status="ok", reason="", profile=None, artifact=None, load_seconds=0.5,
        warmup=None, latency={"p50": 2.0, "round_p50": [2.0, 2.1]}, ratio_to_reference=None, memory=None,
        drift=None, metrics=None, budgets={"latency": None, "drift": None}, notes=["n"],
    )  # fmt: skip
    report = Report(
        schema_version=1, created="2026-01-01T00:00:00+00:00", edgefuse_version="0.1.0",
        command="edgefuse bench",
        environment={"label": "box"}, settings={"size": "32x48"}, checkpoint={}, data={"pairs": 2},
        reference=None, pipeline={}, targets=[target.to_dict()], skipped=[], phase_seconds={"bench": 1.0},
        notes=[], wall_seconds=3.0,
    )  # fmt: skip
    back = Report.from_dict(report.to_dict())
    assert back == report and back.target_records() == [target]
    assert back.to_dict() == report.to_dict()


def test_a_gpu_target_without_a_thread_count_reads_back() -> None:
    """Targets on a GPU carry threads=None (no CPU thread count); the report's own check once refused them,
    so every ``edgefuse bench --device cuda`` failed when writing its report."""
    from edgefuse.bench.report import target_record
    from edgefuse.bench.targets import Target

    t = Target("torch-cuda-fp32", "reference", "torch", "fp32", device="cuda")
    record = target_record(t, {})
    assert record["threads"] is None
    back = TargetRecord.from_dict(record)
    assert back.threads is None and back.device == "cuda"
    with pytest.raises(DataError, match="batch must be an integer"):
        TargetRecord.from_dict({**record, "batch": None})
