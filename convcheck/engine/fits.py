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


def fit_parameters(prediction: np.ndarray, target: np.ndarray, fit: str, weights: Optional[np.ndarray] = None,
                   fixed=None):
    """Closed-form weighted least-squares (scale, bias) of target ~ scale * prediction + bias:
    two numbers, or for a per-channel fit two arrays with one number per output channel.
    `fixed` (declared (scale, bias), see `fit_batch`) holds what the fit does not fit."""
    outs = prediction.shape[-1]
    flat_weights = None if weights is None else weights.reshape(1, -1, outs)
    scale, bias = fit_batch(prediction.reshape(1, -1, outs), target.reshape(-1, outs), fit, flat_weights, fixed)
    if scale.shape[-1] != 1:
        return scale[0], bias[0]
    return float(scale[0, 0]), float(bias[0, 0])


def settle_dead_channels(scale, bias, values, target, free, compared, limits, fit: str, declared=None,
                         declared_scale=None):
    """(scale, bias) of a per-channel fit with its dead channels settled: a channel with no
    element left free to fit (every compared one clipped by the activation or saturated: a
    ReLU's dead channel) says only on which side of the limit its sums lay, so its scale is
    the expected one (`declared_scale`, a number or one per channel, or 1: nothing to fit it
    from) and its bias is only bounded: b <= low - max(s v) for elements at the low limit,
    b >= high - min(s v) for those at the high one. The reported bias is the expected one
    (`declared`: the declared bias, or 0) where that lies in the interval (the data agree with
    it: a dead channel must not read as a changed value), else that bound (the end of the
    interval, its midpoint when bounded on both sides), never a value fitted from data that
    has none. A scale-only fit keeps the bias it was given; its dead channels take the
    expected scale where that keeps every sum on its side of the limit (a hunt: a kernel off
    by 1% under a folded BatchNorm and ReLU6 lost its 'scale' to a channel the ReLU zeroed).
    Other fits, and channels with free elements, as given."""
    kind = fit_kind(fit)
    if not per_channel_fit(fit) or kind not in ("bias", "both", "scale") or limits == (None, None):
        return scale, bias
    shape = np.broadcast_shapes(np.shape(values), np.shape(free) if free is not None else ())
    dead = ~np.any(np.broadcast_to(True if free is None else free, shape), axis=-2)
    if not dead.any():
        return scale, bias
    low, high = limits
    expected_scale = np.broadcast_to(np.asarray(1.0 if declared_scale is None else declared_scale,
                                                dtype=np.float64), np.shape(dead))
    held = np.where(dead, expected_scale, scale)
    summed = held[..., None, :] * values
    seen = np.broadcast_to(True if compared is None else compared, shape)
    upper = np.min(np.where(seen & (target == low), low - summed, np.inf), axis=-2) if low is not None else np.inf
    lower = np.max(np.where(seen & (target == high), high - summed, -np.inf), axis=-2) if high is not None \
        else -np.inf
    given = np.broadcast_to(np.asarray(0.0 if declared is None else declared, dtype=np.float64), np.shape(dead))
    with np.errstate(invalid="ignore"):
        inside = (given >= lower) & (given <= upper)
        if kind == "scale":
            given_bias = np.broadcast_to(np.asarray(bias, dtype=np.float64), np.shape(dead))
            keeps = (given_bias >= lower) & (given_bias <= upper)
            return np.where(dead & keeps, held, scale), bias
        bounded = np.where(np.isinf(lower), upper, np.where(np.isinf(upper), lower,
                                                           np.where(lower <= upper, 0.5 * (lower + upper), np.nan)))
        bounded = np.where(inside, given, bounded)
    return np.where(dead, held, scale), np.where(dead, bounded, bias)


def dead_channels(target, limits, compared=None) -> np.ndarray:
    """The output channels whose every compared element sits at a limit (see
    `settle_dead_channels`): indices, in order."""
    clipped = clipped_mask(target, limits)
    if clipped is None:
        return np.zeros(0, dtype=int)
    if compared is not None:
        clipped = clipped | ~np.broadcast_to(compared, clipped.shape)
    flat = clipped.reshape(-1, clipped.shape[-1])
    return np.flatnonzero(flat.all(axis=0) & (flat.shape[0] > 0))


def usable_fit(scale, bias) -> bool:
    # A zero scale would "explain" any constant output: never a reproduction.
    return bool(np.all(np.isfinite(scale)) and np.all(np.isfinite(bias)) and np.all(np.not_equal(scale, 0.0)))


def fit_cval(values, mags, m_values, m_mags, target, problem: "Problem", precision: str, compared, samples,
             output_precision="pass"):
    """(cval, predicted, bound) for a 'constant' boundary: value = zero-boundary value + cval * m
    (m: the kernel taps that read the border), times the declared scale plus the declared
    bias when there are. Weighted least squares, then, if an element is left beyond its
    bound, the point of the intersection of every element's interval."""
    keep = np.ones(values.shape, dtype=bool) if compared is None else np.broadcast_to(compared, values.shape)
    scale, bias = problem.declared_values(precision) if problem.declares_values else (1.0, 0.0)
    has_bias = bool(np.any(np.not_equal(bias, 0.0)))
    if problem.declares_values:
        values, m_values = scale * values + bias, scale * m_values

    def at(cval):
        border = cval * m_values
        predicted = values + border
        magnitude = mags + abs(cval) * m_mags
        bound = problem.bound(magnitude, predicted, precision, scale, has_bias, samples,
                              output_precision=output_precision, unbiased=predicted - bias if has_bias else None)
        bound += evaluation_error(border, predicted)
        uncertain = problem.uncertainty_term(magnitude, precision, "none", scale)
        if uncertain is not None:
            bound += uncertain
        return predicted, bound

    weights = fit_weights(problem.bound(mags, target, precision, scale, has_bias, samples,
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
               samples=None, extra=None, limits=(None, None), output_precision="pass", channels=None):
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
    and bias per output channel (the last axis). A scale or bias the fit does not fit is the
    declared one (`Problem.declared_values`: applied as given, never fitted), with its
    uncertainty (`Problem.uncertainty_term`) in the bound. `channels` (nothing fitted, no FFT
    term): the output channels `values` holds, when not all of them (each element's test is
    its own then: the same as on all channels, restricted to these).
    """
    kind = fit_kind(fit)
    fixed = problem.declared_values(precision) if problem.declares_values else None
    has_bias = kind in ("bias", "both") or (fixed is not None and bool(np.any(fixed[1] != 0.0)))
    if channels is not None:
        assert kind == "none" and extra is None and problem.algorithm != "fft"
        if fixed is not None:
            fixed = tuple(a if a.ndim == 0 else a[channels] for a in fixed)

    def at(scale, bias):
        if kind == "none" and fixed is None:
            return values, problem.bound(mags, values, precision, scale, False, samples, extra,
                                         output_precision=output_precision)
        scaled = scale * values
        predicted = scaled + bias
        bound = problem.bound(mags, predicted, precision, scale, has_bias, samples, extra,
                              output_precision=output_precision, unbiased=scaled if has_bias else None)
        bound += evaluation_error(scaled, predicted)
        uncertain = problem.uncertainty_term(mags, precision, kind, scale, channels=channels, values=values)
        if uncertain is not None:
            bound += uncertain
        return predicted, bound

    clipped = clipped_mask(target, limits)
    free = compared if clipped is None else ~clipped if compared is None else compared & ~clipped
    weights = None
    if kind != "none":
        weights = fit_weights(problem.bound(mags, target, precision, 1.0, has_bias, samples, extra,
                                             output_precision=output_precision))
        if free is not None:
            weights = weights * free
    scale, bias = fit_parameters(values, target, fit, weights, fixed)
    if limits != (None, None) and per_channel_fit(fit):
        outs = values.shape[-1]

        def flat(a):
            return None if a is None else np.broadcast_to(a, values.shape).reshape(-1, outs)

        scale, bias = settle_dead_channels(scale, bias, flat(values), flat(target), flat(free), flat(compared),
                                           limits, fit, declared=0.0 if fixed is None else fixed[1],
                                           declared_scale=None if fixed is None else fixed[0])
    if not usable_fit(scale, bias):
        return scale, bias, *(at(1.0, 0.0) if fixed is None else at(*fixed))
    predicted, bound = at(scale, bias)
    if kind == "none":
        return scale, bias, predicted, bound
    excess = clip_residual(target, predicted, limits) - bound
    if compared is not None:
        excess = np.where(compared, excess, -1.0)
    if not np.any(excess > 0) or np.any(np.isnan(excess)):
        return scale, bias, predicted, bound
    keep = np.ones(values.shape, dtype=bool) if free is None else np.broadcast_to(free, values.shape)
    # The bound moves with the parameters (a bias added to a stored sum, a scale's rounding):
    # a point inside every interval held at one bound may leave an element just outside its
    # bound at the new point, so the intervals are taken again at the new bound, a few times.
    held_bound = bound
    for _ in range(REFITS):
        refit = _refit(values, target, held_bound, keep, fit, scale, bias, fixed)
        if refit is None or not usable_fit(*refit):
            break
        new_predicted, new_bound = at(*refit)
        new_excess = clip_residual(target, new_predicted, limits) - new_bound
        if np.all(np.where(compared, new_excess, -1.0) <= 0 if compared is not None else new_excess <= 0):
            return (*refit, new_predicted, new_bound)
        held_bound = new_bound
    return scale, bias, predicted, bound


# How many times `fit_within` takes the intervals again at the bound of its last point.
REFITS = 3


def _refit(values, target, bound, keep, fit: str, scale, bias, fixed):
    """`_minimax` over the elements `keep`, per channel for a per-channel fit; what the fit
    holds (a declared scale for a 'bias' fit, a declared bias for a 'scale' fit) is taken out
    of the values or the target first. None when some channel's intervals do not meet."""
    kind = fit_kind(fit)
    if fixed is not None and kind == "bias":
        values = scale * values
    if fixed is not None and kind == "scale":
        target = target - bias
    if not per_channel_fit(fit):
        found = _minimax(values[keep], target[keep], bound[keep], kind, float(np.max(scale)))
        return None if found is None else _held(found, kind, scale, bias, fixed)
    refit = (np.array(scale, dtype=np.float64), np.array(bias, dtype=np.float64))
    for channel in range(values.shape[-1]):
        one = keep[..., channel]
        if not one.any():
            continue   # a dead channel: its bias is bounded, not fitted (settle_dead_channels)
        found = _minimax(values[..., channel][one], target[..., channel][one], bound[..., channel][one],
                         kind, float(refit[0][channel]) if kind != "bias" or fixed is None else 1.0)
        if found is None:
            return None
        refit[0][channel], refit[1][channel] = found
    return _held(refit, kind, scale, bias, fixed)


def _held(found, kind: str, scale, bias, fixed):
    """A minimax (scale, bias) with what the fit held put back (see `_refit`)."""
    if fixed is None:
        return found
    if kind == "bias":
        return scale, found[1]
    if kind == "scale":
        return found[0], bias
    return found


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


def fit_batch(values: np.ndarray, target: np.ndarray, fit: str, weights: Optional[np.ndarray] = None,
              fixed=None):
    """Weighted least-squares (scale, bias) for every leading index at once: values (..., n, O),
    target (n, O), weights broadcastable to values (default: equal). Returns arrays of shape
    (..., 1), or (..., O) for a per-channel fit (each channel fitted on its own elements).

    Weights 1 / bound^2 make the fit exact where the bound is tight: an unweighted fit
    spreads the rounding of large elements onto small ones. NaN marks a fit that does not
    exist (a constant prediction, or a channel with no weight at all). `fixed`, when given,
    is the declared (scale, bias) (arrays of shape () or (O,)): what the fit does not fit
    is held at them (a 'bias' fit keeps the declared scale, a 'scale' fit the declared bias,
    nothing fitted both), and results are then shaped (..., O) when they are per channel.
    """
    if fixed is not None:
        return _fit_batch_fixed(values, target, fit, weights, fixed)
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


def _fit_batch_fixed(values: np.ndarray, target: np.ndarray, fit: str, weights, fixed):
    """`fit_batch` with a declared (scale, bias): the fit of the target less what is held."""
    scale0, bias0 = (np.asarray(a, dtype=np.float64) for a in fixed)
    outs = values.shape[-1]
    kind = fit_kind(fit)
    per = per_channel_fit(fit) or scale0.ndim or bias0.ndim
    shape = values.shape[:-2] + ((outs,) if per else (1,))
    if kind == "none":
        return np.broadcast_to(scale0, shape).copy(), np.broadcast_to(bias0, shape).copy()
    if kind == "bias":
        _, bias = fit_batch(values if not np.any(scale0 != 1.0) else scale0 * values, target, fit, weights)
        return np.broadcast_to(scale0, shape).copy(), np.broadcast_to(bias, shape).copy()
    if kind == "scale":
        scale, _ = fit_batch(values, np.broadcast_to(target, values.shape[-2:]) - bias0, fit, weights)
        return np.broadcast_to(scale, shape).copy(), np.broadcast_to(bias0, shape).copy()
    scale, bias = fit_batch(values, target, fit, weights)
    return np.broadcast_to(scale, shape).copy(), np.broadcast_to(bias, shape).copy()


def fit_weights(bound: np.ndarray) -> np.ndarray:
    """1 / bound^2, scaled to at most 1 and at least 2^-52 (the bound floored at 2^-26 of its
    largest element), so that tiny bounds neither overflow nor take all the weight."""
    floor = np.max(bound, axis=(-2, -1), keepdims=True) * 2.0 ** -26
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.divide(floor, np.maximum(bound, floor))
    np.square(w, out=w)
    # floor / max(bound, floor) <= 1 where it is a number: only NaN (a zero, infinite or NaN
    # floor or bound) is left to replace (numpy.nan_to_num's five passes, two of them for inf).
    np.putmask(w, np.isnan(w), 1.0)
    return w


# A fitted parameter must be pinned by the data away from its default: the values every
# element's bound still allows (its half-width) must not reach the default. One fitted per
# channel, or on top of a precision modelled with slack (TF32), must be pinned well below the
# change it claims: a half-width at most this fraction of it (issue 20: a per-channel bias of
# 0.003 absorbing corrupted elements, a TF32 candidate's scale absorbing a bfloat16 rounding).
DETERMINED_FRACTION = 0.25

# A fitted parameter must also differ from its default by more than NOISE_SIGMAS standard
# errors of the best estimate N elements can give of it (`_noise`), each element's error taken as
# noise of standard deviation at most its bound B_i. Below that, no estimate from these elements
# can tell the parameter from its default, however narrow the intersection of their slabs (a
# few elements at the edge of their bounds make it narrow): a bias of 2.6e-05 under bounds of
# about 0.01 (near-miss case 331, a bfloat16 conv with one tap changed by 0.67 %) only pushed the
# changed tap's worst elements back inside (issue 20 item 2).
NOISE_SIGMAS = 3.0


def _noise(v: np.ndarray, b: np.ndarray, name: str) -> float:
    """NOISE_SIGMAS standard errors of the weighted least-squares estimate of a bias (every
    element's value moves by it) or a scale (element i's moves by v_i times it) from elements
    whose errors have standard deviations at most `b`: 1 / sqrt(sum 1 / b_i^2) for a bias,
    1 / sqrt(sum v_i^2 / b_i^2) for a scale (the inverse-variance weighted mean; with equal
    bounds B, B / sqrt(N) and B / sqrt(sum v_i^2)). An element with a zero bound pins the
    parameter exactly (no noise); no element, or none that moves with it, leaves it unknown."""
    weight = np.ones_like(v) if name == "bias" else np.asarray(v, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        information = float(np.sum(np.where(weight == 0, 0.0, (weight / b) ** 2)))
    if information == 0.0:
        return float("inf")
    return NOISE_SIGMAS / np.sqrt(information)


def undetermined(values, target, bound, fit: str, scale, bias, free, default, strict: bool = False,
                 integer: bool = False) -> Optional[str]:
    """None when every fitted parameter is determined by its own evidence, else a sentence
    saying which is not.

    Every element with |target - s v - b| <= B constrains (s, b) to a slab; the parameters
    the data allow are the intersection, and its extent along a parameter (the other free,
    for a 'both' fit: the marginal) is that parameter's uncertainty. A parameter whose
    half-width exceeds DETERMINED_FRACTION of its change from the default (declared, or 1
    and 0) cannot be told from the default and from rounding: it is no cause (the default
    stands if it fits; if it does not, this candidate is not the explanation). Per channel
    for a per-channel fit (dead channels, with no free element, are only bounded and skip
    this, as do channels whose defaults reproduce every element: they claim no change; a fit
    whose every channel is such claims nothing); only free (compared, unclipped) elements
    count, which makes the extent larger, never smaller: the safe direction. A parameter fitted per channel, or with `strict` (a
    precision modelled with slack), must be pinned within DETERMINED_FRACTION of its change.
    On an `integer` output (rounded to nearest and saturated), a fitted bias whose allowed
    values reach +-1/2 is the offset between rounding to nearest and rounding down or up
    (np.floor, np.ceil, a truncating cast of non-negative values): a different rounding,
    which no field describes, not a bias (issue 20). And a parameter whose distance from its
    default is within NOISE_SIGMAS standard errors of its best estimate from the free
    elements (`_noise`) is no cause either, however narrow its range (see NOISE_SIGMAS); nor
    is one that only one element needs (two, for a scale and a bias): the default reproduces
    every other element, and a fit with as many parameters as elements that need it cannot tell
    a real scale or bias from those elements being off (near-miss case 595: one element of a
    bfloat16 output moved by 9x its bound, "explained" by a bias of -0.0014 on its channel)."""
    kind = fit_kind(fit)
    fraction = DETERMINED_FRACTION if strict or per_channel_fit(fit) else 1.0
    if kind not in ("bias", "scale", "both"):
        return None
    outs = values.shape[-1]
    scales, biases = np.broadcast_to(scale, (outs,)), np.broadcast_to(bias, (outs,))
    s0, b0 = (np.broadcast_to(np.asarray(d, dtype=np.float64), (outs,)) for d in default)
    groups = unchanged = 0
    for channels, one, vv, yy, bb in _fit_groups(values, target, bound, fit, free):
        groups += 1
        if not one.any():
            unchanged += 1
            continue
        c = channels[0]
        where = f" of output channel {c}" if per_channel_fit(fit) else ""
        if per_channel_fit(fit) and _default_holds(vv, yy, bb, kind, scales[c], biases[c], s0[c], b0[c]):
            # The channel's own defaults (e.g. its declared bias) reproduce every element of it
            # within the bound: nothing is claimed for this channel, only for those whose
            # defaults fail, and those must be pinned by their evidence as below.
            unchanged += 1
            continue
        needing = _needing(yy, vv, bb, kind,
                           *(np.broadcast_to(a[channels], one.shape)[one] for a in (scales, biases, s0, b0)))
        if 0 < needing <= (2 if kind == "both" else 1):
            what = "scale and bias" if kind == "both" else kind
            return (f"the fitted {what}{where} is needed by {needing} element{'s' if needing > 1 else ''} only (the "
                    "default reproduces every other): fitted to as many elements as it has parameters, it cannot "
                    f"tell a real {what} from {'those elements' if needing > 1 else 'that element'} being off")
        widths = _half_widths(vv, yy, bb, kind, float(scales[c]), float(biases[c]))
        for name, width, value, prior in (("scale", widths[0], scales[c], s0[c]), ("bias", widths[1], biases[c], b0[c])):
            if width is None:
                continue
            # The allowed biases are an interval the fitted one need not be the centre of:
            # +-1/2 is tested against its ends (near-miss case 28: np.ceil to uint16 fitted
            # 0.4963 in [0.4960, 0.5027], whose half-width 0.0034 around 0.4963 missed 0.5).
            low, high = widths[2] if name == "bias" else (value - width, value + width)
            if integer and name == "bias" and any(low <= half <= high for half in (-0.5, 0.5)):
                way = "down (np.floor, or a truncating cast)" if float(value) < 0 else "up (np.ceil)"
                return (f"the fitted bias, {float(value):.6g} (uncertain by {width:.3g}), is the offset between "
                        f"rounding to nearest and rounding {way}: the output was most likely rounded {way.split()[0]} "
                        "to its integer type, which no field of the vocabulary describes, not given a bias")
            change = abs(float(value) - float(prior))
            if not width < fraction * change:
                allowed = "its default" if fraction == 1.0 else f"{fraction:g} of its change from the default"
                return (f"the fitted {name}{where}, {float(value):.6g}, is uncertain by {width:.3g} (the values every "
                        f"element's bound allows), which reaches {allowed} ({float(prior):.6g}): the data cannot tell "
                        "it from rounding")
            noise = _noise(vv, bb, name)
            if change <= noise:
                return (f"the fitted {name}{where}, {float(value):.6g}, is within the noise of {bb.size} elements' "
                        f"bounds ({NOISE_SIGMAS:g} standard errors, {noise:.3g}, from {float(prior):.6g}): the data "
                        "cannot tell it from its default")
    if per_channel_fit(fit) and unchanged == groups:
        return (f"the fitted {kind if kind != 'both' else 'scale and bias'} per channel reproduces the output only where "
                "its defaults do: no channel's value differs from its default beyond rounding")
    return None


def fitted_spread(values, target, bound, fit: str, scale, bias, free) -> tuple[np.ndarray, np.ndarray]:
    """(how far the scale, how far the bias may be from the fitted ones), one per output
    channel: the full width of each parameter's range in {(s, b) : |target - s v - b| <= bound
    on every free element} (`_half_widths`, per channel for a per-channel fit), 0 for a
    parameter not fitted. The true parameters of a computation the bound holds for lie in that
    set, so any computation of the candidate's form differs from the fitted one's value by at
    most |ds| |v| + |db| (`plausibility.half_storage_unattainable` widens by it: a point fit is
    not the truth's parameters, and taking it for them called true outputs unattainable)."""
    kind = fit_kind(fit)
    outs = values.shape[-1]
    spread_s, spread_b = np.zeros(outs), np.zeros(outs)
    if kind not in ("bias", "scale", "both"):
        return spread_s, spread_b
    scales, biases = np.broadcast_to(scale, (outs,)), np.broadcast_to(bias, (outs,))
    for channels, one, vv, yy, bb in _fit_groups(values, target, bound, fit, free):
        c = channels[0]
        if not one.any():
            spread_s[channels], spread_b[channels] = (np.inf if kind != "bias" else 0.0), \
                (np.inf if kind != "scale" else 0.0)
            continue
        widths = _half_widths(vv, yy, bb, kind, float(scales[c]), float(biases[c]))
        spread_s[channels] = 0.0 if widths[0] is None else 2 * widths[0]
        spread_b[channels] = 0.0 if widths[1] is None else 2 * widths[1]
    return spread_s, spread_b


def _fit_groups(values, target, bound, fit: str, free):
    """For each group of output channels a fit fits one parameter set to (every channel on its
    own for a per-channel fit, else all of them): (its channels, the mask of its free elements
    (elements x channels), and the values, targets and bounds of those elements)."""
    outs = values.shape[-1]
    keep = np.broadcast_to(True if free is None else free, values.shape).reshape(-1, outs)
    v, y, b = (np.broadcast_to(a, values.shape).reshape(-1, outs) for a in (values, target, bound))
    for channels in ([[c] for c in range(outs)] if per_channel_fit(fit) else [list(range(outs))]):
        one = keep[:, channels]
        yield channels, one, v[:, channels][one], y[:, channels][one], b[:, channels][one]


def _needing(y, v, b, kind: str, scale, bias, default_scale, default_bias) -> int:
    """How many elements the defaults of the fitted parameters leave beyond their bound (the
    parameters not fitted as they are; every argument one value per element)."""
    s = default_scale if kind in ("scale", "both") else scale
    o = default_bias if kind in ("bias", "both") else bias
    return int(np.count_nonzero(~(np.abs(y - (s * v + o)) <= b)))


def _default_holds(v, y, b, kind: str, scale, bias, default_scale, default_bias) -> bool:
    """Whether the fitted parameters (`kind`: 'bias', 'scale' or 'both') at their defaults keep
    every element within its bound (a parameter not fitted stays as it is)."""
    s = float(default_scale) if kind in ("scale", "both") else float(scale)
    o = float(default_bias) if kind in ("bias", "both") else float(bias)
    return bool(np.all(np.abs(y - (s * v + o)) <= b))


def _half_widths(v, y, b, kind: str, scale: float, bias: float):
    """(scale half-width or None, bias half-width or None, (lowest, highest) bias allowed or
    None) of the parameters the elements allow (see `undetermined`)."""
    if kind == "bias":
        held = y - scale * v
        low, high = float(np.max(held - b)), float(np.min(held + b))
        return None, max(0.0, high - low) / 2, (low, high)
    if kind == "scale":
        return _scale_range(v, y - bias, b), None, None
    return _both_ranges(v, y, b, scale)


def _scale_range(v, y, b) -> float:
    """Half-width of {s : |y - s v| <= b everywhere} (0 when it is empty)."""
    zero = v == 0
    if not np.any(~zero):
        return float("inf")
    ends = np.stack([(y[~zero] - b[~zero]) / v[~zero], (y[~zero] + b[~zero]) / v[~zero]])
    return max(0.0, float(np.min(ends.max(axis=0)) - np.max(ends.min(axis=0))) / 2)


def _both_ranges(v, y, b, scale: float):
    """Half-widths of the scale's and the bias's marginal ranges in {(s, t) : |y - s v - t| <= b}:
    the scales where gap(s) = max(y - s v - b) - min(y - s v + b) <= 0 (convex, piecewise
    linear), found by doubling then bisection from the fitted scale; the biases from
    min over them of max(y - s v - b) (convex) to max of min(y - s v + b) (concave)."""
    def gap(s):
        r = y - s * v
        return float(np.max(r - b) - np.min(r + b))

    if gap(scale) > 0 or not np.any(v != v.flat[0]):
        return float("inf"), float("inf"), (-float("inf"), float("inf"))
    ends = []
    for direction in (-1.0, 1.0):
        step = max(abs(scale), 1e-300) * 2.0 ** -40
        while gap(scale + direction * step) <= 0 and step < 1e300:
            step *= 2
        inside, outside = 0.0, step
        for _ in range(60):
            middle = 0.5 * (inside + outside)
            inside, outside = (middle, outside) if gap(scale + direction * middle) <= 0 else (inside, middle)
        ends.append(scale + direction * inside)
    low, high = ends

    def extreme(function, sign):
        lo, hi = low, high
        ratio = (5 ** 0.5 - 1) / 2
        for _ in range(60):
            a, c = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
            if sign * function(a) <= sign * function(c):
                hi = c
            else:
                lo = a
        return function(0.5 * (lo + hi))

    least = extreme(lambda s: float(np.max(y - s * v - b)), 1.0)
    most = extreme(lambda s: float(np.min(y - s * v + b)), -1.0)
    return (high - low) / 2, max(0.0, most - least) / 2, (least, most)
