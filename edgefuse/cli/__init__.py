"""The ``edgefuse`` command line: one module per command, joined here.

Command modules import only typer/rich at import time; torch and backend SDKs are imported inside the
commands, so ``edgefuse --help`` stays fast and never touches a backend.
"""

from __future__ import annotations

import typer

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
    teacher,
    train,
)

app = typer.Typer(
    name="edgefuse",
    help="FusionProxy infrared+visible fusion: run, train, distil, export to edge targets, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

app.command("fuse")(fuse.fuse)
app.command("eval")(eval.evaluate)
app.command("info")(info.info)
app.command("train")(train.train)
app.command("distill")(distill.distill)
app.command("export")(export.export)
app.command("bench")(bench.bench)
app.command("doctor")(doctor.doctor)
app.add_typer(profiles.app, name="profiles")
app.add_typer(report.app, name="report")
app.add_typer(teacher.app, name="teacher")


def main() -> None:
    app()
