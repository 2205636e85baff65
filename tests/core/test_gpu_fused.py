"""edgefuse.gpu_fused (the Triton FusionProxy) against the model: each kernel, then whole forwards.

Without CUDA the kernels run in Triton's interpreter on the CPU (TRITON_INTERPRET=1, read when the kernels
are decorated, so set before edgefuse.gpu_fused is imported); sizes are kept small for that.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

if importlib.util.find_spec("triton") and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # read as triton is imported: before that, and only where it runs
pytest.importorskip("triton", reason="edgefuse.gpu_fused needs triton (not installed)")

from edgefuse.checkpoint import load_model
from edgefuse.color import BT601
from edgefuse.gpu_fused import Conv3x3, FusedBlock, FusedFusionProxy, blend, nhwc, pad2
from edgefuse.model import CONFIGS, Block, FusionProxy

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# fused fp16 forward vs the fp32 model on [0, 1] frames (seen in the interpreter: 3.5e-4..6e-4)
FRAME_TOL = 2e-3
DTYPES = [torch.float32, torch.float16]


@pytest.fixture(autouse=True)
def _exact_reference():
    """The fp32 references without TF32 (cuDNN's default for fp32 convolutions on CUDA)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _tol(dtype: torch.dtype, ref: torch.Tensor) -> float:
    # fp32 in the interpreter: the same sums in another order; fp16 (and fp32 on CUDA, whose tl.dot uses
    # TF32): inputs, weights and dot operands rounded to 11 bits
    exact = dtype == torch.float32 and DEVICE == "cpu"
    return (1e-5 if exact else 4e-3) * max(1.0, ref.abs().max().item())


def _frames(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames plus a smooth gradient in the first, rounded to fp16 so both sides see one input."""
    g = torch.Generator().manual_seed(seed)
    v, t = torch.rand(n, 3, h, w, generator=g), torch.rand(n, 1, h, w, generator=g)
    across, down = torch.linspace(0, 1, w).expand(h, w), torch.linspace(0, 1, h)[:, None].expand(h, w)
    v[0], t[0] = torch.stack([across, down, 0.5 * across]), 1.0 - down
    return v.half().float().to(DEVICE), t.half().float().to(DEVICE)


def _model(select: bool, bundled: bool, seed: int = 0) -> FusionProxy:
    torch.manual_seed(seed)
    model = FusionProxy(replace(CONFIGS["s"], select=select))
    if bundled:  # select: the bundled backbone under a fresh 5-channel head
        state = load_model("fusionproxy-s").model.state_dict()
        keep = {k: v for k, v in state.items() if not (select and k.startswith("head."))}
        missing, unexpected = model.load_state_dict(keep, strict=False)
        assert not unexpected and set(missing) <= {"head.weight", "head.bias"}
    if not bundled or select:  # the head starts at zero weight: make the coefficients depend on the input
        torch.nn.init.normal_(model.head.weight, std=0.05)
        assert model.head.bias is not None
        torch.nn.init.normal_(model.head.bias, std=0.1)
    return model.eval().to(DEVICE)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 2])
def test_conv3x3(dtype: torch.dtype, stride: int) -> None:
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(12, 24, 3, stride=stride, padding=1).to(DEVICE)
    x = torch.randn(2, 12, 16, 24, device=DEVICE)
    ref = F.relu(conv(x)).permute(0, 2, 3, 1)
    out = Conv3x3(conv, dtype)(nhwc(x, 16, dtype), stride, True).float()
    assert out.shape == (2, 16 // stride, 24 // stride, 32)
    assert out[..., 24:].abs().max() == 0  # padded channels stay zero for the next kernel
    assert (out[..., :24] - ref).abs().max() <= _tol(dtype, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stem_down(dtype: torch.dtype) -> None:
    model = _model(False, bundled=False)
    v, t = _frames(2, 32, 48)
    y = (v * torch.tensor(BT601, device=DEVICE).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    ref = model.downs[0](model.stem(torch.cat([y, t], dim=1))).permute(0, 2, 3, 1)
    out = FusedFusionProxy(model, dtype).stem_down(v.to(dtype), t.to(dtype)).float()
    assert (out[..., :24] - ref).abs().max() <= _tol(dtype, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("lateral", "unroll"), [(False, True), (True, True), (False, False)])
def test_block(dtype: torch.dtype, lateral: bool, unroll: bool) -> None:
    torch.manual_seed(2)
    block = Block(24, 2).to(DEVICE)
    lat = torch.nn.Conv2d(24, 12, 1).to(DEVICE)
    x = torch.randn(2, 24, 8, 12, device=DEVICE)
    ref = block(x)
    ref = (lat(ref) if lateral else ref).permute(0, 2, 3, 1)
    out = FusedBlock(block, dtype, lat if lateral else None, unroll)(nhwc(x, 32, dtype)).float()
    assert (out[..., : ref.shape[-1]] - ref).abs().max() <= _tol(dtype, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_decoder_step(dtype: torch.dtype) -> None:
    """dec(relu(upsample2x(lateral map) + skip)): the bilinear edges and the dw conv's padding."""
    torch.manual_seed(3)
    block = Block(24, 2).to(DEVICE)
    coarse, skip = torch.randn(2, 24, 4, 6, device=DEVICE), torch.randn(2, 24, 8, 12, device=DEVICE)
    up = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=False)
    ref = block(F.relu(up + skip)).permute(0, 2, 3, 1)
    out = FusedBlock(block, dtype)(nhwc(coarse, 32, dtype), nhwc(skip, 32, dtype)).float()
    assert (out[..., :24] - ref).abs().max() <= _tol(dtype, ref)


@pytest.mark.parametrize("select", [False, True])
def test_blend(select: bool) -> None:
    model = _model(select, bundled=False)
    v, t = _frames(2, 32, 48)
    coef = torch.randn(2, 5 if select else 3, 8, 12, device=DEVICE)
    ref = model.blend(coef, v, t)
    out = blend(coef.permute(0, 2, 3, 1).contiguous(), v, t, select)
    assert (out - ref).abs().max() <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(1, 32, 48), (2, 64, 96)], ids=["1x32x48", "2x64x96"])
@pytest.mark.parametrize("select", [False, True], ids=["coef", "select"])
@pytest.mark.parametrize("bundled", [False, True], ids=["random", "bundled"])
def test_forward_matches_model(shape: tuple[int, int, int], select: bool, bundled: bool) -> None:
    model = _model(select, bundled)
    v, t = _frames(*shape, seed=shape[0])
    with torch.no_grad():
        ref = model(v, t)
    fused = FusedFusionProxy(model, torch.float16)
    out = fused(v.half(), t.half())
    assert out.shape == ref.shape and out.dtype == torch.float16
    diff = (out.float() - ref).abs().max().item()
    print(f"max |fused fp16 - model fp32| = {diff:.2e}")
    assert diff <= FRAME_TOL


@pytest.mark.slow
def test_forward_with_the_largest_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one SM reported, every kernel takes its largest pixel tile (64 in the interpreter, 32 on CUDA),
    as at 480x640 on a big GPU; on CUDA the sizes above leave smaller tiles."""
    import edgefuse.gpu_fused as gf

    monkeypatch.setattr(gf, "_sms", lambda device: 1)
    assert gf._tile(96 * 128 // 16, 64, torch.device(DEVICE)) == (32 if DEVICE == "cuda" else 64)
    model = _model(False, bundled=True)
    v, t = _frames(1, 96, 128, seed=3)
    with torch.no_grad():
        ref = model(v, t)
    out = FusedFusionProxy(model, torch.float16)(v.half(), t.half())
    assert (out.float() - ref).abs().max().item() <= FRAME_TOL


@pytest.mark.slow
def test_bench_variant() -> None:
    """edgefuse bench's "triton" variant: on CUDA the CUDA graph of the packed model, in the interpreter the
    packed model itself, against the fp32 model."""
    from edgefuse.bench.torch_variants import TorchVariant, Variant, _triton_net

    model = _model(False, bundled=True)
    v, t = _frames(1, 32, 48, seed=4)
    with torch.no_grad():
        ref = model(v, t)
    variant = Variant("fp16", "triton")
    if DEVICE == "cuda":
        runner = TorchVariant(model.cpu(), variant, "cuda", 32, 48)
        assert "triton" in runner.describe()
        frame = {"visible": v.cpu().numpy(), "thermal": t.cpu().numpy()}
        out = torch.from_numpy(runner(frame)["fused"]).to(DEVICE)
    else:
        out = _triton_net(model, variant, torch.device(DEVICE), 32, 48)(v.half(), t.half()).float()
    assert (out - ref).abs().max().item() <= FRAME_TOL


def test_forward_rejects_sizes() -> None:
    fused = FusedFusionProxy(_model(False, bundled=False))
    with pytest.raises(ValueError, match="multiples of 16"):
        fused(torch.rand(1, 3, 24, 32, device=DEVICE), torch.rand(1, 1, 24, 32, device=DEVICE))


def test_pad2() -> None:
    assert [pad2(c) for c in (1, 3, 12, 16, 17, 24, 96, 160)] == [16, 16, 16, 16, 32, 32, 128, 256]
