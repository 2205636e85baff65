"""Training-time changes to a crop that stand in for scenes the real training pairs lack: night exposures of
the visible frame and dark thermal frames. Each draw comes from a generator seeded by (seed, epoch, item), so
runs are reproducible whatever the worker count, and a probability of 0 leaves the other draws unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NIGHT_GAMMA = (1.5, 3.5)


def night_visible(vis: np.ndarray, rng: np.random.Generator, noise: float = 0.0) -> np.ndarray:
    """A synthetic low-light visible frame: V**γ, γ ~ U(1.5, 3.5) per crop, rounded to 8-bit levels.

    Why: the real training pairs are daylight, and a student trained on them alone extrapolates to night
    scenes by accident (its thermal/visible balance there varies with the seed). A power law darkens the
    mid-tones strongly and keeps highlights (lamps, headlights), as a night exposure does; the thermal frame
    is left alone (heat does not depend on light). ``noise`` > 0 adds sensor noise of std U(0, noise) per crop
    (a dark exposure is a noisy one).
    """
    gamma = float(rng.uniform(*NIGHT_GAMMA))
    dark = np.power(np.clip(vis, 0.0, 1.0), gamma, dtype=np.float32)
    if noise > 0:
        sigma = float(rng.uniform(0.0, noise))
        dark = np.clip(dark + rng.normal(0.0, sigma, dark.shape).astype(np.float32), 0.0, 1.0)
    # stored as 8 bits, as a real night frame is: float darkening keeps sub-level detail in the shadows
    # that no camera delivers, and a student that learns to read it amplifies int8/bf16 rounding at export
    return np.round(dark * 255.0) / np.float32(255.0)


def maybe_night(vis: np.ndarray, p: float, noise: float, key: Sequence[int]) -> np.ndarray:
    """With probability ``p``, :func:`night_visible` of ``vis``; the draw comes from a generator seeded by
    ``key`` (seed, epoch, item index), so it does not depend on the worker count and leaves the crop draws
    of ``p = 0`` runs unchanged."""
    if p <= 0:
        return vis
    rng = np.random.default_rng([*key, 1])
    return night_visible(vis, rng, noise) if rng.random() < p else vis


THERMAL_LEVEL = (0.08, 0.45)


def dark_thermal(ir: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The thermal crop at another level: its mean moved to U(0.08, 0.45), its contrast kept, clipped to
    [0, 1] and rounded to 8-bit levels.

    Why: an 8-bit thermal frame's level is set by the camera's gain control, not by heat alone. Against a cold
    night background, warm people and cars map to bright blobs on a dark frame (LLVIP's frames average
    0.07–0.2), while RoadScene's frames average ~0.48. Students trained on RoadScene alone agree on every
    training pair but part ways on dark real night pairs. Their gain on the visible frame there varied by 0.20
    across 16 checkpoints, and it ranked their night scores (docs/distillation.md, sixth session).
    """
    level = float(rng.uniform(*THERMAL_LEVEL))
    moved = np.clip(ir - float(ir.mean()) + level, 0.0, 1.0)
    return (np.round(moved * 255.0) / np.float32(255.0)).astype(np.float32)


def maybe_dark_thermal(ir: np.ndarray, p: float, key: Sequence[int]) -> np.ndarray:
    """With probability ``p``, :func:`dark_thermal` of ``ir``, else ``ir`` itself (callers can tell)."""
    if p <= 0:
        return ir
    rng = np.random.default_rng([*key, 2])
    return dark_thermal(ir, rng) if rng.random() < p else ir


def augment_pair(
    vis: np.ndarray,
    ir: np.ndarray,
    night: float,
    night_noise: float,
    thermal_level: float,
    key: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both changes of one training crop: (visible, thermal, whether either changed). The flag lets
    distillation drop the teacher's terms for a changed crop, whose teacher sample is of the pair as it is."""
    dark = maybe_night(vis, night, night_noise, key)
    moved = maybe_dark_thermal(ir, thermal_level, key)
    return dark, moved, dark is not vis or moved is not ir
