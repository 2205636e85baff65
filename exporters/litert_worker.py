"""LiteRT's slow preparations in a worker process, while the other targets export.

litert-torch's conversion (~8 s at 480×640) and ai-edge-quantizer's calibration over the profile's frames
(~8 s for 64) are mostly single-threaded Python: run in-process they leave one of two cores idle, and every
other target waits for them. :func:`start` hands them to a child Python process (the model's exact
in-memory weights, the frames' folder and size); :func:`result` waits for it when a LiteRT build needs the
float model. The child runs the same functions the in-process path runs and says which frames it
calibrated on; anything that does not match, or a child that failed, and the exporter does the work
in-process instead, so the artifact is the same either way.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefuse._optional import require
from edgefuse.calibration import Frames, calibration_frames_in, samples
from edgefuse.io import atomic_write_text

if TYPE_CHECKING:
    from edgefuse.exporters.base import ExportSession, Job
    from edgefuse.spec import IOSpec

TIMEOUT_S = 900  # far beyond a conversion's minute at 480×640 on 2 cores: only a hung worker waits this long
# files in the worker's folder: what it is given, what it leaves
SPEC, WEIGHTS = "spec.json", "weights.safetensors"
MODEL, QSVS, DONE, LOG = "model.tflite", "qsvs.npz", "done.json", "worker.log"


@dataclass(frozen=True)
class Done:
    """What a worker left: the float model and, when it calibrated, on which frames."""

    model: Path
    calibrated_on: tuple[str, tuple[str, ...]] | None
    folder: Path

    def qsvs(self) -> dict[str, dict[str, np.ndarray]]:
        """The calibration result as ai_edge_quantizer returns it (dtypes kept: float32 min/max arrays)."""
        names = json.loads((self.folder / DONE).read_text(encoding="utf-8"))["tensors"]
        with np.load(self.folder / QSVS) as arrays:
            return {name: {k: arrays[f"{i}.{k}"] for k in ("min", "max")} for i, name in enumerate(names)}


class _Worker:
    def __init__(self, proc: subprocess.Popen[bytes], folder: Path) -> None:
        self.proc, self.folder = proc, folder
        self.done: Done | None = None
        self.finished = False

    def wait(self) -> Done | None:
        if not self.finished:
            self.finished = True
            try:
                code = self.proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:  # hung: the session does the work itself
                self.stop()
                return None
            if code == 0 and (self.folder / DONE).is_file():
                info = json.loads((self.folder / DONE).read_text(encoding="utf-8"))
                calib = info.get("calibrated_on")
                on = (calib["source"], tuple(calib["stems"])) if calib else None
                self.done = Done(self.folder / MODEL, on, self.folder)
        return self.done

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start(session: ExportSession, io: IOSpec, int8: Job | None) -> None:
    """Start the worker for this IO size (once per session); ``int8``: also calibrate for that job."""
    from safetensors.torch import save_file

    if session.worker(("litert", io)) is not None:
        return
    folder = session.scratch_dir("litert-worker", f"{io.batch}x{io.height}x{io.width}")
    save_file({k: v.contiguous() for k, v in session.model.state_dict().items()}, str(folder / WEIGHTS))
    spec: dict[str, Any] = {
        "config": session.model.config.to_dict(),
        "inputs": {name: list(shape) for name, shape in io.inputs.items()},
        "threads": session.threads,
        "parent": os.getpid(),
    }
    if int8 is not None:
        frames = session.calibration(int8.profile)
        spec["calibration"] = {
            "source": frames.source, "count": len(frames), "height": frames.height, "width": frames.width,
            "stems": list(frames.stems),
        }  # fmt: skip
    (folder / SPEC).write_text(json.dumps(spec), encoding="utf-8")
    # the child imports the edgefuse this process runs (run in the scratch folder, not the caller's cwd,
    # whose ./edgefuse may be a source tree); a non-standard location is passed on through PYTHONPATH
    import site

    import edgefuse

    env = dict(os.environ)
    root = Path(edgefuse.__file__).resolve().parent.parent
    if root not in {Path(p).resolve() for p in site.getsitepackages()}:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    with open(folder / LOG, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(folder)],
            cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    session.add_worker(("litert", io), _Worker(proc, folder))


def result(session: ExportSession, io: IOSpec) -> Done | None:
    """The worker's output for this IO size (waiting for it); None when none was started or it failed."""
    worker = session.worker(("litert", io))
    return worker.wait() if isinstance(worker, _Worker) else None


def quiet_loggers() -> None:
    for name in ("absl", "litert_torch", "ai_edge_quantizer", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)


def convert_float(model: Any, sample: tuple[Any, Any], path: Path) -> Path:
    """The float .tflite of ``model`` at the sample's shapes, with named inputs and output (the slow step,
    ~8 s at 480×640)."""
    import torch

    litert_torch = require("litert_torch")
    quiet_loggers()

    class Named(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.m = model

        def forward(self, visible: torch.Tensor, thermal: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"fused": self.m(visible, thermal)}

    visible, thermal = sample
    edge = litert_torch.convert(Named(model).eval(), sample_kwargs={"visible": visible, "thermal": thermal})
    edge.export(str(path))
    return path


def calibrate(src: Path, frames: Frames, threads: int) -> dict[str, Any]:
    """ai_edge_quantizer's calibration result (per-tensor min/max) for the int8 recipe on ``frames``."""
    from ai_edge_quantizer import quantizer, recipe

    quiet_loggers()
    qt = quantizer.Quantizer(str(src))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    return dict(qt.calibrate({"serving_default": samples(frames)}, num_threads=threads))


# --- the child ---------------------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this worker when the export it serves dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def main(folder: Path) -> int:
    import torch
    from safetensors.torch import load_file

    from edgefuse.model import FusionProxy, FusionProxyConfig

    spec = json.loads((folder / SPEC).read_text(encoding="utf-8"))
    _die_with_parent(spec["parent"])
    torch.set_num_threads(spec["threads"])
    model = FusionProxy(FusionProxyConfig.from_dict(spec["config"]))
    model.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
    sample = (torch.zeros(spec["inputs"]["visible"]), torch.zeros(spec["inputs"]["thermal"]))
    convert_float(model.eval(), sample, folder / MODEL)
    done: dict[str, Any] = {"calibrated_on": None, "tensors": []}
    calib = spec.get("calibration")
    if calib:
        frames = calibration_frames_in(calib["source"], calib["count"], calib["height"], calib["width"])
        if list(frames.stems) != calib["stems"] or frames.source != calib["source"]:
            raise RuntimeError("calibration frames differ from the parent's")
        qsvs = calibrate(folder / MODEL, frames, spec["threads"])
        names = list(qsvs)
        np.savez(
            folder / QSVS, **{f"{i}.{k}": qsvs[n][k] for i, n in enumerate(names) for k in ("min", "max")}
        )
        done = {"calibrated_on": {"source": frames.source, "stems": list(frames.stems)}, "tensors": names}
    atomic_write_text(folder / DONE, json.dumps(done))  # last: its presence says the rest is complete
    return 0


if __name__ == "__main__":
    # run under the module's own name, not as __main__: litert-torch names tensors after the classes on the
    # call stack (convert_float's wrapper among them), and the worker's model must match the in-process one
    from edgefuse.exporters.litert_worker import main as _main

    sys.exit(_main(Path(sys.argv[1])))
