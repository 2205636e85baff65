"""edgefuse.snap and ``edgefuse snap``: weights on the int8 grid of the int8 exports, a new checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgefuse.checkpoint import load_model, save_checkpoint
from edgefuse.cli import app
from edgefuse.model import create_model
from edgefuse.snap import LEVELS, int8_grid, snap_to_int8_grid


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model("n")
    with torch.no_grad():
        m.head.weight.normal_(0, 0.05)  # the head starts at zero: give it weights to snap
    return m


def test_grid_is_symmetric_per_channel_and_keeps_each_channels_max() -> None:
    torch.manual_seed(1)
    w = torch.randn(6, 3, 3, 3)
    w[2] = 0.0  # an all-zero channel stays zero, without dividing by zero
    g = int8_grid(w)
    scale = w.abs().amax(dim=(1, 2, 3), keepdim=True) / LEVELS
    q = g[[0, 1, 3, 4, 5]] / scale[[0, 1, 3, 4, 5]]
    assert torch.allclose(q, q.round(), atol=1e-4) and float(q.abs().max()) <= LEVELS + 1e-4
    assert torch.equal(g.abs().amax(dim=(1, 2, 3)), w.abs().amax(dim=(1, 2, 3)))  # same scale again
    assert torch.equal(g[2], w[2])
    assert float((g - w).abs().div(scale.clamp_min(1e-30)).max()) <= 0.5 + 1e-4  # at most half a step


def test_snap_is_idempotent_and_leaves_biases(model: torch.nn.Module) -> None:
    biases = {n: p.clone() for n, p in model.named_parameters() if n.endswith("bias")}
    first = snap_to_int8_grid(model)
    assert first.layers == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert 0.0 < first.max_relative_change <= 0.5 / LEVELS + 1e-6
    assert snap_to_int8_grid(model).max_relative_change < 1e-6  # already on the grid
    assert all(torch.equal(p, biases[n]) for n, p in model.named_parameters() if n.endswith("bias"))


def test_cli_writes_a_snapped_checkpoint_that_says_so(model: torch.nn.Module, tmp_path: Path) -> None:
    src = save_checkpoint(model, tmp_path / "in.safetensors", provenance={"method": "train (test)"})
    out = tmp_path / "snapped.safetensors"
    res = CliRunner().invoke(app, ["snap", "--checkpoint", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    original, snapped = load_model(src), load_model(out)
    prov = snapped.info.provenance
    assert prov["method"] == "train (test)"  # the training provenance travels along
    assert prov["snapped"]["from"]["weights_sha256"] == original.info.weights_sha256
    assert snapped.info.weights_sha256 != original.info.weights_sha256
    for (name, a), b in zip(
        original.model.state_dict().items(), snapped.model.state_dict().values(), strict=True
    ):
        if name.endswith("weight") and a.dim() == 4:
            assert torch.equal(b, int8_grid(a))
        else:
            assert torch.equal(a, b)
    v, t = torch.rand(1, 3, 64, 96), torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        moved = (original.model(v, t) - snapped.model(v, t)).abs().max()
    assert 0.0 < float(moved) < 0.1  # a small change of the model, not none


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["snap", "--checkpoint", str(tmp_path / "nope.safetensors"), "-o", "x"])
    assert res.exit_code == 2 and "no such checkpoint" in res.output


@pytest.mark.onnxruntime
def test_onnxruntime_int8_rounds_nothing_in_snapped_weights(model: torch.nn.Module, tmp_path: Path) -> None:
    """The premise: ONNX Runtime's per-channel symmetric int8 weights of a snapped model dequantize to it."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    snap_to_int8_grid(model)
    conv = model.stem[0]
    net = torch.nn.Sequential(conv).eval()
    x = torch.rand(1, 2, 32, 32)
    torch.onnx.export(net, (x,), str(tmp_path / "c.onnx"), input_names=["x"], dynamo=False)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(
                [{"x": np.random.default_rng(i).random((1, 2, 32, 32), np.float32)} for i in range(2)]
            )

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.items, None)

    quantize_static(
        str(tmp_path / "c.onnx"),
        str(tmp_path / "q.onnx"),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        extra_options={"WeightSymmetric": True},
    )
    inits = {
        t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "q.onnx")).graph.initializer
    }
    q = next(v for k, v in inits.items() if k.endswith("weight_quantized"))
    scale = next(v for k, v in inits.items() if k.endswith("weight_scale"))
    deq = q.astype(np.float32) * scale.reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(deq, conv.weight.detach().numpy(), rtol=0, atol=1e-7)
