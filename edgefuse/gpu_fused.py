"""Inference-only FusionProxy in Triton: 15 kernel launches per forward (size s) instead of ~65.

At 480x640 batch 1 the cuDNN graph is launch-bound (dozens of kernels of microseconds each), so here each
stage is one kernel over a tile of pixels and all of its channels; intermediates are NHWC, channels zero-
padded to a power of two >= 16 (what tl.arange and tl.dot need), fp16 with fp32 accumulation:

  stem_down   luma + stem 3x3/2 + ReLU + downs[0] 3x3/2 + ReLU (the stem is recomputed per tap, never stored)
  conv3x3     downs[1], downs[2] (stride 2 + ReLU) and the head (fp32 coefficients)
  block       dw3x3 -> expand -> ReLU -> project -> + x; with UP its input is relu(x2 bilinear(lateral map)
              + skip) (the decoder step); the last encoder block and dec[1] also apply the next lateral 1x1
  blend       x4 bilinear of the coefficients + the full-resolution blend, NCHW out

Same weights as the model, no retraining. Needs triton: import this module only where it is wanted.

Status (2026-12-01, not used by any command yet): on an H200 (Triton 3.6, torch 2.11) every per-kernel test
passed and whole forwards matched the fp32 model up to 256x320 (max |diff| 1.0e-3 to 1.3e-3); at 480x640,
with 64-pixel tiles, a forward faulted (illegal memory access). Tiles are now capped at 32 on CUDA (see
_tile); that has not run at 480x640 yet, so its speed is unmeasured (docs/distillation.md).
"""

from __future__ import annotations

from typing import TypeVar

import torch
import triton
import triton.language as tl
from torch import nn

from edgefuse.color import BT601
from edgefuse.model import Block, FusionProxy

# the BT.601 weights as kernel constants (jit functions may only read constexpr globals)
LR, LG, LB = (tl.constexpr(v) for v in BT601)
M = TypeVar("M", bound=nn.Module)


@triton.jit
def _src(o, inv, size):
    # F.interpolate(mode="bilinear", align_corners=False): source index, clamped at 0, and its neighbour
    s = tl.maximum((o.to(tl.float32) + 0.5) * inv - 0.5, 0.0)
    i0 = s.to(tl.int32)
    return i0, tl.minimum(i0 + 1, size - 1), s - i0.to(tl.float32)


@triton.jit
def _bilerp(ptr, o00, o01, o10, o11, lh, lw, m):
    # the same association as PyTorch's upsample_bilinear2d
    v00 = tl.load(ptr + o00, mask=m, other=0.0).to(tl.float32)
    v01 = tl.load(ptr + o01, mask=m, other=0.0).to(tl.float32)
    v10 = tl.load(ptr + o10, mask=m, other=0.0).to(tl.float32)
    v11 = tl.load(ptr + o11, mask=m, other=0.0).to(tl.float32)
    return (1.0 - lh) * ((1.0 - lw) * v00 + lw * v01) + lh * ((1.0 - lw) * v10 + lw * v11)


@triton.jit
def stem_down_kernel(vis, thr, ws, bs, wd, bd, out, total, H, W, svn, svc, svh, svw, stn, sth, stw,
                     SP: tl.constexpr, CP: tl.constexpr, BLOCK_P: tl.constexpr):  # fmt: skip
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    pm = p < total
    h2, w2, h4, w4 = H // 2, W // 2, H // 4, W // 4
    n, r = p // (h4 * w4), p % (h4 * w4)
    oh, ow = r // w4, r % w4
    s, c = tl.arange(0, SP), tl.arange(0, CP)
    acc = tl.zeros([BLOCK_P, CP], dtype=tl.float32)
    for t in range(9):  # downs[0] taps (a loop, not unrolled: 81 unrolled stem taps would be a big kernel)
        sh, sw = 2 * oh - 1 + t // 3, 2 * ow - 1 + t % 3
        sv = pm & (sh >= 0) & (sh < h2) & (sw >= 0) & (sw < w2)
        st = tl.zeros([BLOCK_P, SP], dtype=tl.float32)
        for j in tl.static_range(9):  # the stem at that position, from luma and thermal directly
            ih, iw = 2 * sh - 1 + j // 3, 2 * sw - 1 + j % 3
            m = sv & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            vp = vis + n * svn + ih * svh + iw * svw
            y = (
                tl.load(vp, mask=m, other=0.0).to(tl.float32) * LR
                + tl.load(vp + svc, mask=m, other=0.0).to(tl.float32) * LG
                + tl.load(vp + 2 * svc, mask=m, other=0.0).to(tl.float32) * LB
            )
            tv = tl.load(thr + n * stn + ih * sth + iw * stw, mask=m, other=0.0).to(tl.float32)
            st += y[:, None] * tl.load(ws + 2 * j * SP + s)[None, :]
            st += tv[:, None] * tl.load(ws + (2 * j + 1) * SP + s)[None, :]
        st = tl.maximum(st + tl.load(bs + s)[None, :], 0.0)
        st = tl.where(sv[:, None], st, 0.0)  # downs[0]'s zero padding (relu(bias) is not zero)
        wt = tl.load(wd + t * SP * CP + s[:, None] * CP + c[None, :])
        acc += tl.dot(st.to(wd.dtype.element_ty), wt)
    acc = tl.maximum(acc + tl.load(bd + c)[None, :], 0.0)
    tl.store(out + p[:, None] * CP + c[None, :], acc, mask=pm[:, None])


@triton.jit
def conv3x3_kernel(x, w, b, out, total, H, W, HO, WO, OCS, STRIDE: tl.constexpr,
                   RELU: tl.constexpr, CIP: tl.constexpr, COP: tl.constexpr, BLOCK_P: tl.constexpr,
                   BLOCK_CO: tl.constexpr):  # fmt: skip
    # implicit GEMM: per tap a [pixels, CIP] x [CIP, BLOCK_CO] dot; zero padding through the load mask
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    pm = p < total
    n, r = p // (HO * WO), p % (HO * WO)
    oh, ow = r // WO, r % WO
    ci = tl.arange(0, CIP)
    acc = tl.zeros([BLOCK_P, BLOCK_CO], dtype=tl.float32)
    for t in tl.static_range(9):
        ih, iw = oh * STRIDE - 1 + t // 3, ow * STRIDE - 1 + t % 3
        m = pm & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        xt = tl.load(x + (((n * H + ih) * W + iw) * CIP)[:, None] + ci[None, :], mask=m[:, None], other=0.0)
        acc += tl.dot(xt, tl.load(w + t * CIP * COP + ci[:, None] * COP + co[None, :]))
    acc += tl.load(b + co)[None, :]
    if RELU:
        acc = tl.maximum(acc, 0.0)
    tl.store(out + p[:, None] * OCS + co[None, :], acc, mask=pm[:, None] & (co < OCS)[None, :])


@triton.jit
def _tap(x, skip, t, p, n, h, w, pm, c, H, W, CP: tl.constexpr, UP: tl.constexpr):
    # the dw conv's input at tap t, zero outside the image (its padding); with UP the decoder's
    # relu(upsample2x(lateral map at H/2 x W/2) + skip), recomputed per tap instead of stored
    hh, ww = h + t // 3 - 1, w + t % 3 - 1
    m = (pm & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W))[:, None]
    if UP:
        hc, wc = H // 2, W // 2
        h0, h1, lh = _src(hh, 0.5, hc)
        w0, w1, lw = _src(ww, 0.5, wc)
        r0, r1 = ((n * hc + h0) * wc)[:, None], ((n * hc + h1) * wc)[:, None]
        w0, w1 = w0[:, None], w1[:, None]
        o00, o01, o10, o11 = (r0 + w0) * CP, (r0 + w1) * CP, (r1 + w0) * CP, (r1 + w1) * CP
        z = _bilerp(x + c[None, :], o00, o01, o10, o11, lh[:, None], lw[:, None], m)
        sk = tl.load(skip + (((n * H + hh) * W + ww) * CP)[:, None] + c[None, :], mask=m, other=0.0)
        return tl.maximum(z + sk.to(tl.float32), 0.0)
    off = (p + (t // 3 - 1) * W + t % 3 - 1) * CP
    return tl.load(x + off[:, None] + c[None, :], mask=m, other=0.0).to(tl.float32)


@triton.jit
def block_kernel(x, skip, wdw, bdw, we, be, wp, bp, wl, bl, out, total, H, W, CP: tl.constexpr,
                 EP: tl.constexpr, EB: tl.constexpr, OP: tl.constexpr, UP: tl.constexpr,
                 LATERAL: tl.constexpr, UNROLL: tl.constexpr, BLOCK_P: tl.constexpr):  # fmt: skip
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    pm = p < total
    n, r = p // (H * W), p % (H * W)
    h, w = r // W, r % W
    c = tl.arange(0, CP)
    d = tl.zeros([BLOCK_P, CP], dtype=tl.float32)
    if UNROLL:  # every tap's loads in flight at once: less latency, more registers
        for t in tl.static_range(9):
            d += _tap(x, skip, t, p, n, h, w, pm, c, H, W, CP, UP) * tl.load(wdw + t * CP + c)[None, :]
    else:
        for t in range(9):
            d += _tap(x, skip, t, p, n, h, w, pm, c, H, W, CP, UP) * tl.load(wdw + t * CP + c)[None, :]
    z4 = _tap(x, skip, 4, p, n, h, w, pm, c, H, W, CP, UP)  # the residual: the centre tap (cached loads)
    d = (d + tl.load(bdw + c)[None, :]).to(we.dtype.element_ty)
    acc = z4 + tl.load(bp + c)[None, :]
    for e0 in range(0, EP, EB):  # expansion in chunks: bounded registers at any width
        e = e0 + tl.arange(0, EB)
        hid = tl.dot(d, tl.load(we + c[:, None] * EP + e[None, :])) + tl.load(be + e)[None, :]
        hid = tl.maximum(hid, 0.0).to(we.dtype.element_ty)
        acc += tl.dot(hid, tl.load(wp + e[:, None] * CP + c[None, :]))
    o = tl.arange(0, OP)
    if LATERAL:  # the next 1x1 lateral conv; this block's own output is used by nothing else
        acc = tl.dot(acc.to(we.dtype.element_ty), tl.load(wl + c[:, None] * OP + o[None, :]))
        acc += tl.load(bl + o)[None, :]
    tl.store(out + p[:, None] * OP + o[None, :], acc, mask=pm[:, None])


@triton.jit
def blend_kernel(vis, thr, coef, out, total, H, W, svn, svc, svh, svw, stn, sth, stw, NC: tl.constexpr,
                 SELECT: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = p < total
    n, r = p // (H * W), p % (H * W)
    h, w = r // W, r % W
    hc, wc = H // 4, W // 4
    h0, h1, lh = _src(h, 0.25, hc)
    w0, w1, lw = _src(w, 0.25, wc)
    r0, r1 = (n * hc + h0) * wc, (n * hc + h1) * wc
    o00, o01, o10, o11 = (r0 + w0) * NC, (r0 + w1) * NC, (r1 + w0) * NC, (r1 + w1) * NC
    a = _bilerp(coef, o00, o01, o10, o11, lh, lw, m)
    b = _bilerp(coef + 1, o00, o01, o10, o11, lh, lw, m)
    k = _bilerp(coef + 2, o00, o01, o10, o11, lh, lw, m)
    vp = vis + n * svn + h * svh + w * svw
    v0 = tl.load(vp, mask=m, other=0.0).to(tl.float32)
    v1 = tl.load(vp + svc, mask=m, other=0.0).to(tl.float32)
    v2 = tl.load(vp + 2 * svc, mask=m, other=0.0).to(tl.float32)
    t = tl.load(thr + n * stn + h * sth + w * stw, mask=m, other=0.0).to(tl.float32)
    y = v0 * LR + v1 * LG + v2 * LB
    delta = a * y + b * t + k
    if SELECT:
        diff = t - y
        gain = _bilerp(coef + 3, o00, o01, o10, o11, lh, lw, m)
        off = _bilerp(coef + 4, o00, o01, o10, o11, lh, lw, m)
        delta += tl.sigmoid(gain * diff + off) * diff
    op = out + n * 3 * H * W + r
    tl.store(op, tl.minimum(tl.maximum(v0 + delta, 0.0), 1.0), mask=m)
    tl.store(op + H * W, tl.minimum(tl.maximum(v1 + delta, 0.0), 1.0), mask=m)
    tl.store(op + 2 * H * W, tl.minimum(tl.maximum(v2 + delta, 0.0), 1.0), mask=m)


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
