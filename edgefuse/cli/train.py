"""``edgefuse train``: the teacher-free baseline student."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgefuse.cli._common import (
    BatchOpt,
    CropOpt,
    EpochsOpt,
    InitOpt,
    LrOpt,
    NightOpt,
    RepeatOpt,
    ResumeOpt,
    SeedOpt,
    SelectOpt,
    SizeOpt,
    SplitSeedOpt,
    ThermalLevelOpt,
    ValFractionOpt,
    WorkersOpt,
    check_writable,
    cli_command,
    console,
    student_from,
    warn_unpaired,
)


@cli_command
def train(
    out: Annotated[Path, typer.Option("-o", "--out", help="Checkpoint to write (.safetensors).")],
    data: Annotated[
        str | None, typer.Option(help="Paired folder (vi/ir, …). Default: the synthetic set (labelled so).")
    ] = None,
    size: SizeOpt = "s",
    select: SelectOpt = False,
    epochs: EpochsOpt = 40,
    batch_size: BatchOpt = 16,
    crop: CropOpt = 256,
    repeat: RepeatOpt = 8,
    lr: LrOpt = 2e-3,
    val_fraction: ValFractionOpt = 0.2,
    # defaults: the teacher-free recipe (bundled until the tenth session; the bundled student's teacher starts
    # at it, docs/results/bundled.md); edgefuse.losses.fusion_loss keeps the classic 1 / 5 / 1 weights
    w_intensity: Annotated[float, typer.Option(min=0.0, help="Weight of the max-intensity term.")] = 0.5,
    w_gradient: Annotated[float, typer.Option(min=0.0, help="Weight of the max-gradient term.")] = 10.0,
    w_ssim: Annotated[float, typer.Option(min=0.0, help="Weight of the SSIM term.")] = 1.0,
    w_base: Annotated[
        float, typer.Option(min=0.0, help="Weight of the 8×8 block-mean brightness anchor (max of sources).")
    ] = 0.0,
    night: NightOpt = 0.5,
    thermal_level: ThermalLevelOpt = 0.5,
    night_noise: Annotated[
        float,
        typer.Option(min=0.0, max=0.2, help="Sensor-noise std bound added to --night frames (std U(0, x))."),
    ] = 0.0,
    seed: SeedOpt = 0,
    split_seed: SplitSeedOpt = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    workers: WorkersOpt = 2,
    synthetic_pairs: Annotated[int, typer.Option(min=2, help="Pairs generated when --data is absent.")] = 16,
    resume: ResumeOpt = False,
    init: InitOpt = None,
) -> None:
    """Train a student with the unsupervised fusion objective (intensity max, gradient max, SSIM)."""
    import torch

    from edgefuse.data import FusionDataset, open_pairs, split_indices
    from edgefuse.distributed import init_distributed, shutdown_distributed
    from edgefuse.losses import fusion_loss
    from edgefuse.training import TrainConfig, Trainer, seed_everything

    if crop % 16:
        raise typer.BadParameter("--crop must be a multiple of 16", param_hint="--crop")
    student, start = student_from(size, select, init)
    # before the data loads and the epochs run: a read-only or invalid -o must not cost a training run
    check_writable(out, "checkpoint")
    check_writable(out.with_name(out.name + ".state.pt"), "training state")
    device = init_distributed(device)  # joins the process group under torchrun; a no-op otherwise
    seed_everything(seed)
    source = open_pairs(data, n=synthetic_pairs, seed=seed)
    warn_unpaired(source)
    train_idx, val_idx = split_indices(source.pairs, val_fraction=val_fraction, seed=split_seed)
    # each pair listed `repeat` times: more random crops per epoch from a small real set
    train_set = FusionDataset(
        source,
        train_idx * repeat,
        crop=crop,
        train=True,
        seed=seed,
        cache=True,
        night=night,
        night_noise=night_noise,
        thermal_level=thermal_level,
    )
    val_set = FusionDataset(source, val_idx, crop=crop, train=False, seed=seed)
    label = f"{source.name} ({'synthetic' if getattr(source, 'synthetic', False) else 'real'})"
    console.print(f"data: {label}: {len(train_idx)} train / {len(val_idx)} val pairs")

    def loss_fn(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        fused = model(batch["visible"], batch["thermal"])
        weights = {"w_intensity": w_intensity, "w_gradient": w_gradient, "w_ssim": w_ssim, "w_base": w_base}
        return fusion_loss(fused, batch["visible"], batch["thermal"], **weights)

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, workers=workers)
    provenance = {
        "method": "train (teacher-free: intensity max + gradient max + SSIM)",
        "data": label,
        "train_pairs": [source.pairs[i].stem for i in train_idx],
        "val_pairs": [source.pairs[i].stem for i in val_idx],
        "crop": crop,
        "repeat": repeat,
        "loss_weights": {"intensity": w_intensity, "gradient": w_gradient, "ssim": w_ssim, "base": w_base},
        "night": night,
        "night_noise": night_noise,
        "thermal_level": thermal_level,
        "init": start,
    }

    def report(epoch: int, logs: dict[str, float]) -> None:
        val = f", val {logs['val_loss']:.4f}" if "val_loss" in logs else ""
        console.print(f"epoch {epoch}: loss {logs['loss']:.4f}{val} ({logs['seconds']:.0f} s)")

    trainer = Trainer(
        student,
        loss_fn,
        train_set,
        out,
        cfg,
        val_set=val_set,
        provenance=provenance,
        on_epoch=report,
    )
    try:
        path = trainer.fit(resume=resume)
    finally:
        shutdown_distributed()
    console.print(f"[green]wrote[/] {path}")
