import json
import struct

import pytest
import torch

from edgefuse.checkpoint import (
    file_sha256,
    flush_denormals,
    load_checkpoint,
    load_model,
    save_checkpoint,
    weights_sha256,
)
from edgefuse.errors import CheckpointError
from edgefuse.model import create_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = create_model("n")
    with torch.no_grad():
        m.head.weight.normal_(0, 0.01)  # non-trivial head so outputs differ from the init
    return m


def _same_output(a, b):
    v, t = torch.rand(1, 3, 32, 48), torch.rand(1, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(v, t), b.eval()(v, t))


def test_safetensors_round_trip_with_metadata(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "m.safetensors", provenance={"data": "unit-test", "steps": 3})
    loaded, info = load_model(path)
    _same_output(model, loaded)
    assert info.config.name == "n"
    assert info.provenance["data"] == "unit-test" and info.provenance["steps"] == 3
    assert "edgefuse_version" in info.provenance and "git_revision" in info.provenance
    assert info.weights_sha256 == weights_sha256(model.state_dict())
    assert info.file_sha256 == file_sha256(path)
    assert info.io["inputs"]["visible"] == "N×3×H×W"
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod.", "module._orig_mod."])
def test_plain_state_dict_with_prefixes(tmp_path, model, prefix):
    sd = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({"state_dict": sd}, tmp_path / "m.pt")
    loaded, info = load_model(tmp_path / "m.pt")
    assert info.config.name == "n"
    _same_output(model, loaded)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_refuses_pickled_code(tmp_path):
    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt: not a safetensors file and not a weights-only"):
        load_model(tmp_path / "evil.pt")


def test_corrupt_and_truncated(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.safetensors"):
        load_model(tmp_path / "trunc.safetensors")
    (tmp_path / "junk.bin").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="junk.bin"):
        load_model(tmp_path / "junk.bin")


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="bundled names"):
        load_model("fusionproxy-xl")


def test_foreign_architecture(tmp_path, model):
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        tmp_path / "f.safetensors",
        metadata={"edgefuse.arch": "resnet50"},
    )
    with pytest.raises(CheckpointError, match="foreign architecture 'resnet50'"):
        load_model(tmp_path / "f.safetensors")


def test_foreign_state_dict(tmp_path):
    torch.save(torch.nn.Linear(3, 4).state_dict(), tmp_path / "lin.pt")
    with pytest.raises(CheckpointError, match=r"lin\.pt: not a FusionProxy checkpoint: .*missing keys"):
        load_model(tmp_path / "lin.pt")


def test_missing_and_extra_keys(tmp_path, model):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"edgefuse.arch": "fusionproxy", "edgefuse.config": json.dumps(model.config.to_dict())}
    sd.pop("head.bias")
    sd["extra.weight"] = torch.zeros(2)
    save_file(sd, tmp_path / "k.safetensors", metadata=meta)
    with pytest.raises(CheckpointError, match=r"1 missing keys \(e\.g\. head\.bias\); 1 unexpected keys"):
        load_model(tmp_path / "k.safetensors")


def test_non_finite_weights(tmp_path, model):
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    path = save_checkpoint(model, tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match="non-finite weights in head.bias"):
        load_model(path)


def test_flush_denormals():
    tiny = torch.finfo(torch.float32).tiny
    x = torch.tensor([1.0, tiny / 4, -tiny / 8, tiny, 0.0])
    out = flush_denormals({"w": x})["w"]
    assert out.tolist() == [1.0, 0.0, 0.0, tiny, 0.0]


def test_save_flushes_denormals(tmp_path, model):
    with torch.no_grad():
        model.head.weight.view(-1)[0] = 1e-40  # a denormal
    loaded, _ = load_model(save_checkpoint(model, tmp_path / "d.safetensors"))
    assert loaded.head.weight.view(-1)[0].item() == 0.0


def test_safetensors_header_detection_not_fooled(tmp_path):
    # 8-byte little-endian length followed by something that is not JSON
    (tmp_path / "fake.safetensors").write_bytes(struct.pack("<Q", 10) + b"not-json!!" + b"\x00" * 10)
    with pytest.raises(CheckpointError, match="fake.safetensors"):
        load_checkpoint(tmp_path / "fake.safetensors")
