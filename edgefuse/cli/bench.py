"""``edgefuse bench``: latency and drift of every target that runs here, budgets, regression gate, reports.

Exit codes: 0 all good; 1 the run completed but a target failed to run, a budget was missed (``--check``)
or latency regressed against ``--baseline``; 2 bad input or environment.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from edgefuse.cli._common import cli_command, console, err_console

if TYPE_CHECKING:
    from edgefuse.bench.suite import SuiteResult

_STYLE = {"pass": "green", "FAIL": "red", "error": "red", "not run": "yellow", "not checked": "dim"}


MAX_REGRESSION_PCT = 1000.0  # a larger threshold would turn the regression gate off without saying so


def parse_percent(text: str) -> float:
    """'10%' or '10' -> 10.0 (percent), finite and in (0, 1000]."""
    from edgefuse.errors import DataError

    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise DataError(f"--max-regression must look like 10%, got {text!r}") from None
    if not (0 < value <= MAX_REGRESSION_PCT):  # also refuses nan and inf
        raise DataError(f"--max-regression must be a percentage in (0, {MAX_REGRESSION_PCT:g}], got {text!r}")
    return value


@cli_command
def bench(
    artifacts: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Artifact directories from edgefuse export (default: export every profile "
            "whose runtime runs here).",
            show_default=False,
        ),
    ] = None,
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", "-p", help="Profile name, TOML path or alias (repeatable)."),
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", "-c", help="Checkpoint (default: bundled fusionproxy-s).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Real pairs for drift (default: the synthetic set, labelled)."),
    ] = None,
    calib: Annotated[
        Path | None,
        typer.Option(
            "--calib", help="Pairs to calibrate int8 exports (default: --data, else the profile's set)."
        ),
    ] = None,
    pairs: Annotated[int, typer.Option("--pairs", min=1, max=512, help="Pairs to measure drift on.")] = 8,
    size: Annotated[
        str | None, typer.Option("--size", help="Input size HxW (default: the profiles').")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Threads for every backend (default: usable cores)."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    md: Annotated[Path | None, typer.Option("--md", help="Write a Markdown report here.")] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 when a budget is missed, a named target does not run, or drift was measured "
            "on synthetic frames (see --allow-synthetic).",
        ),
    ] = False,
    allow_synthetic: Annotated[
        bool,
        typer.Option(
            "--allow-synthetic", help="Let --check pass with drift measured on SYNTHETIC frames (no --data)."
        ),
    ] = False,
    latency_budgets: Annotated[
        str,
        typer.Option(
            "--latency-budgets",
            help="auto: gate a profile's latency budget only on its own "
            "device; on: always; off: never. Drift budgets always gate.",
        ),
    ] = "auto",
    max_ratio: Annotated[
        float | None,
        typer.Option(
            "--max-ratio",
            help="Budget: each artifact's p50 at most this "
            "times the torch reference's, same run (any machine).",
        ),
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Earlier --json report of this machine to gate against.")
    ] = None,
    max_regression: Annotated[
        str, typer.Option("--max-regression", help="Allowed slowdown vs --baseline, e.g. 10%.")
    ] = "10%",
    timing: Annotated[str, typer.Option("--timing", help="quick, default or thorough.")] = "default",
    rounds: Annotated[
        int | None,
        typer.Option("--rounds", min=1, max=1000, help="Timing rounds (overrides --timing)."),
    ] = None,
    exports: Annotated[Path, typer.Option("--exports", help="Export cache directory.")] = Path("exports"),
    label: Annotated[str | None, typer.Option("--label", help="This machine's name in reports.")] = None,
    variants: Annotated[
        bool,
        typer.Option(
            "--variants/--no-variants",
            help="Also time torch variants (channels-last, CUDA graphs, compile, fp16, batched).",
        ),
    ] = True,
    torch_compile: Annotated[
        str, typer.Option("--torch-compile", help="torch.compile mode on CUDA, or off.")
    ] = "reduce-overhead",
    batches: Annotated[str, typer.Option("--batches", help="Batched throughput sizes on CUDA.")] = "16,64",
    triton: Annotated[
        bool,
        typer.Option(
            "--triton/--no-triton",
            help="On CUDA, also time the 15 Triton kernels (fp16, batch 1, CUDA graph, H and W divisible by "
            "16; a target that says why it did not run where triton is missing).",
        ),
    ] = True,
) -> None:
    """Benchmark latency and drift per platform; exit 1 on a failed target, budget miss or regression."""
    from edgefuse.bench.gate import LATENCY_RULES
    from edgefuse.bench.records import LatencyBudgets
    from edgefuse.bench.report import load_report
    from edgefuse.bench.suite import SuiteOptions, run_suite
    from edgefuse.bench.timing import PRESETS
    from edgefuse.errors import DataError
    from edgefuse.io import check_writable
    from edgefuse.spec import parse_size

    start = time.perf_counter()
    if latency_budgets not in set(LatencyBudgets):  # one line and exit 2, not typer's choice panel
        raise DataError(
            f"--latency-budgets must be one of {', '.join(LATENCY_RULES)}, got {latency_budgets!r}"
        )
    if timing not in PRESETS:
        raise DataError(f"--timing must be one of {', '.join(PRESETS)}, got {timing!r}")
    try:
        hw = parse_size(size) if size else None
        batch_sizes = tuple(int(b) if b.strip().isdigit() else 0 for b in batches.split(",") if b.strip())
        if any(b < 1 for b in batch_sizes):
            raise ValueError(f"--batches must be comma-separated positive batch sizes, got {batches!r}")
    except ValueError as exc:
        raise DataError(str(exc)) from None
    regression = parse_percent(max_regression)
    base = load_report(baseline) if baseline is not None else None  # a bad baseline fails before the run
    outputs = [p for p in (json_path, md, html, junit) if p is not None]
    try:  # an unwritable report path fails now, not after the whole run
        for path in outputs:
            check_writable(path, *(a for a in [baseline] if a is not None))
    except ValueError as exc:
        raise DataError(str(exc)) from None
    opts = SuiteOptions(
        artifacts=list(artifacts or []),
        profiles=list(profile or []),
        checkpoint=checkpoint,
        data=data,
        calib=calib,
        pairs=pairs,
        size=hw,
        threads=threads,
        device=device,
        timing=timing,
        rounds=rounds,
        exports=exports,
        latency_budgets=LatencyBudgets(latency_budgets),
        max_ratio=max_ratio,
        allow_synthetic=allow_synthetic,
        label=label,
        variants=variants,
        torch_compile=torch_compile,
        batches=batch_sizes,
        triton=triton,
        command=shlex.join(["edgefuse", *sys.argv[1:]]),
    )
    if max_ratio is not None and not (0.01 <= max_ratio <= 1000.0):  # nan and inf too
        raise DataError(f"--max-ratio must be a number in [0.01, 1000], got {max_ratio}")
    if console.is_terminal:
        with console.status("benchmarking", spinner="dots") as status:
            result = run_suite(opts, progress=lambda msg: status.update(escape(msg)))
    else:  # a log file or CI: one timestamped line per step instead of a spinner nobody sees
        result = run_suite(opts, progress=_log_line(start))
    report = result.report
    if base is not None:
        from edgefuse.bench.gate import compare

        report["regression"] = compare(report, base, regression)
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    show(report)
    write_outputs(result, json_path, md, html, junit)
    raise typer.Exit(exit_code(report, check))


def _log_line(start: float) -> Any:
    def progress(msg: str) -> None:
        err_console.print(f"[{time.perf_counter() - start:6.0f} s] {escape(msg)}", highlight=False)

    return progress


def exit_code(report: dict[str, Any], check: bool) -> int:
    failed = [t["id"] for t in report["targets"] if t["status"] == "error"]
    misses = report["check"]["misses"]
    regressed = (report.get("regression") or {}).get("regressed", [])
    for tid in failed:
        err_console.print(f"[red]{escape(tid)} failed to run[/]", highlight=False)
    if check and misses:
        err_console.print(f"[red]{len(misses)} budget miss(es):[/]", highlight=False)
        for m in misses:
            err_console.print(f"  {escape(m)}", highlight=False, soft_wrap=True)
    if regressed:
        err_console.print(f"[red]latency regressed vs the baseline: {escape(', '.join(regressed))}[/]")
    return 1 if failed or (check and misses) or regressed else 0


def show(report: dict[str, Any]) -> None:
    from rich.table import Table

    from edgefuse.bench.report import COLUMNS, headline, summary

    table = Table(title=f"edgefuse bench: {escape(headline(report))}", title_justify="left")
    for key, title in COLUMNS:
        table.add_column(
            title,
            justify="left" if key in ("target", "runtime", "worst", "check") else "right",
            no_wrap=key == "target",
        )
    for t in report["targets"]:
        row = summary(t)
        cells = [escape(row[key]) for key, _ in COLUMNS]
        cells[-1] = f"[{_STYLE.get(row['check'], 'white')}]{escape(row['check'])}[/]"
        table.add_row(*cells)
    width = console.width
    console.width = max(width, 190)  # piped output defaults to 80 columns: far too narrow for this table
    try:
        console.print(table)
        for note in _notes(report):
            loud = note.startswith(("SYNTHETIC", "INCONCLUSIVE", "WARNING"))
            style = "bold yellow" if loud else "dim"
            console.print(f"  [{style}]{escape(note)}[/]", highlight=False, soft_wrap=True)
    finally:
        console.width = width
    console.print(f"wall time {report['wall_seconds']:.1f} s", highlight=False)


def _notes(report: dict[str, Any]) -> list[str]:
    from edgefuse.bench.report import grouped_skips

    notes = list(report.get("notes", []))
    notes += [f"not benchmarked: {line}" for line in grouped_skips(report)]
    settings = report.get("settings") or {}
    if settings.get("threads_rule"):
        rule = str(settings["threads_rule"])
        hint = "" if rule.startswith("given") else "; --threads N to choose"
        notes.append(f"threads: {settings.get('threads')} ({rule}{hint})")
    check = report["check"]
    notes.append(
        f"latency budgets applied to {check.get('latency_applied', '?')} targets with one "
        f"({check['latency_rule']}); drift budgets gate everywhere"
    )
    if check.get("synthetic"):
        verdict = (
            "accepted (--allow-synthetic)" if settings.get("allow_synthetic") else "--check fails on this"
        )
        notes.append(
            f"SYNTHETIC: drift was measured on generated scenes, not real pairs; {verdict} "
            "(pass --data DIR for real pairs)"
        )
    gate = report.get("regression")
    if gate:
        inconclusive = [r["id"] for r in gate["rows"] if r["status"] == "inconclusive"]
        for r in gate["rows"]:
            if r["status"] in ("regressed", "inconclusive", "ok"):
                notes.append(
                    f"vs baseline: {r['id']} {r['status']} (change {r.get('change_pct', 0):+.1f}% "
                    f"± {r.get('noise_pct', 0):.1f}%, threshold {gate['max_regression_pct']:g}%)"
                )
        if inconclusive:
            notes.append(
                f"INCONCLUSIVE vs baseline: {len(inconclusive)} of {len(gate['rows'])} targets: the noise is "
                "larger than the threshold, so no regression verdict (not a pass); rerun with --timing "
                "thorough or --threads 1 on a quieter machine"
            )
    return notes


def write_outputs(
    result: SuiteResult, json_path: Path | None, md: Path | None, html: Path | None, junit: Path | None
) -> None:
    from edgefuse.bench.markdown import to_markdown
    from edgefuse.bench.report import save_json
    from edgefuse.io import atomic_write_text

    report = result.report
    if json_path is not None:
        save_json(report, json_path)
    if md is not None:
        atomic_write_text(md, to_markdown(report))
    if html is not None:
        from edgefuse.bench.html import report_html

        atomic_write_text(html, report_html(report, result.panels))
    if junit is not None:
        from edgefuse.bench.gate import junit_xml

        atomic_write_text(junit, junit_xml(report))
    for path in (json_path, md, html, junit):
        if path is not None:
            console.print(f"wrote {escape(str(path))}", highlight=False)
