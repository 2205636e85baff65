"""One training loop for the student: AdamW, warm-up + cosine schedule, EMA weights, atomic checkpoints
every epoch, resume, seeded, DDP-aware (``torchrun``). ``train`` and ``distill`` differ only in their loss.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from edgefuse.checkpoint import save_checkpoint
from edgefuse.errors import CheckpointError
from edgefuse.io import atomic_path
from edgefuse.model import FusionProxy

LossFn = Callable[[torch.nn.Module, dict[str, Any]], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    seed: int = 0
    workers: int = 0
    device: str = "cpu"
    log_every: int = 10
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in provenance only


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path, mode=None) as tmp:  # mode None: the state file stays private (0600)
        torch.save(obj, tmp)


class Trainer:
    """Fit ``model`` with ``loss_fn(model, batch) -> (loss, logs)`` on a Dataset of dicts of tensors.

    Writes ``out`` (EMA weights, safetensors, every epoch) and ``out + '.state.pt'`` (optimizer, schedule,
    raw weights, progress) so ``fit(resume=True)`` continues where an interrupted run stopped.
    """

    def __init__(
        self,
        model: FusionProxy,
        loss_fn: LossFn,
        train_set: Dataset,
        out: str | os.PathLike[str],
        cfg: TrainConfig,
        val_set: Dataset | None = None,
        provenance: dict[str, Any] | None = None,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.model = model.to(self.device)
        self.ema = copy.deepcopy(model).to(self.device).eval().requires_grad_(False)
        self.loss_fn = loss_fn
        self.train_set, self.val_set = train_set, val_set
        self.out = Path(out)
        self.state_path = self.out.with_name(self.out.name + ".state.pt")
        self.provenance = dict(provenance or {})
        self.on_epoch = on_epoch
        self.sampler: DistributedSampler | None = (
            DistributedSampler(train_set, seed=cfg.seed) if world_size() > 1 else None
        )
        gen = torch.Generator().manual_seed(cfg.seed)
        self.loader = DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            shuffle=self.sampler is None,
            sampler=self.sampler,
            num_workers=cfg.workers,
            drop_last=len(train_set) >= cfg.batch_size * world_size(),  # type: ignore[arg-type]
            generator=gen,
            persistent_workers=cfg.workers > 0,
        )
        self.net: torch.nn.Module = self.model
        if world_size() > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.total_steps = max(1, cfg.epochs * len(self.loader))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.epoch = 0
        self.step = 0
        self.history: list[dict[str, float]] = []

    def _lr_factor(self, step: int) -> float:
        warm = min(self.cfg.warmup_steps, self.total_steps // 10)
        if step < warm:
            return (step + 1) / max(1, warm)
        t = (step - warm) / max(1, self.total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    @torch.no_grad()
    def _update_ema(self) -> None:
        # short runs: ramp the decay up so early EMA weights are not stuck at initialisation
        d = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        for pe, pm in zip(self.ema.parameters(), self.model.parameters(), strict=False):
            pe.lerp_(pm.detach(), 1.0 - d)

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
        }

    def resume(self) -> None:
        if not self.state_path.is_file():
            raise CheckpointError(
                f"{self.state_path}: nothing to resume (no training state next to {self.out})"
            )
        try:
            state = torch.load(self.state_path, map_location=self.device, weights_only=True)
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            self.epoch, self.step = int(state["epoch"]), int(state["step"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{self.state_path}: unusable training state ({exc})") from None

    def _save(self, logs: dict[str, float]) -> None:
        if rank() != 0:
            return
        self.out.parent.mkdir(parents=True, exist_ok=True)
        prov = {
            **self.provenance,
            "epochs": self.epoch,
            "steps": self.step,
            "final_loss": logs.get("loss"),
            "val_loss": logs.get("val_loss"),
            "train_config": {k: v for k, v in asdict(self.cfg).items() if k != "device"},
            "world_size": world_size(),
            "weights": "ema",
        }
        save_checkpoint(self.ema, self.out, provenance=prov)
        _atomic_torch_save(
            {
                "model": self.model.state_dict(),
                "ema": self.ema.state_dict(),
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "epoch": self.epoch,
                "step": self.step,
            },
            self.state_path,
        )

    @torch.no_grad()
    def validate(self) -> float | None:
        if self.val_set is None or len(self.val_set) == 0:  # type: ignore[arg-type]
            return None
        total, n = 0.0, 0
        for i in range(len(self.val_set)):  # type: ignore[arg-type]
            batch = self._to_device(
                {k: (v.unsqueeze(0) if torch.is_tensor(v) else v) for k, v in self.val_set[i].items()}
            )
            loss, _ = self.loss_fn(self.ema, batch)
            total += float(loss)
            n += 1
        return total / max(1, n)

    def fit(self, resume: bool = False, progress: bool = True) -> Path:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        seed_everything(self.cfg.seed + rank())
        if resume:
            self.resume()
        t0 = time.perf_counter()
        cols = (TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.fields[msg]}"))
        with Progress(
            *cols, TimeRemainingColumn(), disable=not progress or rank() != 0, transient=False
        ) as bar:
            task = bar.add_task(
                "train", total=self.total_steps, completed=self.step, epoch=self.epoch, msg=""
            )
            while self.epoch < self.cfg.epochs:
                if self.sampler is not None:
                    self.sampler.set_epoch(self.epoch)
                if hasattr(self.train_set, "set_epoch"):
                    self.train_set.set_epoch(self.epoch)
                self.net.train()
                running, count = 0.0, 0
                for batch in self.loader:
                    loss, logs = self.loss_fn(self.net, self._to_device(batch))
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"non-finite loss at step {self.step}: {logs}")
                    self.opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
                    self.opt.step()
                    self.sched.step()
                    self._update_ema()
                    self.step += 1
                    running += float(loss.detach())
                    count += 1
                    bar.update(task, advance=1, epoch=self.epoch + 1, msg=f"loss {running / count:.4f}")
                self.epoch += 1
                logs = {"epoch": float(self.epoch), "loss": running / max(1, count)}
                val = self.validate()
                if val is not None:
                    logs["val_loss"] = val
                logs["seconds"] = time.perf_counter() - t0
                self.history.append(logs)
                self._save(logs)
                if self.on_epoch is not None and rank() == 0:
                    self.on_epoch(self.epoch, logs)
        return self.out
