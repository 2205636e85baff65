"""The Triton kernels of edgefuse.gpu_fused (see there): NHWC fp16 tiles of pixels × all channels, fp32
accumulation, zero padding through load masks.
"""

from __future__ import annotations

import triton
import triton.language as tl

from edgefuse.color import BT601

# the BT.601 weights as kernel constants (jit functions may only read constexpr globals)
LR, LG, LB = (tl.constexpr(v) for v in BT601)


@triton.jit
def _pixels(total, H, W, BLOCK: tl.constexpr):
    # this program's BLOCK flat indices over N×H×W pixels: (index, in range, image, row, column)
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    n, r = p // (H * W), p % (H * W)
    return p, p < total, n, r // W, r % W


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
    h2, w2 = H // 2, W // 2
    p, pm, n, oh, ow = _pixels(total, H // 4, W // 4, BLOCK_P)
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
    p, pm, n, oh, ow = _pixels(total, HO, WO, BLOCK_P)
    co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
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
    p, pm, n, h, w = _pixels(total, H, W, BLOCK_P)
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
    _, m, n, h, w = _pixels(total, H, W, BLOCK)
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
    op = out + (n * 3 * H + h) * W + w
    tl.store(op, tl.minimum(tl.maximum(v0 + delta, 0.0), 1.0), mask=m)
    tl.store(op + H * W, tl.minimum(tl.maximum(v1 + delta, 0.0), 1.0), mask=m)
    tl.store(op + 2 * H * W, tl.minimum(tl.maximum(v2 + delta, 0.0), 1.0), mask=m)
