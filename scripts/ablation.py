"""The distillation ablation table: students (a)–(d) over seeds and the teacher (e, f) on held-out real pairs.

Student keys ``<row>_s<seed>`` (e.g. ``d_s1``) are grouped by row: the table shows mean ± std over seeds.
Row (f) solves the teacher's objective alone (no prior) with the cache's settings: the teacher with its
diffusion prior turned off. The ensemble spread is reported as the per-pixel standard deviation of the K
samples in 8-bit levels (median, 90th, 99th percentile over all pixels of a set) and, per distilled row, the
Spearman rank correlation between that spread and the student's error against the ensemble mean.

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
    "ref": "bundled fusionproxy-s before this change (teacher-free, first form, 60-epoch recipe)",
    "a": "(a) teacher-free baseline (train)",
    "b": "(b) distil: uniform pixels, no routing",
    "c": "(c) + variance-weighted pixels",
    "d": "(d) + routed feature alignment (full method)",
    "e": "(e) teacher: ensemble mean",
    "f": "(f) teacher's objective alone (prior off)",
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
    from edgefuse.teacher.ddfm import SamplerConfig, sample_fusion
    from edgefuse.teacher.prior import Prior

    teacher = cache.manifest["teacher"]
    prior = Prior.load(teacher["prior"], device=device, precision=teacher.get("precision", "fp32"))
    cfg = SamplerConfig.from_dict(teacher["sampler"])
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


def _objective_alone(cache: Any, vis: np.ndarray, ir: np.ndarray, device: str) -> np.ndarray:
    """Row (f): the teacher's objective solved without the prior, RGB H×W×3 in [0, 1]."""
    import torch

    from edgefuse.teacher.ddfm import SamplerConfig, luma, with_visible_chroma
    from edgefuse.teacher.objective import solve_objective

    em = SamplerConfig.from_dict(cache.manifest["teacher"]["sampler"]).em
    v = torch.from_numpy(np.ascontiguousarray(vis.transpose(2, 0, 1)))[None].to(device)
    t = torch.from_numpy(np.ascontiguousarray(ir))[None, None].to(device)
    y = (solve_objective(t * 2 - 1, luma(v) * 2 - 1, em) + 1) / 2
    return with_visible_chroma(y, v)[0].permute(1, 2, 0).float().cpu().numpy()


def _spearman(spread: np.ndarray, err: np.ndarray, n: int = 20000) -> float:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    idx = rng.choice(spread.size, size=min(n, spread.size), replace=False)
    rho = spearmanr(spread.ravel()[idx], err.ravel()[idx]).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def _group(key: str) -> str:
    return key.split("_s")[0] if "_s" in key else key


def _aggregate(per_seed: dict[str, dict[str, float]]) -> dict[str, Any]:
    """mean and (population over seeds, ddof=1) std of every metric over a row's seeds."""
    keys = next(iter(per_seed.values())).keys()
    out: dict[str, Any] = {"seeds": sorted(per_seed), "n": next(iter(per_seed.values())).get("n", 0)}
    for k in keys:
        if k == "n":
            continue
        vals = np.array([m[k] for m in per_seed.values()], dtype=np.float64)
        out[k] = float(vals.mean())
        out[k + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", required=True, help="RoadScene paired folder")
    ap.add_argument("--cache-rs", required=True, help="teacher cache over (at least) its validation split")
    ap.add_argument("--llvip", help="LLVIP paired folder (evaluation only)")
    ap.add_argument("--cache-llvip", help="teacher cache over the LLVIP pairs")
    ap.add_argument("--student", action="append", default=[], metavar="KEY=CHECKPOINT")
    ap.add_argument("--reference", help="an extra checkpoint row (e.g. the bundled one before this change)")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=max(1, min(14, (os.cpu_count() or 2) - 2)))
    ap.add_argument("--timing-repeats", type=int, default=2)
    ap.add_argument("--json", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument(
        "--previews", help="image grid: visible, thermal, teacher mean, spread, students (seed 0)"
    )
    ap.add_argument("--spread-maps", help="image grid: visible, thermal, spread, |student (b) − mean|")
    args = ap.parse_args(argv)

    import torch

    from edgefuse.checkpoint import load_model
    from edgefuse.data import find_pairs, split_pairs
    from edgefuse.inference import fuse_tensors, to_tensors
    from edgefuse.metrics import mean_metrics
    from edgefuse.teacher.cache import TeacherCache

    students = dict(s.split("=", 1) for s in args.student)
    if args.reference:
        students = {"ref": args.reference, **students}
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

    keys = [*students, "e", "f"]
    results: dict[str, dict[str, Any]] = {r: {} for r in keys}
    spread: dict[str, Any] = {}
    previews: list[list[np.ndarray]] = []
    maps: list[list[np.ndarray]] = []
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        for name, source, cache, idx in sets:
            futures: dict[str, list] = {r: [] for r in keys}
            stds, rhos = [], {k: [] for k in students if _group(k) in ("b", "c", "d")}
            for n, i in enumerate(idx):
                vis, ir = source[i]
                entry = cache.load(source.pairs[i].stem)
                mean16 = entry.mean.astype(np.float16)
                std8 = np.sqrt(np.maximum(entry.var, 0.0)) * 255.0
                stds.append(std8.ravel())
                outs = {}
                for k, model in models.items():
                    v, t = to_tensors(vis, ir, args.device)
                    fused = fuse_tensors(model, v, t)[0].permute(1, 2, 0).float().cpu().numpy()
                    outs[k] = fused
                    futures[k].append(pool.submit(_score, fused.astype(np.float16), ir, vis, mean16))
                    if k in rhos:
                        err = np.abs(fused - entry.mean).mean(axis=2)
                        rhos[k].append(_spearman(std8, err))
                futures["e"].append(pool.submit(_score, mean16, ir, vis, None))
                f_rgb = _objective_alone(cache, vis, ir, args.device)
                futures["f"].append(pool.submit(_score, f_rgb.astype(np.float16), ir, vis, mean16))
                if n < 2 and args.previews:
                    shown = [k for k in models if k == "ref" or k.endswith("_s0")]
                    panel = [vis, np.repeat(ir[..., None], 3, axis=2), entry.mean, _heat(std8)]
                    previews.append(panel + [outs[k] for k in shown])
                if n < 3 and args.spread_maps and "b_s0" in outs:
                    err8 = np.abs(outs["b_s0"] - entry.mean).mean(axis=2) * 255.0
                    maps.append([vis, np.repeat(ir[..., None], 3, axis=2), _heat(std8), _heat(err8)])
            for r in keys:
                per_pair = [f.result() for f in futures[r]]
                results[r][name] = {**mean_metrics(per_pair), "n": len(per_pair)} if per_pair else {"n": 0}
            allstd = np.concatenate(stds) if stds else np.zeros(1)
            spread[name] = {
                "std_levels": {
                    q: float(np.percentile(allstd, p)) for q, p in (("p50", 50), ("p90", 90), ("p99", 99))
                },
                "spearman_spread_vs_student_error": {k: float(np.mean(v)) for k, v in rhos.items() if v},
            }

    timing = {"device": args.device, "device_name": _device_name(args.device)}
    vis, ir = rs[sets[0][3][0]]
    timing["teacher"] = _time_teacher(cache_rs, vis, ir, args.device, args.timing_repeats)
    timing["student_ms"] = _time_students(models, args.device)
    groups: dict[str, list[str]] = {}
    for k in students:
        groups.setdefault(_group(k), []).append(k)
    rows = []
    for g, members in groups.items():
        row: dict[str, Any] = {
            "key": g,
            "label": LABELS.get(g, g),
            "checkpoints": {k: students[k] for k in members},
            "sha256": {k: infos[k].file_sha256 for k in members},
            "method": infos[members[0]].provenance.get("method"),
            "ms": float(np.median([timing["student_ms"][k] for k in members])),
        }
        for name, *_ in sets:
            row[name] = _aggregate({k: results[k][name] for k in members})
            row[name + "_per_seed"] = {k: results[k][name] for k in members}
        rows.append(row)
    for g in ("e", "f"):
        rows.append(
            {"key": g, "label": LABELS[g], "method": "teacher", **{n: results[g][n] for n, *_ in sets}}
        )
    report = {
        "rows": rows,
        "spread": spread,
        "timing_480x640": timing,
        "speed_ratio": {
            k: timing["teacher"]["seconds_per_frame"] * 1000.0 / ms for k, ms in timing["student_ms"].items()
        },
        "eval": {name: [source.pairs[i].stem for i in idx] for name, source, _, idx in sets},
        "teacher": cache_rs.manifest.get("teacher"),
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
    if maps and args.spread_maps:
        _save_previews(maps, args.spread_maps)
    print(markdown(report))
    return 0


def _heat(levels: np.ndarray, top: float = 8.0) -> np.ndarray:
    """A fixed-scale heat image (0 → black, ``top`` 8-bit levels or more → white) for spread/error maps."""
    x = np.clip(levels / top, 0.0, 1.0)[..., None]
    return np.concatenate([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)], axis=2)


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
        "Students: mean ± std over seeds (the seeds are listed in the JSON).",
        "",
    ]
    shown = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")
    for name in report["eval"]:
        lines += [f"### {name} ({len(report['eval'][name])} pairs)", ""]
        head = ["row", "seeds", *shown, "fid PSNR", "ms/frame"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in report["rows"]:
            m = row.get(name, {})
            if not m.get("n"):
                continue
            seeds = len(m.get("seeds", [])) or "–"

            def cell(k: str, m: dict = m) -> str:
                sd = m.get(k + "_std")
                return f"{m[k]:.3f} ± {sd:.3f}" if sd else f"{m[k]:.3f}"

            ms = row.get("ms")
            time_s = f"{ms:.2f}" if ms is not None else f"{t['teacher']['seconds_per_frame'] * 1000:.0f}"
            fid = f"{m['fid_PSNR']:.2f}" if "fid_PSNR" in m else "–"
            lines.append(
                f"| {row['label']} | {seeds} | "
                + " | ".join(cell(k) for k in shown)
                + f" | {fid} | {time_s} |"
            )
        lines.append("")
        sp = report["spread"].get(name, {})
        if sp:
            q = sp["std_levels"]
            rho = ", ".join(f"{k} {v:+.3f}" for k, v in sp["spearman_spread_vs_student_error"].items())
            lines += [
                f"Ensemble spread (per-pixel std of the K samples, 8-bit levels): median {q['p50']:.2f}, "
                f"90th percentile {q['p90']:.2f}, 99th {q['p99']:.2f}. Spearman ρ(spread, |student − mean|): "
                f"{rho or '–'}.",
                "",
            ]
    ratios = ", ".join(f"{k}: {v:.0f}×" for k, v in report["speed_ratio"].items())
    lines += [f"Speed ratio teacher/student per frame (eager students): {ratios}.", ""]
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
