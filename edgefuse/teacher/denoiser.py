"""The one denoising-diffusion training loop of the teacher's UNets (diffusers ``UNet2DModel``), and their
loading.

Both the unconditional luminance prior (``prior.py``, ε-prediction) and the conditional teacher
(``conditional.py``, v-prediction by default) are UNets on a DDPM schedule; they differ only in what a batch
is (``draw``), in the conditioning channels concatenated to the noisy input and in what the UNet predicts.
One loop: AdamW, warm-up + cosine, EMA weights, bf16 autocast on CUDA, a resumable state every minute and at
a call's time budget, the output directory written atomically.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgefuse._optional import require
from edgefuse.errors import CheckpointError
from edgefuse.io import atomic_path, sha256_path
from edgefuse.teacher.prefetch import Prefetch

PREDICTIONS = ("epsilon", "v_prediction", "sample")  # diffusers' names
# draw(rng) -> (clean targets B×1×c×c, conditioning B×C×c×c or None), both in [-1, 1], on the CPU
Draw = Callable[[np.random.Generator], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class DenoiserConfig:
    crop: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 2
    batch_size: int = 64
    lr: float = 5e-4
    max_steps: int = 20000
    minutes: float = 0.0  # wall-clock budget (0: none); a fresh cosine schedule is sized to it (step 60 on)
    ema_decay: float = 0.999
    train_timesteps: int = 1000
    seed: int = 0
    device: str = "cpu"
    precision: str = "bf16"  # autocast dtype on CUDA (fp32 on CPU whatever this says)
    # what the UNet predicts: ε (the prior), v or the clean sample x0. ε-prediction divides its error by
    # √ᾱ_t at high noise, where a conditional model must already say what the image is; v stays well scaled
    prediction: str = "epsilon"

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, not {self.prediction!r}")


def build_unet(cfg: DenoiserConfig, in_channels: int = 1, out_channels: int = 1) -> Any:
    """A fully convolutional UNet (no attention: it runs at any size)."""
    diffusers = require("diffusers")
    n = len(cfg.channels)
    groups = math.gcd(32, *cfg.channels)
    return diffusers.UNet2DModel(
        sample_size=cfg.crop,
        in_channels=in_channels,
        out_channels=out_channels,
        block_out_channels=tuple(cfg.channels),
        layers_per_block=cfg.layers_per_block,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        add_attention=False,
        norm_num_groups=groups,
    )


def ddim_scheduler(
    scheduler_config: dict[str, Any],
    prediction_type: str = "epsilon",
    clip_sample: bool = False,
    clip_range: float = 1.0,
) -> Any:
    """A DDIM scheduler on a model's noise schedule (fed ``prediction_type``); it lands on x0 at the end.
    ``clip_sample`` clips every step's x0 estimate to ±``clip_range``, the data's range."""
    diffusers = require("diffusers")
    keep = {
        k: v
        for k, v in scheduler_config.items()
        if k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas")
    }
    return diffusers.DDIMScheduler(
        **keep,
        prediction_type=prediction_type,
        clip_sample=clip_sample,
        clip_sample_range=clip_range,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )


# The budget is sized from the speed between these steps: the first ones pay for cuDNN autotuning, the
# allocator's growth and the loaders' start (on an H200 they ran 5x slower and a 12-minute budget got 139 s).
WARM_STEP, SIZE_STEP = 10, 60
# ...and sized again on the last window's pace every tenth of the budget until half of it: the pace drifts
# (on an H200 a 12-minute schedule sized at step 60 had 6 % of its steps left when the budget ran out).
RESIZE_EVERY, RESIZE_UNTIL = 0.1, 0.5


def sized_total(step: int, elapsed: float, since: tuple[int, float], budget_s: float, max_steps: int) -> int:
    """Steps of a schedule that ends at ``budget_s``: ``step`` done after ``elapsed`` seconds, at the pace
    measured since ``since`` (a step and the seconds it was reached at)."""
    rate = (step - since[0]) / max(elapsed - since[1], 1e-9)
    return max(step + 1, min(max_steps, step + int(max(0.0, budget_s - elapsed) * rate)))


def _lr_factor(step: int, total: int) -> float:
    warm = max(1, min(200, total // 10))
    if step < warm:
        return (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t))


def fit_denoiser(
    draw: Draw,
    out: str | os.PathLike[str],
    cfg: DenoiserConfig,
    *,
    in_channels: int,
    kind: str,
    meta_name: str,
    out_channels: int = 1,
    provenance: dict[str, Any] | None = None,
    files: dict[str, Path] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Denoising training (``cfg.prediction``); writes the EMA UNet, DDPM scheduler, ``meta_name`` and
    copies of ``files`` (name in the directory -> source file) atomically.

    Resumable: the training state (weights, EMA, optimiser, schedule, step, data RNG) is saved atomically
    to ``<out>.state.pt`` every minute and when this call's ``minutes`` budget ends; ``resume=True`` continues
    from it, so one long schedule can run as several time-limited commands. The directory is written at
    the end of every call (the EMA weights so far); the state file is removed once the schedule is done.
    """
    diffusers = require("diffusers")
    from diffusers.training_utils import EMAModel

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    use_amp = device.type == "cuda" and cfg.precision in ("bf16", "fp16")
    unet = build_unet(cfg, in_channels, out_channels).to(device).train()
    sched = diffusers.DDPMScheduler(
        num_train_timesteps=cfg.train_timesteps, beta_schedule="linear", prediction_type=cfg.prediction
    )
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, power=3 / 4)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    plan = {"total": cfg.max_steps}
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, plan["total"]))
    alphas = sched.alphas_cumprod.to(device)
    state_path = Path(str(out) + ".state.pt")
    step, running, done_before = 0, None, 0.0
    if resume and state_path.is_file():
        st = torch.load(state_path, map_location=device, weights_only=True)
        unet.load_state_dict(st["unet"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        step, plan["total"], running = int(st["step"]), int(st["total"]), st["running"]
        done_before = float(st["seconds"])
        lr_sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: _lr_factor(s, plan["total"]), last_epoch=step - 1
        )
        rng.bit_generator.state = json.loads(st["rng"])
        torch.set_rng_state(st["torch_rng"].cpu())  # map_location moved it to the device

    def save_state() -> None:
        state = {
            "unet": unet.state_dict(),
            "ema": ema.state_dict(),
            "opt": opt.state_dict(),
            "step": step,
            "total": plan["total"],
            "running": running,
            "seconds": done_before + time.perf_counter() - t0,
            "rng": batches.state,  # after the last batch trained on, not the ones drawn ahead
            "torch_rng": torch.get_rng_state(),
        }
        with atomic_path(state_path, mode=None) as tmp:
            torch.save(state, tmp)

    t0 = last_save = time.perf_counter()
    budget = cfg.minutes * 60.0
    sizing = cfg.minutes > 0 and step == 0  # only a fresh schedule: a resumed one keeps its length
    mark, next_size = (0, 0.0), 0.0  # the pace window's start; when to size again
    batches = Prefetch(draw, rng)  # the crops of the next steps are drawn while the GPU trains
    try:
        while step < plan["total"]:
            x0, cond = batches.next()
            x0 = x0.to(device, non_blocking=True)
            noise = torch.randn_like(x0)
            t = torch.randint(0, cfg.train_timesteps, (x0.shape[0],), device=device)
            ab = alphas[t].view(-1, 1, 1, 1)
            xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise
            if cond is not None:
                xt = torch.cat([xt, cond.to(device, non_blocking=True)], dim=1)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_amp):
                pred = unet(xt, t).sample
            if cfg.prediction == "epsilon":
                target = noise
            elif cfg.prediction == "v_prediction":
                target = ab.sqrt() * noise - (1.0 - ab).sqrt() * x0
            else:
                target = x0
            loss = torch.nn.functional.mse_loss(pred.float(), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            lr_sched.step()
            ema.step(unet.parameters())
            step += 1
            value = float(loss.detach())
            running = value if running is None else 0.98 * running + 0.02 * value
            if sizing and step >= WARM_STEP:
                elapsed = time.perf_counter() - t0
                if step == WARM_STEP:
                    mark = (step, elapsed)
                elif step == SIZE_STEP or (step > SIZE_STEP and elapsed >= next_size):
                    # sized to the budget once the pace is known, then again on each window's own pace
                    plan["total"] = sized_total(step, elapsed, mark, budget, cfg.max_steps)
                    mark, next_size = (step, elapsed), elapsed + RESIZE_EVERY * budget
                    sizing = elapsed + RESIZE_EVERY * budget <= RESIZE_UNTIL * budget
            if on_step is not None:
                on_step(step, plan["total"], running)
            if cfg.minutes > 0 and time.perf_counter() - t0 > budget and step < plan["total"]:
                break  # this call's budget is spent: save the state, write the model so far
            if time.perf_counter() - last_save > 60.0:
                save_state()
                last_save = time.perf_counter()
        finished = step >= plan["total"]
        if not finished:
            save_state()
    finally:
        batches.close()

    seconds = done_before + time.perf_counter() - t0
    final = build_unet(cfg, in_channels, out_channels)
    ema.copy_to(final.parameters())
    info = {
        "kind": kind,
        "steps": step,
        "schedule_steps": plan["total"],
        "complete": finished,
        "seconds": round(seconds, 1),
        "final_loss_ema": running,
        "train_config": {**asdict(cfg), "channels": list(cfg.channels)},
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        **(provenance or {}),
    }
    pipe = diffusers.DDPMPipeline(unet=final.eval(), scheduler=sched)

    def write(tmp: str) -> None:
        pipe.save_pretrained(tmp)
        (Path(tmp) / meta_name).write_text(json.dumps(info, indent=2, default=str) + "\n")
        for name, src in (files or {}).items():
            shutil.copyfile(src, Path(tmp) / name)

    save_dir_atomic(out, write)
    if finished and state_path.is_file():
        state_path.unlink()
    info["sha256"] = unet_hash(out)
    return info


def save_dir_atomic(out: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """Fill a temporary sibling directory with ``write(tmp)``, then swap it in place of ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    old = None
    try:
        write(tmp)
        if out.exists():
            old = tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent)
            os.replace(out, Path(old) / "prev")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out


def unet_dir(path: Path) -> Path:
    if (path / "unet" / "config.json").is_file():
        return path / "unet"
    if (path / "config.json").is_file():
        return path
    raise CheckpointError(f"{path}: not a diffusers UNet directory (no unet/config.json or config.json)")


def unet_hash(path: str | os.PathLike[str]) -> str:
    """sha256 over the UNet directory's files (names and bytes, sorted): identifies the weights."""
    return sha256_path(unet_dir(Path(path)))


def load_unet(path: Path) -> tuple[Any, Path, dict[str, Any]]:
    """(UNet2DModel, its directory, the scheduler config) of a diffusers directory (``unet/`` or bare),
    read offline; the DDPM defaults when it has none. A foreign or broken one: one CheckpointError line."""
    diffusers = require("diffusers")
    where = unet_dir(path)
    try:
        unet = diffusers.UNet2DModel.from_pretrained(
            str(where), local_files_only=True, low_cpu_mem_usage=False
        )
    except Exception as exc:  # diffusers raises many types for a foreign or broken directory
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{where}: not a loadable diffusers UNet2DModel ({msg})") from None
    sched_file = next(
        (
            p
            for p in (path / "scheduler" / "scheduler_config.json", path / "scheduler_config.json")
            if p.is_file()
        ),
        None,
    )
    sched_cfg = json.loads(sched_file.read_text()) if sched_file else dict(diffusers.DDPMScheduler().config)
    return unet, where, sched_cfg


def size_multiple(unet: Any) -> int:
    """What an input's height and width must be a multiple of: 2 per downsampling block."""
    return 2 ** sum(1 for b in unet.down_blocks if getattr(b, "downsamplers", None) is not None)
