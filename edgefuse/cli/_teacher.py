"""What the ``edgefuse teacher`` commands share: the group, its progress bar, the denoiser trainers' options
and report, and the cache writers' torchrun wrapper; the commands live in teacher.py, teacher_import.py,
ascend.py and conditional.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefuse.cli._common import console

app = typer.Typer(
    help="Teachers: train-prior, sample (DDFM K-sample ensemble cache), ascend (metric-ascent), import, mix, "
    "train-cond / sample-cond (conditional diffusion teacher).",
    no_args_is_help=True,
)


def progress():  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )


# the options of both denoiser trainers (train-prior in cli/teacher.py, train-cond in cli/conditional.py)
Crop = Annotated[int, typer.Option(min=16, help="Square training crop size.")]
Channels = Annotated[str, typer.Option(help="UNet widths per level, comma-separated.")]
LayersPerBlock = Annotated[int, typer.Option(min=1)]
BatchSize = Annotated[int, typer.Option(min=1)]
LearningRate = Annotated[float, typer.Option(min=0.0)]
Steps = Annotated[int, typer.Option(min=1, help="Maximum optimiser steps.")]
Minutes = Annotated[float, typer.Option(min=0.0, help="Wall-clock budget (0: none); sizes the schedule.")]
SplitSeed = Annotated[int, typer.Option(help="Seed of the train/val split (the one `train` uses).")]
Seed = Annotated[int, typer.Option()]
TrainDevice = Annotated[str, typer.Option(help="cpu or cuda[:N].")]
Precision = Annotated[str, typer.Option(help="bf16, fp16 or fp32 (autocast on CUDA only).")]
Resume = Annotated[
    bool, typer.Option(help="Continue the schedule saved in <out>.state.pt by an earlier, time-limited call.")
]

# the options of the cache writers (sample, ascend, sample-cond; import shares the first ones)
PairedData = Annotated[Path, typer.Option(help="Paired folder to fuse.")]
CacheOut = Annotated[Path, typer.Option("-o", "--out", help="Cache directory to write.")]
SamplesPerPair = Annotated[
    int, typer.Option("--k", min=2, max=64, help="Samples per pair (seeds seed..seed+K-1).")
]
KeepSamples = Annotated[bool, typer.Option(help="Keep the K samples (feature routing needs them).")]
Limit = Annotated[int, typer.Option(min=0, help="Only the first N pairs (0: all).")]
CacheDevice = Annotated[str, typer.Option(help="cpu or cuda (under torchrun: one GPU per process).")]
UnetPrecision = Annotated[str, typer.Option(help="UNet autocast on CUDA: bf16, fp16 or fp32.")]
ResizeIR = Annotated[bool, typer.Option(help="Resize thermal frames to the visible size.")]
ResumeCache = Annotated[bool, typer.Option(help="Keep pairs already written by an interrupted run.")]


def unet_widths(channels: str, crop: int) -> tuple[int, ...]:
    """--channels as widths, checked against --crop (every level halves it)."""
    widths = tuple(int(c) for c in channels.split(",") if c.strip())
    if crop % 2 ** (len(widths) - 1):
        raise typer.BadParameter(
            f"--crop must be a multiple of {2 ** (len(widths) - 1)} for {len(widths)} levels"
        )
    return widths


def fit_with_bar(label: str, steps: int, out: Path, fit: Callable[[Callable[..., None]], dict]) -> None:
    """Run a denoiser trainer under a progress bar and say what it wrote."""
    with progress() as bar:
        task = bar.add_task(label, total=steps)

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, description=f"{label} loss {loss:.4f}")

        info = fit(on_step)
    console.print(
        f"[green]wrote[/] {out} ({info['steps']} of {info['schedule_steps']} steps"
        f"{'' if info['complete'] else ', resumable'}, {info['seconds']:.0f} s, "
        f"loss {info['final_loss_ema']:.4f}, sha256 {info['sha256'][:12]})"
    )


def write_cache(
    label: str,
    device: str,
    data: Path,
    resize_ir: bool,
    limit: int,
    k: int,
    run: Callable[[Any, str, Callable[[], None]], tuple | None],
) -> None:
    """A cache writer's command: ``run(pairs, device, on_pair)`` under torchrun (one GPU per process) and a
    progress bar shown on rank 0, then what rank 0 wrote."""
    from edgefuse.data import find_pairs
    from edgefuse.distributed import init_distributed, rank_and_world, shutdown_distributed

    dev = init_distributed(device)
    rank, _ = rank_and_world()
    try:
        source = find_pairs(data, resize_ir=resize_ir)
        total = min(len(source), limit or len(source))
        with progress() as bar:
            task = bar.add_task(f"{label} K={k}", total=total, visible=rank == 0)
            done = run(source, dev, lambda: bar.advance(task))
    finally:
        shutdown_distributed()
    if done is not None:
        path, meta = done
        per = meta["seconds_per_pair"]
        per_s = f", {per:.2f} s per pair" if per else ""
        console.print(f"[green]wrote[/] {path} ({total} pairs, K={k}{per_s})")
