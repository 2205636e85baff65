"""`edgefuse teacher mix`: one ensemble from the union of several caches' samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import distill_args
from typer.testing import CliRunner

from edgefuse.cli import app
from edgefuse.errors import DataError
from edgefuse.teacher.cache import TeacherCache, ensemble_stats, write_entry, write_manifest
from edgefuse.teacher.mix import mix_caches

runner = CliRunner()
SIZE = (40, 56)


def _samples(seed: int, k: int, stems: list[str]) -> dict[str, np.ndarray]:
    """K RGB samples per pair, each teacher around its own level (teachers that disagree)."""
    rng = np.random.default_rng(seed)
    base = 0.3 + 0.2 * seed
    return {s: np.clip(base + rng.normal(0, 0.05, (k, *SIZE, 3)), 0, 1).astype(np.float32) for s in stems}


def _write(root: Path, samples: dict[str, np.ndarray], keep: bool = True, name: str = "t") -> Path:
    entries = {}
    for stem, rgb in samples.items():
        mean, var, ys = ensemble_stats(rgb)
        entries[stem] = write_entry(root, stem, mean, var, ys if keep else None)
    k = next(iter(samples.values())).shape[0]
    write_manifest(root, entries, {"teacher": {"kind": name}, "k": k, "has_samples": keep})
    return root


def test_the_mix_is_the_ensemble_of_all_samples(tmp_path: Path) -> None:
    stems = ["a", "b", "c"]
    one, two = _samples(0, 3, stems), _samples(1, 2, stems)
    info = mix_caches(
        [TeacherCache(_write(tmp_path / n, x)) for n, x in (("one", one), ("two", two))],
        tmp_path / "mix",
        workers=2,
    )
    assert info == {"pairs": 3, "k": 5, "has_samples": True, "left_out": 0}
    cache = TeacherCache(tmp_path / "mix")
    assert (
        cache.k == 5 and cache.has_samples and [p["k"] for p in cache.manifest["teacher"]["parts"]] == [3, 2]
    )
    for stem in stems:
        mean, var, ys = ensemble_stats(np.concatenate([one[stem], two[stem]]))
        got = cache.load(stem)
        np.testing.assert_allclose(got.mean, mean, atol=1e-3)  # float16 storage
        # from the stored float16 samples, as a single teacher's variance is from its float32 ones
        np.testing.assert_allclose(got.var, ys.astype(np.float32).var(axis=0, ddof=1), atol=1e-6)
        np.testing.assert_allclose(got.var, var, atol=1e-4)
        np.testing.assert_array_equal(got.samples, ys)  # every sample kept, in order, at float16
        # the two teachers sit 0.2 apart: their disagreement dominates each one's own spread
        assert float(got.var.mean()) > 4 * max(
            float(TeacherCache(tmp_path / n).load(stem).var.mean()) for n in ("one", "two")
        )


def test_without_samples_the_variance_is_pooled_from_means_and_variances(tmp_path: Path) -> None:
    stems = ["a", "b"]
    one, two = _samples(0, 3, stems), _samples(1, 4, stems)
    roots = [_write(tmp_path / "one", one), _write(tmp_path / "two", two, keep=False)]
    info = mix_caches([TeacherCache(r) for r in roots], tmp_path / "mix")
    assert info["k"] == 7 and not info["has_samples"]
    for stem in stems:
        _, var, _ = ensemble_stats(np.concatenate([one[stem], two[stem]]))
        got = TeacherCache(tmp_path / "mix").load(stem)
        assert got.samples is None
        np.testing.assert_allclose(got.var, var, atol=2e-4)  # through the float16 means


def test_mix_cli_and_its_refusals(tiny_pairs: Path, tmp_path: Path) -> None:
    from edgefuse.data import find_pairs

    source = find_pairs(tiny_pairs)
    stems = [p.stem for p in source.pairs]
    one = _write(tmp_path / "one", _samples(0, 2, stems))
    two = _write(tmp_path / "two", _samples(1, 3, stems[:3]))
    res = runner.invoke(app, ["teacher", "mix", str(one), str(two), "-o", str(tmp_path / "mix")])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "3 pairs, K=5; 1 pairs not in every cache left out" in said
    TeacherCache(tmp_path / "mix").check(source, range(3), need_samples=True)  # what distil checks
    # a mix of full caches distils; routing needs a backbone: a mix names a prior only if its parts agree
    _write(tmp_path / "three", _samples(1, 2, stems))
    full = tmp_path / "full"
    res = runner.invoke(app, ["teacher", "mix", str(one), str(tmp_path / "three"), "-o", str(full)])
    assert res.exit_code == 0, res.output
    args = distill_args(full, tiny_pairs, tmp_path / "s.st")
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "give --prior DIR" in res.output
    res = runner.invoke(app, [*args, "--routing", "none"])
    assert res.exit_code == 0, res.output

    res = runner.invoke(app, ["teacher", "mix", str(one), "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "at least two teacher caches" in res.output
    res = runner.invoke(app, ["teacher", "mix", str(one), str(two), "-o", str(one)])
    assert res.exit_code == 2 and "cannot overwrite one of its parts" in res.output
    small = {s: np.full((2, 30, 56, 3), 0.5, np.float32) for s in stems}
    _write(tmp_path / "small", small)
    with pytest.raises(DataError, match="different sizes"):
        mix_caches([TeacherCache(one), TeacherCache(tmp_path / "small")], tmp_path / "y")
    assert not (tmp_path / "y" / "manifest.json").exists()  # no manifest for a mix that failed


def test_the_mix_names_the_prior_its_parts_agree_on(tmp_path: Path) -> None:
    roots = [_write(tmp_path / n, _samples(i, 2, ["a"])) for i, n in enumerate(("one", "two", "three"))]

    def name_prior(root: Path, prior: str | None) -> None:
        pairs = TeacherCache(root).pairs
        write_manifest(root, pairs, {"teacher": {"kind": "t", "prior": prior}, "k": 2, "has_samples": True})

    for root, prior in zip(roots, ("/p", None, "/p"), strict=True):
        name_prior(root, prior)
    mix_caches([TeacherCache(r) for r in roots], tmp_path / "mix")
    assert TeacherCache(tmp_path / "mix").manifest["teacher"]["prior"] == "/p"
    name_prior(roots[1], "/q")
    mix_caches([TeacherCache(r) for r in roots], tmp_path / "mix2")
    assert "prior" not in TeacherCache(tmp_path / "mix2").manifest["teacher"]  # they disagree: none
