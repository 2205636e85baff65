"""``edgefuse export``: build, validate and install one artifact directory per profile."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from edgefuse.cli._common import cli_command, console, err_console

if TYPE_CHECKING:
    from edgefuse.exporters.base import Exporter, ExportSession, Job
    from edgefuse.exporters.pipeline import Outcome
    from edgefuse.profiles import Profile

_STYLE = {
    "skipped": "yellow",
    "passed": "green",
    "up_to_date": "green",
    "not_validated": "yellow",
    "failed": "red",
    "error": "red",
}


@cli_command
def export(
    target: Annotated[
        str,
        typer.Option(
            "--target",
            "-t",
            help="Profile name, TOML path or family alias (jetson, intel-cpu, arm, onnx, all, ...).",
        ),
    ],
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", "-c", help="Checkpoint file or bundled name (default: fusionproxy-s)."),
    ] = None,
    calib: Annotated[
        Path | None,
        typer.Option(
            "--calib", help="Paired folder for int8 calibration and validation (default: the profile's set)."
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where artifact directories go.")] = Path(
        "exports"
    ),
    pairs: Annotated[
        int,
        typer.Option(
            "--pairs",
            min=1,
            max=512,
            help="Held-out pairs to validate drift on (real pairs from --calib or the profile's set; "
            "generated SYNTHETIC scenes, said so, when there are none).",
        ),
    ] = 8,
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing artifacts built differently.")
    ] = False,
) -> None:
    """Export the student for each target profile; exit 1 when a validated artifact misses its budget."""
    from edgefuse.checkpoint import load_model
    from edgefuse.errors import DataError
    from edgefuse.exporters import get_exporter
    from edgefuse.exporters.base import ExportSession, Job
    from edgefuse.exporters.pipeline import ExportStatus, Outcome, clean_interrupted, existing_status
    from edgefuse.profiles import Precision, resolve_target

    profiles = resolve_target(target)
    exporters = {p.name: get_exporter(p.backend) for p in profiles}
    for p in profiles:  # every missing extra, conflict and data problem before any work starts
        exporters[p.name].check(p)
    if calib is not None and not calib.is_dir():
        raise DataError(f"{calib}: --calib must be a folder of visible/thermal pairs")
    loaded = load_model(checkpoint)
    skipped: list[Outcome] = []
    with _terminate_cleanly(), ExportSession(loaded, calib_dir=calib, val_pairs=pairs) as session:
        todo: dict[str, list[Job]] = {}  # per backend, the profiles that will be built
        runnable = []
        for p in profiles:
            clean_interrupted(output, p.name)  # what a killed export left (its artifact swap undone)
            fresh = not force and existing_status(p, output / p.name, session) is ExportStatus.UP_TO_DATE
            if (
                not fresh
                and p.precision is Precision.INT8
                and calib is None
                and not p.calibration.path().is_dir()
            ):
                # int8 alone needs real pairs: the other profiles still export
                skipped.append(Outcome(p.name, ExportStatus.SKIPPED, output / p.name, message=no_pairs(p)))
                continue
            runnable.append(p)
            if not fresh:
                todo.setdefault(p.backend, []).append(Job(session, p))
        for jobs in todo.values():  # slow self-contained preparations start now, in the background
            exporters[jobs[0].profile.name].prefetch(jobs)
        done = {o.profile: o for o in [*_run(session, runnable, exporters, output, force), *skipped]}
    outcomes = [done[p.name] for p in profiles]
    _summary(outcomes, output, {p.name: p.backend for p in profiles})
    failed = [o for o in outcomes if not o.ok and o.status is not ExportStatus.SKIPPED]
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(outcomes)} exports failed:[/]")
        for o in failed:
            err_console.print(f"  {o.profile}: {escape(o.message)}", highlight=False, soft_wrap=True)
    not_done = [o for o in outcomes if o.status is ExportStatus.SKIPPED]
    for o in not_done:  # one line each; exit 2: an input is missing, no check failed
        err_console.print(f"error: {o.profile}: {escape(o.message)}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)
    if not_done:
        raise typer.Exit(2)


def no_pairs(p: Profile) -> str:
    """Why an int8 profile cannot be exported here, and how to give it calibration pairs (one line)."""
    return (
        f"int8 needs real calibration pairs (its set {p.calibration.set!r} is not here): pass --calib DIR "
        "(a folder with vi/ and ir/) or set EDGEFUSE_DATA to the folder holding that set"
    )


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """SIGTERM (``kill``, a CI timeout) unwinds like Ctrl-C: temporary build directories are removed and
    background workers stopped. (SIGKILL cannot be caught: the next export tidies up after it.)"""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(
    session: ExportSession, profiles: list[Profile], exporters: dict[str, Exporter], output: Path, force: bool
) -> list[Outcome]:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    from edgefuse.errors import EdgefuseError
    from edgefuse.exporters.pipeline import ExportStatus, Outcome, build_order, export_profile

    outcomes: dict[str, Outcome] = {}
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task(f"exporting {len(profiles)} profile(s)", total=len(profiles))
        for p in build_order(profiles):
            task = progress.add_task(f"{p.name}: starting", total=None)

            def report(stage: str, task: TaskID = task, name: str = p.name) -> None:
                progress.update(task, description=f"{name}: {stage}")

            try:
                outcome = export_profile(session, p, exporters[p.name], output, force=force, report=report)
            except EdgefuseError as exc:
                outcome = Outcome(p.name, ExportStatus.ERROR, output / p.name, message=str(exc))
            except Exception as exc:  # a converter crash fails this target, not the whole run
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                outcome = Outcome(
                    p.name, ExportStatus.ERROR, output / p.name, message=f"{type(exc).__name__}: {first}"
                )
            style = _STYLE.get(outcome.status, "white")
            progress.update(task, description=f"{p.name}: [{style}]{outcome.status}[/]", total=1, completed=1)
            progress.advance(overall)
            outcomes[p.name] = outcome
    return [outcomes[p.name] for p in profiles]  # reported in the order asked for


def _summary(outcomes: list[Outcome], output: Path, backend_of: dict[str, str]) -> None:
    from rich.table import Table

    from edgefuse.exporters.pipeline import ExportStatus

    table = Table(title=f"edgefuse export -> {output}")
    for col in ("profile", "status", "s", "PSNR", "max|Δ|", "worst metric", "float"):
        table.add_column(col, overflow="fold", no_wrap=col == "profile")
    notes = []
    synthetic = []
    for o in outcomes:
        v = o.validation or {}
        if (v.get("frames") or {}).get("synthetic") and o.status is not ExportStatus.UP_TO_DATE:
            synthetic.append(o.profile)
        drift, change = v.get("drift") or {}, v.get("metric_change_pct") or {}
        worst = max(change.items(), key=lambda kv: abs(kv[1]), default=None)
        psnr, max_abs = drift.get("psnr_min"), drift.get("max_abs")
        table.add_row(
            o.profile,
            f"[{_STYLE.get(o.status, 'white')}]{o.status}[/]"
            + (" [bold yellow]SYNTHETIC[/]" if (v.get("frames") or {}).get("synthetic") else ""),
            f"{o.seconds:.1f}",
            f"{psnr:.1f}" if isinstance(psnr, float) else "-",
            f"{max_abs:.2f}" if isinstance(max_abs, float) else "-",
            f"{worst[0]} {worst[1]:+.2f}%" if worst else "-",
            ", ".join(o.kept) or "-",
        )
        if v.get("emulation"):
            notes.append(f"{o.profile}: {v['emulation']}")
        if o.status in (ExportStatus.NOT_VALIDATED, ExportStatus.ERROR):
            notes.append(f"{o.profile}: {o.message}")
    width = console.width
    console.width = max(width, 118)  # piped output defaults to 80 columns: too narrow for profile names
    try:
        console.print(table)
    finally:
        console.width = width
    for note in notes:
        console.print(f"  [dim]{escape(note)}[/]", highlight=False, soft_wrap=True)
    if synthetic:
        console.print(
            f"[bold yellow]SYNTHETIC[/]: {len(synthetic)} export(s) validated on generated scenes, not real "
            "pairs (no calibration set here): drift on real frames is unknown. Pass --calib DIR or set "
            "EDGEFUSE_DATA; edgefuse bench --check refuses synthetic validation unless --allow-synthetic.",
            highlight=False,
            soft_wrap=True,
        )
    from edgefuse import backends

    done = [o for o in outcomes if o.ok]
    if done:
        console.print("next:", highlight=False)
        for o in done:
            deploy = backends.get(backend_of[o.profile]).deploy
            text = deploy.replace("DIR", str(o.path)) if deploy else f"edgefuse bench {o.path}"
            console.print(f"  {o.profile}: {escape(text)}", highlight=False, soft_wrap=True)
    console.print(
        "  [dim]s: export seconds; max|Δ|: largest per-pixel difference from PyTorch fp32 in 8-bit levels "
        "(0-255); float: layers kept in higher precision by an int8 build[/]",
        highlight=False,
        soft_wrap=True,
    )
