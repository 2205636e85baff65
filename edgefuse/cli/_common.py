"""Shared bits of the Typer commands: consoles and the one-line error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from edgefuse.errors import EdgefuseError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

# options shared by the commands that train a student (train, distill)
SizeOpt = Annotated[str, typer.Option(help="Student size: n, s or m.")]
EpochsOpt = Annotated[int, typer.Option(min=1)]
BatchOpt = Annotated[int, typer.Option(min=1)]
CropOpt = Annotated[int, typer.Option(min=32, help="Random crop size (multiple of 16).")]
RepeatOpt = Annotated[int, typer.Option(min=1, help="Random crops per pair per epoch.")]
LrOpt = Annotated[float, typer.Option(min=0.0)]
ValFractionOpt = Annotated[float, typer.Option(min=0.0, max=0.9, help="Held-out pairs (by stem hash).")]
SeedOpt = Annotated[int, typer.Option()]
WorkersOpt = Annotated[int, typer.Option(min=0, help="DataLoader worker processes.")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue from OUT.state.pt.")]

EXIT_ERROR = 2  # bad input / environment; 1 is reserved for "ran, but a budget or check failed"


def cli_command(func: F) -> F:
    """Turn an :class:`EdgefuseError` into one red line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EdgefuseError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]
