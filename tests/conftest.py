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


class BackendSelection(frozenset):
    """Backends named with --backend; empty means all, so ``name in selection`` is then always True."""

    def __contains__(self, name: object) -> bool:
        return not self or frozenset.__contains__(self, str(name).lower())

    def allows(self, name: str) -> bool:
        return name in self


@pytest.fixture(scope="session")
def selected_backends(request: pytest.FixtureRequest) -> BackendSelection:
    raw = request.config.getoption("--backend") or []
    return BackendSelection(n.strip().lower() for item in raw for n in item.split(",") if n.strip())


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
