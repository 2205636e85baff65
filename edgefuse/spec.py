"""The IO contract every exported artifact and runtime shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass

MULTIPLE = 16  # the student downsamples 4 times by 2


@dataclass(frozen=True)
class IOSpec:
    """Inputs ``visible`` (N×3×H×W RGB), ``thermal`` (N×1×H×W); output ``fused`` (N×3×H×W); in [0, 1]."""

    height: int = 480
    width: int = 640
    batch: int = 1
    layout: str = "NCHW"
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.height % MULTIPLE or self.width % MULTIPLE or self.height <= 0 or self.width <= 0:
            raise ValueError(
                f"input size {self.height}x{self.width} must be positive multiples of {MULTIPLE}"
            )
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")

    @property
    def inputs(self) -> dict[str, tuple[int, int, int, int]]:
        return {
            "visible": (self.batch, 3, self.height, self.width),
            "thermal": (self.batch, 1, self.height, self.width),
        }

    @property
    def outputs(self) -> dict[str, tuple[int, int, int, int]]:
        return {"fused": (self.batch, 3, self.height, self.width)}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["value_range"] = list(self.value_range)
        d["inputs"] = {k: list(v) for k, v in self.inputs.items()}
        d["outputs"] = {k: list(v) for k, v in self.outputs.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> IOSpec:
        return cls(
            height=int(d["height"]),
            width=int(d["width"]),
            batch=int(d.get("batch", 1)),
            layout=str(d.get("layout", "NCHW")),
            dtype=str(d.get("dtype", "float32")),
            value_range=tuple(d.get("value_range", (0.0, 1.0))),  # type: ignore[arg-type]
        )


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``480x640``)."""
    try:
        h, w = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError as exc:
        raise ValueError(f"size must look like 480x640, got {text!r}") from exc
    return h, w


INPUT_NAMES = ("visible", "thermal")
OUTPUT_NAMES = ("fused",)
