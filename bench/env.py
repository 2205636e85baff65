"""The machine a benchmark ran on: CPU, GPU, memory, every backend's version, and whether a profile's device
is this machine (which decides whether its latency budget can gate here).

Latency budgets are derived for one device (a Jetson, a Raspberry Pi, a laptop CPU); measuring them on any
other machine says nothing about that device. :func:`device_matches` is deliberately strict: every
distinctive word of the profile's device name must appear in what this host says about itself (CPU model,
GPU names, ``/proc/device-tree/model`` on Jetsons and Raspberry Pis), and "Generic ..." devices never
match. ``edgefuse bench --latency-budgets on`` overrides it where a device names itself differently.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from edgefuse import backends
from edgefuse.runtimes.base import get_runtime, runtime_names

# pip distributions whose versions a report records: these, and each backend's report_packages
CORE_PACKAGES = ("torch", "numpy")
PLOT_PACKAGES = ("matplotlib",)
# CPU features that change how a profile behaves (int8 dot products, bf16 defaults in OpenVINO, fp16 math)
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "avx512_fp16")
ARM_FLAGS = ("asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve")
# words too common to identify a device
_GENERIC_WORDS = {"nvidia", "geforce", "intel", "amd", "core", "cpu", "gpu", "apple", "the", "with", "and"}
_MEMORY_WORD = re.compile(r"^\d+(gb|mb|tb)$")
# words that split one board family from another: present on one side only means a different device
# ("NVIDIA Jetson Nano" is not "NVIDIA Jetson Orin Nano")
_FAMILY_WORDS = {"orin", "agx", "xavier", "nx", "tx2", "pro", "max", "ultra", "super", "ti"}


def cpu_info() -> dict[str, Any]:
    """CPU model, logical cores (and how many this process may use), notable ISA flags."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text(errors="replace")
        m = re.search(r"^(model name|Model|Hardware)\s*:\s*(.+)$", text, re.M)
        model = m.group(2).strip() if m else model
        f = re.search(r"^(flags|Features)\s*:\s*(.+)$", text, re.M)
        flags = set(f.group(2).split()) if f else set()
    elif sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
            model = out.stdout.strip() or model
        except OSError:
            pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    known = CPU_FLAGS if platform.machine() in ("x86_64", "AMD64") else ARM_FLAGS
    return {
        "model": model,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "flags": [f for f in known if f in flags],
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def device_tree_model() -> str:
    """The board name on ARM boards (Jetson, Raspberry Pi); empty elsewhere."""
    path = Path("/proc/device-tree/model")
    try:
        return path.read_bytes().rstrip(b"\x00").decode(errors="replace").strip()
    except OSError:
        return ""


def memory_gb() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)


def gpu_info() -> list[dict[str, Any]]:
    """CUDA devices as torch sees them (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        prop = torch.cuda.get_device_properties(i)
        out.append(
            {
                "name": prop.name,
                "capability": f"{prop.major}.{prop.minor}",
                "memory_gb": round(prop.total_memory / 2**30, 1),
                "multiprocessors": prop.multi_processor_count,
            }
        )
    return out


def packages() -> tuple[str, ...]:
    backend = (p for spec in backends.specs() for p in spec.report_packages)
    return tuple(dict.fromkeys((*CORE_PACKAGES, *backend, *PLOT_PACKAGES)))


def package_versions() -> dict[str, str]:
    found = {}
    for name in packages():
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def backend_status() -> dict[str, dict[str, Any]]:
    """Every runtime: available here or not, its version or why not."""
    status = {}
    for name in runtime_names():
        try:
            ok, detail = get_runtime(name).is_available()
        except Exception as exc:  # a broken install must not stop the benchmark of the others
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        status[name] = {"available": ok, "detail": detail}
    return status


def environment(label: str | None = None) -> dict[str, Any]:
    """Everything a report records about this machine."""
    import torch

    cpu = cpu_info()
    gpus = gpu_info()
    board = device_tree_model()
    host = socket.gethostname()
    default_label = board or (gpus[0]["name"] if gpus else cpu["model"])
    return {
        "label": label or f"{default_label} ({host})",
        "hostname": host,
        "board": board,
        "cpu": cpu,
        "gpus": gpus,
        "memory_gb": memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "threads": torch.get_num_threads(),
        },
        "packages": package_versions(),
        "backends": backend_status(),
    }


def host_names(env: dict[str, Any]) -> list[str]:
    """What this host calls itself: CPU model, GPU names, board name."""
    names = [str((env.get("cpu") or {}).get("model") or ""), str(env.get("board") or "")]
    names += [str(g.get("name") or "") for g in env.get("gpus") or []]
    return [n for n in names if n]


def _tokens(text: str) -> set[str]:
    text = re.sub(r"\((r|tm)\)", " ", text.lower())
    return set(re.findall(r"[a-z0-9][a-z0-9.+-]*", text))


def _words(device_name: str) -> set[str]:
    head = re.split(r"[(,]", device_name, maxsplit=1)[0]
    return {w for w in _tokens(head) if w not in _GENERIC_WORDS and not _MEMORY_WORD.match(w)}


def device_matches(device_name: str, env: dict[str, Any]) -> bool:
    """Whether a profile's ``device.name`` is this host: every distinctive word of its head (before any
    parenthesis or comma) is a word of one of the host's names, and that name has no family word the
    profile lacks. Generic devices never match."""
    if device_name.strip().lower().startswith("generic"):
        return False
    words = _words(device_name)
    if not words:
        return False
    for name in host_names(env):
        tokens = _tokens(name)
        if words <= tokens and not (tokens - words) & _FAMILY_WORDS:
            return True
    return False


def default_threads() -> tuple[int, str]:
    """Threads when ``--threads`` is not given, and why: the usable cores less those other processes keep
    busy (the 1-minute load average), at least 1. An OpenMP pool wider than the idle cores collapses: on
    a 2-core machine with one core busy, torch at 2 threads gave p50 56 ms and p90 190 ms where 1 thread
    gave 31 ms and 34 ms (fusionproxy-s, 480x640)."""
    cores = usable_cores()
    try:
        busy = os.getloadavg()[0]
    except OSError:
        return cores, f"{cores} usable cores (load average unknown)"
    threads = max(1, min(cores, cores - round(busy)))
    return threads, f"{cores} usable cores, {busy:.1f} busy with other work (1-minute load average)"


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
