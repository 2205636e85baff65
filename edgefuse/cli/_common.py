"""Shared bits of the Typer commands: consoles, option types and the error boundary.

The boundary (:func:`cli_command` around each command, :func:`handle_exception` in ``main``) turns every
exception into one line on stderr: a bad input or environment problem (EdgefuseError, OSError, usage
errors, out of memory, a device that is not there) exits 2; anything else is a bug: exit 3, with the full
traceback written to a file named on that line. ``--debug`` / ``EDGEFUSE_DEBUG=1`` shows tracebacks instead.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import functools
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from edgefuse.errors import EdgefuseError, RuntimeUnavailableError

if TYPE_CHECKING:  # the model module imports torch: not at CLI start-up
    from edgefuse.model import FusionProxy

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

# options shared by the commands that train a student (train, distill)
SizeOpt = Annotated[str, typer.Option(help="Student size: n, s or m.")]
SelectOpt = Annotated[
    bool,
    typer.Option(help="Student form with a full-resolution per-pixel selection between the sources."),
]
EpochsOpt = Annotated[int, typer.Option(min=1)]
BatchOpt = Annotated[int, typer.Option(min=1)]
CropOpt = Annotated[int, typer.Option(min=32, help="Random crop size (multiple of 16).")]
RepeatOpt = Annotated[int, typer.Option(min=1, help="Random crops per pair per epoch.")]
LrOpt = Annotated[float, typer.Option(min=0.0)]
ValFractionOpt = Annotated[float, typer.Option(min=0.0, max=0.9, help="Held-out pairs (by stem hash).")]
SeedOpt = Annotated[int, typer.Option()]
# The split has its own seed so that students of several seeds are scored on the same held-out pairs.
SplitSeedOpt = Annotated[int, typer.Option(help="Seed of the train/val split (independent of --seed).")]
WorkersOpt = Annotated[int, typer.Option(min=0, help="DataLoader worker processes.")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue from OUT.state.pt.")]
NightOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Probability that a training crop's visible frame is darkened (V**γ, γ 1.5–3.5, rounded to "
        "8-bit levels): synthetic night scenes for a daylight training set.",
    ),
]
ThermalLevelOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Probability that a training crop's thermal frame is moved to a darker level (mean U(0.08, "
        "0.45), contrast kept, 8-bit): cold night backgrounds under the camera's gain control.",
    ),
]
InitOpt = Annotated[
    str | None,
    typer.Option(
        help="Start from this checkpoint's weights (a fine-tune: give a smaller --lr); it must be of "
        "--size and --select's form."
    ),
]


def _mro_class(name: str) -> Any:
    # typer >= 0.2x vendors click (typer._click); older typer re-exports click's own classes
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


_ClickException = _mro_class("ClickException")
_UsageError = _mro_class("UsageError")
_NoArgsIsHelp: Any = getattr(
    sys.modules[_UsageError.__module__], "NoArgsIsHelpError", type("_Never", (Exception,), {})
)

EXIT_CHECK_FAILED = 1  # ran, but a budget or check failed
EXIT_ERROR = 2  # bad input / environment
EXIT_INTERNAL = 3  # a bug in edgefuse: one line + the path of the traceback file
DEBUG_ENV = "EDGEFUSE_DEBUG"


_debug_flag = False  # `edgefuse --debug`, set per invocation by the root callback


def debug_enabled() -> bool:
    return _debug_flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def set_debug(on: bool) -> None:
    global _debug_flag
    _debug_flag = on


def warn(text: str) -> None:
    """One yellow line on stderr: something the user should know, nothing failed."""
    err_console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


def warn_unpaired(source: object) -> None:
    """Name the stems a paired folder skipped because only one side has them."""
    unmatched: dict[str, list[str]] = getattr(source, "unmatched", None) or {}
    parts = [f"{side} only: {list_names(stems)}" for side, stems in unmatched.items() if stems]
    if parts:
        count = sum(len(stems) for stems in unmatched.values())
        warn(f"{count} unpaired stem(s) skipped ({'; '.join(parts)})")


def list_names(items: list[str], at_most: int = 8) -> str:
    more = f" … (+{len(items) - at_most} more)" if len(items) > at_most else ""
    return ", ".join(items[:at_most]) + more


# --- devices --------------------------------------------------------------------------------------------

_DEVICE = re.compile(r"^(cpu|gpu|cuda(:\d+)?)$")


def check_device(device: str) -> str:
    """``device`` normalised (``gpu`` -> ``cuda``); EdgefuseError unless torch can use it here.

    Every command's ``--device`` goes through this (the boundary calls it), so ``--device cuda`` on a
    CPU-only machine is one line and exit 2 in every command, before any work starts.
    """
    name = device.strip().lower()
    if not _DEVICE.match(name):
        raise EdgefuseError(f"--device {device!r}: use cpu, cuda or cuda:N")
    if name == "gpu":
        name = "cuda"
    if name == "cpu":
        return name
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise RuntimeUnavailableError(
            f"--device {device}: torch sees no CUDA device here (torch {torch.__version__}, {build}); "
            "use --device cpu"
        )
    if ":" in name:
        index, count = int(name.split(":")[1]), torch.cuda.device_count()
        if index >= count:
            raise RuntimeUnavailableError(
                f"--device {device}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )
    return name


# --- output paths ---------------------------------------------------------------------------------------


def check_writable(path: Path, what: str = "output") -> None:
    """Fail now, not after the work, when ``path`` (a file to write) cannot be created or replaced."""
    if path.is_dir():
        raise EdgefuseError(f"{path}: is a folder; the {what} must be a file path")
    check_folder_writable(path.parent, what)


def check_folder_writable(folder: Path, what: str = "output") -> None:
    """Fail now when files cannot be written into ``folder`` (created later if missing; nothing is created
    here). Writes and removes a probe file in the nearest existing folder: the only test that catches
    read-only mounts, permissions and quotas, even for root."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise EdgefuseError(f"{existing}: exists and is not a folder (the {what} goes under {folder})")
    try:
        fd, probe = tempfile.mkstemp(prefix=".edgefuse-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EdgefuseError(f"{folder}: cannot write the {what} there ({_os_reason(exc)})") from None


# --- the boundary ---------------------------------------------------------------------------------------


def _os_reason(exc: OSError) -> str:
    if exc.errno is not None and exc.strerror:
        return exc.strerror.lower() if exc.errno in (errno.ENOSPC, errno.EROFS) else exc.strerror
    return str(exc) or type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_out_of_memory(exc: BaseException) -> bool:
    # torch.OutOfMemoryError (CUDA) subclasses RuntimeError; a failed CPU allocation is a RuntimeError too
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError)
        and ("out of memory" in str(exc).lower() or "DefaultCPUAllocator" in str(exc))
    )


def _write_traceback(exc: BaseException) -> Path | None:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:  # mkstemp: a new file (O_EXCL), never one planted in the shared temp folder
        fd, name = tempfile.mkstemp(prefix=f"edgefuse-error-{stamp}-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"edgefuse {' '.join(sys.argv[1:])}\n\n{text}")
    except OSError:
        return None
    return Path(name)


def _print_error(line: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(_one_line(line))}", highlight=False, soft_wrap=True)


def handle_exception(exc: BaseException) -> int:
    """Print the one line for ``exc`` on stderr and return the exit code (see the module docstring)."""
    if isinstance(exc, typer.Exit):
        return int(exc.exit_code)
    if isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        _print_error("interrupted")
        return 130
    if isinstance(exc, _NoArgsIsHelp):
        from typer import rich_utils

        rich_utils.rich_format_error(exc)  # prints the help, as a bare `edgefuse` should
        return exc.exit_code
    if isinstance(exc, _ClickException):
        ctx = getattr(exc, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        _print_error(exc.format_message() + hint)
        return EXIT_ERROR if isinstance(exc, _UsageError) else int(getattr(exc, "exit_code", EXIT_ERROR))
    if isinstance(exc, EdgefuseError):
        _print_error(str(exc))
        return EXIT_ERROR
    if isinstance(exc, OSError):
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        _print_error(f"{where}: {_os_reason(exc)}" if where else _os_reason(exc))
        return EXIT_ERROR
    if _is_out_of_memory(exc):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _print_error(f"out of memory ({first[:200]}); try a smaller input, batch or model")
        return EXIT_ERROR
    saved_at = _write_traceback(exc)
    saved = f"full traceback in {saved_at}" if saved_at else "the traceback could not be saved"
    first = str(exc).splitlines()[0] if str(exc) else ""
    _print_error(
        f"internal error (a bug in edgefuse): {type(exc).__name__}: {first[:300]}; {saved}; "
        f"rerun with --debug (or {DEBUG_ENV}=1) to print it"
    )
    return EXIT_INTERNAL


def script_main(main: Callable[[], int]) -> None:
    """Run a developer script's ``main`` behind the commands' boundary for bad input: a missing folder or an
    unreadable file is one line on stderr and exit 2, as for ``edgefuse``; a bug keeps its traceback."""
    try:
        code = main()
    except (EdgefuseError, OSError) as exc:
        code = handle_exception(exc)
    sys.exit(code)


def cli_command(func: F) -> F:
    """The error boundary around one command; also validates its ``device`` argument, if it has one."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            if isinstance(kwargs.get("device"), str):
                kwargs["device"] = check_device(kwargs["device"])
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # usage errors raised by the command body too: one line, not click's box
            if debug_enabled():
                raise
            raise typer.Exit(handle_exception(exc)) from None

    return wrapper  # type: ignore[return-value]


# --- progress -------------------------------------------------------------------------------------------

PLAIN_PROGRESS_EVERY_S = 10.0


@contextlib.contextmanager
def progress(label: str, total: int | None) -> Iterator[Callable[..., None]]:
    """``with progress("fuse", n) as step: step(note=...)`` per item.

    A rich bar on a terminal; elsewhere (CI logs, pipes) rich would print nothing until the end, so a
    plain line every ``PLAIN_PROGRESS_EVERY_S`` seconds and one at the end.
    """
    if console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        cols = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"))
        with Progress(*cols, console=console) as bar:
            task = bar.add_task(label, total=total, note="")
            yield lambda advance=1, note="": bar.update(task, advance=advance, note=note)
        return
    done, last = 0, time.monotonic()

    def step(advance: int = 1, note: str = "") -> None:
        nonlocal done, last
        done += advance
        now = time.monotonic()
        if now - last >= PLAIN_PROGRESS_EVERY_S or (total is not None and done >= total):
            of = f"/{total}" if total is not None else ""
            console.print(f"{label}: {done}{of} {note}".rstrip(), highlight=False)
            last = now

    yield step


# --- atomic outputs -------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that go by it work); on success
    rename it over ``path``, on any failure remove it, so ``path`` is either the old file or the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; an output should get the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- third-party noise ----------------------------------------------------------------------------------

# Loggers of backend SDKs that print import-time chatter (coremltools: untested sklearn/torch versions and
# "Failed to load _MLModelProxy" off macOS; torchao: CUDA kernels that cannot load on CPU; torch's pytree:
# a deprecation aimed at torchao). Errors still show.
NOISY_LOGGERS = ("coremltools", "torchao", "torch.utils._pytree", "jax", "absl", "pydot")


def quiet_third_party() -> None:
    """Silence known import-time chatter of the backend SDKs at its source; the CLI calls this first.

    Environment variables are only defaulted, so a user who sets them wins.
    """
    import logging

    # TensorFlow's C++ logging (litert-torch): "oneDNN custom operations are on" and absl's preamble; only
    # turning the custom ops off silences it, and they serve TF's own kernels, which no measurement uses
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def student_from(size: str, select: bool, init: str | None) -> tuple[FusionProxy, dict[str, Any] | None]:
    """The student ``train`` and ``distill`` fit: a fresh one of ``size``/``select``, or one holding
    ``init``'s weights. Returns (model, what provenance records of the start, or None)."""
    from edgefuse.model import create_model

    try:
        student = create_model(size, select=select)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--size") from None
    if not init:
        return student, None
    from edgefuse.checkpoint import load_model
    from edgefuse.errors import CheckpointError

    loaded = load_model(init)  # safetensors, names/shapes/dtypes checked: never unpickles
    try:
        student.load_state_dict(loaded.model.state_dict())
    except RuntimeError:
        form = f"size {size}" + (" with --select" if select else "")
        raise CheckpointError(f"{init}: --init is not a {form} student") from None
    # the start's own provenance travels along: `edgefuse info` shows the whole chain of a fine-tune
    start = {
        "checkpoint": loaded.info.path,
        "weights_sha256": loaded.info.weights_sha256,
        "provenance": loaded.info.provenance,
    }
    return student, start
