"""FusionProxy: the student network that fuses a visible RGB frame with a thermal frame.

Design (why it is shaped like this): on CPUs and small accelerators the cost at 480×640 is dominated by
full-resolution memory traffic, not MACs. So the network never runs a convolution at full resolution. It
sees luminance + thermal, encodes at 1/4..1/16 resolution, and predicts smooth coefficient maps at 1/4
resolution. Upsampled to full size they combine the *sources themselves*, so fine edges come straight from
the inputs: ``Y_f = (1 + a)·Y_v + b·T + c + w·(T − Y_v)`` with ``w = σ(k·(T − Y_v) + o)`` (a learned,
spatially varying guided filter plus a per-pixel soft selection between the sources, evaluated at full
resolution). Chroma is the visible frame's BT.601 Cb/Cr: converting ``(Y_f, Cb, Cr)`` back to RGB is exactly
``RGB_v + (Y_f − Y_v)`` per channel, which is what the graph computes.

Operators: Conv (incl. depthwise), ReLU, Add, Sub, Mul, Sigmoid, Concat, Resize (bilinear), Clip — all
supported by TensorRT 8.x, OpenVINO, CoreML and LiteRT."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from edgefuse.color import BT601


@dataclass(frozen=True)
class FusionProxyConfig:
    """One width/depth config per size.

    ``stem`` channels live at 1/2 resolution (one strided conv, nothing else runs there); ``widths`` and
    ``depths`` are the levels at 1/4, 1/8 and 1/16.
    """

    name: str
    stem: int
    widths: tuple[int, int, int]
    depths: tuple[int, int, int]
    expansion: int = 2
    # full-resolution per-pixel selection between the sources (see FusionProxy.forward); False is the
    # first form (coefficients only), kept so that its checkpoints still load
    select: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["depths"] = list(self.depths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FusionProxyConfig:
        return cls(
            name=str(d["name"]),
            stem=int(d["stem"]),
            widths=tuple(int(v) for v in d["widths"]),  # type: ignore[arg-type]
            depths=tuple(int(v) for v in d["depths"]),  # type: ignore[arg-type]
            expansion=int(d.get("expansion", 2)),
            select=bool(d.get("select", False)),
        )


CONFIGS: dict[str, FusionProxyConfig] = {
    "n": FusionProxyConfig("n", stem=8, widths=(16, 32, 64), depths=(1, 1, 2)),
    "s": FusionProxyConfig("s", stem=12, widths=(24, 48, 96), depths=(2, 2, 4)),
    "m": FusionProxyConfig("m", stem=16, widths=(32, 64, 160), depths=(2, 3, 6)),
}
DEFAULT_SIZE = "s"
ARCH = "fusionproxy"


class Block(nn.Module):
    """Residual depthwise-separable block: dw3×3 → pw expand → ReLU → pw project, + identity."""

    def __init__(self, c: int, expansion: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.expand = nn.Conv2d(c, c * expansion, 1)
        self.project = nn.Conv2d(c * expansion, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(F.relu(self.expand(self.dw(x))))


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU(inplace=True))


class FusionProxy(nn.Module):
    """``forward(visible N×3×H×W, thermal N×1×H×W) -> fused N×3×H×W``, all float in [0, 1].

    H and W must be multiples of 16 (use :func:`edgefuse.inference.fuse` for arbitrary sizes).
    """

    def __init__(self, config: FusionProxyConfig | str = DEFAULT_SIZE) -> None:
        super().__init__()
        if isinstance(config, str):
            config = CONFIGS[config]
        self.config = config
        w, d, e = config.widths, config.depths, config.expansion
        self.register_buffer("luma", torch.tensor(BT601).view(1, 3, 1, 1), persistent=False)
        self.stem = _down(2, config.stem)
        self.downs = nn.ModuleList([_down(config.stem, w[0]), _down(w[0], w[1]), _down(w[1], w[2])])
        self.enc = nn.ModuleList([nn.Sequential(*[Block(w[i], e) for _ in range(d[i])]) for i in range(3)])
        # lateral 1×1 at the coarse level, then upsample: cheaper than convolving after upsampling
        self.lateral = nn.ModuleList([nn.Conv2d(w[i + 1], w[i], 1) for i in range(2)])
        self.dec = nn.ModuleList([Block(w[i], e) for i in range(2)])
        self.head = nn.Conv2d(w[0], 5 if config.select else 3, 3, padding=1)
        # start as the plain average of the sources: Y_f = 0.5·Y_v + 0.5·T (see forward)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            start = [0.0, 0.0, 0.0, 0.0, 0.0] if config.select else [-0.5, 0.5, 0.0]  # select: w = σ(0)
            self.head.bias.copy_(torch.tensor(start))  # type: ignore[union-attr]

    def forward(self, visible: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        y = self._luma(visible)
        return self._blend(self._coefficients(y, thermal), visible, y, thermal)

    def coefficients(self, visible: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        """The 1/4-resolution coefficient maps (N×3×H/4×W/4, or N×5 with ``select``) that :meth:`blend`
        turns into the fused frame; the metric-ascent teacher optimises them per pair."""
        return self._coefficients(self._luma(visible), thermal)

    def blend(self, coef: torch.Tensor, visible: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        """The fused frame from coefficient maps (``forward == blend(coefficients(v, t), v, t)``)."""
        return self._blend(coef, visible, self._luma(visible), thermal)

    def _luma(self, visible: torch.Tensor) -> torch.Tensor:
        # BT.601 luminance; Mul+ReduceSum (a 3->1 1x1 conv is ~100x slower in oneDNN at full res)
        return (visible * self.luma).sum(dim=1, keepdim=True)  # type: ignore[operator]

    def _coefficients(self, y: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        x = self.stem(torch.cat([y, thermal], dim=1))
        skips = []
        for down, enc in zip(self.downs, self.enc, strict=False):
            x = enc(down(x))
            skips.append(x)
        for i in (1, 0):
            x = F.interpolate(self.lateral[i](x), scale_factor=2.0, mode="bilinear", align_corners=False)
            x = self.dec[i](F.relu(x + skips[i]))
        return self.head(x)

    def _blend(
        self, coef: torch.Tensor, visible: torch.Tensor, y: torch.Tensor, thermal: torch.Tensor
    ) -> torch.Tensor:
        # coefficients at 1/4 resolution, split there (a full-res split runs as a slow reference kernel in
        # OpenVINO); the only full-resolution work is the resizes and the blend.
        maps = [
            F.interpolate(coef[:, i : i + 1], scale_factor=4.0, mode="bilinear", align_corners=False)
            for i in range(coef.shape[1])
        ]
        a, b, c = maps[:3]
        # Y_f = (1 + a)·Y_v + b·T + c, and (Y_f, Cb_v, Cr_v) -> RGB == RGB_v + (Y_f − Y_v) per channel
        delta = a * y + b * thermal + c
        if self.config.select:
            # a per-pixel soft choice between the sources at full resolution: w = σ(k·(T − Y_v) + o) with
            # smooth gain k and offset o, so a hot object's edge is taken pixel-exactly from the thermal frame
            # (smooth coefficients alone cannot follow a selection boundary finer than 4 px)
            diff = thermal - y
            delta = delta + torch.sigmoid(maps[3] * diff + maps[4]) * diff
        return torch.clamp(visible + delta, 0.0, 1.0)

    @classmethod
    def from_pretrained(cls, name_or_path: str = "fusionproxy-s", map_location: str = "cpu") -> FusionProxy:
        """The bundled default (``fusionproxy-s``) or any edgefuse/PyTorch checkpoint file."""
        from edgefuse.checkpoint import load_model

        return load_model(name_or_path, map_location=map_location).model


def create_model(name: str = DEFAULT_SIZE, pretrained: bool = False, select: bool = False) -> FusionProxy:
    """Factory: ``create_model("s")``; ``pretrained=True`` loads the bundled weights for that size.

    ``select=True`` builds the form with the full-resolution source selection (opt-in until a checkpoint of
    that form is bundled and its latency is measured on every target: docs/distillation.md).
    """
    key = name.removeprefix(f"{ARCH}-").removeprefix(f"{ARCH}_")
    if key not in CONFIGS:
        raise ValueError(f"unknown model size {name!r}; choose from {', '.join(CONFIGS)}")
    if pretrained:
        return FusionProxy.from_pretrained(f"{ARCH}-{key}")
    return FusionProxy(replace(CONFIGS[key], select=select))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, height: int = 480, width: int = 640) -> int:
    """Multiply-accumulates of every convolution for one frame (elementwise ops are not MACs)."""
    total = 0

    def hook(mod: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = mod.kernel_size
        total += out.numel() // out.shape[0] * (mod.in_channels // mod.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        p = next(model.parameters())
        model(
            torch.zeros(1, 3, height, width, device=p.device),
            torch.zeros(1, 1, height, width, device=p.device),
        )
    finally:
        for h in handles:
            h.remove()
    # the fixed RGB->Y projection (F.conv2d) is 3 MACs per pixel
    return total + 3 * height * width
