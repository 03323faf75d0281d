"""The diagnosis engine: which computation produced an output? Shared by `explain` and `compare`.

A *candidate* is an exact computation in the vocabulary of CONTRACT section 2: transform
the kernel, extend the image by a boundary rule, round the inputs to a precision,
cross-correlate in float64, shift by an offset, fit scale and bias in closed form. A
candidate is accepted only when |output - candidate| lies within the rigorous error bound
of that precision (`convcheck.precision.error_bound`) at every element.

Search, cheapest first:
1. every structure (transform x boundary x offset x scale/bias fit) on a few hundred
   sampled pixels, all offsets at once as one matrix product, against the loosest bound
   any allowed precision could need: what fails there cannot be the answer;
2. each survivor, simplest first, against each allowed precision's exact bound on the
   same samples (inputs rounded as that precision rounds them);
3. the first that passes is confirmed on the whole image; only then is it the answer.
The output's shape fixes the padding; representability of the output's values in
float32/float16/bfloat16 says which narrower precisions are possible at all.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from . import evidence as ev
from .errors import InputError
from . import precision as prec
from .reference import (correlate, extended_image, gather_windows, output_size, pad_before,
                        transform_kernel, window_origin)
from .results import Diagnosis, Stats
from .vocabulary import BOUNDARIES, KERNEL_TRANSFORMS, PADDINGS, Explanation, Verdict, causes_for, describe

FITS = ("none", "bias", "scale", "both")
_MAX_SAMPLES_EXHAUSTIVE = 400   # outputs this small are searched on every pixel
_BORDER_SAMPLES = 128
_INTERIOR_SAMPLES = 192
_MAX_FULL_CHECKS = 8            # whole-image confirmations before giving up


@dataclass(frozen=True)
class DiagnosisArrays:
    """Whole-image arrays behind a diagnosis, kept for plots (`keep_arrays=True`)."""

    output: np.ndarray
    reference: Optional[np.ndarray]
    bound_before: Optional[np.ndarray]
    reproduction: Optional[np.ndarray]
    bound_after: Optional[np.ndarray]


@dataclass(frozen=True)
class _Structure:
    transform: str
    padding: str
    boundary: str
    offset: tuple[int, int]
    fit: str


@dataclass
class _Full:
    """A candidate evaluated on the whole image: summary numbers and the mismatch mask.

    The image-sized arrays (prediction, bound) are kept only when plots ask for them, so
    a diagnosis holds a few image-sized buffers at most.
    """

    explanation: Explanation
    bad: int                  # elements beyond the bound (NaN counts as beyond)
    mismatch: np.ndarray      # bool mask of those elements
    max_residual: float
    max_bound: float
    worst_ratio: float        # max(|residual| / bound)
    prediction: Optional[np.ndarray] = None
    bound: Optional[np.ndarray] = None
    evidence: Optional["Evidence"] = None

    @property
    def ok(self) -> bool:
        return self.bad == 0


class _Problem:
    """The numeric problem: float64 views of the inputs plus everything bounds need."""

    def __init__(self, inputs, padding: str, precision: Optional[str]):
        self.inputs = inputs
        self.image = np.asarray(inputs.image, dtype=np.float64)
        self.kernel = np.asarray(inputs.kernel, dtype=np.float64)
        self.output = np.asarray(inputs.output, dtype=np.float64)
        self.input_dtypes = (np.dtype(inputs.image.dtype), np.dtype(inputs.kernel.dtype))
        kh, kw, channels, _ = self.kernel.shape
        self.n = kh * kw * channels
        base_precision = precision or prec.native_precision(inputs.image, inputs.kernel)
        self.baseline = Explanation(padding=padding, precision=base_precision)
        out_precision = prec.dtype_precision(inputs.output.dtype)
        if out_precision is None:  # integer outputs are exact
            self.output_u, self.output_underflow = 0.0, 0.0
        else:
            storage = "float32" if out_precision == "tfloat32" else out_precision
            self.output_u = prec.STORAGE_U[storage]
            self.output_underflow = prec.STORAGE_UNDERFLOW[storage]
        narrower = [p for p in _PRECISION_PREFERENCE if p in prec.narrower_precisions(base_precision)]
        # A narrower precision is possible only if the output's values are stored in it
        # exactly (TF32 results are float32 values): free evidence from the numbers.
        self.precisions = [base_precision] + [
            p for p in narrower if prec.representable(self.output, "float32" if p == "tfloat32" else p)]
        self._rounded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._extent: dict[str, tuple[float, float]] = {}
        self.models = {p: prec.PrecisionModel.for_inputs(p, self.input_dtypes) for p in self.precisions}

    def has_subnormals(self, precision: str) -> bool:
        """True when an input holds nonzero values below `precision`'s smallest normal number."""
        import ml_dtypes  # its finfo knows bfloat16 too
        tiny = float(ml_dtypes.finfo(prec.storage_type("float32" if precision == "tfloat32" else precision)).tiny)
        return any(bool(np.any((a != 0) & (np.abs(a) < tiny))) for a in (self.image, self.kernel))

    def rounding_is_exact(self, precision: str) -> bool:
        """True when rounding both inputs to `precision` changes nothing."""
        image, kernel = self.rounded(precision)
        return image is self.image or (np.array_equal(image, self.image) and np.array_equal(kernel, self.kernel))

    def rounded(self, precision: str) -> tuple[np.ndarray, np.ndarray]:
        """(image, kernel) rounded to `precision`, as float64 (cached)."""
        if precision not in self._rounded:
            if all(prec.representable(a, precision) for a in (self.image, self.kernel)):
                self._rounded[precision] = (self.image, self.kernel)  # already exact: share memory
            else:
                self._rounded[precision] = (prec.round_to(self.image, precision),
                                            prec.round_to(self.kernel, precision))
        return self._rounded[precision]

    def bound(self, magnitude, predicted, precision, scale, has_bias):
        """The rigorous elementwise bound of a candidate at `precision` (see precision.error_bound)."""
        if precision not in self._extent:
            image, kernel = self.rounded(precision)
            self._extent[precision] = (float(np.max(np.abs(image), initial=0.0)),
                                       float(np.max(np.abs(kernel), initial=0.0)))
        max_input, max_kernel = self._extent[precision]
        return prec.error_bound(magnitude, predicted, n=self.n, model=self.models[precision],
                                output_u=self.output_u, output_underflow=self.output_underflow,
                                scale=scale, has_bias=has_bias, max_input=max_input, max_kernel=max_kernel)


def _fit(prediction: np.ndarray, target: np.ndarray, fit: str,
         weights: Optional[np.ndarray] = None) -> tuple[float, float]:
    """Closed-form weighted least-squares (scale, bias) of target ~ scale * prediction + bias."""
    outs = prediction.shape[-1]
    flat_weights = None if weights is None else weights.reshape(1, -1, outs)
    scale, bias = _fit_batch(prediction.reshape(1, -1, outs), target.reshape(-1, outs), fit, flat_weights)
    return float(scale[0]), float(bias[0])


def _usable_fit(scale: float, bias: float) -> bool:
    # A zero scale would "explain" any constant output: never a reproduction.
    return np.isfinite(scale) and np.isfinite(bias) and scale != 0.0


def _fitted(fit: str) -> int:
    """How many parameters a fit draws from the output itself."""
    return (fit in ("bias", "both")) + (fit in ("scale", "both"))


def _complexity(struct: "_Structure", precision: str, baseline: Explanation) -> tuple:
    """Sort key: fewest changed fields first; among those, fewest fitted parameters (a
    structural cause, which fits nothing to the output, beats a bias or scale that
    reproduces it equally well); then the contract's order of values."""
    fitted = _fitted(struct.fit)
    changed = ((struct.transform != "identity") + (struct.padding != baseline.padding)
               + (struct.boundary != "zero") + (struct.offset != (0, 0))
               + (precision != baseline.precision) + fitted)
    return (changed, fitted, KERNEL_TRANSFORMS.index(struct.transform),
            struct.padding != baseline.padding, PADDINGS.index(struct.padding),
            BOUNDARIES.index(struct.boundary),
            abs(struct.offset[0]) + abs(struct.offset[1]), struct.offset,
            precision != baseline.precision, _PRECISION_PREFERENCE.index(precision),
            FITS.index(struct.fit))


# Among narrower precisions, what the output's values point to first (see _Problem).
_PRECISION_PREFERENCE = ("float64", "float32", "bfloat16", "float16", "tfloat32")


class _Search:
    def __init__(self, problem: _Problem):
        self.p = problem
        out_h, out_w, _ = problem.output.shape
        self.out_hw = (out_h, out_w)
        height, width = problem.image.shape[:2]
        kh, kw = problem.kernel.shape[:2]
        self.radius = max(1, min(4, max(kh, kw) // 2 + 1))
        # Which (transform, padding) pairs give this output shape.
        self.layouts: list[tuple[str, str]] = []
        for transform in KERNEL_TRANSFORMS:
            tkh, tkw = transform_kernel(problem.kernel, transform).shape[:2]
            for padding in PADDINGS:
                if output_size(padding, height, width, tkh, tkw) == self.out_hw:
                    self.layouts.append((transform, padding))
        self.rows, self.cols = self._samples()
        self._patch_cache: dict[tuple, np.ndarray] = {}
        # How many candidates the search considers: what an `explained` verdict must beat.
        self.size = (len(self.layouts) * len(BOUNDARIES) * (2 * self.radius + 1) ** 2 * len(FITS)
                     * len(problem.precisions))

    def _samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Output positions to search on: all of a small output, else border band + interior.

        The border band (where windows leave the image) decides the boundary; the interior
        decides kernel, offset and precision. Deterministic, so verdicts are reproducible.
        """
        out_h, out_w = self.out_hw
        if out_h * out_w <= _MAX_SAMPLES_EXHAUSTIVE:
            grid = np.indices((out_h, out_w)).reshape(2, -1)
            return grid[0], grid[1]
        rng = np.random.default_rng(20261123)
        band = max(self.p.kernel.shape[:2]) + self.radius
        per_side = _BORDER_SAMPLES // 4
        depth_h = rng.integers(0, min(band, out_h), per_side * 2)
        depth_w = rng.integers(0, min(band, out_w), per_side * 2)
        along_h = rng.integers(0, out_w, per_side * 2)
        along_w = rng.integers(0, out_h, per_side * 2)
        rows = [np.array([0, 0, out_h - 1, out_h - 1]),
                depth_h[:per_side], out_h - 1 - depth_h[per_side:], along_w]
        cols = [np.array([0, out_w - 1, 0, out_w - 1]),
                along_h[:per_side], along_h[per_side:],
                np.concatenate([depth_w[:per_side], out_w - 1 - depth_w[per_side:]])]
        if out_h > 2 * band and out_w > 2 * band:
            rows.append(rng.integers(band, out_h - band, _INTERIOR_SAMPLES))
            cols.append(rng.integers(band, out_w - band, _INTERIOR_SAMPLES))
        else:
            rows.append(rng.integers(0, out_h, _INTERIOR_SAMPLES))
            cols.append(rng.integers(0, out_w, _INTERIOR_SAMPLES))
        flat = np.unique(np.concatenate(rows) * out_w + np.concatenate(cols))
        return flat // out_w, flat % out_w

    def _patches(self, precision: str, boundary: str, padding: str, kernel_hw) -> np.ndarray:
        """Sample windows for every offset in [-R, R]^2: (n_samples, kh + 2R, kw + 2R, C).

        `precision` None means the inputs as loaded, else rounded to it. Cached.
        """
        key = (precision, boundary, padding, tuple(kernel_hw))
        if key not in self._patch_cache:
            image = self.p.image if precision is None else self.p.rounded(precision)[0]
            self._patch_cache[key] = self._extract(image, boundary, padding, kernel_hw)
        return self._patch_cache[key]

    def _extract(self, image: np.ndarray, boundary: str, padding: str, kernel_hw) -> np.ndarray:
        r = self.radius
        top, left = pad_before(padding, *kernel_hw)
        return gather_windows(image, boundary, self.rows - r - top, self.cols - r - left,
                              kernel_hw[0] + 2 * r, kernel_hw[1] + 2 * r)

    def _predict(self, patches: np.ndarray, kernels: np.ndarray):
        """Correlate every sample window at every offset with a stack of kernels at once.

        kernels: (kh, kw, C, K). Returns (n_samples, D, D, K) values and magnitudes.
        """
        kh, kw, channels, count = kernels.shape
        windows = np.lib.stride_tricks.sliding_window_view(patches, (kh, kw), axis=(1, 2))
        n, d1, d2 = windows.shape[:3]
        cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * d1 * d2, kh * kw * channels)
        flat = kernels.reshape(kh * kw * channels, count)
        values = (cols @ flat).reshape(n, d1, d2, count)
        mags = (np.abs(cols) @ np.abs(flat)).reshape(n, d1, d2, count)
        return values, mags

    def structures(self):
        """Stage 1: every structure that the loosest allowed bound does not rule out.

        Returns (survivors, closest): survivors as (key, structure, scale, bias) sorted
        simplest first; closest the best structure by fraction of samples within bound.
        """
        p = self.p
        target = p.output[self.rows, self.cols]  # (n, O)
        outs = target.shape[1]
        loosest = max(self._loose_coefficient(q) for q in p.precisions)
        out_round = max(prec.output_rounding(m, p.output_u) + m.accumulation_u for m in p.models.values())
        extent = float(np.max(np.abs(p.image), initial=0.0)) + float(np.max(np.abs(p.kernel), initial=0.0))
        absolute = max(p.n * (m.underflow + m.input_abs_slack * 2 * extent) + m.storage_underflow
                       for m in p.models.values())
        survivors, best = [], (-1.0, None)
        r = self.radius
        by_shape: dict[tuple, list[tuple[str, str]]] = {}
        for transform, padding in self.layouts:
            shape = transform_kernel(p.kernel, transform).shape[:2]
            by_shape.setdefault((shape, padding), []).append(transform)
        for (shape, padding), transforms in by_shape.items():
            stack = np.concatenate([transform_kernel(p.kernel, t) for t in transforms], axis=3)
            for boundary in BOUNDARIES:
                patches = self._patches(None, boundary, padding, shape)
                values, mags = self._predict(patches, stack)
                n, d1, d2, _ = values.shape
                values = values.reshape(n, d1, d2, len(transforms), outs).transpose(3, 1, 2, 0, 4)
                mags = mags.reshape(n, d1, d2, len(transforms), outs).transpose(3, 1, 2, 0, 4)
                weights = _fit_weights((loosest * mags + absolute) * (1 + out_round)
                                       + out_round * np.abs(target) + p.output_underflow + 1e-300)
                for fit in FITS:
                    scale, bias = _fit_batch(values, target, fit, weights)
                    predicted = scale[..., None, None] * values + bias[..., None, None]
                    bound = (np.abs(scale)[..., None, None] * (loosest * mags + absolute) * (1 + out_round)
                             + out_round * np.abs(predicted) + p.output_underflow) * 1.01 + 1e-300
                    ratio = np.abs(target - predicted) / bound
                    within = np.mean(ratio <= 1.0, axis=(3, 4))
                    usable = np.isfinite(scale) & np.isfinite(bias) & (scale != 0.0)
                    passed = np.all(ratio <= 1.0, axis=(3, 4)) & usable
                    for ti, (dy_i, dx_i) in itertools.product(range(len(transforms)), itertools.product(range(d1), range(d2))):
                        offset = (dy_i - r, dx_i - r)
                        s, b = float(scale[ti, dy_i, dx_i]), float(bias[ti, dy_i, dx_i])
                        struct = _Structure(transforms[ti], padding, boundary, offset, fit)
                        if passed[ti, dy_i, dx_i]:
                            survivors.append(struct)
                        elif usable[ti, dy_i, dx_i] and within[ti, dy_i, dx_i] > best[0]:
                            best = (float(within[ti, dy_i, dx_i]), (struct, s, b))
        return survivors, best[1]

    def _loose_coefficient(self, precision: str) -> float:
        """The bound coefficient of `precision` on inputs NOT yet rounded to it."""
        model = self.p.models[precision]
        unit = 0.0 if precision == "float64" else prec.STORAGE_U[precision]
        if precision == "tfloat32":
            unit += model.input_slack
        loose = prec.PrecisionModel(precision, model.accumulation_u, model.input_slack + unit,
                                    model.input_abs_slack, model.underflow, model.storage_u,
                                    model.storage_underflow)
        return loose.relative_coefficient(self.p.n, scaled=True)

    def decoy_passes(self, struct: _Structure, precision: str) -> bool:
        """The negative control: does the same candidate with a random kernel pass too?

        Three decoy kernels (fixed seeds, the kernel's own magnitude) go through the same
        structure, precision and fit, scale and bias refitted for each. If one of them
        reproduces the output as well, the test cannot tell kernels apart here (identical
        windows, a 1x1 kernel under a fitted scale, a bound wide against the values), so
        the candidate's pass is no evidence, whatever the bits say.
        """
        magnitude = float(np.mean(np.abs(self.p.kernel))) or 1.0
        for seed in range(3):
            decoy = np.random.default_rng(seed).standard_normal(self.p.kernel.shape) * magnitude
            decoy = prec.round_to(decoy, precision)
            if self.sampled_check(struct, precision, kernel=decoy)[0]:
                return True
        return False

    def sampled_check(self, struct: _Structure, precision: str, *, kernel: Optional[np.ndarray] = None):
        """Stage 2: the exact bound of `precision` on the samples (with `kernel` in place of
        the inputs' own, rounded to `precision`, for a decoy).

        Returns (ok, scale, bias, fraction of sampled elements within the bound).
        """
        p = self.p
        if kernel is None:
            kernel = p.rounded(precision)[1]
        tk = transform_kernel(kernel, struct.transform)
        patches = self._patches(precision, struct.boundary, struct.padding, tk.shape[:2])
        r = self.radius
        dy, dx = struct.offset[0] + r, struct.offset[1] + r
        kh, kw = tk.shape[:2]
        window = patches[:, dy:dy + kh, dx:dx + kw]  # (n, kh, kw, C)
        flat = window.reshape(window.shape[0], -1)
        values = flat @ tk.reshape(-1, tk.shape[3])
        mags = np.abs(flat) @ np.abs(tk.reshape(-1, tk.shape[3]))
        target = p.output[self.rows, self.cols]
        scale, bias, predicted, bound = _fit_within(values, mags, target, struct.fit, p, precision)
        if not _usable_fit(scale, bias):
            return False, scale, bias, 0.0
        within = np.abs(target - predicted) <= bound
        return bool(np.all(within)), scale, bias, float(np.mean(within))


def _fit_within(values, mags, target, fit: str, problem: "_Problem", precision: str):
    """(scale, bias, predicted, bound) of a candidate: the closed-form least-squares fit, or,
    when that leaves an element beyond its bound, parameters that keep every element inside.

    Least squares spreads the output's rounding over the fit, so the fitted scale or bias
    itself is off by about one rounding: with float16 outputs or cancelling sums that alone
    can push a true candidate past its bound. Every element's bound defines an interval of
    parameters that reproduce it; `_minimax` picks a point in their intersection. The bound
    is then recomputed at that point, so the test itself stays exact.
    """
    def at(scale, bias):
        predicted = values if fit == "none" else scale * values + bias
        return predicted, problem.bound(mags, predicted, precision, scale, fit in ("bias", "both"))

    weights = None
    if fit != "none":
        weights = _fit_weights(problem.bound(mags, target, precision, 1.0, fit in ("bias", "both")))
    scale, bias = _fit(values, target, fit, weights)
    if not _usable_fit(scale, bias):
        return scale, bias, *at(1.0, 0.0)
    predicted, bound = at(scale, bias)
    if fit == "none":
        return scale, bias, predicted, bound
    excess = np.abs(target - predicted) - bound
    if not np.any(excess > 0) or np.any(np.isnan(excess)):
        return scale, bias, predicted, bound
    refit = _minimax(values, target, bound, fit, scale)
    if refit is not None and _usable_fit(*refit):
        new_predicted, new_bound = at(*refit)
        if np.all(np.abs(target - new_predicted) <= new_bound):
            return (*refit, new_predicted, new_bound)
    return scale, bias, predicted, bound


def _minimax(values, target, bound, fit: str, scale: float):
    """(scale, bias) inside every element's interval |target - scale*values - bias| <= bound
    (the bound held at its least-squares value), or None when the intervals do not meet."""
    v, y, b = values.ravel(), target.ravel(), bound.ravel()
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


def _fit_batch(values: np.ndarray, target: np.ndarray, fit: str, weights: Optional[np.ndarray] = None):
    """Weighted least-squares (scale, bias) for every leading index at once: values (..., n, O),
    target (n, O), weights broadcastable to values (default: equal).

    Weights 1 / bound^2 make the fit exact where the bound is tight: an unweighted fit
    spreads the rounding of large elements onto small ones. NaN marks a fit that does not
    exist (a constant prediction).
    """
    shape = values.shape[:-2]
    if fit == "none":
        return np.ones(shape), np.zeros(shape)
    w = np.ones(values.shape) if weights is None else np.broadcast_to(weights, values.shape)
    axes = (-2, -1)
    total = np.sum(w, axis=axes)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if fit == "bias":
            return np.ones(shape), np.sum(w * (target - values), axis=axes) / total
        if fit == "scale":
            denom = np.sum(w * values * values, axis=axes)
            scale = np.where(denom > 0, np.sum(w * values * target, axis=axes) / denom, np.nan)
            return scale, np.zeros(shape)
        v_mean = (np.sum(w * values, axis=axes) / total)[..., None, None]
        y_mean = (np.sum(w * target, axis=axes) / total)[..., None, None]
        dv = values - v_mean
        denom = np.sum(w * dv * dv, axis=axes)
        scale = np.where(denom > 0, np.sum(w * dv * (target - y_mean), axis=axes) / denom, np.nan)
        bias = y_mean[..., 0, 0] - scale * v_mean[..., 0, 0]
        return scale, bias


def _fit_weights(bound: np.ndarray) -> np.ndarray:
    """1 / bound^2, scaled to at most 1 and at least 2^-52 (the bound floored at 2^-26 of its
    largest element), so that tiny bounds neither overflow nor take all the weight."""
    floor = np.max(bound, axis=(-2, -1), keepdims=True) * 2.0 ** -26
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.square(np.divide(floor, np.maximum(bound, floor)))
    return np.nan_to_num(w, nan=1.0, posinf=1.0)


def _evaluate_full(problem: _Problem, expl: Explanation, fit: str, *, needed: float,
                   keep_arrays: bool = False):
    """A candidate on the whole image, refitting scale/bias there in closed form.

    Returns (`_Full`, the correlation values before scale and bias). A candidate that
    passes carries its `evidence` (convcheck.evidence), weighed against `needed` bits.
    """
    image, kernel = problem.rounded(expl.precision)
    tk = transform_kernel(kernel, expl.kernel_transform)
    values, mags = correlate(image, tk, padding=expl.padding, boundary=expl.boundary,
                             offset=expl.offset, magnitude=True)
    scale, bias, predicted, bound = _fit_within(values, mags, problem.output, fit, problem, expl.precision)
    if not _usable_fit(scale, bias):
        scale, bias = 1.0, 0.0
    residual = np.subtract(problem.output, predicted)
    np.abs(residual, out=residual)
    # Written so that NaN residuals (an overflowed backend output) count as mismatches.
    mismatch = ~(residual <= bound)
    bad = int(np.count_nonzero(mismatch))
    evidence = (ev.weigh(values, mags, bound, scale=scale, fitted=_fitted(fit), needed=needed)
                if bad == 0 else None)
    del mags
    max_residual = float(np.max(residual))
    max_bound = float(np.max(bound))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.divide(residual, bound, out=residual)
        worst = float(np.nanmax(residual))
    del residual
    full = _Full(expl.with_(scale=scale, bias=bias), bad, mismatch, max_residual, max_bound, worst,
                 predicted if keep_arrays else None, bound if keep_arrays else None, evidence)
    return full, values


def _explanation(struct: _Structure, precision: str, scale: float, bias: float) -> Explanation:
    return Explanation(kernel_transform=struct.transform, padding=struct.padding, boundary=struct.boundary,
                       offset=struct.offset, precision=precision,
                       bias=bias if struct.fit in ("bias", "both") else 0.0,
                       scale=scale if struct.fit in ("scale", "both") else 1.0)


def index_in_user_shape(index: tuple[int, int, int], user_shape: tuple) -> tuple[int, ...]:
    """An (i, j, channel) index into the (Ho, Wo, C_out) output as an index into the caller's own shape."""
    i, j, o = (int(x) for x in index)
    if len(user_shape) == 2:
        return (i, j)
    if len(user_shape) == 4:
        return (0, i, j, o)
    return (i, j, o)


def _where(full: _Full, kernel_hw: tuple[int, int]) -> tuple[str, str]:
    """Where a mismatch sits: (category, detail sentence)."""
    bad = full.mismatch
    count = full.bad
    total = bad.size
    rows, cols, _ = np.nonzero(bad)
    out_h, out_w = bad.shape[:2]
    band = max(kernel_hw)
    on_border = (rows < band) | (cols < band) | (rows >= out_h - band) | (cols >= out_w - band)
    if count <= max(3, total // 100) and not on_border.all():
        positions = ", ".join(f"[{r}, {c}]" for r, c in list(zip(rows.tolist(), cols.tolist()))[:5])
        return "a few pixels", f"{count} of {total} elements differ, at {positions}" + (" ..." if count > 5 else "")
    if on_border.all():
        return "border", f"{count} of {total} elements differ, all within {band} pixels of the edge"
    if count > total // 2:
        return "everywhere", f"{count} of {total} elements differ, across the whole output"
    return "a region", (f"{count} of {total} elements differ, in rows {rows.min()}-{rows.max()}, "
                        f"columns {cols.min()}-{cols.max()}")


def diagnose(inputs, *, padding: str = "same", precision: Optional[str] = None,
             keep_arrays: bool = False) -> Diagnosis:
    """Diagnose `inputs.output` (an `convcheck.inputs.Inputs` with an output) against the reference.

    `padding` is the convention the caller expected (the baseline); `precision` the
    precision it expected the computation to run in (default: the inputs' own). The
    verdict is `equal` when the expected computation reproduces the output within its
    rigorous bound, `explained` when the simplest other candidate does, else `unexplained`.
    """
    if padding not in PADDINGS:
        raise InputError(f"padding {padding!r} is not one of {', '.join(PADDINGS)}")
    if precision is not None and precision not in prec.SIGNIFICAND_BITS:
        raise InputError(f"precision {precision!r} is not one of {', '.join(prec.SIGNIFICAND_BITS)}; "
                         "pass one of them, or None for the inputs' own precision")
    problem = _Problem(inputs, padding, precision)
    baseline = problem.baseline
    search = _Search(problem)
    kernel_hw = problem.kernel.shape[:2]
    total = int(problem.output.size)

    identity_paddings = [pad for t, pad in search.layouts if t == "identity"]
    if not search.layouts:
        h, w = problem.image.shape[:2]
        sizes = ", ".join(f"{pad} gives {output_size(pad, h, w, *kernel_hw)}" for pad in PADDINGS)
        reason = (f"output shape {tuple(problem.output.shape[:2])} fits no padding of a {(h, w)} image "
                  f"with a {tuple(kernel_hw)} kernel ({sizes}); was it strided, dilated or cropped?")
        stats = Stats(None, None, None, total, None, None, None)
        return Diagnosis(Verdict.UNEXPLAINED, None, (), stats, baseline, reason=reason)

    # "Before" statistics: the reference of the output's own size, at the expected precision.
    stats_padding = padding if padding in identity_paddings else (identity_paddings or [None])[0]
    before: Optional[_Full] = None
    reference = None
    if stats_padding is not None:
        before, values = _evaluate_full(problem, baseline.with_(padding=stats_padding), "none",
                                        needed=ev.needed_bits(1), keep_arrays=keep_arrays)
        reference = values if problem.rounding_is_exact(baseline.precision) else \
            correlate(problem.image, problem.kernel, padding=stats_padding)[0]
        del values

    accepted: Optional[_Full] = None
    undecided: Optional[_Full] = None   # passes the bound, but with too little evidence
    alternatives: list[Explanation] = []
    closest: Optional[_Full] = None
    if before is not None and before.ok and stats_padding == padding:
        _control(search, before, _Structure("identity", padding, "zero", (0, 0), "none"))
        if before.evidence.decisive:
            accepted = before
        else:
            undecided = before
    if accepted is None:
        needed = ev.needed_bits(search.size)
        survivors, best_rejected = search.structures()
        candidates = []
        for struct in survivors:
            for q in problem.precisions:
                candidates.append((_complexity(struct, q, baseline), struct, q))
        candidates.sort(key=lambda item: item[0])
        full_checks = tie_checks = 0
        tried_full: list[_Full] = [before] if before is not None else []
        for key, struct, q in candidates:
            if accepted is not None and key[0] > len(accepted.explanation.changed_fields(baseline)):
                break
            if full_checks >= _MAX_FULL_CHECKS or tie_checks >= _MAX_FULL_CHECKS:
                break
            ok, scale, bias, _ = search.sampled_check(struct, q)
            if not ok:
                continue
            expl = _explanation(struct, q, scale, bias)
            if accepted is not None:
                # As simple as the answer: a tie when it reproduces the output too.
                if _same_computation(problem, expl, accepted.explanation):
                    alternatives.append(expl)
                    continue
                tie, _ = _evaluate_full(problem, expl, struct.fit, needed=needed)
                tie_checks += 1
                if tie.ok:
                    _control(search, tie, struct)
                if tie.ok and tie.evidence.decisive:
                    alternatives.append(tie.explanation)
                continue
            full, _ = _evaluate_full(problem, expl, struct.fit, needed=needed, keep_arrays=keep_arrays)
            full_checks += 1
            tried_full.append(full)
            if full.ok:
                _control(search, full, struct)
                if full.evidence.decisive:
                    accepted = full
                elif undecided is None:
                    undecided = full
        if accepted is None and undecided is None:
            if best_rejected is not None and not any(f is not before for f in tried_full):
                # The structure nearest on the samples, at the precision that fits most of them.
                struct, _, _ = best_rejected
                fractions = {q: search.sampled_check(struct, q) for q in problem.precisions}
                q = max(problem.precisions, key=lambda name: fractions[name][3])
                _, s, b, _ = fractions[q]
                tried_full.append(_evaluate_full(problem, _explanation(struct, q, s, b), struct.fit,
                                                 needed=needed, keep_arrays=keep_arrays)[0])
            if tried_full:
                closest = min(tried_full, key=lambda f: (f.bad, f.worst_ratio))

    verdict = (Verdict.EQUAL if accepted is before and accepted is not None
               else Verdict.EXPLAINED if accepted is not None else Verdict.UNEXPLAINED)
    after = accepted if accepted is not None else undecided if undecided is not None else closest
    output_shape = inputs.output_shape or problem.output.shape
    stats = _stats(problem, reference, before, after, output_shape)
    where = reason = None
    notes: list[str] = []
    if undecided is not None and accepted is None:
        candidate = ("the expected computation" if undecided is before
                     else describe(undecided.explanation, baseline))
        reason = ev.cannot_decide_reason(undecided.evidence, candidate, undecided.explanation.precision,
                                         subnormal=problem.has_subnormals(undecided.explanation.precision))
    elif verdict is Verdict.UNEXPLAINED and after is not None:
        where, detail = _where(after, kernel_hw)
        notes.append(detail)
    if verdict is Verdict.UNEXPLAINED and problem.has_subnormals(baseline.precision):
        notes.append(f"the inputs hold subnormal {baseline.precision} values (nonzero, below its smallest "
                     "normal number): TensorFlow on CPU and many GPU kernels flush them to zero (FTZ/DAZ), "
                     "which changes results there; rescale the data, or compare in float64")
    explanation = accepted.explanation if accepted is not None else None
    causes = causes_for(explanation, baseline) if verdict is Verdict.EXPLAINED else ()
    identical = [a for a in alternatives if accepted is not None
                 and _same_computation(problem, a, accepted.explanation)]
    fitted_ties = [a for a in alternatives if a not in identical]
    if identical:
        notes.append("these compute exactly the same values here, so they cannot be told apart: "
                     + "; ".join(describe(a, baseline) for a in identical))
    if fitted_ties:
        notes.append("these reproduce the output within the error bound too, with as few changed fields "
                     "(a structural cause is preferred to a fitted bias or scale): "
                     + "; ".join(describe(a, baseline) for a in fitted_ties))
    arrays = None
    if keep_arrays:
        arrays = DiagnosisArrays(problem.output, reference,
                                 before.bound if before is not None else None,
                                 after.prediction if after is not None else None,
                                 after.bound if after is not None else None)
    return Diagnosis(verdict, explanation, causes, stats, baseline,
                     closest=closest.explanation if (closest is not None and verdict is Verdict.UNEXPLAINED) else None,
                     alternatives=tuple(alternatives), where=where, reason=reason, notes=tuple(notes),
                     arrays=arrays, cannot_decide=reason is not None,
                     evidence=after.evidence.to_dict() if after is not None and after.evidence else None)


def _control(search: "_Search", full: _Full, struct: _Structure) -> None:
    """Run the negative control on a passing candidate with enough bits (convcheck.evidence)."""
    if full.evidence.decisive and search.decoy_passes(struct, full.explanation.precision):
        full.evidence = replace(full.evidence, decoy_passed=True)


def _same_computation(problem: _Problem, a: Explanation, b: Explanation) -> bool:
    """True when two explanations differ only in kernel transform or boundary, yet compute
    the same thing: the transformed kernels are equal (a symmetric kernel) and the image
    extended by each boundary is equal where the windows read it (e.g. 'edge' and
    'symmetric' with a one-pixel margin)."""
    if a.with_(kernel_transform=b.kernel_transform, boundary=b.boundary, scale=b.scale, bias=b.bias) != b:
        return False
    ka = transform_kernel(problem.kernel, a.kernel_transform)
    kb = transform_kernel(problem.kernel, b.kernel_transform)
    if ka.shape != kb.shape or not np.array_equal(ka, kb):
        return False
    if a.boundary == b.boundary:
        return True
    image = problem.rounded(a.precision)[0]
    out_hw = problem.output.shape[:2]
    origin = window_origin(a.padding, ka.shape[:2], a.offset)
    return bool(np.array_equal(extended_image(image, a.boundary, origin, out_hw, ka.shape[:2]),
                               extended_image(image, b.boundary, origin, out_hw, ka.shape[:2])))


def _stats(problem: _Problem, reference, before: Optional[_Full], after: Optional[_Full], user_shape) -> Stats:
    total = int(problem.output.size)
    max_abs = max_rel = mismatched = worst = worst_out = worst_ref = None
    if reference is not None and before is not None:
        diff = np.subtract(problem.output, reference)
        np.abs(diff, out=diff)
        flat = int(np.argmax(diff))
        max_abs = float(diff.ravel()[flat])
        nonzero = reference != 0
        max_rel = None
        if nonzero.any():
            np.divide(diff, reference, out=diff, where=nonzero)
            np.abs(diff, out=diff)
            max_rel = float(np.max(diff, where=nonzero, initial=0.0))
        del diff, nonzero
        mismatched = before.bad
        worst = index_in_user_shape(np.unravel_index(flat, problem.output.shape), tuple(user_shape))
        worst_out = float(problem.output.ravel()[flat])
        worst_ref = float(reference.ravel()[flat])
    residual_after = error_bound = ratio = bad_after = None
    if after is not None:
        residual_after, error_bound = after.max_residual, after.max_bound
        ratio, bad_after = after.worst_ratio, after.bad
    return Stats(max_abs, max_rel, mismatched, total, worst, residual_after, error_bound,
                 bound_ratio=ratio, worst_output=worst_out, worst_reference=worst_ref,
                 mismatched_after=bad_after)


def explain(image, kernel, output, *, padding: str = "same", precision: Optional[str] = None,
            kernel_layout: str = "hwio", keep_arrays: bool = False) -> Diagnosis:
    """Which computation produced `output` from `image` and `kernel`? Returns a `Diagnosis`.

    Layouts: image (H, W) or (H, W, C); kernel (kh, kw) or HWIO (kh, kw, C_in, C_out), or
    OIHW with `kernel_layout="oihw"`; output (Ho, Wo), (Ho, Wo, C_out) or (1, Ho, Wo, C_out).
    `padding` is the size convention you expected ('same', 'valid', 'full'); `precision`
    the precision you expected (default: the inputs' own, e.g. float64 for float64 data).
    Bad arrays raise `convcheck.InputError`. Never imports TensorFlow.
    """
    from .inputs import prepare_inputs
    inputs = prepare_inputs(image, kernel, output, kernel_layout=kernel_layout, padding=padding)
    return diagnose(inputs, padding=padding, precision=precision, keep_arrays=keep_arrays)
