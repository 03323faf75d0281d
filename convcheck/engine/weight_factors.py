"""The value checks of `convcheck.weights`: a rounding to a narrower float, and a factor per
output channel (a folded BatchNorm), each claimed only when every weight satisfies it.

numpy only. Arrays here are a port's weights and the original's mapped onto them, both in
grouped HWIO (kh, kw, C_in / G, C_out): the last axis is the output channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from .precision import SMALLEST_NORMAL, STORAGE_U, STORAGE_UNDERFLOW, round_to, storage_type

# A fitted factor needs the weight it is fitted to and this many more nonzero ones, else one
# factor per channel explains any values (CONTRACT section 3: never paper over a mismatch).
PINNING_WEIGHTS = 4
# The bounds below are evaluated in float64: a handful of float64 roundings (relative 2^-53
# each) that this widening covers, far below the unit roundoff of a float32 or narrower port;
# for a float64 port it is the check's resolution (a few of its units).
_FLOAT64_SLACK = 2.0 ** -50


@dataclass(frozen=True)
class FactorRelation:
    """`factor`: one number, a tuple with one per output channel, or None when no factor is
    claimed; `note` says why a factor that fits was not claimed ('' otherwise)."""

    factor: Union[float, tuple[float, ...], None]
    note: str = ""


def round_port_values(mapped: np.ndarray, precision: str, original_precision: str) -> list[np.ndarray]:
    """`mapped` rounded to nearest (ties to even) in `precision`: directly, and for a float64
    original also through float32 (torch casts float64 to float16 and bfloat16 that way: two
    roundings, which can differ from one at a tie). bfloat16 comes back as float32 (exact), so
    it compares with numpy's own types."""
    def rounded(values):
        if precision == "bfloat16":
            return round_to(values, "bfloat16").astype(np.float32)
        with np.errstate(over="ignore"):
            return np.asarray(values).astype(storage_type(precision))

    results = [rounded(mapped)]
    if original_precision == "float64" and precision in ("float16", "bfloat16"):
        results.append(rounded(np.asarray(mapped).astype(np.float32)))
    return results


def product_rounding(precision: str, original_precision: str) -> tuple[float, float]:
    """(u, eta): the relative and absolute error of storing a product in `precision`.

    One rounding to nearest: fl(x * y) = (x * y)(1 + d) + e, |d| <= u, |e| <= eta (Higham,
    Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 2.4, with the underflow
    term of section 2.1: eta is half the smallest subnormal). When the port's precision is
    not the original's, the product may have been rounded in the original's precision first
    (a BatchNorm folded in float32, then the weights cast to float16): two roundings,
    |fl_a(fl_b(t)) - t| <= (u_a + u_b + u_a u_b)|t| + eta_a + eta_b.
    """
    u, eta = STORAGE_U[precision], STORAGE_UNDERFLOW[precision]
    if precision == original_precision:
        return u, eta
    u_o, eta_o = STORAGE_U[original_precision], STORAGE_UNDERFLOW[original_precision]
    return u + u_o + u * u_o, eta + eta_o


def _factor_intervals(port: np.ndarray, mapped: np.ndarray, u: float, eta: float):
    """Per output channel (rows of the (C_out, n) arrays), the interval [low, high] of factors s
    with |p - s m| <= u |s m| + eta at every weight of that channel, and its nonzero count.

    For one weight, t = s m must lie in {t : |p - t| <= u |t| + eta}. When |p| > eta that is
    [(|p| - eta) / (1 + u), (|p| + eta) / (1 - u)] times sign(p), so s lies in
    [A / (1 + u), B / (1 - u)] with A = (|p| - eta) / |m|, B = (|p| + eta) / |m|, times
    sign(p) sign(m): a channel's interval comes from its largest A and smallest B, and is
    empty when its signs disagree. The rare weights with |p| <= eta (t may then have either
    sign) or m = 0 (t = 0, so |p| <= eta is needed) are intersected one by one
    (`_special_intervals`). O(n), no sort.
    """
    magnitude, size = np.abs(port), np.abs(mapped)
    special = None
    if magnitude.min(initial=np.inf) <= eta or size.min(initial=np.inf) == 0:
        special = (magnitude <= eta) | (size == 0)
        size = np.where(special, 1.0, size)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = magnitude - eta
        lower /= size
        upper = magnitude
        upper += eta
        upper /= size
    opposite = (port * mapped) < 0
    if special is not None:
        lower[special], upper[special], opposite[special] = 0.0, np.inf, False
        same = np.count_nonzero(~opposite & ~special, axis=1)
    else:
        same = opposite.shape[1] - np.count_nonzero(opposite, axis=1)
    negative = np.count_nonzero(opposite, axis=1)
    largest, smallest = lower.max(axis=1, initial=0.0), upper.min(axis=1, initial=np.inf)
    low = np.where(negative > 0, -smallest / (1 - u), largest / (1 + u))
    high = np.where(negative > 0, -largest / (1 + u), smallest / (1 - u))
    low[(negative > 0) & (same > 0)], high[(negative > 0) & (same > 0)] = np.inf, -np.inf
    low[(negative == 0) & (same == 0)], high[(negative == 0) & (same == 0)] = -np.inf, np.inf
    if special is not None:
        _special_intervals(port, mapped, special, u, eta, low, high)
    with np.errstate(invalid="ignore"):   # an empty channel's inf - inf: kept empty below
        widened = low - np.abs(low) * _FLOAT64_SLACK, high + np.abs(high) * _FLOAT64_SLACK
    low, high = np.where(np.isfinite(low), widened[0], low), np.where(np.isfinite(high), widened[1], high)
    nonzero = np.full(port.shape[0], port.shape[1]) if special is None else np.count_nonzero(mapped, axis=1)
    return low, high, nonzero


def _special_intervals(port, mapped, special, u: float, eta: float, low, high) -> None:
    """Intersect into `low`/`high` the factor interval of each weight with |p| <= eta or m = 0."""
    channel, index = np.nonzero(special)
    p, m = port[channel, index], mapped[channel, index]
    # |p| <= eta: t in [(|p| - eta) / (1 - u), (|p| + eta) / (1 - u)] times sign(p) (t may change sign).
    t_low = np.where(p >= 0, (np.abs(p) - eta) / (1 - u), -(np.abs(p) + eta) / (1 - u))
    t_high = np.where(p >= 0, (np.abs(p) + eta) / (1 - u), -(np.abs(p) - eta) / (1 - u))
    with np.errstate(divide="ignore", invalid="ignore"):
        s_low = np.where(m > 0, t_low / m, t_high / m)
        s_high = np.where(m > 0, t_high / m, t_low / m)
    zero = m == 0
    fits_zero = np.abs(p) <= eta
    s_low[zero] = np.where(fits_zero[zero], -np.inf, np.inf)
    s_high[zero] = np.where(fits_zero[zero], np.inf, -np.inf)
    np.maximum.at(low, channel, s_low)
    np.minimum.at(high, channel, s_high)


def factor_relation(port, mapped, *, precision: str, original_precision: str,
                    sample: bool = False) -> FactorRelation:
    """Whether port = round_precision(s_c * mapped) for one factor s_c per output channel.

    Rigorous, never a guessed tolerance: with (u, eta) from `product_rounding` (one rounding
    of each product, Higham eq. 2.4), a factor s_c holds when |port - s_c mapped| <= u |s_c
    mapped| + eta at every weight of channel c. The factors that do form an interval per
    channel (`_factor_intervals`: fitted from every weight at once, so a factor is found
    whenever one exists, where a ratio at one weight can miss by its rounding), and s_c is
    its midpoint; none exists when it is empty. One number is claimed when one interval is
    common to all channels.

    Evidence rules (a factor is claimed only where the data pin it):
    - each channel needs `PINNING_WEIGHTS` nonzero weights (a zero channel says nothing, and a
      factor fitted to one weight explains any value): else 'cannot decide' in `note`;
    - a factor within 2u of 1 moves values by their last digits only, which no port step does:
      it is claimed (as 1) only for a channel that is reproduced exactly.
    `sample` (a few channels, a quick rejection) checks only that the intervals are not empty.
    """
    channels = mapped.shape[-1]
    # Channels first, so each channel's weights are contiguous for the reductions.
    port = np.asarray(np.moveaxis(port, -1, 0), np.float64).reshape(channels, -1)
    mapped = np.asarray(np.moveaxis(mapped, -1, 0), np.float64).reshape(channels, -1)
    u, eta = product_rounding(precision, original_precision)
    low, high, nonzero = _factor_intervals(port, mapped, u, eta)
    fits = low <= high
    if not fits.all() and _normal(port, precision):
        # The factor applied in two steps, each product rounded in the port's precision (a
        # BatchNorm folded, then another factor: a hunt's port computed (w s) 1.01 in float32):
        # fl(fl(a m) b) = a b m (1 + d1)(1 + d2), |d| <= u, where every product stays a normal
        # number (no absolute term: checked on the port's weights, far above the subnormals),
        # so |p - s m| <= (2u + u^2) |s m| with s = a b.
        low, high, nonzero = _factor_intervals(port, mapped, 2 * u + u * u, 0.0)
        fits = low <= high
    if sample or not fits.all():
        return FactorRelation(1.0 if fits.all() else None)
    one = (low <= 1 + 2 * u) & (high >= 1 - 2 * u)
    common_low, common_high = low.max(), high.min()
    if common_low <= common_high and nonzero.sum() >= PINNING_WEIGHTS and not (
            common_low <= 1 + 2 * u and common_high >= 1 - 2 * u):
        return FactorRelation(float((common_low + common_high) / 2))
    loose = np.flatnonzero(nonzero < PINNING_WEIGHTS)
    if loose.size:
        return FactorRelation(None, (
            f"cannot decide: a factor per output channel fits, but output channel{_plural(loose)} "
            f"{_listed(loose)} hold{'s' if loose.size == 1 else ''} fewer than {PINNING_WEIGHTS} nonzero weights, "
            "too few to pin a factor (one fitted to a single weight explains any value)"))
    exact = _exact_channels(port, mapped, np.flatnonzero(one), precision, original_precision)
    rounding_only = np.setdiff1d(np.flatnonzero(one), exact)
    if rounding_only.size:
        return FactorRelation(None, (
            f"output channel{_plural(rounding_only)} {_listed(rounding_only)} of the port "
            f"differ{'s' if rounding_only.size == 1 else ''} from the original "
            f"only in the last digits (a factor within {2 * u:.2g} of 1 would be needed), which no porting step "
            "does: check that the weights were copied exactly"))
    fitted = (low + high) / 2
    fitted[exact] = 1.0
    return FactorRelation(tuple(float(s) for s in fitted))


def _normal(port: np.ndarray, precision: str) -> bool:
    """Whether every nonzero port weight lies far above `precision`'s subnormals (2^20 times its
    smallest normal number), so the products that made it were normal numbers too for any
    factor within 2^20 of 1."""
    nonzero = np.abs(port[port != 0])
    return bool(nonzero.size) and float(nonzero.min()) >= SMALLEST_NORMAL.get(precision, SMALLEST_NORMAL['float32']) * 2.0 ** 20


def _exact_channels(port, mapped, channels, precision: str, original_precision: str) -> np.ndarray:
    """The channels among `channels` whose port weights are the original's, rounded to `precision`."""
    if channels.size == 0:
        return channels
    port, mapped = port[channels], mapped[channels]
    candidates = [mapped] if precision == original_precision else \
        round_port_values(mapped, precision, original_precision)
    exact = np.zeros(channels.size, bool)
    for rounded in candidates:
        exact |= np.all(port == rounded, axis=1)
    return channels[exact]


def _plural(indices) -> str:
    return "" if len(indices) == 1 else "s"


def _listed(indices, most: int = 8) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:most])
    return shown + (f" and {len(indices) - most} more" if len(indices) > most else "")


__all__ = ["PINNING_WEIGHTS", "FactorRelation", "factor_relation", "product_rounding", "round_port_values"]
