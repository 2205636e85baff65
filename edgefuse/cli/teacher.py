"""``edgefuse teacher``: train the luminance diffusion prior, sample the DDFM teacher ensemble into a cache,
or import an external teacher's samples into the same cache format."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from edgefuse.cli._common import cli_command, console

app = typer.Typer(
    help="Diffusion teacher: train-prior, sample (K-sample ensemble cache), import.", no_args_is_help=True
)


def _progress():  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )


@app.command("train-prior")
@cli_command
def train_prior(
    data: Annotated[Path, typer.Option(help="Paired folder; only its training split is used (both frames).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Prior directory to write (diffusers layout).")],
    crop: Annotated[int, typer.Option(min=16, help="Square luminance crop size.")] = 64,
    channels: Annotated[str, typer.Option(help="UNet widths per level, comma-separated.")] = "32,64,128,128",
    layers_per_block: Annotated[int, typer.Option(min=1)] = 2,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    lr: Annotated[float, typer.Option(min=0.0)] = 5e-4,
    steps: Annotated[int, typer.Option(min=1, help="Maximum optimiser steps.")] = 20000,
    minutes: Annotated[
        float, typer.Option(min=0.0, help="Wall-clock budget (0: none); sizes the schedule.")
    ] = 0.0,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.9, help="Held-out pairs, never seen.")] = 0.2,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/val split (the one `train` uses).")] = 0,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    precision: Annotated[str, typer.Option(help="bf16, fp16 or fp32 (autocast on CUDA only).")] = "bf16",
) -> None:
    """Train the unconditional luminance prior (diffusers UNet2DModel, ε-prediction, DDPM schedule)."""
    from edgefuse.data import find_pairs, split_indices
    from edgefuse.teacher.prior import PriorTrainConfig, luminance_frames
    from edgefuse.teacher.prior import train_prior as fit

    widths = tuple(int(c) for c in channels.split(",") if c.strip())
    if crop % 2 ** (len(widths) - 1):
        raise typer.BadParameter(
            f"--crop must be a multiple of {2 ** (len(widths) - 1)} for {len(widths)} levels"
        )
    source = find_pairs(data)
    train_idx, val_idx = split_indices(source.pairs, val_fraction=val_fraction, seed=split_seed)
    frames = luminance_frames(source, train_idx)
    console.print(f"prior data: {source.name}: {len(train_idx)} training pairs ({len(frames)} frames)")
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
        "data": source.name,
        "data_root": str(source.root.resolve()),
        "train_stems": [source.pairs[i].stem for i in train_idx],
        "val_stems": [source.pairs[i].stem for i in val_idx],
        "split_seed": split_seed,
    }
    with _progress() as bar:
        task = bar.add_task("prior", total=steps)

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, description=f"prior loss {loss:.4f}")

        info = fit(frames, out, cfg, provenance=prov, on_step=on_step)
    console.print(
        f"[green]wrote[/] {out} ({info['steps']} steps, {info['seconds']:.0f} s, "
        f"loss {info['final_loss_ema']:.4f}, "
        f"sha256 {info['sha256'][:12]})"
    )


@app.command("sample")
@cli_command
def sample(
    prior: Annotated[
        Path, typer.Option(help="Prior directory (edgefuse train-prior or any diffusers UNet).")
    ],
    data: Annotated[Path, typer.Option(help="Paired folder to fuse.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Cache directory to write.")],
    k: Annotated[int, typer.Option("--k", min=2, help="Samples per pair (seeds seed..seed+K-1).")] = 8,
    steps: Annotated[int, typer.Option(min=1, help="DDIM steps.")] = 25,
    seed: Annotated[int, typer.Option()] = 0,
    eta: Annotated[float, typer.Option(min=0.0, max=1.0, help="DDIM eta.")] = 0.0,
    phi: Annotated[float, typer.Option(min=0.0, help="Weight φ of the visible-gradient term.")] = 3.0,
    prior_weight: Annotated[
        float, typer.Option(min=0.0, help="μ: pull of the prior's x0 in the EM step.")
    ] = 1.0,
    em_iters: Annotated[int, typer.Option(min=1, help="EM iterations per DDIM step.")] = 3,
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
    """Fuse every pair K times with the DDFM sampler; write mean, variance and samples per pair."""
    import numpy as np
    import torch

    from edgefuse.data import find_pairs
    from edgefuse.errors import DataError
    from edgefuse.teacher import gather, init_distributed, rank_and_world, shutdown_distributed
    from edgefuse.teacher.cache import ensemble_stats, write_entry, write_manifest
    from edgefuse.teacher.ddfm import EMConfig, SamplerConfig, sample_fusion, with_visible_chroma
    from edgefuse.teacher.prior import Prior

    device = init_distributed(device)
    rank, world = rank_and_world()
    try:
        source = find_pairs(data, resize_ir=resize_ir)
        model = Prior.load(prior, device=device, precision=precision)
        em = EMConfig(phi=phi, prior_weight=prior_weight, iters=em_iters)
        cfg = SamplerConfig(steps=steps, eta=eta, em=em, max_batch=max_batch)
        seeds = [seed + j for j in range(k)]
        teacher = {
            "kind": "ddfm",
            "prior": str(model.path.resolve()),
            "prior_sha256": model.sha256,
            "prior_train_stems": model.meta.get("train_stems"),
            "sampler": cfg.to_dict(),
            "precision": precision if model.device.type == "cuda" else "fp32",
        }
        out.mkdir(parents=True, exist_ok=True)
        settings = out / "sampling.json"
        if rank == 0:
            if (
                resume
                and settings.is_file()
                and json.loads(settings.read_text()) != {"teacher": teacher, "seeds": seeds}
            ):
                raise DataError(f"{settings}: --resume with different teacher settings; use a new --out")
            settings.write_text(json.dumps({"teacher": teacher, "seeds": seeds}, indent=1) + "\n")
        indices = list(range(len(source)))[: limit or None]
        mine = indices[rank::world]
        entries: dict[str, dict] = {}
        seconds: list[float] = []
        with _progress() as bar:
            task = bar.add_task(f"teacher K={k}", total=len(mine), visible=rank == 0)
            for i in mine:
                stem = source.pairs[i].stem
                done = out / f"{stem}.npz"
                if resume and done.is_file():
                    with np.load(done) as z:
                        h, w = z["var"].shape
                        kk = int(z["samples"].shape[0]) if "samples" in z.files else None
                    entries[stem] = {"file": done.name, "height": int(h), "width": int(w), "k": kk}
                    bar.advance(task)
                    continue
                vis, ir = source[i]
                v = torch.from_numpy(np.ascontiguousarray(vis.transpose(2, 0, 1))).to(device)
                t = torch.from_numpy(ir[None].copy()).to(device)
                t0 = time.perf_counter()
                y = sample_fusion(model, v, t, seeds, cfg)
                rgb = with_visible_chroma(y, v[None])
                if model.device.type == "cuda":
                    torch.cuda.synchronize()
                seconds.append(time.perf_counter() - t0)
                mean, var, ys = ensemble_stats(rgb.permute(0, 2, 3, 1).cpu().numpy())
                entries[stem] = write_entry(out, stem, mean, var, ys if save_samples else None)
                bar.advance(task)
        all_entries: dict[str, dict] = {}
        all_seconds: list[float] = []
        for part_entries, part_seconds in gather((entries, seconds)):
            all_entries.update(part_entries)
            all_seconds.extend(part_seconds)
        if rank == 0:
            meta = {
                "teacher": teacher,
                "k": k,
                "seeds": seeds,
                "has_samples": save_samples,
                "data": {"name": source.name, "root": str(source.root.resolve())},
                "world_size": world,
                "seconds_per_pair": float(np.mean(all_seconds)) if all_seconds else None,
            }
            path = write_manifest(out, all_entries, meta)
            per = f", {meta['seconds_per_pair']:.2f} s per pair" if all_seconds else ""
            console.print(f"[green]wrote[/] {path} ({len(all_entries)} pairs, K={k}{per})")
    finally:
        shutdown_distributed()


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
