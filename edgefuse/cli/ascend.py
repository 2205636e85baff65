"""``edgefuse teacher ascend``: the metric-ascent teacher's cache (edgefuse.teacher.ascent). A module of its
own so that the teacher group's file stays small; it registers on the ``teacher`` command group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from edgefuse.cli._common import cli_command
from edgefuse.cli._teacher import (
    CacheDevice,
    CacheOut,
    KeepSamples,
    Limit,
    PairedData,
    ResizeIR,
    ResumeCache,
    SamplesPerPair,
    Seed,
    app,
    write_cache,
)


@app.command("ascend")
@cli_command
def ascend(
    data: PairedData,
    out: CacheOut,
    student: Annotated[
        str, typer.Option(help="Checkpoint whose form and start the teacher fits (default: the bundled one).")
    ] = "fusionproxy-s",
    k: SamplesPerPair = 3,
    seed: Seed = 0,
    steps: Annotated[int, typer.Option(min=1, max=10000, help="Adam steps per pair.")] = 60,
    lr: Annotated[float, typer.Option(min=1e-6, help="Adam learning rate on the coefficient maps.")] = 0.01,
    ssim_margin: Annotated[
        float, typer.Option(min=0.0, help="SSIM may fall this far below the start's before it is penalised.")
    ] = 0.015,
    ssim_weight: Annotated[float, typer.Option(min=0.0, help="Weight λ of the SSIM penalty.")] = 5.0,
    jitter: Annotated[
        float, typer.Option(min=0.0, help="Per-sample log-std of the Qabf weight (diversity).")
    ] = 0.3,
    loss_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Weight of a penalty on raising the student's own training loss (0: off; it limits the "
            "blotches the ascent makes in flat regions, docs/distillation.md).",
        ),
    ] = 0.0,
    save_samples: KeepSamples = True,
    keep_coefficients: Annotated[
        bool,
        typer.Option(
            help="Store each pair's start and climbed 1/4-resolution coefficient maps in its cache entry "
            "(float32): the targets of `teacher train-cond --target coefficients`."
        ),
    ] = False,
    limit: Limit = 0,
    dtype: Annotated[
        str,
        typer.Option(
            help="float64 or float32 for the ascent's arithmetic (float32 is faster on a GPU, where TF32 "
            "convolutions stay off; on a RoadScene training pair it matched float64's VIF/Qabf/SSIM to 5e-4)."
        ),
    ] = "float64",
    device: CacheDevice = "cpu",
    resize_ir: ResizeIR = False,
    resume: ResumeCache = False,
) -> None:
    """Metric-ascent teacher: fit the student's form to each pair by climbing VIF and Qabf (SSIM held).

    Writes the same cache as `sample` (K samples per pair, their mean and variance) for `distill`.
    """
    import torch

    from edgefuse.checkpoint import load_model
    from edgefuse.errors import DataError
    from edgefuse.teacher.ascent import AscentConfig, ascend_coefficients
    from edgefuse.teacher.ensemble import write_ensemble

    if dtype not in ("float64", "float32"):
        raise DataError(f"--dtype {dtype!r}: choose float64 or float32")
    cfg = AscentConfig(
        steps=steps,
        lr=lr,
        ssim_margin=ssim_margin,
        ssim_weight=ssim_weight,
        jitter=jitter,
        loss_weight=loss_weight,
    )
    seeds = [seed + j for j in range(k)]

    def run(source: Any, dev: str, on_pair: Callable[[], None]) -> tuple | None:
        loaded = load_model(student, map_location=str(dev))
        model = loaded.model.eval().requires_grad_(False)
        teacher = {
            "kind": "ascent",
            "student": loaded.info.path,
            "student_weights_sha256": loaded.info.weights_sha256,
            "ascent": cfg.to_dict(),
            "dtype": dtype,
            **({"coefficients": True} if keep_coefficients else {}),
        }

        def fuse_pair(v: torch.Tensor, t: torch.Tensor) -> Any:
            start, coef, fused = ascend_coefficients(model, v, t, seeds, cfg, getattr(torch, dtype))
            if not keep_coefficients:
                return fused
            return fused, {"start": start[0].cpu().numpy(), "coefficients": coef.cpu().numpy()}

        return write_ensemble(
            source,
            out,
            teacher,
            seeds,
            fuse_pair,
            torch.device(dev),
            limit=limit,
            save_samples=save_samples,
            resume=resume,
            on_pair=on_pair,
        )

    write_cache("ascent", device, data, resize_ir, limit, k, run)
