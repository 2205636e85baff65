"""``edgefuse distill``: train the student from a teacher ensemble cache (variance-weighted pixels + routed
feature alignment), on the same Trainer as ``edgefuse train``."""

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
    cli_command,
    console,
    student_from,
)


@cli_command
def distill(
    cache: Annotated[Path, typer.Option(help="Teacher cache (edgefuse teacher sample / ascend / import).")],
    data: Annotated[str, typer.Option(help="The paired folder the cache was made from.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Checkpoint to write (.safetensors).")],
    pixel_weighting: Annotated[str, typer.Option(help="uniform or variance (w = exp(−var/τ)).")] = "variance",
    routing: Annotated[
        str, typer.Option(help="none, feature (routed alignment) or all (unrouted).")
    ] = "feature",
    tau: Annotated[
        float, typer.Option(min=0.0, help="Pixel temperature τ (0: mean variance of train pairs).")
    ] = 0.0,
    tau_feat: Annotated[
        float, typer.Option(min=0.0, help="Routing temperature on feature variance (0: batch mean).")
    ] = 0.0,
    w_pixel: Annotated[
        float, typer.Option(min=0.0, help="Weight of the (weighted) L1 to the ensemble mean.")
    ] = 1.0,
    w_feat: Annotated[float, typer.Option(min=0.0, help="Weight of the feature alignment.")] = 0.05,
    w_ssim: Annotated[float, typer.Option(min=0.0, help="Weight of 1 − SSIM to the ensemble mean.")] = 0.1,
    w_source_ssim: Annotated[
        float, typer.Option(min=0.0, help="Weight of 1 − SSIM to the two sources (their local structure).")
    ] = 0.5,
    w_gradient: Annotated[
        float,
        typer.Option(
            min=0.0, help="Weight of the teacher-free edge term (|∇Y| towards the larger source's)."
        ),
    ] = 5.0,
    w_intensity: Annotated[
        float,
        typer.Option(min=0.0, help="Weight of the teacher-free intensity term (Y towards max of sources)."),
    ] = 1.0,
    w_base: Annotated[
        float,
        typer.Option(min=0.0, help="Weight of the teacher-free 8×8 block-mean brightness anchor."),
    ] = 0.0,
    night: NightOpt = 0.0,
    thermal_level: ThermalLevelOpt = 0.0,
    backbone: Annotated[str, typer.Option(help="prior, prior:DIR or timm:ARCH:WEIGHTS.")] = "prior",
    prior: Annotated[
        Path | None, typer.Option(help="Prior directory (default: the one the cache names).")
    ] = None,
    size: SizeOpt = "s",
    select: SelectOpt = False,
    epochs: EpochsOpt = 40,
    batch_size: BatchOpt = 16,
    crop: CropOpt = 256,
    repeat: RepeatOpt = 8,
    lr: LrOpt = 2e-3,
    val_fraction: ValFractionOpt = 0.2,
    seed: SeedOpt = 0,
    split_seed: SplitSeedOpt = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda (under torchrun: one GPU per process).")] = "cpu",
    workers: WorkersOpt = 2,
    resume: ResumeOpt = False,
    init: InitOpt = None,
) -> None:
    """Distil the student from the teacher ensemble: confidence-weighted pixels + routed features.

    A crop changed by --night or --thermal-level gets the teacher-free terms only (its teacher sample is of
    the pair as it is).
    """
    from edgefuse.data import find_pairs, split_indices
    from edgefuse.distill import DistillConfig, DistillDataset, DistillLoss, mean_variance
    from edgefuse.distributed import init_distributed, rank_and_world, shutdown_distributed
    from edgefuse.errors import DataError
    from edgefuse.teacher.cache import TeacherCache
    from edgefuse.training import TrainConfig, Trainer, seed_everything

    if crop % 16:
        raise typer.BadParameter("--crop must be a multiple of 16")
    cfg = DistillConfig(
        pixel_weighting=pixel_weighting,
        routing=routing,
        tau=tau,
        tau_feat=tau_feat,
        w_pixel=w_pixel,
        w_feat=w_feat,
        w_ssim=w_ssim,
        w_source_ssim=w_source_ssim,
        w_gradient=w_gradient,
        w_intensity=w_intensity,
        w_base=w_base,
    )
    need_samples = cfg.routing != "none"
    # every input check happens before a process group or a model exists
    source = find_pairs(data)
    teacher = TeacherCache(cache)
    train_idx, val_split = split_indices(source.pairs, val_fraction=val_fraction, seed=split_seed)
    train_stems = [source.pairs[i].stem for i in train_idx]
    val_stems = [source.pairs[i].stem for i in val_split]
    val_idx = [i for i in val_split if source.pairs[i].stem in teacher.pairs]
    teacher.check(source, train_idx, need_samples=need_samples)
    if len(val_idx) < len(val_stems):
        console.print(
            f"[yellow]note:[/] {len(val_stems) - len(val_idx)} validation pairs have no teacher entry"
        )
    prior_dir = prior or teacher.manifest.get("teacher", {}).get("prior")
    if need_samples and backbone == "prior" and not prior_dir:
        raise DataError(f"{cache}: external teacher cache; give --prior DIR or --backbone timm:ARCH:WEIGHTS")

    device = init_distributed(device)
    rank, world = rank_and_world()
    try:
        seed_everything(seed)
        tau_used = cfg.tau or mean_variance(teacher, train_stems)
        net = None
        if need_samples:
            from edgefuse.teacher.backbone import load_backbone

            net = load_backbone(backbone, prior_dir, device=device)
        train_set = DistillDataset(
            source,
            teacher,
            train_idx,
            crop=crop,
            train=True,
            seed=seed,
            samples=need_samples,
            repeat=repeat,
            night=night,
            thermal_level=thermal_level,
        )
        val_set = DistillDataset(
            source, teacher, val_idx, crop=crop, train=False, seed=seed, samples=need_samples
        )
        if rank == 0:
            console.print(
                f"distill: {source.name}: {len(train_idx)} train / {len(val_idx)} val pairs, K={teacher.k}, "
                f"pixels {cfg.pixel_weighting} (τ={tau_used:.3g}), routing {cfg.routing}"
                + (f" ({getattr(net, 'name', backbone)})" if net is not None else "")
                + (f", {world} processes" if world > 1 else "")
            )
        # made where it always was, after the backbone and the data: the same seed gives the same start
        student, start = student_from(size, select, init)
        provenance = {
            "method": f"distill (pixels {cfg.pixel_weighting}, routing {cfg.routing})",
            "data": f"{source.name} (real)",
            "train_pairs": train_stems,
            "val_pairs": val_stems,
            "crop": crop,
            "repeat": repeat,
            "night": night,
            "thermal_level": thermal_level,
            "distill": {**cfg.to_dict(), "tau_used": tau_used},
            "teacher_cache": {
                "path": str(teacher.root.resolve()),
                "manifest_sha256": teacher.sha256,
                "k": teacher.k,
                "teacher": teacher.manifest.get("teacher"),
            },
            "backbone": {
                "spec": backbone,
                "name": getattr(net, "name", None),
                "sha256": getattr(net, "sha256", None),
            }
            if net is not None
            else None,
            "init": start,
        }
        train_cfg = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, workers=workers
        )

        def report(epoch: int, logs: dict[str, float]) -> None:
            val = f", val {logs['val_loss']:.4f}" if "val_loss" in logs else ""
            console.print(f"epoch {epoch}: loss {logs['loss']:.4f}{val} ({logs['seconds']:.0f} s)")

        trainer = Trainer(
            student,
            DistillLoss(cfg, tau_used, net),
            train_set,
            out,
            train_cfg,
            val_set=val_set if len(val_set) else None,
            provenance=provenance,
            on_epoch=report,
        )
        path = trainer.fit(resume=resume)
        if rank == 0:
            console.print(f"[green]wrote[/] {path}")
    finally:
        shutdown_distributed()
