"""Plausibility checks: what a rigorous bound alone cannot show really happened.

An FFT's normwise bound and Winograd's wide componentwise bound would also cover errors no
FFT or Winograd computation makes, and TF32's bound covers a float32 output as well: these
checks ask the residual to look like the claimed rounding (an FFT's spread noise of the
right size, a Winograd tile's error pattern, nearer a TF32 computation than a float32 one).
They only ever take an explanation away (the safe direction); the bound still decides.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import precision as prec
from ..geometry import transform_kernel
from ..vocabulary import Explanation
from .candidates import fit_kind
from .clipping import clip_limits, clip_residual, clipped_mask
from .fits import evaluation_error, fit_parameters, fit_within, fitted_spread, usable_fit
from .problem import Problem
from .reference import correlate
from .windows import extended_image, window_origin


# An FFT's rounding noise is spread over the output: its largest element stays within a
# small multiple of its median (measured on real scipy.signal.fftconvolve outputs, 8x8 to
# 200x200, float32 and float64, with and without 1e6 outliers: max/median 2.7 to 16).
# A residual with a few elements far above the rest is corrupted elements, not FFT
# noise, whatever the (loose, normwise) FFT bound would allow.
FFT_PEAK_TO_MEDIAN = 64.0


# An FFT's rounding error is about the same size whichever library computes it: its RMS
# over the output, measured against convcheck's own FFT of the same inputs at the same
# precision (`fft_simulated`), was 0.76 to 1.01 times the simulation's on real outputs of
# scipy.signal.fftconvolve and oaconvolve (float32, float64, with and without 1e5
# outliers), OpenCV's DFT-based filter2D (float64: 0.97 to 0.99; float32, which OpenCV
# sums directly: 0.12) and NNPACK's 16x16-tile FFT (0.76 to 0.95); Winograd outputs read
# as FFTs give 10 to 11. A residual several times larger than an FFT makes is not its
# rounding, however loose the rigorous normwise bound: an output computed directly from a
# kernel rounded to float16 (not in the vocabulary) fits within that bound but gives 1.3e3,
# and a direct float32 output plus a bias of 17 units in the last place gives 13. Four
# times the largest ratio measured on real FFTs.
FFT_RMS_RATIO = 4.0


def _fft_magnitude_implausible(problem: Problem, expl: Explanation, values, residual, keep) -> bool:
    """True when the residual's RMS (over `keep`, the compared, unclipped elements) exceeds
    `FFT_RMS_RATIO` times that of a simulated FFT of the candidate (its scale and bias
    applied, the result stored as the candidate stores it): too large to be FFT rounding.
    Also True when the rounding of the stored result is larger than the FFT's own error (a
    bfloat16 or integer output of a small FFT): then any computation within the storage
    rounding passes this test, which decides nothing, and the FFT claim rests on the loose
    normwise bound alone (issue 20: a corrupted bfloat16 output was "algorithm fft").
    This only takes an explanation away (the safe direction); the bound still decides."""
    if not np.any(keep):
        return False
    scale = np.asarray(expl.scale, dtype=np.float64)
    bias = np.asarray(expl.bias, dtype=np.float64)
    predicted = values * scale + bias
    exact = fft_simulated(problem, expl, values.shape) * scale + bias
    storage = prec.stored_in(expl.precision, expl.output_precision)
    if storage in prec.INTEGER_RANGES:
        low, high = prec.INTEGER_RANGES[storage]
        simulated = np.clip(np.rint(exact), low, high)
    else:
        simulated = prec.round_to(exact, storage)

    def rms(a) -> float:
        return float(np.sqrt(np.mean(np.square(a)[keep])))

    expected = rms(simulated - predicted)
    if not rms(exact - predicted) > rms(simulated - exact):
        return True
    seen = rms(residual)
    return not seen <= FFT_RMS_RATIO * expected


def fft_simulated(problem: Problem, expl: Explanation, shape) -> np.ndarray:
    """The candidate's correlation computed as an FFT would compute it: the inputs rounded to
    `expl.precision`, the image extended by the candidate's boundary over the region its
    output reads (padding, offset, stride), transformed with scipy.fft in the accumulation
    format (float32 for float32 and the half precisions, float64 for float64), multiplied
    and summed over input channels in the frequency domain, transformed back and sampled at
    the output's positions. A constant border's value is left out, as the candidate's
    `values` leave it out. Returns float64 values shaped `shape` (N, Ho, Wo, O); the kernel's
    transforms are made a few output channels at a time (`_FFT_SIMULATION_BYTES`)."""
    import scipy.fft

    image, kernel = problem.rounded(expl.precision)
    wide = problem.wide_kernel(transform_kernel(kernel, expl.kernel_transform), tuple(expl.dilation))
    kh, kw, channels, outs = wide.shape
    out_h, out_w = shape[1:3]
    sy, sx = tuple(expl.stride)
    span = ((out_h - 1) * sy + 1, (out_w - 1) * sx + 1)
    origin = window_origin(expl.padding, (kh, kw), tuple(expl.offset), problem.image_hw, (sy, sx), (1, 1))
    boundary = "zero" if expl.boundary == "constant" else expl.boundary
    dtype = np.float32 if prec.ACCUMULATION_U[expl.precision] > 2.0 ** -53 else np.float64
    region = np.stack([extended_image(sample, boundary, origin, span, (kh, kw)) for sample in image]).astype(dtype)
    # The linear convolution with the flipped kernel, full[j] = sum_a region[j - (k - 1) + a] k[a]:
    # output row r reads region rows from r * stride, so it is full[r * stride + k - 1].
    size = (scipy.fft.next_fast_len(region.shape[1] + kh - 1, real=True),
            scipy.fft.next_fast_len(region.shape[2] + kw - 1, real=True))
    fx = scipy.fft.rfft2(region, s=size, axes=(1, 2))                     # (N, h, w', C)
    batch, fh, fw = fx.shape[:3]
    fx = fx.reshape(batch, fh * fw, channels).transpose(1, 0, 2)           # (P, N, C)
    flipped = wide[::-1, ::-1].astype(dtype)
    per = max(1, _FFT_SIMULATION_BYTES // (fh * fw * (channels + batch) * fx.itemsize))
    values = np.empty(shape, dtype=np.float64)
    for o0 in range(0, outs, per):
        fk = scipy.fft.rfft2(flipped[..., o0:o0 + per], s=size, axes=(0, 1)).reshape(fh * fw, channels, -1)
        product = np.matmul(fx, fk).transpose(1, 0, 2).reshape(batch, fh, fw, -1)   # sum over channels
        full = scipy.fft.irfft2(product, s=size, axes=(1, 2))
        values[..., o0:o0 + per] = full[:, kh - 1:kh - 1 + span[0]:sy, kw - 1:kw - 1 + span[1]:sx, :]
    return values


_FFT_SIMULATION_BYTES = 1 << 27   # the kernel's transforms and their products, per chunk of output channels


def implausibility_mask(problem: Problem, expl: Explanation, values, residual, compared, fit: str = "none"):
    """For candidates whose bound alone cannot show the rounding really happened, a mask
    of the elements that argue against it (None when the data agree):

    - tfloat32 outputs are float32 values, so nothing but the bound speaks for TF32: the
      output must lie closer to a TF32 computation (inputs cut to 10 bits, truncated or
      rounded) than to the plain float32 one, or TF32 is not what happened;
    - an FFT (algorithm 'fft') must leave residuals that look like its spread noise, no
      element above `FFT_PEAK_TO_MEDIAN` times their median.
    Both only take explanations away (the safe direction).
    """
    mask = np.ones(residual.shape, dtype=bool) if compared is None else np.broadcast_to(compared, residual.shape)
    limits = clip_limits(expl.activation, expl.output_precision)
    clipped = clipped_mask(problem.output, limits)
    unclipped = mask if clipped is None else mask & ~clipped
    if expl.algorithm == "fft":
        r = residual[mask]
        typical = float(np.median(r)) if r.size else 0.0
        if r.size and float(np.max(r)) > FFT_PEAK_TO_MEDIAN * typical:
            return (residual > FFT_PEAK_TO_MEDIAN * typical) & mask
        if _fft_magnitude_implausible(problem, expl, values, residual, unclipped):
            return mask.copy()
    if expl.precision == "tfloat32":
        # Nearness is judged with each computation's own fitted parameters: the float32 one
        # and each TF32 one get their own least-squares scale/bias (`fit`, the candidate's kind;
        # equal weights on the compared elements) and the nearer is the one whose remaining sum
        # of squares is smaller -- the criterion those parameters minimise, so no computation
        # is judged at parameters chosen for another. At the candidate's one shared (minimax)
        # scale, a scale fitted to absorb a corrupted element (1 + ~2^-10) stood in for TF32's
        # truncation, which shrinks every product by about that much, and made the TF32
        # computation look nearer to a float32 output (an NNPACK output with one element off
        # by 0.0074 was "explained" as precision tfloat32 + scale 1.001).
        # (Per channel for a per-channel fit; elements clipped by an activation or saturated
        # take no part in the fit and count by how far they lie on the wrong side: `clip_residual`.)
        kind = fit if fit_kind(fit) in ("bias", "scale", "both") else "none"
        weights = unclipped.astype(np.float64)

        held = problem.declared_values("float32") if problem.declares_values else None

        def remaining(computed) -> float:
            s, b = fit_parameters(computed, problem.output, kind, weights, held)
            if not usable_fit(s, b):
                s, b = held if held is not None else (1.0, 0.0)
            return float(np.sum(np.square(clip_residual(problem.output, computed * s + b, limits))[mask]))

        image, kernel = problem.rounded("float32")
        closer = False
        plain = remaining(values)
        for mode in prec.TF32_ROUNDINGS:
            tk = transform_kernel(prec.round_tf32(kernel, mode), expl.kernel_transform)
            tf_values, tf_mags = correlate(prec.round_tf32(image, mode), tk, padding=expl.padding,
                                           boundary=expl.boundary, offset=expl.offset, stride=tuple(expl.stride),
                                           dilation=tuple(expl.dilation), groups=problem.groups, cval=expl.cval,
                                           magnitude=True)
            if remaining(tf_values) < plain and (expl.algorithm != "direct" or _tf32_reproduces(
                    problem, expl, kind, tf_values, tf_mags, compared, limits)):
                closer = True
                break
        if not closer:
            return mask.copy()
    return None


def _tf32_reproduces(problem: Problem, expl: Explanation, fit: str, tf_values, tf_mags, compared, limits) -> bool:
    """Whether the output is, at every compared element, within the float32 bound of a
    computation whose inputs were cut to TF32 by one known rounding (`tf_values`, `tf_mags`):
    its own scale and bias fitted as the candidate's are (`fit_within`, at precision float32,
    the result stored as the candidate stores it).

    TF32's own bound covers either rounding of every input (a relative slack of 2^-10), which
    is about as wide as a kernel tap changed by 0.1%: a port with a slightly different weight
    passed as 'precision tfloat32' (near-miss fuzz). A real TF32 computation is, once its
    inputs are cut, a float32 computation of those inputs (products of two 11-bit
    significands are exact in float32, sums accumulate in float32: NVIDIA's TF32 tensor-core
    description); so the output must lie within that much tighter bound of one rounding.
    Tensor cores may accumulate rounding toward zero (Fasi, Higham, Mikaitis and Pranesh,
    "Numerical behavior of NVIDIA tensor cores", PeerJ CS 2021: truncated alignment and
    sums), a unit roundoff of 2^-23 rather than 2^-24: the float32 bound is widened by
    gamma_n(2u) / gamma_n(u) = 2 (1 - nu) / (1 - 2nu) (u = 2^-24), which covers that too
    (and the storage rounding twice over). Only ever takes an explanation away (the safe
    direction)."""
    nu = problem.n * prec.ACCUMULATION_U["float32"]
    if 2 * nu >= 1:
        return True   # no float32 bound exists for sums this long: nothing to tell TF32 by
    _, _, predicted, bound = fit_within(tf_values, tf_mags, problem.output, fit, problem, "float32",
                                        compared=compared, limits=limits, output_precision=expl.output_precision)
    within = clip_residual(problem.output, predicted, limits) <= bound * (2 * (1 - nu) / (1 - 2 * nu))
    if compared is not None:
        within |= ~np.broadcast_to(compared, within.shape)
    return bool(np.all(within))


# A Winograd computation's error at each element is a sum of many roundings over the same
# tile transforms, each a fraction of that element's bound: the fraction realised, |error| /
# bound, is alike over the output. On real NNPACK F(6x6,3x3) outputs (1 to 64 channels,
# 12x12 to 36x36, normal, uniform, 8-bit and 1e4-outlier data, 48 outputs) its largest
# value is 8 to 21 times its median. An element far above the
# rest is a corrupted element, not Winograd rounding, whatever the (wide) bound would allow.
_WINOGRAD_PEAK_TO_MEDIAN = 64.0


WINOGRAD_USERS = {"F(6x6,3x3)": "NNPACK's CPU algorithm for 3x3 kernels",
                   "F(4x4,3x3)": "as GPU libraries such as cuDNN use",
                   "F(2x2,3x3)": "as GPU libraries such as cuDNN use"}


def winograd_implausible(residual: np.ndarray, bound: np.ndarray, compared, tile: Optional[str]):
    """For algorithm 'winograd', a mask of the elements that argue against it (None when the
    data agree): every compared element when the residual follows no tile size's error
    pattern (`tile` None, see `winograd_tile`), else those whose |residual| / bound is above
    `_WINOGRAD_PEAK_TO_MEDIAN` times its median. Only takes explanations away."""
    mask = np.ones(residual.shape, dtype=bool) if compared is None else np.broadcast_to(compared, residual.shape)
    if tile is None:
        return mask.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mask, residual / bound, 0.0)
    seen = ratio[mask]
    if not seen.size:
        return None
    typical = float(np.median(seen))
    if float(np.max(seen)) > _WINOGRAD_PEAK_TO_MEDIAN * typical:
        return (ratio > _WINOGRAD_PEAK_TO_MEDIAN * typical) & mask
    return None


def winograd_tile(problem: Problem, expl: Explanation, values: np.ndarray, mags: np.ndarray, compared):
    """(tile, error term): the Winograd tile size whose error pattern the residual follows best,
    among those whose bound holds at every compared element; (None, the largest term) when
    the residual follows none.

    A Winograd computation's rounding is amplified by the output transform differently at
    each position of its m x m tile (F(6x6,3x3) and F(4x4,3x3): 8 to 13 times more at the
    worst position than at the best, relative to A = |x| (*) |k|): its error follows E, the
    tile's magnitudes (winograd.tile_magnitudes), with period m, while a direct sum's
    follows A and an FFT's is spread evenly. So, grouping the elements by their position in
    the tile, the mean |residual| / E of the groups is nearly constant for a Winograd output
    while the mean |residual| / A follows the pattern E / A, and the other way round for any
    other error. `pattern_ratio` compares the two spreads: below 1 the residual sides with
    the tile. Measured on real NNPACK F(6x6,3x3) outputs (1 and 3 channels, 12x12 to 36x36,
    normal and 8-bit data, 48 outputs): 0.17 to 0.53; on its 16x16-tile FFT outputs the
    group means vary 1.2 to 1.7 times against A and 5.5 to 8.3 times against E (above 1).
    Only tile sizes with a pattern to follow are recognised (winograd.RECOGNISABLE).
    """
    from . import winograd
    terms = problem.winograd_terms(expl.precision, expl.kernel_transform, expl.padding)
    residual = np.abs(problem.output - values)
    mask = np.ones(residual.shape, dtype=bool) if compared is None else np.broadcast_to(compared, residual.shape)
    best = None
    for tile in winograd.RECOGNISABLE:
        term = terms[tile]
        bound = problem.bound(mags, values, expl.precision, 1.0, False, extra=term)
        if not np.all((residual <= bound) | ~mask):
            continue
        ratio = pattern_ratio(residual, term, mags, mask, winograd.tile_size(tile))
        if ratio < 1.0 and (best is None or ratio < best[0]):
            best = (ratio, tile)
    if best is None:
        return None, np.maximum.reduce(list(terms.values()))
    return best[1], terms[best[1]]


def pattern_ratio(residual, term, mags, mask, m: int) -> float:
    """How closely |residual| follows the Winograd error pattern `term` (period m) rather than
    the direct magnitudes `mags` (see `winograd_tile`): the spread (standard deviation of the
    logarithms) of the per-position means of |residual| / term over that of |residual| / mags.
    Infinite when it cannot be told (fewer than two positions with a nonzero residual)."""
    usable = mask & (mags > 0) & (term > 0)
    rows = np.arange(residual.shape[1]) % m
    cols = np.arange(residual.shape[2]) % m
    group = np.broadcast_to((rows[:, None] * m + cols[None, :])[None, :, :, None], residual.shape)[usable]
    counts = np.bincount(group, minlength=m * m)
    by_term = np.bincount(group, weights=residual[usable] / term[usable], minlength=m * m)
    by_direct = np.bincount(group, weights=residual[usable] / mags[usable], minlength=m * m)
    keep = (counts > 0) & (by_term > 0) & (by_direct > 0)
    if np.count_nonzero(keep) < 2:
        return float("inf")
    spread_term = float(np.std(np.log(by_term[keep] / counts[keep])))
    spread_direct = float(np.std(np.log(by_direct[keep] / counts[keep])))
    return spread_term / spread_direct if spread_direct > 0 else float("inf")


HALF_STORAGE = ("float16", "bfloat16")


def half_storage_unattainable(problem: Problem, expl: Explanation, values, mags, scale, bias, fit: str,
                              compared, limits, bound) -> Optional[np.ndarray]:
    """For a fitted scale or bias on a result stored in float16 or bfloat16, a mask of the
    elements no computation of that form can store (None when every one can).

    The elementwise bound counts the storage rounding as u |y| (half a unit in the last
    place at most), which is exact in size but not in where the stored value can land: a
    stored half value is one of the few on its grid next to the computed one. A fitted
    scale and bias that absorb a change outside the vocabulary (one kernel tap changed by
    0.05 %: near-miss case 1, a float16 conv "explained" as scale 0.99948 + bias 0.0019)
    can keep every element within u |y| + the accumulation's bound while some land one
    grid step from anything the computation could store. Storing is a monotone map S, so
    the values a route can store form an interval of the grid; an element is attainable
    when it lies in one route's interval:

    - fused: S(s v + b) with the sums within E of the candidate's value p = s v + b
      (E: the candidate's bound with the result kept in float32, the fit's own arithmetic
      and a declared uncertainty included): [S(p - E), S(p + E)];
    - stored first (Keras adds the bias to the stored conv, in the half format): the conv
      c' = S(c), c within E1 of v (E1: the unscaled bound with float32 storage), then
      S(M(s c') + b) with M the identity or S (a scale applied in the half format), the
      scaling and the bias add within e = 4 u32 (|s c'| + |b|) + u_h |b| (a bias rounded to
      the half format first).

    How far the scale and the bias of a computation of this form may be from the fitted ones,
    (ds, db) (`fits.fitted_spread`, from the candidate's elementwise `bound`), widens both
    intervals by |ds| |v| + |db|, since the fitted values are an estimate, not the truth's
    (fuzz cases 7904 and 2620v: a true float16 scale-and-bias output called unattainable for a
    fit 1e-4 off its scale).

    Clipped elements (an activation) and those not compared are not tested. Only ever takes
    a fitted explanation away."""
    store = expl.output_precision or expl.precision
    kind = fit_kind(fit)
    if kind not in ("bias", "scale", "both") or store not in HALF_STORAGE:
        return None
    output = np.asarray(problem.output, dtype=np.float64)
    test = np.ones(output.shape, dtype=bool) if compared is None else np.broadcast_to(compared, output.shape).copy()
    clipped = clipped_mask(problem.output, limits)
    if clipped is not None:
        test &= ~clipped
    if not test.any():
        return None
    s = np.asarray(scale, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    has_bias = bool(np.any(b != 0.0))
    scaled = s * values
    predicted = scaled + b
    spread_s, spread_b = fitted_spread(values, output, bound, fit, s, b, test)   # test: the free elements
    wide = problem.bound(mags, predicted, expl.precision, s, has_bias, output_precision="float32")
    wide += evaluation_error(scaled, predicted)
    wide += _moved(spread_s, values) + spread_b
    uncertain = problem.uncertainty_term(mags, expl.precision, kind, s)
    if uncertain is not None:
        wide += uncertain

    def stored(x):
        return prec.round_to(x, store)

    attainable = (stored(predicted - wide) <= output) & (output <= stored(predicted + wide))
    if not np.all(attainable | ~test):
        conv_bound = problem.bound(mags, values, expl.precision, 1.0, False, output_precision="float32")
        if uncertain is not None:
            conv_bound = conv_bound + uncertain / np.maximum(np.abs(s), 1e-300)
        low_c, high_c = stored(values - conv_bound), stored(values + conv_bound)
        ends = np.stack([s * low_c, s * high_c])
        low_t, high_t = ends.min(axis=0), ends.max(axis=0)
        slack = 4 * prec.ACCUMULATION_U["float32"] * (np.maximum(np.abs(low_t), np.abs(high_t)) + np.abs(b)) \
            + prec.STORAGE_U[store] * np.abs(b)
        slack = slack + _moved(spread_s, np.maximum(np.abs(low_c), np.abs(high_c))) + spread_b
        for middle in (lambda x: x, stored):
            attainable |= (stored(middle(low_t) + b - slack) <= output) & (output <= stored(middle(high_t) + b + slack))
    unattainable = test & ~attainable
    return unattainable if unattainable.any() else None


def _moved(spread: np.ndarray, values) -> np.ndarray:
    """|spread| |values|, 0 where either is 0 (a scale not fitted, or a zero sum, moves nothing,
    even by an unbounded spread)."""
    values = np.abs(np.asarray(values, dtype=np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where((spread == 0) | (values == 0), 0.0, spread * values)
