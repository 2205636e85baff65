"""The distillation ablation table: students (a)–(d) and the teacher (e) on held-out real pairs.

For every row: all fusion metrics of edgefuse.metrics (convention A) on the RoadScene validation split (the
pairs none of the students, nor the prior, trained on; checked) and on the LLVIP night sample, fidelity to the
teacher ensemble mean (PSNR, SSIM of edgefuse.metrics.drift_metrics), and time per 480×640 frame on this
machine (teacher: K samples with the cache's sampler settings; student: one forward pass, batch 1).

    python scripts/ablation.py --rs ../shared/data/roadscene_train --cache-rs runs/cache_rs \
        --llvip ../shared/data/llvip_sample --cache-llvip runs/cache_llvip \
        --student a=runs/a.safetensors --student b=runs/b.safetensors ... \
        --json out/ablation.json --md out/ablation.md --previews out/previews.png --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

LABELS = {
    "a": "(a) teacher-free baseline (train)",
    "b": "(b) distil: uniform pixels, no routing",
    "c": "(c) + variance-weighted pixels",
    "d": "(d) + routed feature alignment (full method)",
    "c_all": "(c) + unrouted feature alignment (control)",
    "e": "(e) teacher: ensemble mean",
}
METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "CC", "PSNR", "VIF", "Qabf", "SSIM", "Nabf")


def _score(
    fused16: np.ndarray, ir: np.ndarray, vis: np.ndarray, mean16: np.ndarray | None
) -> dict[str, float]:
    """One (row, pair): fusion metrics of the fused image, plus fidelity to the teacher mean when given."""
    from edgefuse.metrics import drift_metrics, fusion_metrics

    fused = fused16.astype(np.float32)
    out = fusion_metrics(fused, ir, vis)
    if mean16 is not None:
        d = drift_metrics(mean16.astype(np.float32), fused)
        out["fid_PSNR"], out["fid_SSIM"] = d["psnr"], d["ssim"]
    return out


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time_students(models: dict[str, Any], device: str, rounds: int = 5, runs: int = 10) -> dict[str, float]:
    """Median ms per 480×640 frame (batch 1) of each model; rounds interleave the models so that a busy
    moment of the machine does not land on one row only."""
    import torch

    v, t = torch.rand(1, 3, 480, 640, device=device), torch.rand(1, 1, 480, 640, device=device)
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():  # warm-up: kernels, allocator, oneDNN primitives
            for _ in range(5):
                m(v, t)
        for _ in range(rounds):
            for k, m in models.items():
                for _ in range(runs):
                    _sync(device)
                    t0 = time.perf_counter()
                    m(v, t)
                    _sync(device)
                    times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(ts) * 1000.0 for k, ts in times.items()}


def _time_teacher(cache: Any, vis: np.ndarray, ir: np.ndarray, device: str, repeats: int) -> dict[str, Any]:
    import torch

    from edgefuse.data import resize_to
    from edgefuse.teacher.ddfm import EMConfig, SamplerConfig, sample_fusion
    from edgefuse.teacher.prior import Prior

    teacher = cache.manifest["teacher"]
    prior = Prior.load(teacher["prior"], device=device, precision=teacher.get("precision", "fp32"))
    s = teacher["sampler"]
    cfg = SamplerConfig(steps=s["steps"], eta=s["eta"], em=EMConfig(**s["em"]), max_batch=s["max_batch"])
    v = torch.from_numpy(np.ascontiguousarray(resize_to(vis, 480, 640).transpose(2, 0, 1))).to(device)
    t = torch.from_numpy(np.clip(resize_to(ir, 480, 640), 0, 1)[None].copy()).to(device)
    seeds = list(cache.manifest["seeds"] or range(cache.k))
    times = []
    for i in range(repeats + 1):  # the first run warms up kernels/allocator and is not counted
        _sync(device)
        t0 = time.perf_counter()
        sample_fusion(prior, v, t, seeds, cfg)
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return {
        "seconds_per_frame": statistics.median(times),
        "k": len(seeds),
        "steps": cfg.steps,
        "runs": len(times),
    }


def _eval_pairs(source: Any, cache: Any, stems: list[str]) -> list[int]:
    index = {p.stem: i for i, p in enumerate(source.pairs)}
    return [index[s] for s in stems if s in cache.pairs and s in index]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", required=True, help="RoadScene paired folder")
    ap.add_argument("--cache-rs", required=True, help="teacher cache over (at least) its validation split")
    ap.add_argument("--llvip", help="LLVIP paired folder (evaluation only)")
    ap.add_argument("--cache-llvip", help="teacher cache over the LLVIP pairs")
    ap.add_argument("--student", action="append", default=[], metavar="KEY=CHECKPOINT")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=max(1, min(14, (os.cpu_count() or 2) - 2)))
    ap.add_argument("--timing-repeats", type=int, default=2)
    ap.add_argument("--json", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--previews", help="PNG grid: visible, thermal, teacher mean, variance, students")
    args = ap.parse_args(argv)

    import torch

    from edgefuse.checkpoint import file_sha256, load_model
    from edgefuse.data import find_pairs, split_pairs
    from edgefuse.inference import fuse_tensors, to_tensors
    from edgefuse.metrics import mean_metrics
    from edgefuse.teacher.cache import TeacherCache

    students = dict(s.split("=", 1) for s in args.student)
    loaded = {k: load_model(p, map_location=args.device) for k, p in students.items()}
    models, infos = {k: v.model for k, v in loaded.items()}, {k: v.info for k, v in loaded.items()}
    rs, cache_rs = find_pairs(args.rs), TeacherCache(args.cache_rs)
    _, val = split_pairs(rs.pairs, val_fraction=args.val_fraction, seed=args.split_seed)
    val_stems = [p.stem for p in val]
    leaks = {}
    for k in models:
        trained = set(infos[k].provenance.get("train_pairs") or [])
        leaks[k] = sorted(trained & set(val_stems))
    prior_train = set(cache_rs.manifest.get("teacher", {}).get("prior_train_stems") or [])
    leaks["prior"] = sorted(prior_train & set(val_stems))
    if any(leaks.values()):
        print(f"error: validation pairs were trained on: { {k: v[:3] for k, v in leaks.items() if v} }")
        return 2
    sets = [("roadscene_val", rs, cache_rs, _eval_pairs(rs, cache_rs, val_stems))]
    if args.llvip and args.cache_llvip:
        llvip, cache_ll = find_pairs(args.llvip), TeacherCache(args.cache_llvip)
        sets.append(("llvip", llvip, cache_ll, _eval_pairs(llvip, cache_ll, [p.stem for p in llvip.pairs])))

    rows = [*students, "e"]
    results: dict[str, dict[str, Any]] = {r: {} for r in rows}
    previews: list[list[np.ndarray]] = []
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        for name, source, cache, idx in sets:
            futures: dict[str, list] = {r: [] for r in rows}
            for n, i in enumerate(idx):
                vis, ir = source[i]
                entry = cache.load(source.pairs[i].stem)
                mean16 = entry.mean.astype(np.float16)
                outs = {}
                for k, model in models.items():
                    v, t = to_tensors(vis, ir, args.device)
                    fused = fuse_tensors(model, v, t)[0].permute(1, 2, 0).float().cpu().numpy()
                    outs[k] = fused
                    futures[k].append(pool.submit(_score, fused.astype(np.float16), ir, vis, mean16))
                futures["e"].append(pool.submit(_score, mean16, ir, vis, None))
                if n < 2 and args.previews:
                    var = np.repeat((entry.var / max(float(entry.var.max()), 1e-8))[..., None], 3, axis=2)
                    panel = [vis, np.repeat(ir[..., None], 3, axis=2), entry.mean, var]
                    previews.append(panel + [outs[k] for k in models])
            for r in rows:
                per_pair = [f.result() for f in futures[r]]
                results[r][name] = {**mean_metrics(per_pair), "n": len(per_pair)} if per_pair else {"n": 0}

    timing = {"device": args.device, "device_name": _device_name(args.device)}
    vis, ir = rs[sets[0][3][0]]
    timing["teacher"] = _time_teacher(cache_rs, vis, ir, args.device, args.timing_repeats)
    timing["student_ms"] = _time_students(models, args.device)
    report = {
        "rows": [
            {
                "key": r,
                "label": LABELS.get(r, r),
                "checkpoint": students.get(r),
                "sha256": file_sha256(students[r]) if r in students else None,
                "method": infos[r].provenance.get("method") if r in models else "teacher",
                **results[r],
            }
            for r in rows
        ],
        "timing_480x640": timing,
        "speed_ratio": {
            k: timing["teacher"]["seconds_per_frame"] * 1000.0 / ms for k, ms in timing["student_ms"].items()
        },
        "eval": {name: [source.pairs[i].stem for i in idx] for name, source, _, idx in sets},
        "teacher_caches": {
            "roadscene": cache_rs.sha256,
            **({"llvip": sets[1][2].sha256} if len(sets) > 1 else {}),
        },
        "leak_check": "no evaluation pair in any training set (students' train_pairs, prior's train_stems)",
        "torch": torch.__version__,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1, default=str) + "\n")
    Path(args.md).write_text(markdown(report))
    if previews and args.previews:
        _save_previews(previews, args.previews)
    print(markdown(report))
    return 0


def _device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def markdown(report: dict[str, Any]) -> str:
    t = report["timing_480x640"]
    lines = [
        f"Device: {t['device_name']} ({t['device']}). Teacher: K={t['teacher']['k']} samples, "
        f"{t['teacher']['steps']} DDIM steps: {t['teacher']['seconds_per_frame']:.3f} s per 480×640 frame.",
        "",
    ]
    for name in report["eval"]:
        lines += [f"### {name} ({len(report['eval'][name])} pairs)", ""]
        head = ["row", *METRICS, "fid PSNR", "fid SSIM", "ms/frame"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in report["rows"]:
            m = row.get(name, {})
            if not m.get("n"):
                continue
            ms = t["student_ms"].get(row["key"])
            time_s = f"{ms:.2f}" if ms is not None else f"{t['teacher']['seconds_per_frame'] * 1000:.0f}"
            cells = [f"{m[k]:.3f}" for k in METRICS] + [
                f"{m['fid_PSNR']:.2f}" if "fid_PSNR" in m else "–",
                f"{m['fid_SSIM']:.4f}" if "fid_SSIM" in m else "–",
                time_s,
            ]
            lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
        lines.append("")
    ratios = ", ".join(f"{k}: {v:.0f}×" for k, v in report["speed_ratio"].items())
    lines += [f"Speed ratio teacher/student per frame: {ratios}.", ""]
    return "\n".join(lines)


def _save_previews(rows: list[list[np.ndarray]], path: str, height: int = 160) -> None:
    from edgefuse.data import resize_to

    tiles = []
    for panel in rows:
        h, w = panel[0].shape[:2]
        size = (height, max(1, round(w * height / h)))
        tiles.append(np.concatenate([resize_to(np.asarray(p, np.float32), *size) for p in panel], axis=1))
    width = max(t.shape[1] for t in tiles)
    grid = np.concatenate([np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0))) for t in tiles], axis=0)
    from PIL import Image

    Image.fromarray((np.clip(grid, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


if __name__ == "__main__":
    sys.exit(main())
