"""The ``edgefuse`` command line: one module per command, joined here.

Command modules import only typer/rich at import time; torch and backend SDKs are imported inside the
commands, so ``edgefuse --help`` stays fast and never touches a backend.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from edgefuse.cli import ascend as ascend  # registers `teacher ascend` on teacher's group
from edgefuse.cli import (
    bench,
    distill,
    doctor,
    eval,
    export,
    fuse,
    info,
    profiles,
    report,
    snap,
    teacher,
    train,
)
from edgefuse.cli import conditional as conditional  # registers `teacher train-cond` / `sample-cond`
from edgefuse.cli import teacher_import as teacher_import  # registers `teacher import` and `mix`
from edgefuse.cli._common import DEBUG_ENV, debug_enabled, handle_exception, quiet_third_party, set_debug

app = typer.Typer(
    name="edgefuse",
    help="FusionProxy infrared+visible fusion: run, train, distil, export to edge targets, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from edgefuse import __version__

        typer.echo(f"edgefuse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help=f"Show full tracebacks instead of one-line errors (or set {DEBUG_ENV}=1)."
        ),
    ] = False,
) -> None:
    """FusionProxy infrared+visible fusion: run, train, distil, export to edge targets, benchmark.

    Exit codes: 0 ok, 1 a budget or check failed, 2 bad input or environment (one line on stderr),
    3 an internal error (one line naming the file that holds the traceback).
    """
    set_debug(debug)
    quiet_third_party()


app.command("fuse")(fuse.fuse)
app.command("eval")(eval.evaluate)
app.command("info")(info.info)
app.command("train")(train.train)
app.command("distill")(distill.distill)
app.command("export")(export.export)
app.command("bench")(bench.bench)
app.command("snap")(snap.snap)
app.command("doctor")(doctor.doctor)
app.add_typer(profiles.app, name="profiles")
app.add_typer(report.app, name="report")
app.add_typer(teacher.app, name="teacher")


def main(argv: list[str] | None = None) -> None:
    """Entry point: the boundary of :func:`cli_command` around parsing too (usage errors: one line)."""
    try:
        code = app(args=argv, prog_name="edgefuse", standalone_mode=False)
    except BaseException as exc:  # the boundary: every error becomes one line and an exit code
        if debug_enabled() and not isinstance(exc, (SystemExit, KeyboardInterrupt)):
            raise
        if isinstance(exc, SystemExit):
            raise
        code = handle_exception(exc)
    sys.exit(code if isinstance(code, int) else 0)
