"""Where an activation clips and an integer output saturates: the limits, and how an element
sitting at a limit is judged (as an inequality, not an equality)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import precision as prec


def clip_limits(activation: str, output_precision: Optional[str]) -> tuple[Optional[float], Optional[float]]:
    """(low, high): where an activation clips and an integer output type saturates (None: no limit)."""
    low = high = None
    if activation in ("relu", "relu6"):
        low = 0.0
    if activation == "relu6":
        high = 6.0
    if output_precision in prec.INTEGER_RANGES:
        lo, hi = prec.INTEGER_RANGES[output_precision]
        low = float(lo) if low is None else max(low, float(lo))
        high = float(hi) if high is None else min(high, float(hi))
    return low, high


def clipped_mask(target: np.ndarray, limits) -> Optional[np.ndarray]:
    """Mask of the output elements sitting at a limit (None when there is none): clipped ones."""
    low, high = limits
    if low is None and high is None:
        return None
    mask = np.zeros(target.shape, dtype=bool)
    if low is not None:
        mask |= target == low
    if high is not None:
        mask |= target == high
    return mask


def clip_residual(target: np.ndarray, predicted: np.ndarray, limits) -> np.ndarray:
    """|output - candidate| where nothing clips; at a limit, how far the candidate's value
    (before clipping) lies on the wrong side of it. A computed value p rounded and clipped,
    y = clip(fl(p)), sits at the low limit only if fl(p) <= low, i.e. p <= low + bound
    (rounding is monotone and the limits are representable, so clipping and rounding
    commute); anything strictly inside the limits was not clipped, so |y - p| <= bound
    as without an activation. An output beyond a limit cannot come from the candidate."""
    diff = np.subtract(target, predicted)
    low, high = limits
    if low is None and high is None:
        return np.abs(diff, out=diff if diff.dtype == np.float64 else None)
    residual = np.abs(diff)
    # At a limit (target == limit) the wrong side is predicted - low > 0 (|diff| there), or
    # high - predicted > 0: the right side counts as 0.
    inside = np.zeros(residual.shape, dtype=bool)
    if low is not None:
        inside |= (target == low) & (diff > 0)
        np.putmask(residual, np.broadcast_to(target < low, residual.shape), np.inf)
    if high is not None:
        inside |= (target == high) & (diff < 0)
        np.putmask(residual, np.broadcast_to(target > high, residual.shape), np.inf)
    np.putmask(residual, inside, 0.0)
    return residual


def clipped_values(predicted: np.ndarray, limits) -> np.ndarray:
    """The candidate's output: its values clipped to the limits."""
    low, high = limits
    if low is None and high is None:
        return predicted
    return np.clip(predicted, -np.inf if low is None else low, np.inf if high is None else high)
