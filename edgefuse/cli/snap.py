"""``edgefuse snap``: a checkpoint whose convolution weights lie on the int8 grid of its int8 exports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgefuse.cli._common import check_writable, cli_command, console


@cli_command
def snap(
    out: Annotated[Path, typer.Option("-o", "--out", help="Checkpoint to write (.safetensors).")],
    checkpoint: Annotated[str, typer.Option(help="Checkpoint file or bundled name.")] = "fusionproxy-s",
) -> None:
    """Round the convolution weights to the symmetric per-channel int8 grid (scale max|w|/127).

    int8 exports then round nothing in the weights (TensorRT, ONNX Runtime u8s8, OpenVINO with the overflow
    fix off), which is where most int8 drift of this student comes from (docs/export.md). It changes the
    model: score the new checkpoint before shipping it.
    """
    from edgefuse import __version__
    from edgefuse.checkpoint import git_revision, load_model, save_checkpoint
    from edgefuse.snap import LEVELS, snap_to_int8_grid

    check_writable(out, "checkpoint")
    model, info = load_model(checkpoint)
    report = snap_to_int8_grid(model)
    provenance = dict(info.provenance or {})
    provenance["snapped"] = {  # the training provenance stays; this says what was done to its weights
        "from": {"checkpoint": info.path, "weights_sha256": info.weights_sha256},
        "edgefuse_version": __version__,
        "git_revision": git_revision(),
        "grid": f"symmetric int8 per output channel, scale max|w|/{LEVELS}, convolution weights only",
        "layers": report.layers,
        "max_relative_change": report.max_relative_change,
    }
    path = save_checkpoint(model, out, provenance=provenance)
    console.print(
        f"[green]wrote[/] {path}: {report.layers} convolutions snapped, largest change "
        f"{report.max_relative_change:.4f} of a channel's max|w|"
    )
