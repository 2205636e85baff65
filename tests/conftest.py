"""Shared fixtures: real pairs in ../shared/data (skipped when absent), a tiny paired folder, --backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="run backend tests only for NAME (repeat or comma-separate; default: every backend)",
    )


def _selection(config: pytest.Config) -> frozenset[str]:
    """Backends named with --backend (aliases resolved through the registry); empty: every backend."""
    from edgefuse import backends

    raw = config.getoption("--backend") or []
    names = {n.strip() for item in raw for n in item.split(",") if n.strip()}
    chosen = set()
    for name in names:
        key = backends.canonical(name)
        if key is None:
            raise pytest.UsageError(f"--backend: unknown backend {name!r}{backends.suggest(name)}")
        chosen.add(key)
    return frozenset(chosen)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --backend, a test marked for other backends only is skipped; unmarked tests always run."""
    from edgefuse import backends

    chosen = _selection(config)
    if not chosen:
        return
    for item in items:
        marked = {backends.canonical(m.name) for m in item.iter_markers()} - {None}
        if marked and not marked & chosen:
            item.add_marker(pytest.mark.skip(reason=f"--backend {','.join(sorted(chosen))} given"))


@pytest.fixture(scope="session")
def selected_backends(request: pytest.FixtureRequest) -> frozenset[str]:
    return _selection(request.config)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("real pairs not available (../shared/data absent)")
    return SHARED_DATA


def _real_set(shared: Path, name: str) -> Path:
    path = shared / name
    if not (path / "vi").is_dir() or not (path / "ir").is_dir():
        pytest.skip(f"real pairs not available (../shared/data/{name} absent)")
    return path


@pytest.fixture(scope="session")
def roadscene(shared_data: Path) -> Path:
    return _real_set(shared_data, "roadscene_train")


@pytest.fixture(scope="session")
def llvip(shared_data: Path) -> Path:
    """Evaluation/calibration only (non-commercial terms): never train the bundled model on it."""
    return _real_set(shared_data, "llvip_sample")


@pytest.fixture
def tiny_pairs(tmp_path: Path) -> Path:
    """Four random 40×56 pairs in tmp_path/pairs/{vi,ir} (RGB and 8-bit gray PNGs)."""
    from PIL import Image

    root = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    for sub in ("vi", "ir"):
        (root / sub).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(root / "vi" / f"{i:04d}.png")
        Image.fromarray(rng.integers(0, 256, (40, 56), dtype=np.uint8)).save(root / "ir" / f"{i:04d}.png")
    return root


def distill_args(cache: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """`edgefuse distill` of the smallest student for one quick epoch (the teacher tests' runs)."""
    args = ["distill", "--cache", str(cache), "--data", str(data), "-o", str(out), "--size", "n"]
    return [
        *args,
        "--crop",
        "32",
        "--batch-size",
        "2",
        "--epochs",
        "1",
        "--repeat",
        "1",
        "--workers",
        "0",
        *extra,
    ]
