"""``edgefuse fuse``: one pair, a paired folder, two videos, or (no inputs) the synthetic demo set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefuse.cli._common import cli_command, console
from edgefuse.errors import DataError

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def _panel(vis, ir, fused):  # numpy imported by the caller
    import numpy as np

    from edgefuse.inference import to_uint8

    ir3 = np.repeat(ir[..., None], 3, axis=2)
    return np.concatenate([to_uint8(vis), to_uint8(ir3), fused], axis=1)


def _save_png(img, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


@cli_command
def fuse(
    visible: Annotated[Path | None, typer.Argument(help="Visible image (or use --data / --visible).")] = None,
    thermal: Annotated[Path | None, typer.Argument(help="Thermal image.")] = None,
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Output PNG, folder (--data) or MP4 (videos).")
    ] = Path("fused"),
    data: Annotated[Path | None, typer.Option(help="Paired folder: fuse every pair, keep stems.")] = None,
    visible_video: Annotated[
        Path | None, typer.Option("--visible", help="Visible video (video extra).")
    ] = None,
    thermal_video: Annotated[
        Path | None, typer.Option("--thermal", help="Thermal video (video extra).")
    ] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint file or bundled name.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    side_by_side: Annotated[bool, typer.Option(help="Write VIS | IR | fused panels.")] = False,
    resize_ir: Annotated[
        bool, typer.Option(help="Resize thermal to the visible size if they differ.")
    ] = False,
    synthetic_pairs: Annotated[int, typer.Option(min=1, help="Pairs of the synthetic demo set.")] = 4,
) -> None:
    """Fuse visible + thermal into RGB with the student (any input size; output keeps the source size)."""
    from edgefuse.inference import fuse as fuse_arrays
    from edgefuse.inference import get_model

    model = get_model(checkpoint, device)
    if visible_video or thermal_video:
        if not (visible_video and thermal_video):
            raise DataError("video mode needs both --visible and --thermal")
        _fuse_video(model, visible_video, thermal_video, out, side_by_side)
        return
    if visible is not None or thermal is not None:
        if visible is None or thermal is None:
            raise DataError("give both VISIBLE and THERMAL images (or --data DIR)")
        if visible.suffix.lower() in VIDEO_EXTS:
            raise DataError(f"{visible}: looks like a video; use --visible/--thermal for videos")
        from edgefuse.data import read_thermal, read_visible

        vis, ir = read_visible(visible), read_thermal(thermal)
        if vis.shape[:2] != ir.shape[:2]:
            if not resize_ir:
                raise DataError(
                    f"{visible} is {vis.shape[1]}×{vis.shape[0]} but {thermal} is {ir.shape[1]}×{ir.shape[0]}"
                    " (use --resize-ir to resize the thermal frame)"
                )
            from edgefuse.inference import resize_gray

            ir = resize_gray(ir, vis.shape[:2])
        target = out if out.suffix else out / f"{visible.stem}.png"
        fused = fuse_arrays(vis, ir, model=model)
        from edgefuse.inference import to_uint8

        img = to_uint8(fused)
        _save_png(_panel(vis, ir, img) if side_by_side else img, target)
        console.print(f"[green]wrote[/] {target}")
        return
    _fuse_folder(model, data, out, side_by_side, resize_ir, synthetic_pairs)


def _fuse_folder(model, data: Path | None, out: Path, side_by_side: bool, resize_ir: bool, n: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from edgefuse.data import find_pairs, open_pairs
    from edgefuse.inference import fuse as fuse_arrays
    from edgefuse.inference import to_uint8

    source = open_pairs(None, n=n) if data is None else find_pairs(data, resize_ir=resize_ir)
    kind = "synthetic" if getattr(source, "synthetic", False) else "real"
    console.print(f"fusing {len(source)} pairs from {source.name} ({kind}) -> {out}/")
    out.mkdir(parents=True, exist_ok=True)
    infer_s = 0.0
    cols = (TextColumn("fuse"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]}"))
    with Progress(*cols, console=console) as bar:
        task = bar.add_task("fuse", total=len(source), fps="")
        for i, pair in enumerate(list[Any](source.pairs)):
            vis, ir = source[i]
            t0 = time.perf_counter()
            fused = to_uint8(fuse_arrays(vis, ir, model=model))
            infer_s += time.perf_counter() - t0
            _save_png(_panel(vis, ir, fused) if side_by_side else fused, out / f"{pair.stem}.png")
            bar.update(task, advance=1, fps=f"{(i + 1) / infer_s:.1f} FPS (model)")
    console.print(
        f"[green]wrote[/] {len(source)} images to {out}/ ({len(source) / max(infer_s, 1e-9):.1f} FPS)"
    )


def _fuse_video(model, vis_path: Path, ir_path: Path, out: Path, side_by_side: bool) -> None:
    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from edgefuse._optional import require
    from edgefuse.inference import fuse as fuse_arrays
    from edgefuse.inference import to_uint8

    cv2 = require("cv2")
    cap_v, cap_t = cv2.VideoCapture(str(vis_path)), cv2.VideoCapture(str(ir_path))
    for cap, p in ((cap_v, vis_path), (cap_t, ir_path)):
        if not cap.isOpened():
            raise DataError(f"{p}: cannot open video")
    fps = cap_v.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(min(cap_v.get(cv2.CAP_PROP_FRAME_COUNT), cap_t.get(cv2.CAP_PROP_FRAME_COUNT))) or None
    out = out if out.suffix else out.with_suffix(".mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    writer = None
    frames, infer_s = 0, 0.0
    cols = (TextColumn("fuse video"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]}"))
    try:
        with Progress(*cols, console=console) as bar:
            task = bar.add_task("video", total=total, fps="")
            while True:
                ok_v, fv = cap_v.read()
                ok_t, ft = cap_t.read()
                if not (ok_v and ok_t):
                    break
                vis = cv2.cvtColor(fv, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
                ir = cv2.cvtColor(ft, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
                if ir.shape != vis.shape[:2]:
                    ir = cv2.resize(ir, (vis.shape[1], vis.shape[0]), interpolation=cv2.INTER_LINEAR)
                t0 = time.perf_counter()
                fused = to_uint8(fuse_arrays(vis, ir, model=model))
                infer_s += time.perf_counter() - t0
                frame = _panel(vis, ir, fused) if side_by_side else fused
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                frames += 1
                bar.update(task, advance=1, fps=f"{frames / infer_s:.1f} FPS (model)")
    finally:
        cap_v.release()
        cap_t.release()
        if writer is not None:
            writer.release()
    if frames == 0:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{vis_path} / {ir_path}: no frames could be read")
    tmp.replace(out)
    console.print(f"[green]wrote[/] {out} ({frames} frames, {frames / max(infer_s, 1e-9):.1f} FPS model)")
