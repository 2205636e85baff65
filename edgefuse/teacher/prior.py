"""The teacher's unconditional diffusion prior: a diffusers ``UNet2DModel`` + scheduler on luminance.

``train_prior`` fits a small, fully convolutional UNet (no attention, so it runs at any image size) to random
luminance crops of visible and thermal frames and saves a standard diffusers directory
(``DDPMPipeline.save_pretrained``: ``unet/``, ``scheduler/``, ``model_index.json``) plus
``edgefuse_prior.json`` (provenance). ``Prior.load`` reads that layout or any bare diffusers UNet2DModel
directory (1- or 3-channel; a 3-channel prior sees the luminance repeated) offline.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgefuse._optional import require
from edgefuse.color import BT601, BT601_F32
from edgefuse.errors import CheckpointError, DataError
from edgefuse.io import atomic_path, sha256_path

PRIOR_META = "edgefuse_prior.json"


@dataclass(frozen=True)
class PriorTrainConfig:
    crop: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 2
    batch_size: int = 64
    lr: float = 5e-4
    max_steps: int = 20000
    minutes: float = 0.0  # wall-clock budget (0: none); the cosine schedule is sized to it after 30 steps
    ema_decay: float = 0.999
    train_timesteps: int = 1000
    seed: int = 0
    device: str = "cpu"
    precision: str = "bf16"  # autocast dtype on CUDA (fp32 on CPU whatever this says)


def build_unet(cfg: PriorTrainConfig) -> Any:
    diffusers = require("diffusers")
    n = len(cfg.channels)
    groups = math.gcd(32, *cfg.channels)
    return diffusers.UNet2DModel(
        sample_size=cfg.crop,
        in_channels=1,
        out_channels=1,
        block_out_channels=tuple(cfg.channels),
        layers_per_block=cfg.layers_per_block,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        add_attention=False,
        norm_num_groups=groups,
    )


def luminance_frames(source: Any, indices: Sequence[int]) -> list[np.ndarray]:
    """uint8 luminance of the visible and the thermal frame of each pair (two frames per pair)."""
    frames = []
    for i in indices:
        vis, ir = source[i]
        for y in (vis @ BT601_F32, ir):
            frames.append(np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8))
    return frames


def random_crops(
    frames: Sequence[np.ndarray], batch: int, crop: int, rng: np.random.Generator
) -> torch.Tensor:
    """B×1×crop×crop in [-1, 1]: random frame, random position, random horizontal flip."""
    out = np.empty((batch, 1, crop, crop), dtype=np.uint8)
    for b, k in enumerate(rng.integers(0, len(frames), size=batch)):
        img = frames[int(k)]
        ph, pw = max(0, crop - img.shape[0]), max(0, crop - img.shape[1])
        if ph or pw:
            img = np.pad(img, ((0, ph), (0, pw)), mode="reflect")
        top = int(rng.integers(0, img.shape[0] - crop + 1))
        left = int(rng.integers(0, img.shape[1] - crop + 1))
        patch = img[top : top + crop, left : left + crop]
        out[b, 0] = patch[:, ::-1] if rng.integers(0, 2) else patch
    return torch.from_numpy(out).float() / 127.5 - 1.0


def _lr_factor(step: int, total: int) -> float:
    warm = max(1, min(200, total // 10))
    if step < warm:
        return (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t))


def train_prior(
    frames: Sequence[np.ndarray],
    out: str | os.PathLike[str],
    cfg: PriorTrainConfig,
    provenance: dict[str, Any] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Denoising (ε-prediction) training on random crops; writes the EMA UNet + DDPM scheduler atomically.

    Resumable: the training state (weights, EMA, optimiser, schedule, step, data RNG) is saved atomically
    to ``<out>.state.pt`` every minute and when this call's ``minutes`` budget ends; ``resume=True`` continues
    from it, so one long schedule can run as several time-limited commands. The prior directory is written at
    the end of every call (the EMA weights so far); the state file is removed once the schedule is done.
    """
    diffusers = require("diffusers")
    from diffusers.training_utils import EMAModel

    if not frames:
        raise DataError("train-prior: no frames to train on")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    use_amp = device.type == "cuda" and cfg.precision in ("bf16", "fp16")
    unet = build_unet(cfg).to(device).train()
    sched = diffusers.DDPMScheduler(
        num_train_timesteps=cfg.train_timesteps, beta_schedule="linear", prediction_type="epsilon"
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
            "rng": json.dumps(rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
        }
        with atomic_path(state_path, mode=None) as tmp:
            torch.save(state, tmp)

    t0 = last_save = time.perf_counter()
    start_step = step
    while step < plan["total"]:
        x0 = random_crops(frames, cfg.batch_size, cfg.crop, rng).to(device, non_blocking=True)
        noise = torch.randn_like(x0)
        t = torch.randint(0, cfg.train_timesteps, (x0.shape[0],), device=device)
        ab = alphas[t].view(-1, 1, 1, 1)
        xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_amp):
            pred = unet(xt, t).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        ema.step(unet.parameters())
        step += 1
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        if step == 30 and cfg.minutes > 0 and start_step == 0 and not resume:
            # size the schedule to the time budget once the speed is known (recorded in provenance)
            rate = step / (time.perf_counter() - t0)
            plan["total"] = max(step + 1, min(cfg.max_steps, int(cfg.minutes * 60.0 * rate)))
        if on_step is not None:
            on_step(step, plan["total"], running)
        if cfg.minutes > 0 and time.perf_counter() - t0 > cfg.minutes * 60.0 and step < plan["total"]:
            break  # this call's budget is spent: save the state, write the prior so far
        if time.perf_counter() - last_save > 60.0:
            save_state()
            last_save = time.perf_counter()
    finished = step >= plan["total"]
    if not finished:
        save_state()
    seconds = done_before + time.perf_counter() - t0
    final = build_unet(cfg)
    ema.copy_to(final.parameters())
    info = {
        "kind": "edgefuse-luminance-prior",
        "steps": step,
        "schedule_steps": plan["total"],
        "complete": finished,
        "seconds": round(seconds, 1),
        "final_loss_ema": running,
        "train_config": {**asdict(cfg), "channels": list(cfg.channels)},
        "frames": len(frames),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        **(provenance or {}),
    }
    pipe = diffusers.DDPMPipeline(unet=final.eval(), scheduler=sched)

    def write(tmp: str) -> None:
        pipe.save_pretrained(tmp)
        _write_json(Path(tmp) / PRIOR_META, info)

    save_dir_atomic(out, write)
    if finished and state_path.is_file():
        state_path.unlink()
    info["sha256"] = prior_hash(out)
    return info


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


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


def _unet_dir(path: Path) -> Path:
    if (path / "unet" / "config.json").is_file():
        return path / "unet"
    if (path / "config.json").is_file():
        return path
    raise CheckpointError(f"{path}: not a diffusers UNet directory (no unet/config.json or config.json)")


def prior_hash(path: str | os.PathLike[str]) -> str:
    """sha256 over the UNet directory's files (names and bytes, sorted): identifies the prior's weights."""
    return sha256_path(_unet_dir(Path(path)))


class Prior:
    """A loaded UNet prior: ``predict(x_t, t) -> (eps, x0)`` on N×1×H×W luminance in [-1, 1]."""

    def __init__(
        self, unet: Any, scheduler_config: dict[str, Any], path: Path, precision: str = "fp32"
    ) -> None:
        self.unet = unet.eval().requires_grad_(False)
        self.scheduler_config = dict(scheduler_config)
        self.path = path
        self.sha256 = prior_hash(path)
        self.in_channels = int(unet.config.in_channels)
        self.prediction_type = str(self.scheduler_config.get("prediction_type", "epsilon"))
        downs = sum(1 for b in unet.down_blocks if getattr(b, "downsamplers", None) is not None)
        self.multiple = 2**downs
        self.precision = precision
        meta = path / PRIOR_META
        self.meta: dict[str, Any] = json.loads(meta.read_text()) if meta.is_file() else {}

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu", precision: str = "fp32") -> Prior:
        diffusers = require("diffusers")
        path = Path(path).expanduser()
        if not path.is_dir():
            raise CheckpointError(f"{path}: prior directory not found")
        unet_dir = _unet_dir(path)
        try:
            unet = diffusers.UNet2DModel.from_pretrained(
                str(unet_dir), local_files_only=True, low_cpu_mem_usage=False
            )
        except Exception as exc:  # diffusers raises many types for a foreign or broken directory
            msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{unet_dir}: not a loadable diffusers UNet2DModel ({msg})") from None
        if unet.config.in_channels not in (1, 3) or unet.config.out_channels != unet.config.in_channels:
            raise CheckpointError(
                f"{unet_dir}: UNet must map 1 or 3 channels to as many (config in/out channels)"
            )
        sched_file = next(
            (
                p
                for p in (path / "scheduler" / "scheduler_config.json", path / "scheduler_config.json")
                if p.is_file()
            ),
            None,
        )
        sched_cfg = (
            json.loads(sched_file.read_text()) if sched_file else dict(diffusers.DDPMScheduler().config)
        )
        unet = unet.to(device)
        if unet.device.type == "cuda":
            unet = unet.to(memory_format=torch.channels_last)  # faster cuDNN convolutions in bf16/fp16
        return cls(unet, sched_cfg, path, precision)

    def ddim_scheduler(self) -> Any:
        """A DDIM scheduler on the prior's noise schedule; it is fed ε, and lands on x0 at the last step."""
        diffusers = require("diffusers")
        keep = {
            k: v
            for k, v in self.scheduler_config.items()
            if k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas")
        }
        return diffusers.DDIMScheduler(
            **keep,
            prediction_type="epsilon",
            clip_sample=False,
            set_alpha_to_one=True,
            timestep_spacing="trailing",
        )

    @torch.no_grad()
    def predict(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε, x0) for x_t at timestep ``t`` under the prior's training parameterisation."""
        inp = x.repeat(1, 3, 1, 1) if self.in_channels == 3 else x
        amp = self.device.type == "cuda" and self.precision in ("bf16", "fp16")
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype, enabled=amp):
            out = self.unet(inp, t).sample.float()
        if self.in_channels == 3:
            out = (out * torch.tensor(BT601, device=out.device).view(1, 3, 1, 1)).sum(1, True)
        ab = self.ddim_alphas()[int(t)].to(x.device)
        a, s = ab.sqrt(), (1.0 - ab).sqrt()
        if self.prediction_type == "epsilon":
            eps = out
            x0 = (x - s * eps) / a
        elif self.prediction_type == "v_prediction":
            x0 = a * x - s * out
            eps = s * x + a * out
        elif self.prediction_type == "sample":
            x0 = out
            eps = (x - a * x0) / s
        else:
            raise CheckpointError(f"{self.path}: unsupported prediction_type {self.prediction_type!r}")
        return eps, x0

    def ddim_alphas(self) -> torch.Tensor:
        if not hasattr(self, "_alphas"):
            self._alphas = self.ddim_scheduler().alphas_cumprod
        return self._alphas
