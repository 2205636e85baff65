"""The CLI boundary and `fuse`'s outputs, tried as a careless user and as an attacker would.

Every bad input or environment problem: one line on stderr, exit 2, nothing written or lost. A bug: one
line naming the file that holds the traceback, exit 3. Outputs never replace inputs, never replace a file
without --overwrite, and are written atomically.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from edgefuse.cli import app, main
from edgefuse.cli._common import check_device
from edgefuse.errors import EdgefuseError

runner = CliRunner()
NO_CUDA = pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    vis, ir = tmp_path / "vis.png", tmp_path / "ir.png"
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(vis)
    Image.fromarray(rng.integers(0, 256, (40, 56), dtype=np.uint8)).save(ir)
    return vis, ir


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.partial*"))


# --- fuse: overwrite, self-overwrite, atomic writes ----------------------------------------------------


def test_fuse_refuses_to_overwrite_without_the_flag(pair: tuple[Path, Path], tmp_path: Path) -> None:
    vis, ir = pair
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    line = _one_line_error(runner.invoke(app, ["fuse", str(vis), str(ir), "-o", str(out)]))
    assert "--overwrite" in line and out.read_bytes() == b"precious"
    result = runner.invoke(app, ["fuse", str(vis), str(ir), "-o", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (56, 40)
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # usual permissions, not mkstemp's
    assert _leftovers(tmp_path) == []


def _spellings(path: Path) -> list[str]:
    rel = os.path.relpath(path)
    return [
        str(path),
        rel,
        f"./{rel}",
        str(path.parent / "." / path.name),
        str(path.parent / ".." / path.parent.name / path.name),
    ]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["vis", "ir"]), spelling=st.integers(0, 4), overwrite=st.booleans())
def test_fuse_never_writes_over_an_input(
    pair: tuple[Path, Path], which: str, spelling: int, overwrite: bool
) -> None:
    vis, ir = pair
    target = vis if which == "vis" else ir
    before = target.read_bytes()
    args = ["fuse", str(vis), str(ir), "-o", _spellings(target)[spelling]]
    line = _one_line_error(runner.invoke(app, [*args, "--overwrite"] if overwrite else args))
    assert "refusing to write over it" in line
    assert target.read_bytes() == before


def test_fuse_sees_through_links_to_an_input(pair: tuple[Path, Path], tmp_path: Path) -> None:
    vis, ir = pair
    (tmp_path / "sym.png").symlink_to(vis)
    os.link(ir, tmp_path / "hard.png")
    for out in ("sym.png", "hard.png"):
        args = ["fuse", str(vis), str(ir), "-o", str(tmp_path / out), "--overwrite"]
        _one_line_error(runner.invoke(app, args))
    assert Image.open(vis).size == (56, 40) and Image.open(ir).mode == "L"


def test_fuse_folder_into_its_own_input_folder_is_refused(tiny_pairs: Path) -> None:
    before = {p: p.read_bytes() for p in (tiny_pairs / "vi").iterdir()}
    for sub in ("vi", "ir", "./ir/../vi"):
        args = ["fuse", "--data", str(tiny_pairs), "-o", str(tiny_pairs / sub), "--overwrite"]
        line = _one_line_error(runner.invoke(app, args))
        assert "is an input folder" in line
    assert {p: p.read_bytes() for p in (tiny_pairs / "vi").iterdir()} == before
    assert len(list((tiny_pairs / "ir").iterdir())) == 4


def test_a_failed_write_keeps_the_old_file_whole(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk mid-write (ENOSPC): exit 2, the previous output intact, no temporary file left."""
    vis, ir = pair
    out = tmp_path / "out.png"
    out.write_bytes(b"previous")
    real_save = Image.Image.save

    def full_disk(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # bytes reach the temporary file, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fp))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    line = _one_line_error(runner.invoke(app, ["fuse", str(vis), str(ir), "-o", str(out), "--overwrite"]))
    assert "no space left on device" in line
    assert out.read_bytes() == b"previous" and _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "target",
    ["afile/out.png", "afile/sub/", "folder.png"],
    ids=["parent-is-a-file", "folder-under-a-file", "output-is-a-folder"],
)
def test_unwritable_outputs_fail_before_the_work(
    pair: tuple[Path, Path], tmp_path: Path, target: str
) -> None:
    vis, ir = pair
    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder.png").mkdir()
    _one_line_error(runner.invoke(app, ["fuse", str(vis), str(ir), "-o", str(tmp_path / target)]))


def test_read_only_location_is_one_line(pair: tuple[Path, Path]) -> None:
    vis, ir = pair
    target = Path("/proc/edgefuse-out.png")  # read-only even for root
    if os.access("/proc", os.W_OK) and not Path("/proc/self").exists():
        pytest.skip("no read-only /proc here")
    _one_line_error(runner.invoke(app, ["fuse", str(vis), str(ir), "-o", str(target)]))


def test_a_failed_command_leaves_no_trace(tmp_path: Path) -> None:
    out = tmp_path / "new" / "folder"
    _one_line_error(
        runner.invoke(app, ["fuse", str(tmp_path / "nope.png"), str(tmp_path / "x.png"), "-o", str(out)])
    )
    _one_line_error(runner.invoke(app, ["fuse", "--data", str(tmp_path / "nope"), "-o", str(out)]))
    assert not (tmp_path / "new").exists()


def test_unknown_output_type_is_refused(pair: tuple[Path, Path], tmp_path: Path) -> None:
    vis, ir = pair
    line = _one_line_error(runner.invoke(app, ["fuse", str(vis), str(ir), "-o", str(tmp_path / "o.xyz")]))
    assert ".png" in line


# --- fuse: what it says ---------------------------------------------------------------------------------


def test_fuse_data_names_unpaired_stems_and_prints_progress_off_a_tty(
    tiny_pairs: Path, tmp_path: Path
) -> None:
    Image.new("RGB", (56, 40)).save(tiny_pairs / "vi" / "lonely_vis.png")
    Image.new("L", (56, 40)).save(tiny_pairs / "ir" / "lonely_ir.png")
    out = tmp_path / "fused"
    result = runner.invoke(app, ["fuse", "--data", str(tiny_pairs), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 unpaired stem(s) skipped" in result.stderr
    assert "visible only: lonely_vis" in result.stderr and "thermal only: lonely_ir" in result.stderr
    assert "fuse: 4/4" in result.stdout  # a plain progress line: CliRunner is not a terminal
    assert sorted(p.name for p in out.iterdir()) == [f"{i:04d}.png" for i in range(4)]


def test_folder_size_mismatch_is_refused_before_anything_is_written(tiny_pairs: Path, tmp_path: Path) -> None:
    Image.new("L", (28, 20)).save(tiny_pairs / "ir" / "0002.png")
    out = tmp_path / "fused"
    line = _one_line_error(runner.invoke(app, ["fuse", "--data", str(tiny_pairs), "-o", str(out)]))
    assert "1 of 4 pairs differ in size" in line and "--resize-ir" in line
    assert not out.exists() or not any(out.iterdir())


def test_resize_ir_warns_when_the_aspect_ratio_changes(pair: tuple[Path, Path], tmp_path: Path) -> None:
    vis, _ = pair
    square = tmp_path / "square_ir.png"
    Image.new("L", (32, 32)).save(square)
    args = ["fuse", str(vis), str(square), "-o", str(tmp_path / "o.png")]
    assert "--resize-ir" in _one_line_error(runner.invoke(app, args))
    result = runner.invoke(app, [*args, "--resize-ir"])
    assert result.exit_code == 0, result.output
    assert "stretched" in result.stderr


# --- video ----------------------------------------------------------------------------------------------


def _video(path: Path, frames: int, size: tuple[int, int]) -> Path:
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    rng = np.random.default_rng(frames)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def test_video_sizes_frame_counts_and_aspect(tmp_path: Path) -> None:
    vis = _video(tmp_path / "vis.mp4", 12, (64, 48))
    half = _video(tmp_path / "half.mp4", 6, (32, 24))
    square = _video(tmp_path / "square.mp4", 12, (32, 32))
    out = tmp_path / "out.mp4"
    base = ["fuse", "--visible", str(vis), "-o", str(out)]
    line = _one_line_error(runner.invoke(app, [*base, "--thermal", str(half)]))
    assert "64×48" in line and "32×24" in line and "--resize-ir" in line and not out.exists()
    result = runner.invoke(app, [*base, "--thermal", str(half), "--resize-ir"])
    assert result.exit_code == 0, result.output
    assert "has 12 frames but" in result.stderr and "has 6" in result.stderr
    assert "stretched" not in result.stderr  # 64×48 and 32×24: same aspect
    assert "(6 frames" in " ".join(result.stdout.split())
    result = runner.invoke(app, [*base, "--thermal", str(square), "--resize-ir", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert "stretched" in result.stderr
    line = _one_line_error(runner.invoke(app, [*base, "--thermal", str(square), "--resize-ir"]))
    assert "already exists" in line
    line = _one_line_error(
        runner.invoke(app, [*base[:-1], str(vis), "--thermal", str(square), "--overwrite"])
    )
    assert "refusing to write over it" in line
    assert _leftovers(tmp_path) == []


# --- devices, sizes, usage errors, internal errors ------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=12))
def test_check_device_accepts_only_real_devices(name: str) -> None:
    try:
        got = check_device(name)
    except EdgefuseError as exc:
        assert "\n" not in str(exc)
        return
    assert got == "cpu" or got.startswith("cuda")


@NO_CUDA
@pytest.mark.parametrize(
    "args",
    [
        ["fuse", "--device", "cuda"],
        ["train", "-o", "x.safetensors", "--device", "cuda"],
        ["teacher", "train-prior", "--data", ".", "-o", "prior", "--device", "cuda:1"],
        ["fuse", "--device", "tpu"],
    ],
    ids=["fuse", "train", "teacher-train-prior", "unknown"],
)
def test_device_errors_are_one_line(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    line = _one_line_error(runner.invoke(app, args))
    assert "--device" in line
    assert not any(tmp_path.iterdir())


def test_train_checks_size_and_output_before_training(tmp_path: Path) -> None:
    line = _one_line_error(
        runner.invoke(app, ["train", "--size", "xl", "-o", str(tmp_path / "c.safetensors")])
    )
    assert "xl" in line
    (tmp_path / "afile").write_text("x")
    line = _one_line_error(runner.invoke(app, ["train", "-o", str(tmp_path / "afile" / "c.safetensors")]))
    assert "afile" in line and "data:" not in line


def test_unreadable_data_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("x")
    for data in (tmp_path / "missing", tmp_path / "notadir"):
        _one_line_error(runner.invoke(app, ["fuse", "--data", str(data), "-o", str(tmp_path / "o")]))


@pytest.mark.parametrize(
    "argv",
    [
        ["fuse", "--bogus"],
        ["nosuch"],
        ["train", "--epochs", "0", "-o", "x"],
        ["fuse", "--synthetic-pairs", "x"],
    ],
    ids=["unknown-option", "unknown-command", "out-of-range", "not-an-int"],
)
def test_usage_errors_are_one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "--help" in lines[0], err


def test_version_and_short_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--version"], ["-h"], ["fuse", "-h"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
    assert "edgefuse 0.1.0" in capsys.readouterr().out


def test_an_internal_error_is_one_line_with_the_traceback_saved(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgefuse.inference

    def bug(*_args, **_kwargs):
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr(edgefuse.inference, "get_model", bug)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("EDGEFUSE_DEBUG", raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    vis, ir = pair
    args = ["fuse", str(vis), str(ir), "-o", str(tmp_path / "o.png")]
    line = _one_line_error(runner.invoke(app, args), code=3)
    assert "internal error" in line and "ZeroDivisionError: planted bug" in line
    saved = Path(line.split("full traceback in ")[1].split(";")[0])
    assert saved.parent == tmp_path and "Traceback" in saved.read_text()
    assert not (tmp_path / "o.png").exists()
    result = runner.invoke(app, ["--debug", *args])  # the flag shows the traceback...
    assert isinstance(result.exception, ZeroDivisionError)
    assert runner.invoke(app, args).exit_code == 3  # ...for that invocation only
    monkeypatch.setenv("EDGEFUSE_DEBUG", "1")  # and so does the variable
    assert isinstance(runner.invoke(app, args).exception, ZeroDivisionError)


# --- image files an attacker (or a broken camera) wrote --------------------------------------------------


def _png_bytes(mode: str, size: tuple[int, int]) -> bytes:
    import io

    buf = io.BytesIO()
    Image.new(mode, size, 7).save(buf, format="PNG")
    return buf.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    blob=st.one_of(
        st.binary(max_size=512),
        st.builds(lambda n: _png_bytes("RGB", (9, 7))[:n], st.integers(0, 120)),
        st.builds(
            lambda n, b: _png_bytes("I;16", (5, 5))[:n] + b, st.integers(8, 80), st.binary(max_size=64)
        ),
    ),
    ext=st.sampled_from([".png", ".jpg", ".tif", ".bmp"]),
)
def test_corrupt_image_files_are_one_line_data_errors(tmp_path: Path, blob: bytes, ext: str) -> None:
    from edgefuse.data import read_thermal, read_visible
    from edgefuse.errors import DataError

    path = tmp_path / f"frame{ext}"
    path.write_bytes(blob)
    for read in (read_visible, read_thermal):
        try:
            arr = read(path)
        except DataError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
        else:  # whatever decodes must be a valid frame in [0, 1]
            assert arr.dtype == np.float32 and np.isfinite(arr).all()
            assert arr.min() >= 0.0 and arr.max() <= 1.0


def test_script_main_gives_bad_input_one_line_and_keeps_a_bugs_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from edgefuse.cli._common import script_main
    from edgefuse.errors import DataError

    def missing() -> int:
        raise DataError("nowhere: paired-image folder not found")

    with pytest.raises(SystemExit) as stop:
        script_main(missing)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "nowhere: paired-image folder not found" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as stop:
        script_main(lambda: 0)
    assert stop.value.code == 0

    def bug() -> int:
        raise KeyError("a bug in the script")

    with pytest.raises(KeyError):  # not caught: a script's bug shows its own traceback
        script_main(bug)
