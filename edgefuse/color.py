"""Colour and layout conventions every module shares: BT.601 luminance and CHW -> HWC.

The student fuses on BT.601 luminance (Y = 0.299 R + 0.587 G + 0.114 B); the metrics, the data loaders
and the network read the weights from here so that they can never disagree.
"""

from __future__ import annotations

import numpy as np

BT601 = (0.299, 0.587, 0.114)
BT601_F32 = np.array(BT601, dtype=np.float32)
# OpenCV's fixed-point BT.601 (weights × 2^15, rounded so they sum to 2^15): 8-bit gray as cv2 computes it
BT601_Q15 = (9798, 19235, 3735)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 (or …×3) RGB -> H×W BT.601 luminance, in the input's float dtype (float64 for integers)."""
    weights = BT601_F32 if rgb.dtype == np.float32 else np.asarray(BT601)
    return np.asarray(rgb[..., :3] @ weights)


def as_hwc(x: np.ndarray) -> np.ndarray:
    """1×C×H×W or C×H×W -> H×W×C (H×W for one channel), contiguous."""
    x = x[0] if x.ndim == 4 else x
    return x[0] if x.shape[0] == 1 else np.ascontiguousarray(x.transpose(1, 2, 0))
