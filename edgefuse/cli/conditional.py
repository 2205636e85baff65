"""``edgefuse teacher train-cond`` / ``sample-cond``: the conditional diffusion teacher
(edgefuse.teacher.conditional). A module of its own so that the teacher group's file stays small; it
registers on the ``teacher`` command group."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefuse.cli._common import cli_command, console
from edgefuse.cli._teacher import (
    BatchSize,
    CacheDevice,
    CacheOut,
    Channels,
    KeepSamples,
    LayersPerBlock,
    LearningRate,
    Limit,
    Minutes,
    PairedData,
    Precision,
    ResizeIR,
    Resume,
    ResumeCache,
    SamplesPerPair,
    Seed,
    SplitSeed,
    Steps,
    TrainDevice,
    UnetPrecision,
    app,
    fit_with_bar,
    unet_widths,
    write_cache,
)


@app.command("train-cond")
@cli_command
def train_cond(
    data: Annotated[
        Path, typer.Option(help="Paired folder the cache fuses; only its training split is used.")
    ],
    cache: Annotated[
        Path,
        typer.Option(
            help="Teacher cache whose samples are the targets (any teacher; with --target coefficients an "
            "ascent cache written with --keep-coefficients, whose start checkpoint must still be there)."
        ),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Model directory to write (diffusers layout).")],
    crop: Annotated[
        int,
        typer.Option(
            min=4, help="Square training crop size (with --target coefficients: on the 1/4-resolution grid)."
        ),
    ] = 64,
    channels: Channels = "32,64,128,128",
    layers_per_block: LayersPerBlock = 2,
    batch_size: BatchSize = 64,
    lr: LearningRate = 5e-4,
    steps: Steps = 20000,
    minutes: Minutes = 0.0,
    val_fraction: Annotated[
        float,
        typer.Option(min=0.0, max=0.9, help="Held-out pairs, never seen (0 for a folder of training pairs)."),
    ] = 0.2,
    split_seed: SplitSeed = 0,
    seed: Seed = 0,
    prediction: Annotated[
        str,
        typer.Option(
            help="What the UNet predicts: v_prediction, epsilon or sample (x0). ε divides its error by √ᾱ "
            "at high noise, where the model must already say what the fused image is."
        ),
    ] = "v_prediction",
    target: Annotated[
        str,
        typer.Option(
            help="What is denoised: residual (fused minus visible luminance: the visible texture passes "
            "through, as in the student's form), fused (the fused luminance: the model redraws texture) or "
            "coefficients (the student's 1/4-resolution coefficient maps, from an ascent cache written with "
            "--keep-coefficients: every sample keeps the student's form)."
        ),
    ] = "residual",
    device: TrainDevice = "cpu",
    precision: Precision = "bf16",
    resume: Resume = False,
) -> None:
    """Train a conditional diffusion teacher (the Diff-IF route) on a teacher cache's samples.

    A UNet denoises the fused luminance (by default its difference from the visible luminance) given the
    visible luminance and the thermal frame (v-prediction by default, DDPM schedule, the prior's training
    loop); its targets are the cache's K samples per training pair, so it learns the teacher's
    distribution. With --target coefficients it denoises the ascent teacher's coefficient maps instead, given
    the sources and the ascent's start maps at 1/4 resolution. Sample it with `teacher sample-cond`.
    """
    from edgefuse.data import find_pairs, split_indices
    from edgefuse.teacher import coefficient
    from edgefuse.teacher.cache import TeacherCache
    from edgefuse.teacher.conditional import TARGETS, train_conditional, training_items
    from edgefuse.teacher.denoiser import PREDICTIONS, DenoiserConfig

    if prediction not in PREDICTIONS:
        raise typer.BadParameter(f"--prediction must be one of {', '.join(PREDICTIONS)}")
    targets = (*TARGETS, coefficient.TARGET)
    if target not in targets:
        raise typer.BadParameter(f"--target must be one of {', '.join(targets)}")
    widths = unet_widths(channels, crop)
    source = find_pairs(data)
    teacher_cache = TeacherCache(cache)
    train_idx, val_idx = split_indices(source.pairs, val_fraction=val_fraction, seed=split_seed)
    coef = target == coefficient.TARGET
    start = coefficient.start_checkpoint(teacher_cache) if coef else None
    read_items = coefficient.coefficient_items if coef else training_items
    items: list = read_items(source, teacher_cache, train_idx)
    console.print(
        f"conditional teacher data: {source.name}: {len(items)} training pairs, K={teacher_cache.k}"
    )
    cfg = DenoiserConfig(
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
        prediction=prediction,
    )
    prov = {
        "data": source.name,
        "data_root": str(source.root.resolve()),
        "cache": str(teacher_cache.root.resolve()),
        "cache_sha256": teacher_cache.sha256,
        "cache_teacher": teacher_cache.manifest.get("teacher"),
        "train_stems": [source.pairs[i].stem for i in train_idx],
        "val_stems": [source.pairs[i].stem for i in val_idx],
        "split_seed": split_seed,
    }

    def fit(on_step: Callable[..., None]) -> dict:
        if start is not None:
            prov["start"] = str(start)
            return coefficient.train_coefficients(items, out, cfg, start, prov, on_step, resume)
        return train_conditional(
            items, out, cfg, provenance=prov, on_step=on_step, resume=resume, target=target
        )

    fit_with_bar("conditional teacher", steps, out, fit)


@app.command("sample-cond")
@cli_command
def sample_cond(
    model: Annotated[Path, typer.Option(help="Conditional teacher directory (teacher train-cond).")],
    data: PairedData,
    out: CacheOut,
    k: SamplesPerPair = 6,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="DDIM steps.")] = 20,
    eta: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="DDIM eta (1: DDPM-like, the samples spread most).")
    ] = 1.0,
    seed: Seed = 0,
    save_samples: KeepSamples = True,
    limit: Limit = 0,
    device: CacheDevice = "cpu",
    precision: UnetPrecision = "bf16",
    resize_ir: ResizeIR = False,
    resume: ResumeCache = False,
    guide_steps: Annotated[
        int,
        typer.Option(
            min=0,
            help="Coefficient teachers only: Adam steps of the metric ascent on every DDIM step's clean "
            "estimate (DDFM's likelihood step; the ascent settings its targets were climbed with). 0: off.",
        ),
    ] = 0,
    polish_steps: Annotated[
        int,
        typer.Option(
            min=0,
            help="Coefficient teachers only: Adam steps of the same metric ascent from each finished sample "
            "(the likelihood step once, at the end). 0: off.",
        ),
    ] = 0,
) -> None:
    """Fuse every pair K times with the conditional teacher; write mean, variance and samples per pair."""
    from edgefuse.errors import DataError
    from edgefuse.teacher.coefficient import CoefficientTeacher, load_conditional
    from edgefuse.teacher.conditional import sample_conditional_ensemble

    def teacher(dev: str) -> Any:
        loaded = load_conditional(model, device=dev, precision=precision)
        if not guide_steps and not polish_steps:
            return loaded
        if not isinstance(loaded, CoefficientTeacher):
            raise DataError(
                "--guide-steps / --polish-steps: for coefficient teachers only "
                "(train-cond --target coefficients)"
            )
        return loaded.guided(guide_steps, polish_steps)

    write_cache(
        "conditional teacher",
        device,
        data,
        resize_ir,
        limit,
        k,
        lambda source, dev, on_pair: sample_conditional_ensemble(
            teacher(dev),
            source,
            out,
            [seed + j for j in range(k)],
            steps=steps,
            eta=eta,
            limit=limit,
            save_samples=save_samples,
            resume=resume,
            on_pair=on_pair,
        ),
    )
