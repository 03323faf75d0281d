"""Fitted parameters: a scale and bias (one number, or one per output channel) or a constant
border's value, fitted to the output in closed form and moved inside every element's bound
interval when least squares leaves one outside."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import precision as prec
from .candidates import fit_kind, per_channel_fit
from .clipping import clip_residual, clipped_mask
from .problem import Problem


SCREEN_FIT_ULPS = 8.0          # stage 1's allowance for its least-squares parameters (a screen only)


def fit_parameters(prediction: np.ndarray, target: np.ndarray, fit: str, weights: Optional[np.ndarray] = None):
    """Closed-form weighted least-squares (scale, bias) of target ~ scale * prediction + bias:
    two numbers, or for a per-channel fit two arrays with one number per output channel."""
    outs = prediction.shape[-1]
    flat_weights = None if weights is None else weights.reshape(1, -1, outs)
    scale, bias = fit_batch(prediction.reshape(1, -1, outs), target.reshape(-1, outs), fit, flat_weights)
    if per_channel_fit(fit):
        return scale[0], bias[0]
    return float(scale[0, 0]), float(bias[0, 0])


def usable_fit(scale, bias) -> bool:
    # A zero scale would "explain" any constant output: never a reproduction.
    return bool(np.all(np.isfinite(scale)) and np.all(np.isfinite(bias)) and np.all(np.not_equal(scale, 0.0)))


def fit_cval(values, mags, m_values, m_mags, target, problem: "Problem", precision: str, compared, samples,
              output_precision="pass"):
    """(cval, predicted, bound) for a 'constant' boundary: value = zero-boundary value + cval * m
    (m: the kernel taps that read the border). Weighted least squares, then, if an element
    is left beyond its bound, the point of the intersection of every element's interval."""
    keep = np.ones(values.shape, dtype=bool) if compared is None else np.broadcast_to(compared, values.shape)

    def at(cval):
        border = cval * m_values
        predicted = values + border
        bound = problem.bound(mags + abs(cval) * m_mags, predicted, precision, 1.0, False, samples,
                              output_precision=output_precision)
        bound += evaluation_error(border, predicted)
        return predicted, bound

    weights = fit_weights(problem.bound(mags, target, precision, 1.0, False, samples,
                                         output_precision=output_precision)) * keep
    denom = float(np.sum(weights * m_values * m_values))
    if denom <= 0:
        return float("nan"), *at(0.0)
    cval = float(np.sum(weights * m_values * (target - values)) / denom)
    predicted, bound = at(cval)
    if np.all((np.abs(target - predicted) <= bound) | ~keep):
        return cval, predicted, bound
    m, r, b = m_values[keep], (target - values)[keep], bound[keep]
    free = m == 0
    if np.any(np.abs(r[free]) > b[free]):
        return cval, predicted, bound
    ends = np.stack([(r[~free] - b[~free]) / m[~free], (r[~free] + b[~free]) / m[~free]])
    lo, hi = float(np.max(ends.min(axis=0))), float(np.min(ends.max(axis=0)))
    if lo > hi:
        return cval, predicted, bound
    cval = 0.5 * (lo + hi)
    return cval, *at(cval)


def fit_allowance(values: np.ndarray, bound: np.ndarray, weights: np.ndarray, fit: str) -> np.ndarray:
    """How far stage 1's least-squares prediction may lie from a feasible one, per element.

    If parameters p* keep every element within its bound, e = y - p* has |e_j| <= B_j, and
    the weighted least-squares prediction is p* + P e with P the weighted projection onto
    the fitted directions (1 for a bias, v for a scale, both). So |p_ls,i - p*_i| <=
    sum_j |P_ij| B_j: sum(w B) / sum(w) for a bias; |v_i| sum(w |v| B) / sum(w v^2) for a
    scale; both terms, with v centred, for the two. An integer output's bound is mostly
    its rounding (half a unit), which least squares spreads unevenly, so there stage 1 (a
    screen: the exact test refits to the minimax point) allows this much more.
    """
    axes = (-2,) if per_channel_fit(fit) else (-2, -1)
    kind = fit_kind(fit)

    def total(a):
        return np.sum(a, axis=axes, keepdims=True)

    weights = np.broadcast_to(weights, values.shape)
    weighted_bound = weights * bound
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = total(weights)
        if kind == "bias":
            allowance = total(weighted_bound) / weight
        elif kind == "scale":
            allowance = np.abs(values) * total(weighted_bound * np.abs(values)) / total(weights * values * values)
        else:
            centred = values - total(weights * values) / weight
            allowance = (total(weighted_bound) / weight
                         + np.abs(centred) * total(weighted_bound * np.abs(centred)) / total(weights * centred ** 2))
    return np.nan_to_num(allowance, nan=np.inf, posinf=np.inf)


def evaluation_error(term: np.ndarray, predicted: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """What convcheck's own float64 arithmetic adds to a candidate with fitted parameters.

    `predicted` = fl(fl(term) + rest), e.g. fl(fl(scale * values) + bias): each operation
    rounds once, |error| <= u |term| + u |predicted| (u = 2^-53; the second-order terms are
    inside error_bound's inflation). Without it a float64 output that adds a bias to a 1x1
    kernel's exact products (a bound of one ulp) fails on convcheck's own rounding, not on
    the data (fuzz cases 1354, 3147). `factor` > 1 only for stage 1's screen, whose
    least-squares parameters are a few ulps from the minimax ones the exact test uses.
    """
    error = np.abs(term)
    error += np.abs(predicted)
    error *= factor * prec.U64
    return error


def fit_within(values, mags, target, fit: str, problem: "Problem", precision: str, *, compared=None,
                samples=None, extra=None, limits=(None, None), output_precision="pass"):
    """(scale, bias, predicted, bound) of a candidate: the closed-form least-squares fit, or,
    when that leaves an element beyond its bound, parameters that keep every element inside.

    Least squares spreads the output's rounding over the fit, so the fitted scale or bias
    itself is off by about one rounding: with float16 outputs or cancelling sums that alone
    can push a true candidate past its bound. Every element's bound defines an interval of
    parameters that reproduce it; `_minimax` picks a point in their intersection. The bound
    is then recomputed at that point, so the test itself stays exact. `compared` (a boolean
    array broadcastable to `values`) leaves elements out of the fit and the test; `extra`
    an algorithm's own error (see Problem.bound); elements at one of `limits` (clipped,
    see `clip_residual`) take no part in the fit. A per-channel fit gives arrays with one scale
    and bias per output channel (the last axis).
    """
    kind = fit_kind(fit)
    has_bias = kind in ("bias", "both")

    def at(scale, bias):
        if kind == "none":
            return values, problem.bound(mags, values, precision, scale, False, samples, extra,
                                         output_precision=output_precision)
        scaled = scale * values
        predicted = scaled + bias
        bound = problem.bound(mags, predicted, precision, scale, has_bias, samples, extra,
                              output_precision=output_precision)
        bound += evaluation_error(scaled, predicted)
        return predicted, bound

    clipped = clipped_mask(target, limits)
    free = compared if clipped is None else ~clipped if compared is None else compared & ~clipped
    weights = None
    if kind != "none":
        weights = fit_weights(problem.bound(mags, target, precision, 1.0, has_bias, samples, extra,
                                             output_precision=output_precision))
        if free is not None:
            weights = weights * free
    scale, bias = fit_parameters(values, target, fit, weights)
    if not usable_fit(scale, bias):
        return scale, bias, *at(1.0, 0.0)
    predicted, bound = at(scale, bias)
    if kind == "none":
        return scale, bias, predicted, bound
    excess = clip_residual(target, predicted, limits) - bound
    if compared is not None:
        excess = np.where(compared, excess, -1.0)
    if not np.any(excess > 0) or np.any(np.isnan(excess)):
        return scale, bias, predicted, bound
    keep = np.ones(values.shape, dtype=bool) if free is None else np.broadcast_to(free, values.shape)
    if per_channel_fit(fit):
        refit = (np.array(scale, dtype=np.float64), np.array(bias, dtype=np.float64))
        for channel in range(values.shape[-1]):
            one = keep[..., channel]
            found = _minimax(values[..., channel][one], target[..., channel][one], bound[..., channel][one],
                             kind, float(scale[channel]))
            if found is None:
                refit = None
                break
            refit[0][channel], refit[1][channel] = found
    else:
        refit = _minimax(values[keep], target[keep], bound[keep], kind, scale)
    if refit is not None and usable_fit(*refit):
        new_predicted, new_bound = at(*refit)
        new_excess = clip_residual(target, new_predicted, limits) - new_bound
        if np.all(np.where(compared, new_excess, -1.0) <= 0 if compared is not None else new_excess <= 0):
            return (*refit, new_predicted, new_bound)
    return scale, bias, predicted, bound


def _minimax(values, target, bound, fit: str, scale: float):
    """(scale, bias) inside every element's interval |target - scale*values - bias| <= bound
    (the bound held at its least-squares value), or None when the intervals do not meet."""
    v, y, b = values.ravel(), target.ravel(), bound.ravel()
    if v.size == 0:
        return None
    if fit == "bias":
        lo, hi = float(np.max(y - v - b)), float(np.min(y - v + b))
        return (1.0, 0.5 * (lo + hi)) if lo <= hi else None
    if fit == "scale":
        zero = v == 0
        if np.any(np.abs(y[zero]) > b[zero]):
            return None
        ends = np.stack([(y[~zero] - b[~zero]) / v[~zero], (y[~zero] + b[~zero]) / v[~zero]])
        if ends.shape[1] == 0:
            return None
        lo, hi = float(np.max(ends.min(axis=0))), float(np.min(ends.max(axis=0)))
        return (0.5 * (lo + hi), 0.0) if lo <= hi else None

    def gap(s):  # > 0: no bias fits every element at this scale; convex in s
        r = y - s * v
        return float(np.max(r - b) - np.min(r + b))

    # Golden-section search on the convex gap, around the least-squares scale.
    width = 8.0 * float(np.max(b)) / max(float(np.max(np.abs(v))), 1e-300) + 1e-12 * abs(scale)
    lo, hi = scale - width, scale + width
    ratio = (5 ** 0.5 - 1) / 2
    for _ in range(80):
        a, c = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if gap(a) <= gap(c):
            hi = c
        else:
            lo = a
    s = 0.5 * (lo + hi)
    if gap(s) > 0:
        return None
    r = y - s * v
    return s, 0.5 * (float(np.max(r - b)) + float(np.min(r + b)))


def fit_batch(values: np.ndarray, target: np.ndarray, fit: str, weights: Optional[np.ndarray] = None):
    """Weighted least-squares (scale, bias) for every leading index at once: values (..., n, O),
    target (n, O), weights broadcastable to values (default: equal). Returns arrays of shape
    (..., 1), or (..., O) for a per-channel fit (each channel fitted on its own elements).

    Weights 1 / bound^2 make the fit exact where the bound is tight: an unweighted fit
    spreads the rounding of large elements onto small ones. NaN marks a fit that does not
    exist (a constant prediction, or a channel with no weight at all).
    """
    per = per_channel_fit(fit)
    kind = fit_kind(fit)
    shape = values.shape[:-2] + ((values.shape[-1],) if per else (1,))
    if kind == "none":
        return np.ones(shape), np.zeros(shape)
    w = np.ones(values.shape[-2:]) if weights is None else weights
    target = np.broadcast_to(target, values.shape[-2:])

    def total(a, b=None):   # sum over the elements (of each channel) of a * b
        if b is None:
            return np.sum(a, axis=-2) if per else np.sum(a, axis=(-2, -1))[..., None]
        return np.einsum("...no,...no->...o", a, b) if per else np.einsum("...no,...no->...", a, b)[..., None]

    weight = total(w)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "bias":
            return np.ones(shape), np.where(weight > 0, total(w, target - values) / weight, np.nan)
        if kind == "scale":
            weighted = w * values
            denom = total(weighted, values)
            scale = np.where(denom > 0, total(weighted, target) / denom, np.nan)
            return np.broadcast_to(scale, shape), np.zeros(shape)
        v_mean = total(w, values) / weight
        y_mean = total(w, target) / weight
        dv = values - v_mean[..., None, :]
        weighted = w * dv
        denom = total(weighted, dv)
        scale = np.where(denom > 0, total(weighted, target - y_mean[..., None, :]) / denom, np.nan)
        bias = y_mean - scale * v_mean
        return np.broadcast_to(scale, shape), np.broadcast_to(bias, shape)


def fit_weights(bound: np.ndarray) -> np.ndarray:
    """1 / bound^2, scaled to at most 1 and at least 2^-52 (the bound floored at 2^-26 of its
    largest element), so that tiny bounds neither overflow nor take all the weight."""
    floor = np.max(bound, axis=(-2, -1), keepdims=True) * 2.0 ** -26
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.square(np.divide(floor, np.maximum(bound, floor)))
    return np.nan_to_num(w, nan=1.0, posinf=1.0)
