"""``edgefuse teacher``: train the luminance diffusion prior, sample the DDFM teacher ensemble into a cache,
or import an external teacher's samples into the same cache format."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgefuse.cli._common import cli_command, console
from edgefuse.teacher.settings import Objective

if TYPE_CHECKING:
    from edgefuse.teacher.ddfm import SamplerConfig

app = typer.Typer(
    help="Teachers: train-prior, sample (DDFM K-sample ensemble cache), ascend (metric-ascent), import, "
    "train-cond / sample-cond (conditional diffusion teacher).",
    no_args_is_help=True,
)


def _progress():  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )


# the options of both denoiser trainers (train-prior here, train-cond in cli/conditional.py)
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
    with _progress() as bar:
        task = bar.add_task(label, total=steps)

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, description=f"{label} loss {loss:.4f}")

        info = fit(on_step)
    console.print(
        f"[green]wrote[/] {out} ({info['steps']} of {info['schedule_steps']} steps"
        f"{'' if info['complete'] else ', resumable'}, {info['seconds']:.0f} s, "
        f"loss {info['final_loss_ema']:.4f}, sha256 {info['sha256'][:12]})"
    )


@app.command("train-prior")
@cli_command
def train_prior(
    data: Annotated[
        list[Path], typer.Option(help="Paired folder(s); only their training splits are used (both frames).")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Prior directory to write (diffusers layout).")],
    crop: Crop = 64,
    channels: Channels = "32,64,128,128",
    layers_per_block: LayersPerBlock = 2,
    batch_size: BatchSize = 64,
    lr: LearningRate = 5e-4,
    steps: Steps = 20000,
    minutes: Minutes = 0.0,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.9, help="Held-out pairs, never seen.")] = 0.2,
    split_seed: SplitSeed = 0,
    seed: Seed = 0,
    device: TrainDevice = "cpu",
    precision: Precision = "bf16",
    resume: Resume = False,
) -> None:
    """Train the unconditional luminance prior (diffusers UNet2DModel, ε-prediction, DDPM schedule).

    Frames: the visible and the thermal luminance of every training-split pair of each --data folder.
    With --minutes, the schedule is sized to that budget; a call with --resume continues it for another.
    """
    from edgefuse.data import find_pairs, split_indices
    from edgefuse.teacher.prior import PriorTrainConfig, luminance_frames
    from edgefuse.teacher.prior import train_prior as fit

    widths = unet_widths(channels, crop)
    frames, prov_sets = [], []
    for folder in data:
        source = find_pairs(folder)
        train_idx, val_idx = split_indices(source.pairs, val_fraction=val_fraction, seed=split_seed)
        frames += luminance_frames(source, train_idx)
        prov_sets.append((source, train_idx, val_idx))
        console.print(
            f"prior data: {source.name}: {len(train_idx)} training pairs ({2 * len(train_idx)} frames)"
        )
    cfg = PriorTrainConfig(
        crop=crop,
        channels=widths,
        layers_per_block=layers_per_block,
        batch_size=batch_size,
        lr=lr,
        max_steps=steps,
        minutes=minutes,
        seed=seed,
        device=device,
        precision=precision,
    )
    prov = {
        "data": ",".join(src.name for src, _, _ in prov_sets),
        "data_root": [str(src.root.resolve()) for src, _, _ in prov_sets],
        "train_stems": [src.pairs[i].stem for src, tr, _ in prov_sets for i in tr],
        "val_stems": [src.pairs[i].stem for src, _, va in prov_sets for i in va],
        "split_seed": split_seed,
    }
    fit_with_bar(
        "prior",
        steps,
        out,
        lambda on_step: fit(frames, out, cfg, provenance=prov, on_step=on_step, resume=resume),
    )


@app.command("sample")
@cli_command
def sample(
    prior: Annotated[
        Path, typer.Option(help="Prior directory (edgefuse train-prior or any diffusers UNet).")
    ],
    data: Annotated[Path, typer.Option(help="Paired folder to fuse.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Cache directory to write.")],
    k: Annotated[
        int, typer.Option("--k", min=2, max=64, help="Samples per pair (seeds seed..seed+K-1).")
    ] = 6,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Sampler settings from a JSON file (scripts/tune_teacher.py output or a SamplerConfig "
            "dict); the options below are then ignored."
        ),
    ] = None,
    objective: Annotated[
        Objective, typer.Option(help="Fusion objective: salience (default) or ddfm (thermal intensities).")
    ] = Objective.SALIENCE,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="DDIM steps.")] = 10,
    seed: Annotated[int, typer.Option()] = 0,
    eta: Annotated[float, typer.Option(min=0.0, max=1.0, help="DDIM eta (> 0: stochastic DDIM).")] = 0.5,
    phi: Annotated[
        float,
        typer.Option(min=0.0, help="Weight φ of the gradient term (tuned: 0; DDFM's objective used 3)."),
    ] = 0.0,
    prior_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="μ: pull of the prior's x0 in the EM step. Tuned on training pairs with a 150-s prior: 0 "
            "(every μ > 0 lowered VIF, Qabf and SSIM); at 0 the UNet is skipped.",
        ),
    ] = 0.0,
    em_iters: Annotated[int, typer.Option(min=1, max=100, help="EM iterations per DDIM step.")] = 3,
    softness: Annotated[float, typer.Option(min=1e-3, help="τ of the salience weight (tuned).")] = 0.06,
    blur: Annotated[int, typer.Option(min=0, max=64, help="Box-blur radius before the salience test.")] = 9,
    grad_power: Annotated[
        float, typer.Option(min=0.0, help="0: larger source gradient; p > 0: |∇|^p-weighted blend.")
    ] = 0.0,
    jitter: Annotated[float, typer.Option(min=0.0, help="Per-sample salience offset std (diversity).")] = 0.1,
    phi_jitter: Annotated[float, typer.Option(min=0.0, help="Per-sample log-std of φ (diversity).")] = 0.3,
    save_samples: Annotated[
        bool, typer.Option(help="Keep the K samples (feature routing needs them).")
    ] = True,
    limit: Annotated[int, typer.Option(min=0, help="Only the first N pairs (0: all).")] = 0,
    max_batch: Annotated[int, typer.Option(min=0, help="Samples per UNet call (0: all K).")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda (under torchrun: one GPU per process).")] = "cpu",
    precision: Annotated[str, typer.Option(help="UNet autocast on CUDA: bf16, fp16 or fp32.")] = "bf16",
    resize_ir: Annotated[bool, typer.Option(help="Resize thermal frames to the visible size.")] = False,
    resume: Annotated[bool, typer.Option(help="Keep pairs already written by an interrupted run.")] = False,
) -> None:
    """Fuse every pair K times with the diffusion teacher; write mean, variance and samples per pair."""
    from edgefuse.teacher.ddfm import EMConfig, SamplerConfig
    from edgefuse.teacher.ensemble import sample_ensemble
    from edgefuse.teacher.prior import Prior

    if config is not None:
        cfg = _sampler_config(config, max_batch)
    else:
        em = EMConfig(
            objective=objective,
            phi=phi,
            prior_weight=prior_weight,
            iters=em_iters,
            softness=softness,
            blur=blur,
            grad_power=grad_power,
            jitter=jitter,
            phi_jitter=phi_jitter,
        )
        cfg = SamplerConfig(steps=steps, eta=eta, em=em, max_batch=max_batch)
    write_cache(
        "teacher",
        device,
        data,
        resize_ir,
        limit,
        k,
        lambda source, dev, on_pair: sample_ensemble(
            Prior.load(prior, device=dev, precision=precision),
            source,
            out,
            cfg,
            [seed + j for j in range(k)],
            precision=precision,
            limit=limit,
            save_samples=save_samples,
            resume=resume,
            on_pair=on_pair,
        ),
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
        with _progress() as bar:
            task = bar.add_task(f"{label} K={k}", total=total, visible=rank == 0)
            done = run(source, dev, lambda: bar.advance(task))
    finally:
        shutdown_distributed()
    if done is not None:
        path, meta = done
        per = meta["seconds_per_pair"]
        per_s = f", {per:.2f} s per pair" if per else ""
        console.print(f"[green]wrote[/] {path} ({total} pairs, K={k}{per_s})")


def _sampler_config(path: Path, max_batch: int) -> SamplerConfig:
    from edgefuse.errors import DataError
    from edgefuse.teacher.ddfm import SamplerConfig

    try:
        raw = json.loads(path.read_text())
        raw = raw["best"]["config"] if "best" in raw else raw
        cfg = SamplerConfig.from_dict({**raw, "max_batch": max_batch})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a sampler config ({exc})") from None
    return cfg


@app.command("import")
@cli_command
def import_samples(
    samples: Annotated[Path, typer.Option(help="External teacher output: <stem>/*.png or <run>/<stem>.png.")],
    data: Annotated[Path, typer.Option(help="The paired folder those samples fuse.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Cache directory to write.")],
    save_samples: Annotated[
        bool, typer.Option(help="Keep the K samples (feature routing needs them).")
    ] = True,
    name: Annotated[str, typer.Option(help="Teacher name recorded in the manifest.")] = "external",
) -> None:
    """Build a teacher cache from any teacher's K fused samples per pair."""
    import numpy as np

    from edgefuse.data import find_pairs, read_visible
    from edgefuse.errors import DataError
    from edgefuse.teacher.cache import (
        ensemble_stats,
        external_samples,
        pair_size,
        write_entry,
        write_manifest,
    )

    source = find_pairs(data)
    found = external_samples(samples, [p.stem for p in source.pairs])
    k = len(next(iter(found.values())))
    if k < 2:
        raise DataError(f"{samples}: {k} sample per pair; an ensemble needs K >= 2")
    index = {p.stem: i for i, p in enumerate(source.pairs)}
    entries = {}
    with _progress() as bar:
        task = bar.add_task(f"import K={k}", total=len(found))
        for stem, files in sorted(found.items()):
            hw = pair_size(source, index[stem])
            imgs = [read_visible(f) for f in files]
            bad = [f for f, im in zip(files, imgs, strict=True) if im.shape[:2] != hw]
            if bad:
                got = imgs[files.index(bad[0])].shape
                raise DataError(f"{bad[0]}: sample is {got[1]}×{got[0]} but pair {stem!r} is {hw[1]}×{hw[0]}")
            mean, var, ys = ensemble_stats(np.stack(imgs))
            entries[stem] = write_entry(out, stem, mean, var, ys if save_samples else None)
            bar.advance(task)
    meta = {
        "teacher": {"kind": "external", "name": name, "samples": str(Path(samples).resolve())},
        "k": k,
        "seeds": None,
        "has_samples": save_samples,
        "data": {"name": source.name, "root": str(source.root.resolve())},
        "world_size": 1,
        "seconds_per_pair": None,
    }
    path = write_manifest(out, entries, meta)
    missing = len(source) - len(entries)
    note = f"; {missing} pairs of {source.name} have no samples" if missing else ""
    console.print(f"[green]wrote[/] {path} ({len(entries)} pairs, K={k}{note})")
