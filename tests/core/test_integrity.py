"""Verify before use (issue 10): artifact files against their manifest, checkpoint metadata against the
tensors before anything is allocated, hashes recomputed rather than read back."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from edgefuse.checkpoint import load_checkpoint, load_model, resolve, save_checkpoint
from edgefuse.errors import ArtifactMismatchError, CheckpointError
from edgefuse.exporters.onnxruntime import torch_to_onnx
from edgefuse.io import sha256_path, size_bytes
from edgefuse.manifest import MANIFEST, ArtifactManifest, read_manifest
from edgefuse.model import create_model
from edgefuse.runtimes.base import open_artifact
from edgefuse.spec import IOSpec

IO = IOSpec(height=32, width=48)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("n").eval()
    return save_checkpoint(model, tmp_path_factory.mktemp("ck") / "n.safetensors")


def _artifact(folder: Path, checkpoint: Path) -> Path:
    """A real ONNX artifact directory with a manifest that records every file's size and sha256, as
    edgefuse export writes it."""
    model, info = load_model(checkpoint)
    folder.mkdir(parents=True, exist_ok=True)
    sample = (torch.rand(1, 3, IO.height, IO.width), torch.rand(1, 1, IO.height, IO.width))
    path = torch_to_onnx(model, sample, folder / "model.onnx", opset=17)  # the exporter's own call
    ArtifactManifest(
        backend="onnxruntime",
        artifact="model.onnx",
        io=IO,
        checkpoint={
            "path": info.path,
            "file_sha256": info.file_sha256,
            "weights_sha256": info.weights_sha256,
        },
        artifact_sha256=sha256_path(path),
        artifact_bytes=size_bytes(path),
        files={"model.onnx": {"sha256": sha256_path(path), "bytes": size_bytes(path)}},
    ).write(folder)
    return folder


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> Path:
    pytest.importorskip("onnxruntime")
    return _artifact(tmp_path_factory.mktemp("art") / "a", checkpoint)


def _edit_manifest(folder: Path, **changes: object) -> None:
    data = json.loads((folder / MANIFEST).read_text())
    data.update(changes)
    (folder / MANIFEST).write_text(json.dumps(data))


# --- artifacts ---------------------------------------------------------------------------------------------


@pytest.mark.onnxruntime
def test_a_verified_artifact_loads(artifact: Path) -> None:
    with open_artifact(artifact) as rt:
        assert rt.verified == {"model.onnx": sha256_path(artifact / "model.onnx")}


@pytest.mark.onnxruntime
@pytest.mark.parametrize("name", ["../outside.onnx", "/tmp/outside.onnx", "sub/../../outside.onnx"])
def test_manifest_naming_a_file_outside_its_folder_is_refused(
    artifact: Path, tmp_path: Path, name: str
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in artifact.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (tmp_path / "outside.onnx").write_bytes((artifact / "model.onnx").read_bytes())
    _edit_manifest(bad, artifact=name, files={})
    with pytest.raises(ArtifactMismatchError, match="outside the artifact directory"):
        open_artifact(bad)


@pytest.mark.onnxruntime
def test_symlink_escaping_the_folder_is_refused(artifact: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.onnx"
    elsewhere.write_bytes((artifact / "model.onnx").read_bytes())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / MANIFEST).write_bytes((artifact / MANIFEST).read_bytes())
    os.symlink(elsewhere, bad / "model.onnx")
    with pytest.raises(ArtifactMismatchError, match="points outside"):
        open_artifact(bad)


@pytest.mark.onnxruntime
def test_swapped_model_is_refused(artifact: Path, tmp_path: Path) -> None:
    torch.manual_seed(1)
    weights = save_checkpoint(create_model("n").eval(), tmp_path / "other.safetensors")
    other = _artifact(tmp_path / "other", weights)  # a valid model of the same size, other weights
    assert (other / "model.onnx").stat().st_size == (artifact / "model.onnx").stat().st_size
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    (swapped / MANIFEST).write_bytes((artifact / MANIFEST).read_bytes())
    (swapped / "model.onnx").write_bytes((other / "model.onnx").read_bytes())
    with pytest.raises(ArtifactMismatchError, match="does not match its recorded sha256"):
        open_artifact(swapped)


@pytest.mark.onnxruntime
def test_truncated_model_is_refused_by_size(artifact: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / MANIFEST).write_bytes((artifact / MANIFEST).read_bytes())
    (cut / "model.onnx").write_bytes((artifact / "model.onnx").read_bytes()[:1000])
    with pytest.raises(ArtifactMismatchError, match="1000 bytes, the manifest records"):
        open_artifact(cut)


@pytest.mark.onnxruntime
def test_missing_listed_file_is_refused(artifact: Path, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for f in artifact.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    data = json.loads((folder / MANIFEST).read_text())
    data["files"]["model.bin"] = {"sha256": "0" * 64, "bytes": 3}
    (folder / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ArtifactMismatchError, match="model.bin is missing"):
        open_artifact(folder)


def test_malformed_files_table_is_one_error(tmp_path: Path) -> None:
    for files in ([1, 2], {"model.onnx": "abc"}, {"model.onnx": {"sha256": 3, "bytes": 1}}):
        (tmp_path / MANIFEST).write_text(json.dumps({"backend": "onnxruntime", "files": files}))
        with pytest.raises(ArtifactMismatchError, match="malformed"):
            read_manifest(tmp_path).verify(tmp_path)


# --- checkpoints -------------------------------------------------------------------------------------------


def _with_metadata(src: Path, dst: Path, **meta: str) -> Path:
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        old = dict(f.metadata())
    save_file(load_file(str(src)), str(dst), metadata={**old, **meta})
    return dst


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "x", "stem": 8, "widths": [200000, 200000, 200000], "depths": [1, 1, 2]}, "widths 200000"),
        ({"name": "x", "stem": -5, "widths": [16, 32, 64], "depths": [1, 1, 2]}, "stem -5"),
        ({"name": "x", "stem": 8, "widths": [16, 32], "depths": [1, 1, 2]}, "exactly 3"),
        ({"name": "x", "stem": 8, "widths": [16, 32, 64], "depths": [1, 1, 10**9]}, "depths 1000000000"),
        ({"name": "x", "stem": 8.5, "widths": [16, 32, 64], "depths": [1, 1, 2]}, "stem 8.5"),
        ([1, 2, 3], "JSON object"),
    ],
)
def test_forged_config_is_refused_before_anything_is_built(
    checkpoint: Path, tmp_path: Path, config: object, message: str
) -> None:
    path = _with_metadata(
        checkpoint, tmp_path / "forged.safetensors", **{"edgefuse.config": json.dumps(config)}
    )
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_config_disagreeing_with_tensors_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    config = {"name": "x", "stem": 8, "widths": [1000, 1000, 1000], "depths": [1, 1, 2]}
    path = _with_metadata(checkpoint, tmp_path / "big.safetensors", **{"edgefuse.config": json.dumps(config)})
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model(path)


def test_integer_weights_are_refused(checkpoint: Path, tmp_path: Path) -> None:
    state = load_file(str(checkpoint))
    state = {k: (v * 100).to(torch.int8) for k, v in state.items()}
    for dtype in (torch.int8, torch.int64):
        torch.save({k: v.to(dtype) for k, v in state.items()}, tmp_path / "int.pt")
        with pytest.raises(CheckpointError, match=f"{str(dtype).removeprefix('torch.')} weights"):
            load_model(tmp_path / "int.pt")


def test_weights_hash_is_recomputed_not_read(checkpoint: Path, tmp_path: Path) -> None:
    _, info = load_checkpoint(checkpoint)
    state = load_file(str(checkpoint))
    first = sorted(state)[0]
    state[first] = state[first] + 0.5  # other weights, the metadata (and its hash) copied
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="pt") as f:
        meta = dict(f.metadata())
    save_file(state, str(tmp_path / "copied.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="do not match the sha256 its metadata records"):
        load_checkpoint(tmp_path / "copied.safetensors")
    meta.pop("edgefuse.weights_sha256")
    save_file(state, str(tmp_path / "nohash.safetensors"), metadata=meta)
    _, other = load_checkpoint(tmp_path / "nohash.safetensors")
    assert other.weights_sha256 and other.weights_sha256 != info.weights_sha256


def test_saved_checkpoint_is_readable_by_others(checkpoint: Path) -> None:
    mode = stat.S_IMODE(checkpoint.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # not mkstemp's 0600


def test_unbundled_size_says_which_are_bundled() -> None:
    with pytest.raises(CheckpointError, match=r"no bundled weights for this size \(bundled: fusionproxy-s\)"):
        resolve("fusionproxy-m")
