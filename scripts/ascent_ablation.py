"""The metric-ascent route end to end: night copies -> teacher cache -> ablation students -> held-out scores.

1. ``scripts/night_copies.py``: RoadScene's training split plus a fixed synthetic-night copy of each pair
   (with ``--thermal-level`` > 0 the copies get a dark thermal frame too, so the teacher has targets for the
   dark thermal frames the students are shown).
2. ``edgefuse teacher ascend`` on that union, on RoadScene val and on the LLVIP pairs (row e), as a queue of
   shards over ``--gpus`` × ``--slots`` processes (one process leaves an H200 mostly idle: the ascent is many
   small kernels), merged into one cache per set. It starts at ``--start`` (default: the bundled student),
   and its SSIM floor is relative to that start, so the teacher changes with it (docs/distillation.md).
3. Students, ``--seeds`` each: (a) ``edgefuse train`` with the bundled recipe (scripts/train_bundled.sh, on
   RoadScene, which holds its own val split out); (b) uniform pixels, (c) + variance weighting,
   (d) + routed feature alignment: ``edgefuse distill`` on the union with ``--val-fraction 0`` (the val pairs
   are not in it) and ``--repeat`` halved (twice the pairs: the same steps as the bundled recipe), with the
   bundled recipe's teacher-free weights (intensity 0.5, gradient 10, source SSIM 1).
   ``--variant NAME=ROW:ARGS`` adds a distilled row: ROW's command with ARGS appended (a changed setting;
   ``{seed}`` in ARGS is each student's seed).
4. ``scripts/evaluate_students.py`` on RoadScene val + LLVIP, ``scripts/seed_compare.py`` for the verdicts,
   ``scripts/score_cache.py`` for the teacher's rows.

    python scripts/ascent_ablation.py --work runs/ascent --gpus 2 --slots 4      # as run in session 6
    python scripts/ascent_ablation.py --work /tmp/a --device cpu --gpus 1 --slots 2 --steps 1 --epochs 1 \
        --repeat 1 --seeds 0 --rows a,c --limit-llvip 1 --subset 6             # a few minutes on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EF = [sys.executable, "-m", "edgefuse"]
TEACHER_FREE = ["--w-intensity", "0.5", "--w-gradient", "10"]


class Queue:
    """Teacher shards on ``gpus × slots`` process slots (slot j: GPU j % gpus); students run beside them."""

    def __init__(self, work: Path, gpus: int, slots: int) -> None:
        self.work, self.gpus, self.free = work, gpus, list(range(gpus * slots))
        self.waiting: list[tuple[str, list[str]]] = []
        self.running: dict[str, tuple[subprocess.Popen, int]] = {}
        self.codes: dict[str, int] = {}
        self.t0 = time.time()

    def log(self, msg: str) -> None:
        with open(self.work / "progress.txt", "a") as fh:
            fh.write(f"[{time.time() - self.t0:6.0f} s] {msg}\n")

    def add(self, name: str, cmd: list[str]) -> None:
        self.waiting.append((name, cmd))

    def start(self, name: str, cmd: list[str], gpu: int, slot: int = -1) -> None:
        """Run now on ``gpu`` (students, outside the slots: as in session 6, beside the teacher's processes;
        or a queued job in its ``slot``), logging to ``<name>.log``."""
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(gpu % self.gpus))
        with open(self.work / f"{name}.log", "w") as fh:
            self.running[name] = (subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT), slot)

    def poll(self) -> None:
        for name, (proc, slot) in list(self.running.items()):
            if proc.poll() is not None:
                self.codes[name] = proc.returncode
                self.log(f"{name} rc {proc.returncode}")
                del self.running[name]
                if slot >= 0:
                    self.free.append(slot)
        while self.waiting and self.free:
            (name, cmd), slot = self.waiting.pop(0), self.free.pop(0)
            self.start(name, cmd, gpu=slot, slot=slot)

    def done(self, names: list[str]) -> bool:
        return all(n in self.codes for n in names)


def shard(work: Path, name: str, root: Path, stems: set[str] | None, n: int) -> list[Path]:
    """n folders of links ``work/name{j}/{vi,ir}`` over the (stem-filtered) files of a paired folder."""
    files = {
        s: sorted(p for p in (root / s).iterdir() if stems is None or p.stem in stems) for s in ("vi", "ir")
    }
    if [p.stem for p in files["vi"]] != [p.stem for p in files["ir"]]:
        raise SystemExit(f"{root}: vi/ and ir/ stems differ")
    n = max(1, min(n, len(files["vi"])))
    out = []
    for j in range(n):
        d = work / f"{name}{j}"
        for sub in ("vi", "ir"):
            (d / sub).mkdir(parents=True, exist_ok=True)
            for f in files[sub][j::n]:
                if not (d / sub / f.name).exists():
                    os.symlink(os.path.realpath(f), d / sub / f.name)
        out.append(d)
    return out


def merge(work: Path, name: str, shards: list[Path], data_root: Path) -> Path:
    from edgefuse.teacher.cache import read_entry_meta, write_manifest

    out = work / f"asc_{name}"
    out.mkdir(exist_ok=True)
    entries = {}
    for s in shards:
        for f in (work / f"asc_{s.name}").glob("*.npz"):
            shutil.move(str(f), out / f.name)
            entries[f.stem] = read_entry_meta(out / f.name)
    meta = json.loads((work / f"asc_{shards[0].name}" / "manifest.json").read_text())
    meta = {k: v for k, v in meta.items() if k not in ("pairs", "format", "version", "edgefuse_version")}
    meta["data"] = {"name": name, "root": str(data_root)}
    write_manifest(out, entries, meta)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", type=Path, default=ROOT.parent / "shared/data/roadscene_train")
    ap.add_argument("--llvip", type=Path, default=ROOT.parent / "shared/data/llvip_sample")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--gpus", type=int, default=1)
    ap.add_argument("--slots", type=int, default=4, help="teacher processes per GPU")
    ap.add_argument("--loss-weight", default="5", help="the teacher's ρ (chosen on training pairs)")
    ap.add_argument("--jitter", default="0.3", help="the teacher's per-sample log-std of the Qabf weight")
    ap.add_argument("--steps", default="60")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rows", default="a,b,c,d")
    ap.add_argument("--epochs", default="60")
    ap.add_argument(
        "--repeat", type=int, default=16, help="the bundled recipe's repeat (halved on the union)"
    )
    ap.add_argument(
        "--prior", default="", help="diffusion prior dir: row (d)'s feature backbone (teacher_chain.sh's)"
    )
    ap.add_argument(
        "--start",
        default="fusionproxy-s",
        help="the teacher's start checkpoint (its SSIM floor is relative to it; the default, the bundled "
        "student, changes when the bundle does)",
    )
    ap.add_argument("--thermal-level", default="0", help="train/distill --thermal-level of every student")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=ROW:ARGS",
        help="an extra distilled row: row b, c or d's command plus ARGS (e.g. 'd2=d:--w-source-ssim 2'); "
        "{seed} in ARGS is each student's seed (e.g. 't=d:--init runs/d_s{seed}.safetensors')",
    )
    ap.add_argument(
        "--sets", default="dn,rsval,llvip", help="teacher caches to build (dn: the students' training cache)"
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="a run cut short: students continue from <row>_s<seed>.safetensors.state.pt in --work (those "
        "without one start afresh), and a "
        "teacher cache already merged there (asc_<set>/manifest.json) is used as it is",
    )
    ap.add_argument(
        "--keep-samples",
        action="store_true",
        help="keep the dn cache's samples without a row (d) yet (a later --resume run adds one)",
    )
    ap.add_argument(
        "--keep-coefficients",
        action="store_true",
        help="store the dn cache's coefficient maps (targets of `teacher train-cond --target coefficients`)",
    )
    ap.add_argument(
        "--dn-cache",
        type=Path,
        help="distil rows b-d from this cache of the dn folder (e.g. `teacher mix`'s) instead of the ascent "
        "teacher's; no asc_dn is built",
    )
    ap.add_argument("--no-eval", action="store_true", help="stop after the students (score them elsewhere)")
    ap.add_argument("--subset", type=int, default=0, help=">0: only the first N RoadScene pairs (checks)")
    ap.add_argument("--limit-llvip", default="0")
    args = ap.parse_args(argv)

    from edgefuse.data import find_pairs, split_indices

    variants = parse_variants(ap, args.variant, args.rows.split(","))
    routed = any(base == "d" for base, _ in variants.values())  # routing: the prior, and the samples kept
    if routed and not args.prior:
        ap.error("row d needs --prior DIR (the diffusion prior: scripts/teacher_chain.sh's prior stage)")

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    rs = args.rs.resolve()
    if args.subset:
        rs = shard(work, "rs_subset", rs, {p.stem for p in sorted((rs / "vi").iterdir())[: args.subset]}, 1)[
            0
        ]
    q = Queue(work, args.gpus, args.slots)
    dark = ["--dark-thermal"] if float(args.thermal_level) > 0 else []
    run([str(ROOT / "scripts/night_copies.py"), "--data", str(rs), "--out", str(work / "dn"), *dark])
    src = find_pairs(rs)
    val = {src.pairs[i].stem for i in split_indices(src.pairs, 0.2, 0)[1]}
    per = args.gpus * args.slots
    llvip = args.llvip.resolve()
    wanted = set(args.sets.split(",")) | ({"dn"} if variants else set())
    if args.dn_cache:
        wanted.discard("dn")
    sets = {
        name: (shard(work, name, root, stems, n), root)
        for name, root, stems, n in (
            ("dn", work / "dn", None, 2 * per),
            ("rsval", rs, val, per),
            ("llvip", llvip, None, per),
        )
        if name in wanted
    }
    rows, seeds = args.rows.split(","), args.seeds.split(",")
    recipe = f"--epochs {args.epochs} --batch-size 32 --crop 256 --w-intensity 0.5 --w-gradient 10".split()
    recipe += ["--thermal-level", args.thermal_level]
    n_students = 0

    def student(row: str, seed: str, cmd: list[str]) -> None:
        nonlocal n_students
        state = work / f"{row}_s{seed}.safetensors.state.pt"
        out = [
            "--device",
            args.device,
            "--workers",
            "3",
            "--seed",
            seed,
            "-o",
            str(work / f"{row}_s{seed}.safetensors"),
            *(["--resume"] if args.resume and state.is_file() else []),
        ]
        q.start(f"{row}_s{seed}", [*cmd, *out], gpu=n_students)  # round robin over the GPUs
        n_students += 1

    for seed in seeds if "a" in rows else []:  # row (a) needs no teacher: it starts at once
        a = f"--size s --repeat {args.repeat} --w-ssim 1 --night 0.5".split()  # (paths stay whole items)
        student("a", seed, [*EF, "train", "--data", str(rs), *a, *recipe])

    def distill_rows(cache: Path) -> None:  # distilled rows, on the union (val pairs absent)
        for row, (base, extra) in variants.items():
            d = [*EF, "distill", "--cache", str(cache), "--data", str(work / "dn")]
            d += f"--w-source-ssim 1 --val-fraction 0 --repeat {max(1, args.repeat // 2)}".split()
            d += ["--pixel-weighting", "uniform" if base == "b" else "variance"]
            d += ["--routing", "feature", "--prior", args.prior] if base == "d" else ["--routing", "none"]
            for seed in seeds:  # a variant's ARGS come last: the last value of an option wins
                student(row, seed, [*d, *recipe, *seeded(extra, seed)])

    dtype = "float32" if args.device != "cpu" else "float64"
    asc = f"--k 3 --steps {args.steps} --loss-weight {args.loss_weight} --jitter {args.jitter}".split()
    asc += ["--dtype", dtype]
    asc += ["--device", args.device, "--student", args.start]
    merged: dict[str, Path] = {"dn": args.dn_cache.resolve()} if args.dn_cache else {}

    def score(name: str, root: Path) -> None:  # a held-out set's teacher row: its ensemble mean, scored
        cmd = [str(ROOT / "scripts/score_cache.py"), "--cache", str(merged[name]), "--data", str(root)]
        cmd += ["--json", str(work / f"teacher_{name}.json")] + (["--val-split"] if name == "rsval" else [])
        q.add(f"score_{name}", [sys.executable, *cmd])

    for name, (shards, root) in sets.items():
        if args.resume and (work / f"asc_{name}" / "manifest.json").is_file():
            merged[name] = work / f"asc_{name}"  # a run cut short after this merge: its cache is whole
            q.log(f"reused asc_{name}")
            if name != "dn" and not (work / f"teacher_{name}.json").is_file():
                score(name, root)  # cut short before its score was written
            continue
        keep = name == "dn" and (routed or args.keep_samples)
        limit = args.limit_llvip if name == "llvip" else "0"
        for d in shards:
            opts = [*asc, "--limit", limit, *([] if keep else ["--no-save-samples"])]
            opts += ["--keep-coefficients"] if name == "dn" and args.keep_coefficients else []
            q.add(
                d.name, [*EF, "teacher", "ascend", "--data", str(d), "-o", str(work / f"asc_{d.name}"), *opts]
            )
    if "dn" in merged:
        distill_rows(merged["dn"])
    while q.waiting or q.running:
        q.poll()
        for name, (shards, root) in sets.items():
            if name in merged or not q.done([d.name for d in shards]):
                continue
            merged[name] = merge(work, name, shards, root)
            q.log(f"merged {name}")
            if name != "dn":
                score(name, root)
                continue
            distill_rows(merged[name])
        time.sleep(2)
    failed = {k: v for k, v in q.codes.items() if v}
    if failed:
        q.log(f"FAILED: {failed}")
        return 1
    if args.no_eval:
        q.log("all done (students only)")
        return 0
    names = ["a", *variants]
    students = [
        f"--student={p.stem}={p}"
        for p in sorted(work.glob("*_s*.safetensors"))
        if p.stem.rsplit("_s", 1)[0] in names
    ]
    evaluate = [str(ROOT / "scripts/evaluate_students.py"), "--rs", str(rs), "--extra", str(llvip), *students]
    run([*evaluate, "--workers", str(max(2, per)), "--json", str(work / "eval.json")])
    compare = [f"--compare={x}=a" for x in variants if "a" in rows]
    compare += [f"--compare={x}={y}" for x, y in (("c", "b"), ("d", "c")) if x in rows and y in rows]
    verdicts = [str(ROOT / "scripts/seed_compare.py"), "--eval", str(work / "eval.json"), *compare]
    run([*verdicts, "--md", str(work / "ablation.md"), "--json", str(work / "ablation.json")])
    q.log("all done")
    return 0


def parse_variants(
    ap: argparse.ArgumentParser, specs: list[str], rows: list[str]
) -> dict[str, tuple[str, list[str]]]:
    """The distilled rows: b, c, d of ``--rows`` as they are, then each ``NAME=ROW:ARGS`` of ``--variant``."""
    out: dict[str, tuple[str, list[str]]] = {r: (r, []) for r in "bcd" if r in rows}
    for spec in specs:
        name, _, rest = spec.partition("=")
        base, _, extra = rest.partition(":")
        if not name.isidentifier() or name in ("a", *out) or base not in ("b", "c", "d"):
            ap.error(f"--variant {spec!r}: want NAME=ROW:ARGS, a new NAME and ROW one of b, c, d")
        out[name] = (base, extra.split())
    return out


def seeded(extra: list[str], seed: str) -> list[str]:
    """A variant's ARGS for one student, {seed} replaced by its seed (to fine-tune each seed's own start)."""
    return [x.replace("{seed}", seed) for x in extra]


def run(script_and_args: list[str]) -> None:
    subprocess.run([sys.executable, *script_and_args], check=True)


if __name__ == "__main__":
    sys.exit(main())
