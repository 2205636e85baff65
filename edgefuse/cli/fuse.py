"""``edgefuse fuse``: one pair, a paired folder, two videos, or (no inputs) the synthetic demo set.

Nothing is lost: an output never replaces one of the inputs, never replaces an existing file without
``--overwrite``, and is written atomically (a temporary file beside it, then a rename), so a failed write
(full disk, Ctrl-C) leaves the previous file whole. Output paths are checked before the model runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefuse.cli._common import (
    atomic_path,
    check_folder_writable,
    cli_command,
    console,
    list_names,
    progress,
    warn,
    warn_unpaired,
)
from edgefuse.errors import DataError

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
IMAGE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
ASPECT_TOLERANCE = 0.01  # relative; RoadScene-style crops differ by a pixel or two


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def plan_outputs(targets: list[Path], inputs: list[Path], overwrite: bool) -> None:
    """Refuse, before any work, outputs that would replace an input or (without --overwrite) a file.

    An input is recognised by its resolved path (symlinks, ``..``) and by its inode (hard links).
    """
    by_path = {p.resolve(): p for p in inputs}
    by_inode = {fid: p for p in inputs if (fid := _file_id(p)) is not None}
    for target in targets:
        hit = by_path.get(target.resolve())
        if hit is None and (fid := _file_id(target)) is not None:
            hit = by_inode.get(fid)
        if hit is not None:
            raise DataError(f"{target}: is the input {hit}; refusing to write over it (choose another -o)")
        if target.is_dir():
            raise DataError(f"{target}: is a folder; cannot write the fused image there")
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        what = f"{existing[0]} already exists"
        if len(existing) > 1:
            what = f"{existing[0]} and {len(existing) - 1} other output(s) already exist"
        raise DataError(f"{what}; pass --overwrite to replace (inputs are never replaced)")
    for folder in sorted({t.parent for t in targets}):
        check_folder_writable(folder)


def write_image(img: Any, path: Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format=IMAGE_FORMATS[path.suffix.lower()])


def _image_target(path: Path) -> Path:
    if path.suffix.lower() not in IMAGE_FORMATS:
        raise DataError(f"{path}: unknown image type; use one of {', '.join(sorted(IMAGE_FORMATS))}")
    return path


def _check_aspect(vis_wh: tuple[int, int], ir_wh: tuple[int, int], what: str) -> None:
    (vw, vh), (tw, th) = vis_wh, ir_wh
    if abs((vw / vh) / (tw / th) - 1.0) > ASPECT_TOLERANCE:
        warn(
            f"{what}: thermal {tw}×{th} (aspect {tw / th:.3f}) is stretched to the visible {vw}×{vh} "
            f"(aspect {vw / vh:.3f}); crop it to the visible field of view for a registered pair"
        )


def _size_mismatch(what: str, vis_wh: tuple[int, int], ir_wh: tuple[int, int]) -> DataError:
    return DataError(
        f"{what}: visible is {vis_wh[0]}×{vis_wh[1]} but thermal is {ir_wh[0]}×{ir_wh[1]} "
        "(use --resize-ir to resize the thermal frame)"
    )


def _panel(vis, ir, fused):  # numpy imported by the caller
    import numpy as np

    from edgefuse.inference import to_uint8

    ir3 = np.repeat(ir[..., None], 3, axis=2)
    return np.concatenate([to_uint8(vis), to_uint8(ir3), fused], axis=1)


@cli_command
def fuse(
    visible: Annotated[Path | None, typer.Argument(help="Visible image (or use --data / --visible).")] = None,
    thermal: Annotated[Path | None, typer.Argument(help="Thermal image.")] = None,
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Output image, folder (--data) or MP4 (videos).")
    ] = Path("fused"),
    data: Annotated[Path | None, typer.Option(help="Paired folder: fuse every pair, keep stems.")] = None,
    visible_video: Annotated[
        Path | None, typer.Option("--visible", help="Visible video (video extra).")
    ] = None,
    thermal_video: Annotated[
        Path | None, typer.Option("--thermal", help="Thermal video (video extra).")
    ] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint file or bundled name.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    side_by_side: Annotated[bool, typer.Option(help="Write VIS | IR | fused panels.")] = False,
    resize_ir: Annotated[
        bool, typer.Option(help="Resize thermal to the visible size if they differ (warns on aspect change).")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs (never an input).")] = False,
    synthetic_pairs: Annotated[int, typer.Option(min=1, help="Pairs of the synthetic demo set.")] = 4,
) -> None:
    """Fuse visible + thermal into RGB with the student (any input size; output keeps the source size).

    Frames above 4 MP run tile by tile (bounded memory); above 100 MP they are refused.
    """
    if visible_video or thermal_video:
        if not (visible_video and thermal_video):
            raise DataError("video mode needs both --visible and --thermal")
        _fuse_video(visible_video, thermal_video, out, checkpoint, device, side_by_side, resize_ir, overwrite)
        return
    if visible is not None or thermal is not None:
        if visible is None or thermal is None:
            raise DataError("give both VISIBLE and THERMAL images (or --data DIR)")
        if data is not None:
            raise DataError("give either VISIBLE THERMAL or --data DIR, not both")
        _fuse_pair(visible, thermal, out, checkpoint, device, side_by_side, resize_ir, overwrite)
        return
    _fuse_folder(data, out, checkpoint, device, side_by_side, resize_ir, overwrite, synthetic_pairs)


def _fuse_pair(
    visible: Path,
    thermal: Path,
    out: Path,
    checkpoint: str | None,
    device: str,
    side_by_side: bool,
    resize_ir: bool,
    overwrite: bool,
) -> None:
    for path in (visible, thermal):
        if path.suffix.lower() in VIDEO_EXTS:
            raise DataError(f"{path}: looks like a video; use --visible/--thermal for videos")
    for path in (visible, thermal):
        if not path.is_file():
            raise DataError(f"{path}: image file not found")
    target = _image_target(out if out.suffix else out / f"{visible.stem}.png")
    plan_outputs([target], [visible, thermal], overwrite)
    from edgefuse.data import read_thermal, read_visible
    from edgefuse.inference import fuse as fuse_arrays
    from edgefuse.inference import get_model, resize_gray, to_uint8

    vis, ir = read_visible(visible), read_thermal(thermal)
    vis_wh, ir_wh = (vis.shape[1], vis.shape[0]), (ir.shape[1], ir.shape[0])
    if vis_wh != ir_wh:
        if not resize_ir:
            raise _size_mismatch(f"{visible} / {thermal}", vis_wh, ir_wh)
        _check_aspect(vis_wh, ir_wh, f"{thermal}")
        ir = resize_gray(ir, vis.shape[:2])
    model = get_model(checkpoint, device)
    img = to_uint8(fuse_arrays(vis, ir, model=model))
    write_image(_panel(vis, ir, img) if side_by_side else img, target)
    console.print(f"[green]wrote[/] {target}")


def _check_folder_sizes(source: Any, resize_ir: bool) -> None:
    """Header-only pass over a real folder: a size mismatch stops the run before anything is written."""
    from PIL import Image

    mismatched, stretched = [], []
    for pair in source.pairs:
        try:
            with Image.open(pair.visible) as v, Image.open(pair.thermal) as t:
                vis_wh, ir_wh = v.size, t.size
        except OSError:
            continue  # unreadable files fail with their own message when decoded
        if vis_wh != ir_wh:
            mismatched.append((pair.stem, vis_wh, ir_wh))
            if abs((vis_wh[0] / vis_wh[1]) / (ir_wh[0] / ir_wh[1]) - 1.0) > ASPECT_TOLERANCE:
                stretched.append(pair.stem)
    if mismatched and not resize_ir:
        stem, vis_wh, ir_wh = mismatched[0]
        raise _size_mismatch(
            f"{len(mismatched)} of {len(source)} pairs differ in size, e.g. {stem}", vis_wh, ir_wh
        )
    if stretched:
        warn(f"--resize-ir changes the aspect of {len(stretched)} thermal frame(s): {list_names(stretched)}")


def _fuse_folder(
    data: Path | None,
    out: Path,
    checkpoint: str | None,
    device: str,
    side_by_side: bool,
    resize_ir: bool,
    overwrite: bool,
    n: int,
) -> None:
    from edgefuse.data import find_pairs, open_pairs

    source = open_pairs(None, n=n) if data is None else find_pairs(data, resize_ir=resize_ir)
    synthetic = getattr(source, "synthetic", False)
    if not synthetic:
        warn_unpaired(source)
        _check_folder_sizes(source, resize_ir)
    if not synthetic and out.resolve() in {d.resolve() for d in source.layout}:  # type: ignore[union-attr]
        raise DataError(
            f"{out}: is an input folder of {data}; fused images would mix with the inputs (choose another -o)"
        )
    if out.suffix.lower() in IMAGE_FORMATS and not out.is_dir():
        raise DataError(f"{out}: --data and the synthetic set write a folder of images; give -o a folder")
    targets = [out / f"{pair.stem}.png" for pair in source.pairs]
    inputs = [] if synthetic else [p for pair in source.pairs for p in (pair.visible, pair.thermal)]
    plan_outputs(targets, inputs, overwrite)

    from edgefuse.inference import fuse as fuse_arrays
    from edgefuse.inference import get_model, to_uint8

    model = get_model(checkpoint, device)
    kind = "synthetic" if synthetic else "real"
    console.print(f"fusing {len(source)} pairs from {source.name} ({kind}) -> {out}/")
    infer_s = 0.0
    with progress("fuse", len(source)) as step:
        for i, target in enumerate(targets):
            vis, ir = source[i]
            t0 = time.perf_counter()
            fused = to_uint8(fuse_arrays(vis, ir, model=model))
            infer_s += time.perf_counter() - t0
            write_image(_panel(vis, ir, fused) if side_by_side else fused, target)
            step(note=f"{(i + 1) / max(infer_s, 1e-9):.1f} FPS (model)")
    console.print(
        f"[green]wrote[/] {len(source)} images to {out}/ ({len(source) / max(infer_s, 1e-9):.1f} FPS)"
    )


def _fuse_video(
    vis_path: Path,
    ir_path: Path,
    out: Path,
    checkpoint: str | None,
    device: str,
    side_by_side: bool,
    resize_ir: bool,
    overwrite: bool,
) -> None:
    import numpy as np

    from edgefuse._optional import require

    cv2 = require("cv2")
    out = out if out.suffix else out.with_suffix(".mp4")
    if out.suffix.lower() not in VIDEO_EXTS:
        raise DataError(f"{out}: unknown video type; use one of {', '.join(sorted(VIDEO_EXTS))}")
    for p in (vis_path, ir_path):
        if not p.is_file():
            raise DataError(f"{p}: video file not found")
    plan_outputs([out], [vis_path, ir_path], overwrite)
    cap_v, cap_t = cv2.VideoCapture(str(vis_path)), cv2.VideoCapture(str(ir_path))
    try:
        for cap, p in ((cap_v, vis_path), (cap_t, ir_path)):
            if not cap.isOpened():
                raise DataError(f"{p}: cannot open video")

        def size(cap) -> tuple[int, int]:
            return int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

        vis_wh, ir_wh = size(cap_v), size(cap_t)
        if vis_wh != ir_wh:
            if not resize_ir:
                raise _size_mismatch(f"{vis_path} / {ir_path}", vis_wh, ir_wh)
            _check_aspect(vis_wh, ir_wh, str(ir_path))
        n_v, n_t = int(cap_v.get(cv2.CAP_PROP_FRAME_COUNT)), int(cap_t.get(cv2.CAP_PROP_FRAME_COUNT))
        if n_v > 0 and n_t > 0 and n_v != n_t:
            warn(
                f"{vis_path} has {n_v} frames but {ir_path} has {n_t}: fusing the first {min(n_v, n_t)} "
                "(the streams are paired frame by frame from the start)"
            )
        fps = cap_v.get(cv2.CAP_PROP_FPS) or 25.0
        total = min(n_v, n_t) or None

        from edgefuse.inference import fuse as fuse_arrays
        from edgefuse.inference import get_model, to_uint8

        model = get_model(checkpoint, device)
        frames, infer_s = 0, 0.0
        with atomic_path(out) as tmp:
            writer = None
            try:
                with progress("fuse video", total) as step:
                    while True:
                        ok_v, fv = cap_v.read()
                        ok_t, ft = cap_t.read()
                        if not (ok_v and ok_t):
                            break
                        vis = cv2.cvtColor(fv, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
                        ir = cv2.cvtColor(ft, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
                        if ir.shape != vis.shape[:2]:
                            if not resize_ir:  # a stream whose frame size changes midway
                                raise _size_mismatch(
                                    f"frame {frames}",
                                    (vis.shape[1], vis.shape[0]),
                                    (ir.shape[1], ir.shape[0]),
                                )
                            ir = cv2.resize(ir, (vis.shape[1], vis.shape[0]), interpolation=cv2.INTER_LINEAR)
                        t0 = time.perf_counter()
                        fused = to_uint8(fuse_arrays(vis, ir, model=model))
                        infer_s += time.perf_counter() - t0
                        frame = _panel(vis, ir, fused) if side_by_side else fused
                        if writer is None:
                            h, w = frame.shape[:2]
                            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                            if not writer.isOpened():
                                raise DataError(f"{out}: OpenCV cannot write this video type here")
                        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                        frames += 1
                        step(note=f"{frames / max(infer_s, 1e-9):.1f} FPS (model)")
            finally:
                if writer is not None:
                    writer.release()
            if frames == 0:
                raise DataError(f"{vis_path} / {ir_path}: no frames could be read")
    finally:
        cap_v.release()
        cap_t.release()
    console.print(f"[green]wrote[/] {out} ({frames} frames, {frames / max(infer_s, 1e-9):.1f} FPS model)")
