"""docs/bench.md's JSON schema against the records that write it (bench/records.py)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from edgefuse.bench.records import Report, TargetRecord

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
