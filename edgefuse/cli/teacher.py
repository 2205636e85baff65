"""``edgefuse teacher train-prior`` and ``teacher sample``: train the luminance diffusion prior, and sample
the DDFM teacher ensemble into a cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgefuse.cli._common import cli_command, console
from edgefuse.cli._teacher import (
    BatchSize,
    CacheDevice,
    CacheOut,
    Channels,
    Crop,
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
from edgefuse.teacher.settings import Objective

if TYPE_CHECKING:
    from edgefuse.teacher.ddfm import SamplerConfig


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
    data: PairedData,
    out: CacheOut,
    k: SamplesPerPair = 6,
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
    seed: Seed = 0,
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
    save_samples: KeepSamples = True,
    limit: Limit = 0,
    max_batch: Annotated[int, typer.Option(min=0, help="Samples per UNet call (0: all K).")] = 0,
    device: CacheDevice = "cpu",
    precision: UnetPrecision = "bf16",
    resize_ir: ResizeIR = False,
    resume: ResumeCache = False,
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
