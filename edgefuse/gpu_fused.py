"""Inference-only FusionProxy in Triton: 15 kernel launches per forward (size s) instead of ~65.

At 480x640 batch 1 the cuDNN graph is launch-bound (dozens of kernels of microseconds each), so here each
stage is one kernel over a tile of pixels and all of its channels; intermediates are NHWC, channels zero-
padded to a power of two >= 16 (what tl.arange and tl.dot need), fp16 with fp32 accumulation:

  (kernels in edgefuse.gpu_kernels)
  stem_down   luma + stem 3x3/2 + ReLU + downs[0] 3x3/2 + ReLU (the stem is recomputed per tap, never stored)
  conv3x3     downs[1], downs[2] (stride 2 + ReLU) and the head (fp32 coefficients)
  block       dw3x3 -> expand -> ReLU -> project -> + x; with UP its input is relu(x2 bilinear(lateral map)
              + skip) (the decoder step); the last encoder block and dec[1] also apply the next lateral 1x1
  blend       x4 bilinear of the coefficients + the full-resolution blend, NCHW out

Same weights as the model, no retraining. Needs triton: import this module only where it is wanted.

Used by ``edgefuse bench --device cuda`` as the "triton" variant (fp16, batch 1, in a CUDA graph). Measured
(H200, Triton 3.6, torch 2.11, 480x640, batch 1, scripts/fused_speed.py, two runs): p50 0.145 / 0.149 ms
with ``unroll=False`` and 0.164 / 0.168 ms unrolled, against 0.437 / 0.433 ms for the fp16 channels-last CUDA
graph of the model timed in the same rounds; within 1.4e-3 of the fp32 model. Tiles are capped at 32 pixels
on CUDA: at 64 (Hopper wgmma dots) a 480x640 forward faulted. A batch-4 run of scripts/fused_speed.py
also faulted once; the script freed graph inputs while they were replayed. After that fix it ran clean
(0.360 ms looped against 0.670 ms for the graph). In ``edgefuse bench`` an H200 measured 0.13 ms p50 against
0.35 ms for the fp16 CUDA graph (docs/results/session13_bench_cuda.md).
"""

from __future__ import annotations

from typing import TypeVar

import torch
import triton
from torch import nn

from edgefuse.gpu_kernels import blend_kernel, block_kernel, conv3x3_kernel, stem_down_kernel
from edgefuse.model import Block, FusionProxy

M = TypeVar("M", bound=nn.Module)


def pad2(c: int) -> int:
    """Channels as stored: the next power of two, at least 16 (tl.arange and tl.dot sizes)."""
    return max(16, 1 << (c - 1).bit_length())


def nhwc(x: torch.Tensor, cp: int, dtype: torch.dtype) -> torch.Tensor:
    """N×C×H×W -> contiguous N×H×W×cp with zero channels after C (the kernels' layout)."""
    out = x.new_zeros(x.shape[0], x.shape[2], x.shape[3], cp, dtype=dtype)
    out[..., : x.shape[1]] = x.permute(0, 2, 3, 1)
    return out


def _taps(w: torch.Tensor, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    # [out, in, 3, 3] -> [9, in (padded), out (padded)]: one GEMM operand per tap
    out = w.new_zeros(9, rows, cols, dtype=dtype)
    out[:, : w.shape[1], : w.shape[0]] = w.detach().permute(2, 3, 1, 0).reshape(9, w.shape[1], w.shape[0])
    return out


def _mat(w: torch.Tensor, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    # 1x1 conv [out, in, 1, 1] -> [in (padded), out (padded)]
    out = w.new_zeros(rows, cols, dtype=dtype)
    out[: w.shape[1], : w.shape[0]] = w.detach().reshape(w.shape[0], w.shape[1]).t()
    return out


def _vec(b: torch.Tensor | None, n: int) -> torch.Tensor:
    out = torch.zeros(n, dtype=torch.float32, device=b.device if b is not None else None)
    if b is not None:
        out[: b.shape[0]] = b.detach()
    return out


def _keep(module: nn.Module, **tensors: torch.Tensor) -> None:
    for name, t in tensors.items():  # buffers, so that .to(device) moves them
        module.register_buffer(name, t, persistent=False)


def _as(kind: type[M], m: object) -> M:
    assert isinstance(m, kind), f"expected {kind.__name__}, got {type(m).__name__}"
    return m


def _sms(device: torch.device) -> int:
    # 1 off CUDA (the interpreter): there fewer, larger programs run faster
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1


def _tile(npix: int, width: int, device: torch.device) -> int:
    """Pixels per program: 64/32/16 (32/16 on CUDA), fewer while that leaves SMs idle or [pixels, width]
    grows large."""
    # On the H200 forwards were right with tiles of 16 and 32 and faulted at 480x640, the one size that chose
    # 64; 64-row dots are where Triton switches to Hopper's wgmma. Capped there until that is understood.
    p, sms = (32 if device.type == "cuda" else 64), _sms(device)
    while p > 16 and (npix < sms * p or p * width > 4096):
        p //= 2
    return p


class Conv3x3(nn.Module):
    """A packed 3x3 conv: [9, in, out] fp16 tap matrices (zero-padded) and an fp32 bias."""

    def __init__(self, conv: nn.Conv2d, dtype: torch.dtype) -> None:
        super().__init__()
        self.co, ci = conv.weight.shape[:2]
        self.cip, self.cop = pad2(ci), pad2(self.co)
        _keep(self, w=_taps(conv.weight, self.cip, self.cop, dtype), b=_vec(conv.bias, self.cop))

    def forward(
        self, x: torch.Tensor, stride: int, relu: bool, out_dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """x: N×H×W×cip -> N×HO×WO×cop (stored: out_dtype given, only the real co channels)."""
        n, h, w, _ = x.shape
        ho, wo = h // stride, w // stride
        ocs = self.co if out_dtype is not None else self.cop
        out = torch.empty(n, ho, wo, ocs, device=x.device, dtype=out_dtype or x.dtype)
        bco = min(self.cop, 64)
        bp = _tile(n * ho * wo, bco, x.device)
        grid = (triton.cdiv(n * ho * wo, bp), self.cop // bco)
        conv3x3_kernel[grid](x, self.w, self.b, out, n * ho * wo, h, w, ho, wo, ocs, stride, relu,
                             self.cip, self.cop, bp, bco)  # fmt: skip
        return out


class FusedBlock(nn.Module):
    """A packed Block (optionally followed by a lateral 1x1 conv); with ``skip`` it is the decoder step."""

    def __init__(
        self, block: Block, dtype: torch.dtype, lateral: nn.Conv2d | None = None, unroll: bool = True
    ) -> None:
        super().__init__()
        self.unroll = unroll
        c, e = block.expand.in_channels, block.expand.out_channels
        self.cp, self.ep = pad2(c), pad2(e)
        self.eb = min(self.ep, max(16, 8192 // self.cp))
        self.op = pad2(lateral.out_channels) if lateral is not None else self.cp
        self.lateral = lateral is not None
        dw, we = (
            _taps(block.dw.weight, 1, self.cp, torch.float32)[:, 0],
            _mat(block.expand.weight, self.cp, self.ep, dtype),
        )
        _keep(self, wdw=dw, bdw=_vec(block.dw.bias, self.cp), we=we, be=_vec(block.expand.bias, self.ep))
        _keep(
            self, wp=_mat(block.project.weight, self.ep, self.cp, dtype), bp=_vec(block.project.bias, self.cp)
        )
        if lateral is not None:
            _keep(self, wl=_mat(lateral.weight, self.cp, self.op, dtype), bl=_vec(lateral.bias, self.op))
        else:  # placeholders: the kernel reads them only with LATERAL
            _keep(self, wl=we, bl=torch.zeros(self.op, device=we.device))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """x: N×H×W×cp -> N×H×W×op; with skip (N×H×W×cp), x is the lateral map at H/2×W/2."""
        src = skip if skip is not None else x
        n, h, w, _ = src.shape
        out = torch.empty(n, h, w, self.op, device=x.device, dtype=x.dtype)
        bp = _tile(n * h * w, max(self.cp, self.eb), x.device)
        block_kernel[(triton.cdiv(n * h * w, bp),)](
            x, src, self.wdw, self.bdw, self.we, self.be, self.wp, self.bp, self.wl, self.bl, out, n * h * w,
            h, w, self.cp, self.ep, self.eb, self.op, skip is not None, self.lateral, self.unroll,
            bp)  # fmt: skip
        return out


def blend(coef: torch.Tensor, visible: torch.Tensor, thermal: torch.Tensor, select: bool) -> torch.Tensor:
    """coef: N×H/4×W/4×(3 or 5) -> the fused N×3×H×W frame (FusionProxy.blend, in one kernel)."""
    n, _, h, w = visible.shape
    out = torch.empty(n, 3, h, w, device=visible.device, dtype=visible.dtype)
    block = 512  # 4 warps, 4 pixels a thread: modest registers, every program resident at once
    blend_kernel[(triton.cdiv(n * h * w, block),)](
        visible, thermal, coef, out, n * h * w, h, w, *visible.stride(), thermal.stride(0), thermal.stride(2),
        thermal.stride(3), coef.shape[3], select, block)  # fmt: skip
    return out


class FusedFusionProxy(nn.Module):
    """``FusedFusionProxy(model)(visible, thermal)`` == ``model(visible, thermal)`` to fp16 tolerance.

    Weights are packed once, on the model's device; H and W must be multiples of 16. ``unroll=False`` runs
    the blocks' 9 dw taps as a loop (fewer registers, serial loads): time both on a new GPU. ``dtype`` float32
    is for the interpreter (on CUDA its tl.dot runs in TF32).
    """

    def __init__(self, model: FusionProxy, dtype: torch.dtype = torch.float16, unroll: bool = True) -> None:
        super().__init__()
        self.select = model.config.select
        self.dtype = dtype
        stem = _as(nn.Conv2d, model.stem[0])
        self.sp = pad2(stem.out_channels)
        _keep(self, ws=_taps(stem.weight, 2, self.sp, torch.float32), bs=_vec(stem.bias, self.sp))
        lat = [_as(nn.Conv2d, m) for m in model.lateral]
        self.downs = [Conv3x3(_as(nn.Conv2d, _as(nn.Sequential, d)[0]), dtype) for d in model.downs]
        self.enc = []
        for i, level in enumerate(model.enc):
            blocks = [_as(Block, b) for b in _as(nn.Sequential, level)]
            # the deepest level's output feeds only lateral[1]: its last block applies it
            lats = [None] * (len(blocks) - 1) + [lat[1] if i == 2 else None]
            self.enc.append([FusedBlock(b, dtype, la, unroll) for b, la in zip(blocks, lats, strict=True)])
        dec = [_as(Block, m) for m in model.dec]
        self.dec = [FusedBlock(dec[0], dtype, None, unroll), FusedBlock(dec[1], dtype, lat[0], unroll)]
        self.head = Conv3x3(_as(nn.Conv2d, model.head), dtype)
        # registered once so that .to(device) moves every packed buffer; the typed lists above run them
        self.layers = nn.ModuleList([*self.downs, *(b for level in self.enc for b in level), *self.dec])

    def stem_down(self, visible: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        """luma -> stem -> downs[0]: N×3×H×W, N×1×H×W -> N×H/4×W/4×C0 (padded)."""
        n, _, h, w = visible.shape
        down = self.downs[0]
        out = torch.empty(n, h // 4, w // 4, down.cop, device=visible.device, dtype=self.dtype)
        total = n * (h // 4) * (w // 4)
        bp = _tile(total, down.cop, visible.device)
        stem_down_kernel[(triton.cdiv(total, bp),)](
            visible, thermal, self.ws, self.bs, down.w, down.b, out, total, h, w, *visible.stride(),
            thermal.stride(0), thermal.stride(2), thermal.stride(3), self.sp, down.cop, bp)  # fmt: skip
        return out

    @torch.no_grad()
    def forward(self, visible: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        if visible.shape[2] % 16 or visible.shape[3] % 16:
            raise ValueError(f"H and W must be multiples of 16, got {tuple(visible.shape[2:])}")
        x = self.stem_down(visible, thermal)
        skips = []
        for i, level in enumerate(self.enc):
            if i:
                x = self.downs[i](x, 2, True)
            for blk in level:
                x = blk(x)
            skips.append(x)  # level 2's is already lateral[1]'s output
        x = self.dec[1](x, skips[1])  # -> lateral[0]'s output at 1/8
        x = self.dec[0](x, skips[0])
        coef = self.head(x, 1, False, torch.float32)  # fp32: the blend multiplies full-range values
        return blend(coef, visible, thermal, self.select)
