"""The diagnosis engine: which computation produced an output? Shared by `explain` and `compare`.

A *candidate* is an exact computation in the vocabulary of CONTRACT section 2: transform
the kernel, extend the image by a boundary rule, round the inputs to a precision,
cross-correlate in float64, shift by an offset, fit scale and bias in closed form (one
number, or one per output channel), then an activation (ReLU, ReLU6) and the rounding of
the type the result is stored in. A candidate is accepted only when |output - candidate|
lies within the rigorous error bound of that precision (`convcheck.precision.error_bound`)
at every element; an element clipped by the activation or saturated to an integer type's
range only has to lie beyond its limit within the bound (an inequality).

Search, cheapest first:
1. every structure (transform x boundary x offset x scale/bias fit) on a few hundred
   sampled pixels, all offsets at once as one matrix product, against the loosest bound
   any allowed precision could need: what fails there cannot be the answer;
2. each survivor, simplest first, against each allowed precision's exact bound on the
   same samples (inputs rounded as that precision rounds them);
3. the first that passes is confirmed on the whole image; only then is it the answer.
The output's shape fixes the padding; representability of the output's values in
float32/float16/bfloat16 says which narrower precisions are possible at all (and a
float32 output of half-precision inputs that bfloat16/float16 cannot hold was stored in
float32: `output_precision`); an output that is never negative and has zeros (or sixes)
is what a ReLU (ReLU6) could give; a uint8/int8/uint16/int16 output may be rounded and
saturated to its type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from . import evidence as ev
from .errors import InputError
from . import precision as prec
from .reference import (Workspace, axis_layout, correlate, correlate_blocks, dense_kernel, map_blocks,
                        dilate_kernel, extended_image, gather_windows, geometry_pair, output_size, pad_before,
                        single_threaded_blas, transform_kernel, window_origin)
from .results import Diagnosis, Stats
from .vocabulary import (ACTIVATIONS, ALGORITHMS, BOUNDARIES, KERNEL_TRANSFORMS, OUTPUT_PRECISIONS, PADDINGS,
                         Explanation, Verdict, causes_for, describe)

FITS = ("none", "bias", "scale", "both", "channel_bias", "channel_scale", "channel_both")
_MAX_SAMPLES_EXHAUSTIVE = 400   # outputs this small are searched on every pixel
_BORDER_SAMPLES = 128
_INTERIOR_SAMPLES = 192
_MAX_FULL_CHECKS = 8            # whole-image confirmations before giving up (at least)
# ... or as many as cost this many output elements in all (at most 256): a small output's
# confirmations are cheap, and there stage 1's screen lets many candidates through (fuzz
# case 4404v: a 16-element output whose true cause came after eight rivals that failed).
_FULL_CHECK_ELEMENTS = 1 << 14
_SEARCH_BYTES = 1 << 23         # the search's window matrix, per product (large kernels: a few samples each)
_PATCH_CACHE_BYTES = 1 << 27    # sample windows kept for stage 2
_SCREEN_FIT_ULPS = 8.0          # stage 1's allowance for its least-squares parameters (a screen only)


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
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    activation: str = "linear"


@dataclass
class _Full:
    """A candidate evaluated on the whole output: summary numbers and the mismatch mask.

    The output-sized arrays (prediction, bound) are kept only when plots ask for them, so
    a diagnosis holds a few output-sized buffers at most.
    """

    explanation: Explanation
    bad: int                  # compared elements beyond the bound (NaN counts as beyond)
    mismatch: np.ndarray      # bool mask of those elements, (N, Ho, Wo, O)
    max_residual: float
    max_bound: float
    worst_ratio: float        # max(|residual| / bound) over compared elements
    prediction: Optional[np.ndarray] = None
    bound: Optional[np.ndarray] = None
    evidence: Optional["ev.Evidence"] = None
    compared: int = 0
    clipped: int = 0          # compared elements clipped by the activation or saturated
    detail: Optional[str] = None   # a sentence for the notes when this candidate is the answer

    @property
    def ok(self) -> bool:
        return self.bad == 0


def leaves_out(shift, size: int):
    """Whether an offset of `shift` input pixels leaves out the elements whose shifted window
    the reference lacks (CONTRACT section 2), along an axis of `size` outputs.

    Only a shift of one pixel on an axis of at least 8 outputs does: the one row or column
    by which an np.roll, PyTorch's padding at stride 2 or scipy's even-kernel centring moves
    a real output. Every other offset compares every element, the windows past the edge
    read through its boundary rule: a left-out element could hide a corrupted one.
    """
    return (np.abs(shift) == 1) & (size >= 8)


class _Problem:
    """The numeric problem: float64 views of the inputs plus everything bounds need.

    Canonical layouts: image (N, H, W, C), kernel HWIO (kh, kw, C / groups, C_out),
    output (N, Ho, Wo, C_out).
    """

    def __init__(self, inputs, baseline: Explanation, precision: Optional[str],
                 output_precision: Optional[str] = None):
        self.inputs = inputs
        self.image = np.asarray(inputs.image, dtype=np.float64)
        self.kernel = np.asarray(inputs.kernel, dtype=np.float64)
        # A float output is read in its own type (every float32 or float16 value is a
        # float64 value; arithmetic with float64 promotes exactly): no output-sized copy.
        output = np.asarray(inputs.output)
        self.output = output if output.dtype.kind == "f" else np.asarray(output, dtype=np.float64)
        output_dtype = np.dtype(inputs.output.dtype)
        # An integer output of one of these types may have been rounded and saturated to it.
        self.integer_output = output_dtype.name if output_dtype.name in prec.INTEGER_RANGES else None
        self.groups = int(getattr(inputs, "groups", 1))
        self.input_dtypes = (np.dtype(inputs.image.dtype), np.dtype(inputs.kernel.dtype))
        kh, kw, per_group, _ = self.kernel.shape
        self.n = kh * kw * per_group
        base_precision = precision or prec.native_precision(inputs.image, inputs.kernel)
        self.baseline = baseline.with_(precision=base_precision)
        out_precision = prec.dtype_precision(inputs.output.dtype)
        if out_precision is None:  # integer outputs are exact
            self.output_u, self.output_underflow = 0.0, 0.0
        else:
            storage = "float32" if out_precision == "tfloat32" else out_precision
            self.output_u = prec.STORAGE_U[storage]
            self.output_underflow = prec.STORAGE_UNDERFLOW[storage]
        narrower = [p for p in _PRECISION_PREFERENCE if p in prec.narrower_precisions(base_precision)]
        if self.integer_output or output_dtype.kind in "iu":
            # An integer output says nothing about a half precision (small integers are
            # representable in all of them), and a half precision's bound (2^-7 of the
            # magnitudes from float64 inputs) spans whole integer units: it would absorb a
            # corrupted element. Only float32 is tried, besides the expected precision.
            narrower = [p for p in narrower if prec.SIGNIFICAND_BITS[p] >= prec.SIGNIFICAND_BITS["float32"]]
        # A narrower precision is possible only if the output's values are stored in it
        # exactly (TF32 results are float32 values): free evidence from the numbers.
        # Half-precision inputs may also have been rounded to the other half format and the
        # result kept in the wide format it was summed in (`wide_storage` below): then the
        # output need not be representable in it.
        half = ("bfloat16", "float16")
        wide_output = output_precision is None and output_dtype in (np.float32, np.float64)
        self.precisions = [base_precision] + [
            p for p in narrower if prec.representable(self.output, "float32" if p == "tfloat32" else p)
            or (wide_output and base_precision in half and p in half)]
        self.all_precisions = list(self.precisions)   # a pass may search fewer (Winograd)
        self._rounded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._exact: dict = {}
        self._extent: dict[str, tuple[float, float]] = {}
        self._raw_extent: Optional[tuple[float, float]] = None
        self._fft: dict[str, np.ndarray] = {}
        self._winograd: dict[tuple, dict[str, np.ndarray]] = {}   # the last candidate's only: output-sized
        self.algorithm = self.baseline.algorithm   # how the sums are modelled; the search may try others too
        self.boundaries = BOUNDARIES               # the boundary rules the search tries in this pass
        self._models: dict[tuple, prec.PrecisionModel] = {}
        # Half-precision inputs whose float32 (float64) output bfloat16/float16 cannot hold:
        # the result was not stored in that precision (free evidence from the values), but
        # kept in the wider format it was accumulated in (JAX preferred_element_type).
        self.wide_storage: dict[str, str] = {}
        self.declared_storage = output_precision   # what the caller expects the result stored in
        if output_precision in prec.INTEGER_RANGES:
            self.integer_output = output_precision
        for p in self.precisions:
            if wide_output and p in half and not prec.representable(self.output, p):
                self.wide_storage[p] = "float32" if prec.representable(self.output, "float32") else "float64"
        self.storage: dict[str, Optional[str]] = {}   # output_precision of this pass's candidates
        self.set_storage(None)
        # Activations the values allow: a ReLU never gives a negative and clips to 0; a ReLU6
        # also never exceeds 6 and clips to it. Otherwise the linear reading is the only one.
        self.activations = ["linear"]
        chunks = list(prec.blocks(self.output))   # reductions a block at a time: no output-sized copy
        if self.output.size and all(bool(np.isfinite(c).all()) for c in chunks) \
                and min(float(np.min(c)) for c in chunks) >= 0:
            if any(bool(np.any(c == 0)) for c in chunks):
                self.activations.append("relu")
            if max(float(np.max(c)) for c in chunks) <= 6 and any(bool(np.any(c == 6)) for c in chunks):
                self.activations.append("relu6")

    def set_storage(self, integer: Optional[str]) -> None:
        """The output precision this pass's candidates are stored in: an integer type for
        every precision, or (None) each precision's own format, save `wide_storage`."""
        self.storage = {q: integer if integer is not None else self.declared_storage or self.wide_storage.get(q)
                        for q in self.all_precisions}

    def model(self, precision: str, output_precision: Optional[str]) -> prec.PrecisionModel:
        """The rounding model of `precision` with the result stored in `output_precision` (cached)."""
        key = (precision, output_precision)
        if key not in self._models:
            self._models[key] = prec.PrecisionModel.for_inputs(precision, self.input_dtypes, output_precision)
        return self._models[key]

    @property
    def models(self) -> dict[str, prec.PrecisionModel]:
        """This pass's model of each allowed precision."""
        return {q: self.model(q, self.storage[q]) for q in self.precisions}

    def activations_for(self, output_precision: Optional[str]) -> list[str]:
        """The activations worth trying with results stored in `output_precision`: one that
        clips nothing the integer range does not already clip is the linear reading again."""
        return [a for a in self.activations
                if a == "linear" or _limits(a, output_precision) != _limits("linear", output_precision)]

    @property
    def image_hw(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[2]

    def wide_kernel(self, kernel: np.ndarray, dilation) -> np.ndarray:
        """A (transformed) grouped kernel as the dense, dilated HWIO kernel the correlation uses."""
        return dilate_kernel(dense_kernel(kernel, self.groups), dilation)

    def has_subnormals(self, precision: str) -> bool:
        """True when an input holds nonzero values below `precision`'s smallest normal number."""
        tiny = _SMALLEST_NORMAL["float32" if precision == "tfloat32" else precision]
        return any(bool(np.any((chunk != 0) & (np.abs(chunk) < tiny)))
                   for a in (self.image, self.kernel) for chunk in prec.blocks(a))

    def rounding_is_exact(self, precision: str) -> bool:
        """True when rounding both inputs to `precision` changes nothing (cached)."""
        if precision not in self._exact:
            self._exact[precision] = all(prec.representable(a, precision) for a in (self.image, self.kernel))
        return self._exact[precision]

    def rounded_kernel(self, precision: str) -> np.ndarray:
        """The kernel rounded to `precision`, as float64 (what `rounded` holds, without the image)."""
        return self.kernel if self.rounding_is_exact(precision) else prec.round_to(self.kernel, precision)

    def rounding(self, precision: str):
        """None when the image's values are exact in `precision`, else a function rounding a
        float64 block of them in place (rounding is elementwise: a block rounded is the
        rounded image's block)."""
        key = ("image", precision)
        if key not in self._exact:
            self._exact[key] = self.rounding_is_exact(precision) or prec.representable(self.image, precision)
        return None if self._exact[key] else prec.rounder(precision)

    def rounded(self, precision: str) -> tuple[np.ndarray, np.ndarray]:
        """(image, kernel) rounded to `precision`, as float64 (cached). Whole-image copies:
        the searches and `_evaluate_blocks` round blocks instead (`rounding`)."""
        if precision not in self._rounded:
            if self.rounding_is_exact(precision):
                self._rounded[precision] = (self.image, self.kernel)  # already exact: share memory
            else:
                self._rounded[precision] = (prec.round_to(self.image, precision),
                                            prec.round_to(self.kernel, precision))
        return self._rounded[precision]

    def bound(self, magnitude, predicted, precision, scale, has_bias, samples=None, extra=None,
              output_precision="pass", out=None, scratch=None):
        """The rigorous elementwise bound of a candidate at `precision` (see precision.error_bound),
        its result stored in `output_precision` ('pass': what this pass's candidates use).

        With `algorithm` 'fft' the FFT's normwise error (precision.fft_convolution_bound) is
        added to every element of its sample and output channel; `samples` names the sample
        of each row when `magnitude` is (n, C_out) rows of sampled positions. `extra` (shaped
        like `magnitude`) is an algorithm's own elementwise error, added too (`winograd_term`).
        `scale` is a number or one per output channel. `out` and `scratch` lend buffers (see
        precision.error_bound).
        """
        if output_precision == "pass":
            output_precision = self.storage[precision]
        max_input, max_kernel = self.extent(precision)
        bound = prec.error_bound(magnitude, predicted, n=self.n, model=self.model(precision, output_precision),
                                 output_u=self.output_u, output_underflow=self.output_underflow,
                                 scale=scale, has_bias=has_bias, max_input=max_input, max_kernel=max_kernel,
                                 out=out, scratch=scratch)
        if self.algorithm == "fft":
            term = self.fft_term(precision)
            bound += np.abs(scale) * (term[:, None, None, :] if samples is None else term[samples])
        if extra is not None:
            bound += np.abs(scale) * extra
        return bound

    def extent(self, precision: str) -> tuple[float, float]:
        """(max |image|, max |kernel|) of the inputs rounded to `precision` (cached)."""
        if precision not in self._extent:
            # Rounding to nearest is monotone and symmetric: max |round(x)| = round(max |x|).
            self._extent[precision] = tuple(float(prec.round_to(np.array([e]), precision)[0])
                                            for e in self.raw_extent())
        return self._extent[precision]

    def raw_extent(self) -> tuple[float, float]:
        """(max |image|, max |kernel|) of the inputs as given (NaN if one holds a NaN), without
        an image-sized |image|."""
        if self._raw_extent is None:
            def extent(a):
                top, bottom = float(np.max(a, initial=0.0)), float(-np.min(a, initial=0.0))
                return float("nan") if np.isnan(top) or np.isnan(bottom) else max(top, bottom)
            self._raw_extent = (extent(self.image), extent(self.kernel))
        return self._raw_extent

    def fft_term(self, precision: str) -> np.ndarray:
        """(N, C_out): the normwise error of an FFT convolution at `precision` (cached)."""
        if precision not in self._fft:
            image, kernel = self.rounded(precision)
            dense = dense_kernel(kernel, self.groups)
            images = np.stack([np.abs(image).sum(axis=(1, 2)), np.sqrt(np.square(image).sum(axis=(1, 2)))], -1)
            kernels = np.stack([np.abs(dense).sum(axis=(0, 1)), np.sqrt(np.square(dense).sum(axis=(0, 1)))], -1)
            kh, kw = dense.shape[:2]
            lengths = (self.image_hw[0] + (kh - 1) * _MAX_DILATION, self.image_hw[1] + (kw - 1) * _MAX_DILATION)
            self._fft[precision] = prec.fft_convolution_bound(images, kernels, lengths,
                                                              prec.ACCUMULATION_U[precision])
        return self._fft[precision]

    def winograd_term(self, precision: Optional[str], transform: str, padding: str, positions, *,
                      kernel: Optional[np.ndarray] = None) -> np.ndarray:
        """The error of a Winograd computation (winograd.error_bound_at, the largest over its
        tile sizes) of the candidate with this kernel transform and padding (zero boundary, no
        offset, stride 1) at `positions` = (samples, rows, cols): (n, C_out). `precision` None
        means the inputs as loaded (stage 1: the bound of any precision the winograd pass
        allows, with room for the inputs' rounding); `kernel` a decoy in place of the inputs' own.
        """
        return self._winograd_bounds(precision, transform, padding, positions, kernel)

    def winograd_terms(self, precision: str, transform: str, padding: str) -> dict[str, np.ndarray]:
        """winograd.error_bounds of the candidate on the whole output, per tile size (cached)."""
        key = (precision, transform, padding)
        if key not in self._winograd:
            self._winograd = {key: self._winograd_bounds(precision, transform, padding, None, None)}
        return self._winograd[key]

    def _winograd_bounds(self, precision, transform, padding, positions, kernel):
        if precision is None:
            image, own = self.image, self.kernel
            u = max(prec.ACCUMULATION_U[q] for q in _winograd_precisions(self.precisions))
        else:
            image, own = self.rounded(precision)
            u = prec.ACCUMULATION_U[precision]
        dense = dense_kernel(transform_kernel(own if kernel is None else kernel, transform), self.groups)
        out_hw = tuple(self.output.shape[1:3])
        origin = window_origin(padding, (3, 3), (0, 0), self.image_hw)
        regions = np.stack([extended_image(sample, "zero", origin, out_hw, (3, 3)) for sample in image])
        tiny = _SMALLEST_NORMAL["float32" if u > prec.U64 else "float64"]
        channels = self.n // 9
        from . import winograd   # here: only Winograd candidates need it (with fractions: 3 ms)
        if positions is None:
            return winograd.error_bounds(regions, dense, out_hw, u=u, tiny=tiny, channels=channels)
        term = winograd.error_bound_at(regions, dense, *positions, u=u, tiny=tiny, channels=channels)
        if precision is None:
            term *= 1.01   # rounded inputs' magnitudes are within (1 + 2^-8)^2 of these
        return term

    def compared_mask(self, struct, rows: np.ndarray, cols: np.ndarray, out_hw) -> np.ndarray:
        """Which output rows/cols are compared under an offset (CONTRACT section 2): those
        whose shifted window lies where the reference has windows, i*s + dy in [0, (Ho-1)*s].
        See `leaves_out` for when an offset may leave any out at all."""
        (sy, sx), (dy, dx) = struct.stride, struct.offset
        row_ok = (rows * sy + dy >= 0) & (rows * sy + dy <= (out_hw[0] - 1) * sy) | ~leaves_out(dy, out_hw[0])
        col_ok = (cols * sx + dx >= 0) & (cols * sx + dx <= (out_hw[1] - 1) * sx) | ~leaves_out(dx, out_hw[1])
        return row_ok, col_ok


def _fit(prediction: np.ndarray, target: np.ndarray, fit: str, weights: Optional[np.ndarray] = None):
    """Closed-form weighted least-squares (scale, bias) of target ~ scale * prediction + bias:
    two numbers, or for a per-channel fit two arrays with one number per output channel."""
    outs = prediction.shape[-1]
    flat_weights = None if weights is None else weights.reshape(1, -1, outs)
    scale, bias = _fit_batch(prediction.reshape(1, -1, outs), target.reshape(-1, outs), fit, flat_weights)
    if _per_channel(fit):
        return scale[0], bias[0]
    return float(scale[0, 0]), float(bias[0, 0])


def _usable_fit(scale, bias) -> bool:
    # A zero scale would "explain" any constant output: never a reproduction.
    return bool(np.all(np.isfinite(scale)) and np.all(np.isfinite(bias)) and np.all(np.not_equal(scale, 0.0)))


def _per_channel(fit: str) -> bool:
    """True for a scale/bias fitted per output channel."""
    return fit.startswith("channel_")


def _fit_kind(fit: str) -> str:
    """'none', 'bias', 'scale', 'both' or 'cval', whether per channel or not."""
    return fit[len("channel_"):] if _per_channel(fit) else fit


def _fit_fields(fit: str) -> int:
    """How many contract fields a fit changes (bias, scale; 'cval': a 'constant' boundary's value)."""
    kind = _fit_kind(fit)
    return (kind in ("bias", "both")) + (kind in ("scale", "both")) + (kind == "cval")


def _fitted(fit: str, outs: int = 1) -> int:
    """How many parameters a fit draws from the output itself: one per field, or one per
    field and output channel for a per-channel fit."""
    return _fit_fields(fit) * (outs if _per_channel(fit) else 1)


def _as_value(x):
    """A fitted scale or bias as the contract reports it: a float, or a tuple per channel."""
    array = np.asarray(x, dtype=np.float64)
    return float(array) if array.ndim == 0 else tuple(float(v) for v in array.ravel())


def _limits(activation: str, output_precision: Optional[str]) -> tuple[Optional[float], Optional[float]]:
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


def _clipped(target: np.ndarray, limits) -> Optional[np.ndarray]:
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


def _residual(target: np.ndarray, predicted: np.ndarray, limits) -> np.ndarray:
    """|output - candidate| where nothing clips; at a limit, how far the candidate's value
    (before clipping) lies on the wrong side of it. A computed value p rounded and clipped,
    y = clip(fl(p)), sits at the low limit only if fl(p) <= low, i.e. p <= low + bound
    (rounding is monotone and the limits are representable, so clipping and rounding
    commute); anything strictly inside the limits was not clipped, so |y - p| <= bound
    as without an activation. An output beyond a limit cannot come from the candidate."""
    diff = target - predicted
    residual = np.abs(diff)
    low, high = limits
    if low is None and high is None:
        return residual
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


def _reproduction(predicted: np.ndarray, limits) -> np.ndarray:
    """The candidate's output: its values clipped to the limits."""
    low, high = limits
    if low is None and high is None:
        return predicted
    return np.clip(predicted, -np.inf if low is None else low, np.inf if high is None else high)


def _complexity(struct: "_Structure", precision: str, baseline: Explanation, fixed: int = 0,
                output_precision: Optional[str] = None, outs: int = 1) -> tuple:
    """Sort key: fewest changed fields first; among those, fewest fitted parameters (a
    structural cause, which fits nothing to the output, beats a bias or scale that
    reproduces it equally well, one number beats one per channel); then the contract's
    order of values. `fixed` counts the changed fields every candidate shares (groups,
    output layout read from the shapes); `output_precision` is the candidate's, if it
    changes that field."""
    fitted = _fitted(struct.fit, outs)
    changed = ((struct.transform != "identity") + (struct.padding != baseline.padding)
               + (struct.boundary != "zero") + (struct.offset != (0, 0))
               + (tuple(struct.stride) != tuple(baseline.stride))
               + (tuple(struct.dilation) != tuple(baseline.dilation))
               + (precision != baseline.precision) + _fit_fields(struct.fit) + fixed
               + (struct.activation != "linear") + (output_precision is not None))
    return (changed, fitted, ACTIVATIONS.index(struct.activation), KERNEL_TRANSFORMS.index(struct.transform),
            struct.padding != baseline.padding, PADDINGS.index(struct.padding),
            _boundary_rank(struct.boundary),
            abs(struct.offset[0]) + abs(struct.offset[1]), struct.offset,
            precision != baseline.precision, _PRECISION_PREFERENCE.index(precision),
            FITS.index(struct.fit) if struct.fit in FITS else len(FITS))


# A different rule on each axis ([rows, columns], as scipy.ndimage's per-axis modes in
# separable filters): tried only when no single rule explains the output.
_BOUNDARY_PAIRS = tuple((rows, cols) for rows in BOUNDARIES for cols in BOUNDARIES if rows != cols)


def _border_only(tried: list, kernel_hw) -> bool:
    """True when the nearest candidate so far misses only within the border band."""
    if not tried:
        return False
    nearest = min(tried, key=lambda f: f.bad)
    if nearest.bad == 0:
        return False
    band = max(kernel_hw) * 4 + 4   # dilated and offset windows reach further in
    return not nearest.mismatch[:, band:-band or None, band:-band or None].any()


def _boundary_rank(boundary) -> int:
    if boundary == "constant":
        return len(BOUNDARIES) + len(_BOUNDARY_PAIRS)
    return BOUNDARIES.index(boundary) if isinstance(boundary, str) else len(BOUNDARIES) + _BOUNDARY_PAIRS.index(
        tuple(boundary))


# Among narrower precisions, what the output's values point to first (see _Problem).
_PRECISION_PREFERENCE = ("float64", "float32", "bfloat16", "float16", "tfloat32")


@dataclass(frozen=True)
class _Layout:
    """A kernel transform and geometry whose output has the output's size."""

    transform: str
    padding: str
    stride: tuple[int, int]
    dilation: tuple[int, int]


_MAX_STRIDE = 16
_MAX_DILATION = 4


def _layouts(problem: _Problem, baseline: Explanation) -> list[_Layout]:
    """Every (transform, padding, stride, dilation) that gives the output's (Ho, Wo): free
    evidence from the shapes. Dilation is searched up to 4 (the same on both axes unless
    declared otherwise) while the dilated kernel fits in the image; stride as far as the
    sizes allow, but not along an axis with a single output (one window: any stride gives it).
    """
    height, width = problem.image_hw
    out_h, out_w = problem.output.shape[1:3]
    # The same shapes give the same layouts (a suite asks again for every case): cached.
    key = (height, width, out_h, out_w, problem.kernel.shape[:2], tuple(baseline.stride), tuple(baseline.dilation))
    if key not in _LAYOUTS:
        if len(_LAYOUTS) > 256:
            _LAYOUTS.clear()
        _LAYOUTS[key] = _all_layouts(problem, baseline)
    return list(_LAYOUTS[key])


_LAYOUTS: dict = {}
_SAMPLES: dict = {}


def _all_layouts(problem: _Problem, baseline: Explanation) -> list[_Layout]:
    """`_layouts`, computed."""
    height, width = problem.image_hw
    out_h, out_w = problem.output.shape[1:3]
    dilations = sorted({(d, d) for d in range(1, _MAX_DILATION + 1)} | {tuple(baseline.dilation)})
    found = []
    for transform in KERNEL_TRANSFORMS:
        tkh, tkw = transform_kernel(problem.kernel, transform).shape[:2]
        for padding in PADDINGS:
            for dilation in dilations:
                if dilation != tuple(baseline.dilation) and (
                        (tkh - 1) * dilation[0] + 1 > max(height, 1) or (tkw - 1) * dilation[1] + 1 > max(width, 1)):
                    continue
                rows = _single_window([sy for sy in range(1, min(max(height, 1), _MAX_STRIDE) + 1)
                                       if axis_layout(padding, height, tkh, sy, dilation[0])[0] == out_h],
                                      out_h, baseline.stride[0])
                cols = _single_window([sx for sx in range(1, min(max(width, 1), _MAX_STRIDE) + 1)
                                       if axis_layout(padding, width, tkw, sx, dilation[1])[0] == out_w],
                                      out_w, baseline.stride[1])
                found += [_Layout(transform, padding, (sy, sx), dilation) for sy in rows for sx in cols]
    return found


def _single_window(strides: list[int], out: int, declared: int) -> list[int]:
    """With one output along an axis every fitting stride gives the same window: keep one
    (the declared stride if it fits, else the smallest)."""
    if out != 1 or len(strides) <= 1:
        return strides
    return [declared] if declared in strides else strides[:1]


def _geometry_changes(layout: _Layout, baseline: Explanation) -> int:
    return (tuple(layout.stride) != tuple(baseline.stride)) + (tuple(layout.dilation) != tuple(baseline.dilation))


class _Search:
    """Stages 1 and 2 over one set of layouts (those changing the same number of geometry fields)."""

    def __init__(self, problem: _Problem, layouts: list[_Layout]):
        self.p = problem
        self.out_hw = tuple(problem.output.shape[1:3])
        kh, kw = problem.kernel.shape[:2]
        self.radius = max(1, min(4, max(kh, kw) // 2 + 1))
        self.layouts = layouts
        self.samples, self.rows, self.cols = self._samples()
        self._patch_cache: dict[tuple, np.ndarray] = {}
        self.outs = int(problem.output.shape[3])
        self._winograd_cache: dict[tuple, np.ndarray] = {}
        # How many candidates the search considers: what an `explained` verdict must beat.
        self.size = (max(1, len(layouts)) * len(problem.boundaries) * (2 * self.radius + 1) ** 2
                     * len(self.fits()) * len(self.activations()) * len(problem.precisions))

    def _plain_pass(self) -> bool:
        """The fallback passes (an FFT, a boundary rule per axis or a constant border) search
        the plain values only: no activation, no per-channel fit (what they are for, library
        filters, has neither; and the search stays affordable)."""
        return self.p.algorithm != "direct" or self.p.boundaries[0] != BOUNDARIES[0]

    def fits(self) -> tuple[str, ...]:
        """The scale/bias fits of this pass: none with an FFT's loose normwise bound (it would
        leave fitted parameters too much room); per channel only with several channels."""
        if self.p.algorithm != "direct":
            return ("none",)
        return tuple(f for f in FITS if (self.outs > 1 and not self._plain_pass()) or not _per_channel(f))

    def activations(self) -> list[str]:
        """The activations of this pass (see `_Problem.activations_for`)."""
        storage = self.p.storage[self.p.precisions[0]]
        return ["linear"] if self._plain_pass() else self.p.activations_for(
            storage if storage in prec.INTEGER_RANGES else None)

    def _samples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Output positions (sample, row, col) to search on: all of a small output, else a
        border band + interior, spread over the batch.

        The border band (where windows leave the image) decides the boundary; the interior
        decides kernel, offset and precision. Deterministic, so verdicts are reproducible.
        """
        batch = self.p.output.shape[0]
        out_h, out_w = self.out_hw
        # The same shapes give the same positions (a suite asks again for every case): cached.
        key = (batch, out_h, out_w, self.p.output.shape[3], self.p.kernel.shape[:2], self.radius)
        if key not in _SAMPLES:
            if len(_SAMPLES) > 64:
                _SAMPLES.clear()
            _SAMPLES[key] = self._positions()
            for array in _SAMPLES[key]:
                array.flags.writeable = False
        return _SAMPLES[key]

    def _positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`_samples`, computed."""
        batch = self.p.output.shape[0]
        out_h, out_w = self.out_hw
        if batch * out_h * out_w <= _MAX_SAMPLES_EXHAUSTIVE:
            grid = np.indices((batch, out_h, out_w)).reshape(3, -1)
            return grid[0], grid[1], grid[2]
        rng = np.random.default_rng(20261123)
        band = max(self.p.kernel.shape[:2]) + self.radius
        # Every position gives one element per output channel: with many channels, fewer
        # positions give as many elements (stage 1's arrays grow with positions x channels).
        share = min(1.0, max(0.3, 2048 / ((_BORDER_SAMPLES + _INTERIOR_SAMPLES) * self.p.output.shape[3])))
        per_side = max(8, int(_BORDER_SAMPLES * share) // 4)
        interior = max(32, int(_INTERIOR_SAMPLES * share))
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
            rows.append(rng.integers(band, out_h - band, interior))
            cols.append(rng.integers(band, out_w - band, interior))
        else:
            rows.append(rng.integers(0, out_h, interior))
            cols.append(rng.integers(0, out_w, interior))
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        samples = rng.integers(0, batch, rows.size)
        flat = np.sort((samples * out_h + rows) * out_w + cols)
        flat = flat[np.r_[True, flat[1:] != flat[:-1]]]   # np.unique's values (without importing numpy.ma)
        return flat // (out_h * out_w), (flat // out_w) % out_h, flat % out_w

    def _patches(self, precision: Optional[str], boundary: str, layout: _Layout, kernel_hw,
                 which: Optional[np.ndarray] = None) -> np.ndarray:
        """Sample windows for every offset in [-R, R]^2: (n_samples, kh' + 2R, kw' + 2R, C),
        kh' the dilated kernel's height. `precision` None means the inputs as loaded. Cached
        (the latest few, up to _PATCH_CACHE_BYTES: a large kernel's are large); with
        `which`, a mask of the samples, those samples' windows alone, not cached."""
        key = (precision, boundary, layout.padding, layout.stride, layout.dilation, tuple(kernel_hw))
        if which is None and key in self._patch_cache:
            return self._patch_cache[key]
        chosen = slice(None) if which is None else which
        r = self.radius
        top, left = pad_before(layout.padding, *kernel_hw, *self.p.image_hw, layout.stride, layout.dilation)
        span = ((kernel_hw[0] - 1) * layout.dilation[0] + 1, (kernel_hw[1] - 1) * layout.dilation[1] + 1)
        patches = gather_windows(
            self.p.image, boundary, self.rows[chosen] * layout.stride[0] - r - top,
            self.cols[chosen] * layout.stride[1] - r - left, span[0] + 2 * r, span[1] + 2 * r,
            samples=self.samples[chosen])
        rounding = None if precision is None else self.p.rounding(precision)
        # The rounded image's windows: rounding is elementwise and keeps the padding's zeros.
        patches = patches if rounding is None else rounding(patches)
        if which is None:
            while self._patch_cache and sum(a.nbytes for a in self._patch_cache.values()) + patches.nbytes \
                    > _PATCH_CACHE_BYTES:
                del self._patch_cache[next(iter(self._patch_cache))]
            self._patch_cache[key] = patches
        return patches

    def _inside(self, layout: _Layout, kernel_hw) -> np.ndarray:
        """Which samples' windows (at every offset) lie inside the image: the same for every
        boundary rule."""
        r = self.radius
        height, width = self.p.image_hw
        top, left = pad_before(layout.padding, *kernel_hw, height, width, layout.stride, layout.dilation)
        span = ((kernel_hw[0] - 1) * layout.dilation[0] + 1, (kernel_hw[1] - 1) * layout.dilation[1] + 1)
        rows = self.rows * layout.stride[0] - r - top
        cols = self.cols * layout.stride[1] - r - left
        return (rows >= 0) & (rows + span[0] + 2 * r <= height) & (cols >= 0) & (cols + span[1] + 2 * r <= width)

    def _predict_boundary(self, boundary: str, layout: _Layout, kernel_hw, stack: np.ndarray, inside, cache: dict):
        """`_predict` of every sample under `boundary`: the samples whose windows lie inside
        the image are computed once (in `cache`) for all boundary rules, the rest for this
        one; a large kernel's windows are gathered a few samples at a time."""
        size = 2 * self.radius + 1
        values = np.empty((inside.size, size, size, stack.shape[3]))
        mags = np.empty(values.shape)
        if inside.any() and "inside" not in cache:
            cache["inside"] = self._predict_some(boundary, layout, kernel_hw, stack, inside)
        if inside.any():
            values[inside], mags[inside] = cache["inside"]
        if not inside.all():
            values[~inside], mags[~inside] = self._predict_some(boundary, layout, kernel_hw, stack, ~inside)
        return values, mags

    def _predict_some(self, boundary: str, layout: _Layout, kernel_hw, stack: np.ndarray, which: np.ndarray):
        """`_predict` of the samples `which` (a mask), their windows gathered in batches of
        at most _SEARCH_BYTES."""
        span = ((kernel_hw[0] - 1) * layout.dilation[0] + 1, (kernel_hw[1] - 1) * layout.dilation[1] + 1)
        per_sample = 8 * (span[0] + 2 * self.radius) * (span[1] + 2 * self.radius) * self.p.image.shape[3]
        chosen = np.flatnonzero(which)
        step = max(1, 4 * _SEARCH_BYTES // per_sample)
        parts = []
        for a in range(0, chosen.size, step):
            part = np.zeros(which.size, dtype=bool)
            part[chosen[a:a + step]] = True
            parts.append(self._predict(self._patches(None, boundary, layout, kernel_hw, part), stack,
                                       layout.dilation))
        return np.concatenate([v for v, _ in parts]), np.concatenate([m for _, m in parts])

    def _predict(self, patches: np.ndarray, kernels: np.ndarray, dilation=(1, 1)):
        """Correlate every sample window at every offset with a stack of kernels at once.

        kernels: (kh, kw, C, K), dense but not dilated: the windows take every dilation-th
        tap instead. Returns (n_samples, D, D, K) values and magnitudes.
        """
        kh, kw, channels, count = kernels.shape
        span = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
        windows = np.lib.stride_tricks.sliding_window_view(patches, span, axis=(1, 2))[
            :, :, :, :, ::dilation[0], ::dilation[1]]
        n, d1, d2 = windows.shape[:3]
        taps = kh * kw * channels
        flat = kernels.reshape(taps, count)
        abs_flat = np.abs(flat)
        values, mags = np.empty((n, d1, d2, count)), np.empty((n, d1, d2, count))
        # A few samples at a time when the kernel is large: the window matrix stays bounded
        # (and is one buffer, reused).
        step = max(1, _SEARCH_BYTES // (8 * d1 * d2 * taps))
        if step >= n:
            cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * d1 * d2, taps)
            values[:] = (cols @ flat).reshape(n, d1, d2, count)
            mags[:] = (np.abs(cols) @ abs_flat).reshape(n, d1, d2, count)
            return values, mags
        space = Workspace()
        for a in range(0, n, step):
            b = min(n, a + step)
            cols = space.get("cols", ((b - a) * d1 * d2, taps))
            np.copyto(cols.reshape(b - a, d1, d2, kh, kw, channels), windows[a:b].transpose(0, 1, 2, 4, 5, 3))
            np.matmul(cols, flat, out=values[a:b].reshape(-1, count))
            np.abs(cols, out=cols)
            np.matmul(cols, abs_flat, out=mags[a:b].reshape(-1, count))
        return values, mags

    def _offset_mask(self, stride) -> np.ndarray:
        """(D, D, n) compared-or-not of each sample at each offset (see _Problem.compared_mask)."""
        r = self.radius
        shifts = np.arange(-r, r + 1)
        out_h, out_w = self.out_hw
        rows = self.rows[None, :] * stride[0] + shifts[:, None]
        cols = self.cols[None, :] * stride[1] + shifts[:, None]
        row_ok = (rows >= 0) & (rows <= (out_h - 1) * stride[0]) | ~leaves_out(shifts, out_h)[:, None]
        col_ok = (cols >= 0) & (cols <= (out_w - 1) * stride[1]) | ~leaves_out(shifts, out_w)[:, None]
        return row_ok[:, None, :] & col_ok[None, :, :]

    def _offset_allowed(self, stride) -> np.ndarray:
        """(D, D): every offset is a candidate (those that leave nothing out compare all);
        with algorithm 'winograd' only none (its tiles start at the output's origin)."""
        size = 2 * self.radius + 1
        if self.p.algorithm == "winograd":
            allowed = np.zeros((size, size), dtype=bool)
            allowed[self.radius, self.radius] = True
            return allowed
        return np.ones((size, size), dtype=bool)

    def _winograd_stage1(self, transforms, padding: str) -> np.ndarray:
        """(T, 1, 1, n, O): the Winograd error of each kernel transform at the samples (no offset)."""
        return np.stack([self.winograd_at(None, t, padding) for t in transforms])[:, None, None]

    def winograd_at(self, precision: Optional[str], transform: str, padding: str,
                    kernel: Optional[np.ndarray] = None) -> np.ndarray:
        """_Problem.winograd_term at the sampled positions: (n, O), cached for the inputs' own kernel."""
        key = (precision, transform, padding)
        if kernel is None and key in self._winograd_cache:
            return self._winograd_cache[key]
        term = self.p.winograd_term(precision, transform, padding, (self.samples, self.rows, self.cols),
                                    kernel=kernel)
        if kernel is None:
            self._winograd_cache[key] = term
        return term

    def structures(self):
        """Stage 1: every structure that the loosest allowed bound does not rule out.

        Returns (survivors, closest): survivors as structures; closest the best structure
        by fraction of samples within bound, as (structure, scale, bias).
        """
        p = self.p
        target = p.output[self.samples, self.rows, self.cols]  # (n, O)
        outs = target.shape[1]
        models = p.models
        # (+ storage_u: a bias added after the result was stored, see precision.error_bound)
        loosest = max(self._loose_coefficient(q) + models[q].storage_u for q in p.precisions)
        out_round = max(prec.output_rounding(m, p.output_u) + m.accumulation_u for m in models.values())
        extent = sum(p.raw_extent())
        absolute = max(p.n * (m.underflow + m.input_abs_slack * 2 * extent) + m.storage_underflow
                       for m in models.values())
        storage_abs = max(m.storage_abs for m in models.values())
        storage = p.storage[p.precisions[0]] if p.storage[p.precisions[0]] in prec.INTEGER_RANGES else None
        fft = 0.0
        if p.algorithm == "fft":
            fft = max(p.fft_term(q).max() for q in p.precisions) * 1.01
        survivors, best = [], (-1.0, None)
        r = self.radius
        groups: dict[tuple, list[str]] = {}
        for layout in self.layouts:
            shape = transform_kernel(p.kernel, layout.transform).shape[:2]
            groups.setdefault((shape, layout.padding, layout.stride, layout.dilation), []).append(layout.transform)
        for (shape, padding, stride, dilation), transforms in groups.items():
            layout = _Layout(transforms[0], padding, stride, dilation)
            stack = np.concatenate([dense_kernel(transform_kernel(p.kernel, t), p.groups) for t in transforms],
                                   axis=3)
            compared = self._offset_mask(stride)[None, :, :, :, None]  # (1, D, D, n, 1)
            enough = self._offset_allowed(stride)
            inside, cache = self._inside(layout, shape), {}
            term = fft if p.algorithm != "winograd" else self._winograd_stage1(transforms, padding)
            for boundary in p.boundaries:
                values, mags = self._predict_boundary("zero" if boundary == "constant" else boundary, layout, shape,
                                                      stack, inside, cache)
                if boundary == "constant":
                    self._constant_structures(values, mags, layout, shape, stack, transforms, target, loosest,
                                              absolute, out_round, survivors)
                    continue
                n, d1, d2, _ = values.shape
                values = values.reshape(n, d1, d2, len(transforms), outs).transpose(3, 1, 2, 0, 4)
                mags = mags.reshape(n, d1, d2, len(transforms), outs).transpose(3, 1, 2, 0, 4)
                unit_bound = (loosest * mags + absolute + term) * (1 + out_round)
                for activation in self.activations():
                    limits = _limits(activation, storage)
                    clipped = _clipped(target, limits)
                    # Clipped elements say only on which side of the limit the sum was: they
                    # take no part in the fit, and are checked as that inequality.
                    free = compared if clipped is None else compared & ~clipped
                    weights = _fit_weights(unit_bound + out_round * np.abs(target) + p.output_underflow
                                           + 1e-300) * free
                    for fit in self.fits():
                        kind = _fit_kind(fit)
                        scale, bias = _fit_batch(values, target, fit, weights)
                        predicted = values if kind == "none" else values + bias[..., None, :] if kind == "bias" \
                            else scale[..., None, :] * values + bias[..., None, :]
                        bound = np.abs(predicted)
                        bound *= out_round
                        bound += unit_bound if kind in ("none", "bias") else np.abs(scale)[..., None, :] * unit_bound
                        bound += p.output_underflow + storage_abs
                        if kind != "none":
                            bound += _evaluation_error(predicted - bias[..., None, :], predicted, _SCREEN_FIT_ULPS)
                            if storage is not None:
                                bound += _fit_allowance(values, bound, weights, fit)
                        bound *= 1.01
                        bound += 1e-300
                        ok = (_residual(target, predicted, limits) <= bound) | ~compared
                        within = np.count_nonzero(ok, axis=(3, 4)) / (ok.shape[3] * ok.shape[4])
                        usable = np.all(np.isfinite(scale) & np.isfinite(bias) & (scale != 0.0), axis=-1)
                        passed = np.all(ok, axis=(3, 4)) & usable & enough
                        for ti, dy_i, dx_i in zip(*np.nonzero(passed)):
                            survivors.append(_Structure(transforms[ti], padding, boundary,
                                                        (int(dy_i) - r, int(dx_i) - r), fit, stride, dilation,
                                                        activation))
                        # The nearest that failed, for the report (first in C order on a tie).
                        nearest = np.where(usable & enough & ~passed, within, -1.0)
                        ti, dy_i, dx_i = np.unravel_index(int(np.argmax(nearest)), nearest.shape)
                        if nearest[ti, dy_i, dx_i] > best[0]:
                            struct = _Structure(transforms[ti], padding, boundary, (int(dy_i) - r, int(dx_i) - r),
                                                fit, stride, dilation, activation)
                            best = (float(nearest[ti, dy_i, dx_i]),
                                    (struct, _as_value(scale[ti, dy_i, dx_i]), _as_value(bias[ti, dy_i, dx_i])))
        return survivors, best[1]

    def _outside(self, layout: "_Layout", kernel_hw) -> np.ndarray:
        """Sample windows of the outside-the-image indicator (1 where a window reads padding)."""
        ones = np.broadcast_to(1.0, self.p.image.shape)  # read where the windows are: no image-sized array
        r = self.radius
        top, left = pad_before(layout.padding, *kernel_hw, *self.p.image_hw, layout.stride, layout.dilation)
        span = ((kernel_hw[0] - 1) * layout.dilation[0] + 1, (kernel_hw[1] - 1) * layout.dilation[1] + 1)
        inside = gather_windows(ones, "zero", self.rows * layout.stride[0] - r - top,
                                self.cols * layout.stride[1] - r - left, span[0] + 2 * r, span[1] + 2 * r,
                                samples=self.samples)
        return 1.0 - inside

    def _constant_structures(self, values, mags, layout, shape, stack, transforms, target, loosest, absolute,
                             out_round, survivors):
        """Stage 1 for a 'constant' boundary: the border value c fitted in closed form, with
        value = zero-boundary value + c * (the kernel's taps that read the border)."""
        p = self.p
        r = self.radius
        outs = target.shape[1]
        m_values, m_mags = self._predict(self._outside(layout, shape), stack, layout.dilation)
        n, d1, d2, _ = values.shape

        def arrange(a):
            return a.reshape(n, d1, d2, len(transforms), outs).transpose(3, 1, 2, 0, 4)

        values, mags, m_values, m_mags = (arrange(a) for a in (values, mags, m_values, m_mags))
        compared = self._offset_mask(layout.stride)[None, :, :, :, None]
        weights = _fit_weights((loosest * mags + absolute) * (1 + out_round) + out_round * np.abs(target)
                               + p.output_underflow + 1e-300) * compared
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = np.sum(weights * m_values * m_values, axis=(3, 4))
            cval = np.where(denom > 0, np.sum(weights * m_values * (target - values), axis=(3, 4)) / denom, np.nan)
        predicted = values + cval[..., None, None] * m_values
        total = mags + np.abs(cval)[..., None, None] * m_mags
        bound = ((loosest * total + absolute) * (1 + out_round) + out_round * np.abs(predicted)
                 + p.output_underflow) * 1.01 + 1e-300
        bound += _evaluation_error(predicted - values, predicted, _SCREEN_FIT_ULPS)
        ratio = np.where(compared, np.abs(target - predicted) / bound, 0.0)
        passed = np.all(ratio <= 1.0, axis=(3, 4)) & np.isfinite(cval) & (cval != 0) & self._offset_allowed(layout.stride)
        for ti, dy_i, dx_i in zip(*np.nonzero(passed)):
            survivors.append(_Structure(transforms[ti], layout.padding, "constant", (int(dy_i) - r, int(dx_i) - r),
                                        "cval", layout.stride, layout.dilation))

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
        decoys = [prec.round_to(_standard_normal(seed, self.p.kernel.shape) * magnitude, precision)
                  for seed in range(3)]
        if (struct.fit == "none" and struct.boundary != "constant" and self.p.groups == 1
                and self.p.algorithm != "winograd" and _limits(struct.activation, self.p.storage[precision])
                == (None, None)):
            # Nothing fitted: the three in one product (the same test for each).
            return any(self.sampled_check(struct, precision, kernel=np.concatenate(decoys, axis=3),
                                          stacked=len(decoys)))
        return any(self.sampled_check(struct, precision, kernel=decoy)[0] for decoy in decoys)

    def sampled_check(self, struct: _Structure, precision: str, *, kernel: Optional[np.ndarray] = None,
                      stacked: int = 0):
        """Stage 2: the exact bound of `precision` on the samples (with `kernel` in place of
        the inputs' own, rounded to `precision`, for a decoy).

        Returns (ok, scale, bias, fraction of sampled elements within the bound). With
        `stacked` (nothing fitted only), `kernel` is that many kernels side by side along its
        output axis, each checked on its own: returns the list of their `ok`.
        """
        p = self.p
        decoy = kernel is not None
        if kernel is None:
            kernel = p.rounded_kernel(precision)
        tk = transform_kernel(kernel, struct.transform)
        layout = _Layout(struct.transform, struct.padding, struct.stride, struct.dilation)
        constant = struct.boundary == "constant"
        patches = self._patches(precision, "zero" if constant else struct.boundary, layout, tk.shape[:2])
        wide = p.wide_kernel(tk, struct.dilation)
        r = self.radius
        dy, dx = struct.offset[0] + r, struct.offset[1] + r
        kh, kw = wide.shape[:2]
        window = patches[:, dy:dy + kh, dx:dx + kw]  # (n, kh, kw, C)
        flat = window.reshape(window.shape[0], -1)
        values = flat @ wide.reshape(-1, wide.shape[3])
        mags = np.abs(flat) @ np.abs(wide.reshape(-1, wide.shape[3]))
        target = p.output[self.samples, self.rows, self.cols]
        row_ok, col_ok = p.compared_mask(struct, self.rows, self.cols, self.out_hw)
        compared = (row_ok & col_ok)[:, None]
        if constant:
            outside = self._outside(layout, tk.shape[:2])[:, dy:dy + kh, dx:dx + kw].reshape(window.shape[0], -1)
            m_values = outside @ wide.reshape(-1, wide.shape[3])
            m_mags = outside @ np.abs(wide.reshape(-1, wide.shape[3]))
            cval, predicted, bound = _fit_cval(values, mags, m_values, m_mags, target, p, precision, compared,
                                               self.samples)
            if not np.isfinite(cval) or cval == 0.0:
                return False, 1.0, cval, 0.0
            within = (np.abs(target - predicted) <= bound) | ~compared
            return bool(np.all(within)), 1.0, cval, float(np.mean(within))
        limits = _limits(struct.activation, p.storage[precision])
        extra = None
        if p.algorithm == "winograd":
            extra = self.winograd_at(precision, struct.transform, struct.padding, kernel if decoy else None)
        if stacked:
            outs = target.shape[1]
            results = []
            for index in range(stacked):
                part = slice(index * outs, (index + 1) * outs)
                _, _, predicted, bound = _fit_within(values[:, part], mags[:, part], target, "none", p, precision,
                                                     compared=compared, samples=self.samples, limits=limits)
                results.append(bool(np.all((_residual(target, predicted, limits) <= bound) | ~compared)))
            return results
        scale, bias, predicted, bound = _fit_within(values, mags, target, struct.fit, p, precision,
                                                    compared=compared, samples=self.samples, extra=extra,
                                                    limits=limits)
        if not _usable_fit(scale, bias):
            return False, scale, bias, 0.0
        within = (_residual(target, predicted, limits) <= bound) | ~compared
        return bool(np.all(within)), scale, bias, float(np.mean(within))


def _standard_normal(seed: int, shape: tuple) -> np.ndarray:
    """np.random.default_rng(seed).standard_normal(shape), drawn once per seed and shape
    (a generator costs more to create than a small kernel's draws)."""
    key = (seed, tuple(shape))
    if key not in _DRAWS:
        if len(_DRAWS) > 64:
            _DRAWS.clear()
        _DRAWS[key] = np.random.default_rng(seed).standard_normal(shape)
        _DRAWS[key].flags.writeable = False
    return _DRAWS[key]


_DRAWS: dict = {}


def _fit_cval(values, mags, m_values, m_mags, target, problem: "_Problem", precision: str, compared, samples,
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
        bound += _evaluation_error(border, predicted)
        return predicted, bound

    weights = _fit_weights(problem.bound(mags, target, precision, 1.0, False, samples,
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


def _fit_allowance(values: np.ndarray, bound: np.ndarray, weights: np.ndarray, fit: str) -> np.ndarray:
    """How far stage 1's least-squares prediction may lie from a feasible one, per element.

    If parameters p* keep every element within its bound, e = y - p* has |e_j| <= B_j, and
    the weighted least-squares prediction is p* + P e with P the weighted projection onto
    the fitted directions (1 for a bias, v for a scale, both). So |p_ls,i - p*_i| <=
    sum_j |P_ij| B_j: sum(w B) / sum(w) for a bias; |v_i| sum(w |v| B) / sum(w v^2) for a
    scale; both terms, with v centred, for the two. An integer output's bound is mostly
    its rounding (half a unit), which least squares spreads unevenly, so there stage 1 (a
    screen: the exact test refits to the minimax point) allows this much more.
    """
    axes = (-2,) if _per_channel(fit) else (-2, -1)
    kind = _fit_kind(fit)

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


def _evaluation_error(term: np.ndarray, predicted: np.ndarray, factor: float = 1.0) -> np.ndarray:
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


def _fit_within(values, mags, target, fit: str, problem: "_Problem", precision: str, *, compared=None,
                samples=None, extra=None, limits=(None, None), output_precision="pass"):
    """(scale, bias, predicted, bound) of a candidate: the closed-form least-squares fit, or,
    when that leaves an element beyond its bound, parameters that keep every element inside.

    Least squares spreads the output's rounding over the fit, so the fitted scale or bias
    itself is off by about one rounding: with float16 outputs or cancelling sums that alone
    can push a true candidate past its bound. Every element's bound defines an interval of
    parameters that reproduce it; `_minimax` picks a point in their intersection. The bound
    is then recomputed at that point, so the test itself stays exact. `compared` (a boolean
    array broadcastable to `values`) leaves elements out of the fit and the test; `extra`
    an algorithm's own error (see _Problem.bound); elements at one of `limits` (clipped,
    see `_residual`) take no part in the fit. A per-channel fit gives arrays with one scale
    and bias per output channel (the last axis).
    """
    kind = _fit_kind(fit)
    has_bias = kind in ("bias", "both")

    def at(scale, bias):
        if kind == "none":
            return values, problem.bound(mags, values, precision, scale, False, samples, extra,
                                         output_precision=output_precision)
        scaled = scale * values
        predicted = scaled + bias
        bound = problem.bound(mags, predicted, precision, scale, has_bias, samples, extra,
                              output_precision=output_precision)
        bound += _evaluation_error(scaled, predicted)
        return predicted, bound

    clipped = _clipped(target, limits)
    free = compared if clipped is None else ~clipped if compared is None else compared & ~clipped
    weights = None
    if kind != "none":
        weights = _fit_weights(problem.bound(mags, target, precision, 1.0, has_bias, samples, extra,
                                             output_precision=output_precision))
        if free is not None:
            weights = weights * free
    scale, bias = _fit(values, target, fit, weights)
    if not _usable_fit(scale, bias):
        return scale, bias, *at(1.0, 0.0)
    predicted, bound = at(scale, bias)
    if kind == "none":
        return scale, bias, predicted, bound
    excess = _residual(target, predicted, limits) - bound
    if compared is not None:
        excess = np.where(compared, excess, -1.0)
    if not np.any(excess > 0) or np.any(np.isnan(excess)):
        return scale, bias, predicted, bound
    keep = np.ones(values.shape, dtype=bool) if free is None else np.broadcast_to(free, values.shape)
    if _per_channel(fit):
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
    if refit is not None and _usable_fit(*refit):
        new_predicted, new_bound = at(*refit)
        new_excess = _residual(target, new_predicted, limits) - new_bound
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


def _fit_batch(values: np.ndarray, target: np.ndarray, fit: str, weights: Optional[np.ndarray] = None):
    """Weighted least-squares (scale, bias) for every leading index at once: values (..., n, O),
    target (n, O), weights broadcastable to values (default: equal). Returns arrays of shape
    (..., 1), or (..., O) for a per-channel fit (each channel fitted on its own elements).

    Weights 1 / bound^2 make the fit exact where the bound is tight: an unweighted fit
    spreads the rounding of large elements onto small ones. NaN marks a fit that does not
    exist (a constant prediction, or a channel with no weight at all).
    """
    per = _per_channel(fit)
    kind = _fit_kind(fit)
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


def _fit_weights(bound: np.ndarray) -> np.ndarray:
    """1 / bound^2, scaled to at most 1 and at least 2^-52 (the bound floored at 2^-26 of its
    largest element), so that tiny bounds neither overflow nor take all the weight."""
    floor = np.max(bound, axis=(-2, -1), keepdims=True) * 2.0 ** -26
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.square(np.divide(floor, np.maximum(bound, floor)))
    return np.nan_to_num(w, nan=1.0, posinf=1.0)


def _evaluate_full(problem: _Problem, expl: Explanation, fit: str, *, needed: float,
                   keep_arrays: bool = False, keep_values: bool = True):
    """A candidate on the whole output, refitting scale/bias there in closed form.

    Returns (`_Full`, the correlation values before scale and bias, or None without
    `keep_values`). A candidate that passes carries its `evidence` (convcheck.evidence),
    weighed against `needed` bits, on the elements it compares (an offset leaves out those
    whose window the reference lacks).

    A candidate with nothing fitted, summed directly, is evaluated block by block
    (`_evaluate_blocks`): the same numbers in a working set of a few blocks. Fitted
    parameters, FFT, Winograd and TF32 candidates, activations and integer outputs (their
    limits) need whole-output statistics first.
    """
    if (fit == "none" and expl.algorithm == "direct" and problem.algorithm == "direct"
            and expl.precision != "tfloat32" and not keep_arrays and problem.output.size
            and _limits(expl.activation, expl.output_precision) == (None, None)):
        return _evaluate_blocks(problem, expl, needed=needed, keep_values=keep_values)
    image, kernel = problem.rounded(expl.precision)
    tk = transform_kernel(kernel, expl.kernel_transform)
    geometry = dict(padding=expl.padding, offset=expl.offset, magnitude=True, stride=tuple(expl.stride),
                    dilation=tuple(expl.dilation), groups=problem.groups)
    constant = fit == "cval"
    values, mags = correlate(image, tk, boundary="zero" if constant else expl.boundary, **geometry)
    tile = None   # the Winograd tile size the output shows (algorithm 'winograd')
    out_h, out_w = values.shape[1:3]
    row_ok, col_ok = problem.compared_mask(expl, np.arange(out_h), np.arange(out_w), (out_h, out_w))
    rows, cols = np.flatnonzero(row_ok), np.flatnonzero(col_ok)
    compared = None
    if rows.size != out_h or cols.size != out_w:
        compared = (row_ok[:, None] & col_ok[None, :])[None, :, :, None]
    limits = _limits(expl.activation, expl.output_precision)
    clipped = _clipped(problem.output, limits)
    if constant:
        m_values, m_mags = correlate(np.zeros_like(image), tk, boundary="constant", cval=1.0, **geometry)
        cval, predicted, bound = _fit_cval(values, mags, m_values, m_mags, problem.output, problem, expl.precision,
                                           compared, None, expl.output_precision)
        mags = mags + abs(cval) * m_mags
        scale, bias, expl = 1.0, 0.0, expl.with_(cval=cval)
    else:
        extra = None
        if expl.algorithm == "winograd":
            tile, extra = _winograd_tile(problem, expl, values, mags, compared)
        scale, bias, predicted, bound = _fit_within(values, mags, problem.output, fit, problem, expl.precision,
                                                    compared=compared, extra=extra, limits=limits,
                                                    output_precision=expl.output_precision)
    if not _usable_fit(scale, bias):
        scale, bias = 1.0, 0.0
    residual = _residual(problem.output, predicted, limits)
    # Written so that NaN residuals (an overflowed backend output) count as mismatches.
    mismatch = ~(residual <= bound)
    if compared is not None:
        mismatch &= compared
        residual = np.where(compared, residual, 0.0)
    n_clipped = 0 if clipped is None else int(np.count_nonzero(clipped if compared is None else clipped & compared))
    bad = int(np.count_nonzero(mismatch))
    kind = _fit_kind(fit)
    fitted_expl = expl.with_(scale=_as_value(scale) if kind in ("scale", "both") else 1.0,
                             bias=_as_value(bias) if kind in ("bias", "both") else 0.0)
    if bad == 0:
        implausible = _implausible(problem, fitted_expl, values, residual, compared, fit)
        if implausible is None and expl.algorithm == "winograd":
            implausible = _winograd_implausible(residual, bound, compared, tile)
        if implausible is not None:
            mismatch, bad = implausible, max(1, int(np.count_nonzero(implausible)))
    evidence = None
    outs = values.shape[3]
    if bad == 0:
        if rows.size and cols.size:
            window = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            corner, size = (int(rows[0]), int(cols[0])), (int(rows[-1]) + 1 - rows[0], int(cols[-1]) + 1 - cols[0])
            keyed = expl.with_(scale=scale, bias=bias)

            def keys_at(positions):
                return _window_keys_at(problem, keyed, tk, positions, corner, size)

            spread = ev.same_window_spread(problem.n, *problem.extent(expl.precision))

            evidence = ev.weigh(values[window], mags[window], bound[window], scale=scale,
                                fitted=_fitted(fit, outs), needed=needed,
                                unclipped=None if clipped is None else ~clipped[window],
                                per_channel=_fit_fields(fit) if _per_channel(fit) else 0, windows_at=keys_at,
                                spread=spread)
            if constant:
                # The border value is decided by the elements that read the border alone:
                # they must carry the evidence for it, the fitted value taking its share.
                border = m_values[window] != 0
                reading = np.flatnonzero(border) // border.shape[-1]   # each element's position
                border_evidence = ev.weigh(values[window][border][:, None], mags[window][border][:, None],
                                           bound[window][border][:, None], scale=1.0, fitted=1, needed=needed,
                                           windows_at=lambda chosen: keys_at(reading[chosen]), spread=spread)
                if border_evidence.bits < evidence.bits:
                    evidence = border_evidence
        else:
            evidence = ev.Evidence(0.0, needed, 0, 0, _fitted(fit, outs), 0.0)
    del mags
    max_residual = float(np.max(residual))
    max_bound = float(np.max(bound))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.divide(residual, bound, out=residual)
        seen = residual[~np.isnan(residual)]   # 0/0 where nothing is compared
        worst = float(seen.max()) if seen.size else float("nan")
    del residual
    full = _Full(fitted_expl, bad, mismatch, max_residual, max_bound, worst,
                 _reproduction(predicted, limits) if keep_arrays else None, bound if keep_arrays else None, evidence,
                 int(rows.size * cols.size * values.shape[0] * values.shape[3]), n_clipped)
    if tile is not None:
        full.detail = (f"Winograd {tile} tiles ({_WINOGRAD_USERS[tile]}): the residual follows that tile's "
                       "error pattern, and stays within its bound (Barabasz et al. 2020 style, see "
                       "convcheck/winograd.py)")
    return full, values


def _evaluate_blocks(problem: _Problem, expl: Explanation, *, needed: float, keep_values: bool):
    """`_evaluate_full` of a candidate with nothing fitted, one block of output rows at a time.

    Each block is correlated (inputs rounded block by block), bounded and compared, and
    only what the diagnosis keeps survives it: the mismatch mask, the maxima, the evidence
    bits (see evidence.RowBits; while nothing mismatches) and, with `keep_values`, the
    values' `_Differences` from the output (what the statistics need of a reference).
    Every number is the one the whole-output evaluation gives, elementwise. Where
    reference.map_blocks shares the blocks between two threads, each thread bounds and
    compares its own blocks; what they return is merged in block order, so the result is
    the one a single thread gives.
    """
    precision = expl.precision
    output = problem.output
    batch, out_h, out_w, outs = output.shape
    tk = transform_kernel(problem.rounded_kernel(precision), expl.kernel_transform)
    row_ok, col_ok = problem.compared_mask(expl, np.arange(out_h), np.arange(out_w), (out_h, out_w))
    rows, cols = np.flatnonzero(row_ok), np.flatnonzero(col_ok)
    partial = rows.size != out_h or cols.size != out_w
    top, bottom = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)
    left, right = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 0)
    height, width = bottom - top, right - left    # the compared window, where evidence is weighed
    differences = _Differences(output) if keep_values else None
    mismatch = np.zeros(output.shape, dtype=bool)

    def at(chosen):
        return _values_at(problem, expl, tk, chosen, (top, left), (height, width))

    def bits_at(chosen):
        values, mags = at(chosen)
        bound = problem.bound(mags, values, precision, 1.0, False, output_precision=expl.output_precision)
        return ev.element_bits(mags, bound, 1.0).sum(axis=-1)

    row_bits = ev.RowBits(batch * height * width, bits_at) if rows.size and cols.size else None
    # With many positions no values are kept: evidence's few positions are summed again.
    kept = None if (row_bits is None or row_bits.all is None) else np.empty((batch, height, width, outs))
    seen_bad = []   # set by the first block that mismatches: later blocks skip the evidence

    def block(n, i0, values, mags, space):
        """One block's part: its mismatches and evidence bits written to their own rows, the
        rest returned (merged below in block order). The bound's "scratch" buffer is free
        once the bound is made: the relative differences, then the bits, reuse it."""
        i1 = i0 + values.shape[0]
        shape = values.shape
        bound = problem.bound(mags, values, precision, 1.0, False, output_precision=expl.output_precision,
                              out=space.get("bound", shape), scratch=space.get("scratch", shape))
        residual = np.subtract(output[n, i0:i1], values, dtype=np.float64, out=space.get("residual", shape))
        np.abs(residual, out=residual)
        summary = differences.summary(n, i0, values, residual, space) if differences is not None else None
        # Written so that NaN residuals (an overflowed backend output) count as mismatches.
        miss = np.less_equal(residual, bound, out=space.get("miss", shape, bool))
        np.logical_not(miss, out=miss)
        if partial:
            keep = (row_ok[i0:i1, None] & col_ok[None, :])[:, :, None]
            miss &= keep
            np.putmask(residual, np.broadcast_to(~keep, residual.shape), 0.0)
        mismatch[n, i0:i1] = miss
        bad = int(np.count_nonzero(miss))
        if bad:
            seen_bad.append(True)
        residual_max, bound_max = float(np.max(residual)), float(np.max(bound))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.divide(residual, bound, out=residual)
        ratio = float(np.fmax.reduce(residual, axis=None))   # the largest, NaN (0/0: not compared) left out
        informative = 0
        a, b = max(i0, top), min(i1, bottom)
        # Evidence counts only when nothing mismatches: a block after a mismatch skips it.
        if bad == 0 and not seen_bad and row_bits is not None and a < b:
            window = (slice(a - i0, b - i0), slice(left, right))
            bits = ev.element_bits(mags[window], bound[window], 1.0,
                                   out=space.get("scratch", (b - a, width, outs)))
            informative = int(np.count_nonzero(np.greater_equal(bits, 1.0, out=miss[window])))
            row_bits.put((n * height + a - top) * width, bits[..., 0] if outs == 1 else bits.sum(axis=-1))
            if kept is not None:
                kept[n, a - top:b - top] = values[window]
        return bad, residual_max, bound_max, ratio, informative, summary

    problem.extent(precision)   # cached for the bound before two threads may ask for it
    parts = map_blocks(block, problem.image, tk, padding=expl.padding, boundary=expl.boundary, offset=expl.offset,
                       magnitude=True, stride=tuple(expl.stride), dilation=tuple(expl.dilation),
                       groups=problem.groups, prepare=problem.rounding(precision))
    bad = sum(part[0] for part in parts)
    informative = sum(part[4] for part in parts)
    ratio_max = [part[3] for part in parts if not np.isnan(part[3])]
    if differences is not None:
        for part in parts:
            differences.merge(part[5])
    evidence = None
    if bad == 0:
        if row_bits is not None:
            flat = kept.reshape(-1, outs) if kept is not None else None
            evidence = ev.weigh_rows(row_bits, (lambda chosen: flat[chosen]) if flat is not None
                                     else (lambda chosen: at(chosen)[0]),
                                     informative=informative, compared=int(batch * height * width * outs),
                                     fitted=0, needed=needed,
                                     windows_at=lambda chosen: _window_keys_at(problem, expl, tk, chosen, (top, left),
                                                                               (height, width)),
                                     spread=ev.same_window_spread(problem.n, *problem.extent(precision)))
        else:
            evidence = ev.Evidence(0.0, needed, 0, 0, 0, 0.0)
    worst = max(ratio_max) if ratio_max else float("nan")
    # np.max, as over the whole output: NaN if any block's is.
    residual_max = float(np.max([part[1] for part in parts])) if parts else float("nan")
    bound_max = float(np.max([part[2] for part in parts])) if parts else float("nan")
    full = _Full(expl.with_(scale=1.0, bias=0.0), bad, mismatch, residual_max, bound_max,
                 worst, None, None, evidence, int(rows.size * cols.size * batch * outs), 0)
    return full, differences


class _Differences:
    """|output - reference| summarised a block of rows at a time (what the statistics need of
    the reference): its first largest element (NaN first, as argmax has it), the reference
    there, and the largest relative difference where the reference is not 0."""

    def __init__(self, output: np.ndarray):
        self.output = output
        self.index: Optional[tuple] = None
        self.max_abs: Optional[float] = None
        self.reference_at: Optional[float] = None
        self.relative: list = []

    @classmethod
    def of(cls, output: np.ndarray, reference) -> "_Differences":
        """From a reference array, or from (sample, first row, values) blocks of one."""
        differences = cls(output)
        blocks = reference
        if isinstance(reference, np.ndarray):
            rows_per = max(1, (1 << 17) // max(1, reference[0, :1].size))
            blocks = ((n, r0, reference[n, r0:r0 + rows_per]) for n in range(reference.shape[0])
                      for r0 in range(0, reference.shape[1], rows_per))
        space = Workspace()
        for n, i0, values in blocks:
            diff = np.subtract(output[n, i0:i0 + values.shape[0]], values, dtype=np.float64,
                               out=space.get("diff", values.shape))
            differences.add(n, i0, values, np.abs(diff, out=diff), space)
        return differences

    def add(self, n: int, i0: int, reference: np.ndarray, diff: np.ndarray, space: Workspace) -> None:
        """A block: `reference` rows i0... of sample n and `diff`, |output - reference| there."""
        self.merge(self.summary(n, i0, reference, diff, space))

    @staticmethod
    def summary(n: int, i0: int, reference: np.ndarray, diff: np.ndarray, space: Workspace) -> tuple:
        """What `merge` keeps of a block (see `add`), computed apart from the others: (its
        first largest difference, where, the reference there, its largest relative one)."""
        at = int(np.argmax(diff))
        value = float(diff.reshape(-1)[at])
        local = np.unravel_index(at, diff.shape)
        index = (n, i0 + int(local[0]), int(local[1]), int(local[2]))
        relative = None
        nonzero = np.not_equal(reference, 0, out=space.get("nonzero", reference.shape, bool))
        if nonzero.any():
            ratios = space.get("scratch", diff.shape)
            np.divide(diff, reference, out=ratios, where=nonzero)
            np.abs(ratios, out=ratios)
            relative = np.max(ratios, where=nonzero, initial=0.0)
        return value, index, float(reference[local]), relative

    def merge(self, summary: tuple) -> None:
        """A block's `summary`, blocks taken in order."""
        value, index, reference_at, relative = summary
        if self.max_abs is None or (not np.isnan(self.max_abs) and (value > self.max_abs or np.isnan(value))):
            self.index, self.max_abs, self.reference_at = index, value, reference_at
        if relative is not None:
            self.relative.append(relative)


def _windows(problem: _Problem, expl: Explanation, kernel: np.ndarray, chosen: np.ndarray, corner, window,
             dense: bool = False):
    """The windows (m, taps) of a candidate at positions `chosen` (flat indices into the
    compared window of (N, rows, cols) positions starting at `corner`), inputs rounded to
    its precision: the kernel's taps alone, or with `dense` every pixel of the dilated
    span (what a product with the dilated kernel reads)."""
    height, width = window
    samples = chosen // (height * width)
    rows = corner[0] + (chosen // width) % height
    cols = corner[1] + chosen % width
    stride, dilation = tuple(expl.stride), tuple(expl.dilation)
    kh, kw = kernel.shape[:2]
    origin = window_origin(expl.padding, (kh, kw), expl.offset, problem.image_hw, stride, dilation)
    constant = expl.boundary == "constant"
    windows = gather_windows(problem.image, expl.boundary, rows * stride[0] + origin[0], cols * stride[1] + origin[1],
                             (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1, samples=samples,
                             cval=expl.cval if constant else 0.0)
    if not dense:
        windows = windows[:, ::dilation[0], ::dilation[1]]
    rounding = problem.rounding(expl.precision)
    if rounding is not None:
        # Rounding is elementwise; a constant boundary's border value is read as given.
        windows = np.ascontiguousarray(windows)
        inside = gather_windows(np.broadcast_to(1.0, problem.image.shape), "zero",
                                rows * stride[0] + origin[0], cols * stride[1] + origin[1],
                                (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1,
                                samples=samples) if constant else None
        rounded = rounding(windows.copy())
        windows = rounded if inside is None else np.where(
            (inside if dense else inside[:, ::dilation[0], ::dilation[1]]) != 0, rounded, windows)
    return windows.reshape(chosen.size, math.prod(windows.shape[1:]))


def _chunked(function, chosen: np.ndarray, kernel: np.ndarray, problem: _Problem, expl: Explanation):
    """`function(part)` over `chosen` a few thousand positions at a time (a large kernel's
    windows stay within _SEARCH_BYTES), the results joined."""
    span = ((kernel.shape[0] - 1) * expl.dilation[0] + 1) * ((kernel.shape[1] - 1) * expl.dilation[1] + 1)
    step = max(1, _SEARCH_BYTES // (8 * span * problem.image.shape[3]))
    parts = [function(chosen[a:a + step]) for a in range(0, chosen.size, step)] or [function(chosen)]
    return tuple(np.concatenate(p) for p in zip(*parts)) if isinstance(parts[0], tuple) else np.concatenate(parts)


def _values_at(problem: _Problem, expl: Explanation, kernel: np.ndarray, chosen: np.ndarray, corner, window):
    """(values, magnitudes) of a candidate at positions `chosen` (see `_windows`)."""
    wide = problem.wide_kernel(kernel, tuple(expl.dilation))
    flat = wide.reshape(-1, wide.shape[3])

    def part(indices):
        taps = _windows(problem, expl, kernel, indices, corner, window, dense=True)
        return taps @ flat, np.abs(taps) @ np.abs(flat)

    return _chunked(part, chosen, kernel, problem, expl)


def _window_keys_at(problem: _Problem, expl: Explanation, kernel: np.ndarray, chosen: np.ndarray, corner, window):
    """evidence.window_keys of the candidate's windows at positions `chosen` (see `_windows`)."""
    return _chunked(lambda indices: ev.window_keys(_windows(problem, expl, kernel, indices, corner, window)),
                    chosen, kernel, problem, expl)


# An FFT's rounding noise is spread over the output: its largest element stays within a
# small multiple of its median (measured on real scipy.signal.fftconvolve outputs, 8x8 to
# 200x200, float32 and float64, with and without 1e6 outliers: max/median 2.7 to 16).
# A residual with a few elements far above the rest is corrupted elements, not FFT
# noise, whatever the (loose, normwise) FFT bound would allow.
_FFT_PEAK_TO_MEDIAN = 64.0


# An FFT's rounding error is about the same size whichever library computes it: its RMS
# over the output, measured against convcheck's own FFT of the same inputs at the same
# precision (`_fft_simulated`), was 0.76 to 1.01 times the simulation's on real outputs of
# scipy.signal.fftconvolve and oaconvolve (float32, float64, with and without 1e5
# outliers), OpenCV's DFT-based filter2D (float64: 0.97 to 0.99; float32, which OpenCV
# sums directly: 0.12) and NNPACK's 16x16-tile FFT (0.76 to 0.95); Winograd outputs read
# as FFTs give 10 to 11. A residual several times larger than an FFT makes is not its
# rounding, however loose the rigorous normwise bound: an output computed directly from a
# kernel rounded to float16 (not in the vocabulary) fits within that bound but gives 1.3e3,
# and a direct float32 output plus a bias of 17 units in the last place gives 13. Four
# times the largest ratio measured on real FFTs.
_FFT_RMS_RATIO = 4.0


def _fft_magnitude_implausible(problem: _Problem, expl: Explanation, values, residual, keep) -> bool:
    """True when the residual's RMS (over `keep`, the compared, unclipped elements) exceeds
    `_FFT_RMS_RATIO` times that of a simulated FFT of the candidate (its scale and bias
    applied, the result stored as the candidate stores it): too large to be FFT rounding.
    This only takes an explanation away (the safe direction); the bound still decides."""
    if not np.any(keep):
        return False
    scale = np.asarray(expl.scale, dtype=np.float64)
    bias = np.asarray(expl.bias, dtype=np.float64)
    predicted = values * scale + bias
    simulated = _fft_simulated(problem, expl, values.shape) * scale + bias
    storage = expl.output_precision or ("float32" if expl.precision == "tfloat32" else expl.precision)
    if storage in prec.INTEGER_RANGES:
        low, high = prec.INTEGER_RANGES[storage]
        simulated = np.clip(np.rint(simulated), low, high)
    else:
        simulated = prec.round_to(simulated, storage)
    expected = float(np.sqrt(np.mean(np.square(simulated - predicted)[keep])))
    seen = float(np.sqrt(np.mean(np.square(residual)[keep])))
    return not seen <= _FFT_RMS_RATIO * expected


def _fft_simulated(problem: _Problem, expl: Explanation, shape) -> np.ndarray:
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


def _implausible(problem: _Problem, expl: Explanation, values, residual, compared, fit: str = "none"):
    """For candidates whose bound alone cannot show the rounding really happened, a mask
    of the elements that argue against it (None when the data agree):

    - tfloat32 outputs are float32 values, so nothing but the bound speaks for TF32: the
      output must lie closer to a TF32 computation (inputs cut to 10 bits, truncated or
      rounded) than to the plain float32 one, or TF32 is not what happened;
    - an FFT (algorithm 'fft') must leave residuals that look like its spread noise, no
      element above `_FFT_PEAK_TO_MEDIAN` times their median.
    Both only take explanations away (the safe direction).
    """
    mask = np.ones(residual.shape, dtype=bool) if compared is None else np.broadcast_to(compared, residual.shape)
    limits = _limits(expl.activation, expl.output_precision)
    clipped = _clipped(problem.output, limits)
    unclipped = mask if clipped is None else mask & ~clipped
    if expl.algorithm == "fft":
        r = residual[mask]
        typical = float(np.median(r)) if r.size else 0.0
        if r.size and float(np.max(r)) > _FFT_PEAK_TO_MEDIAN * typical:
            return (residual > _FFT_PEAK_TO_MEDIAN * typical) & mask
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
        # take no part in the fit and count by how far they lie on the wrong side: `_residual`.)
        kind = fit if _fit_kind(fit) in ("bias", "scale", "both") else "none"
        weights = unclipped.astype(np.float64)

        def remaining(computed) -> float:
            s, b = _fit(computed, problem.output, kind, weights)
            if not _usable_fit(s, b):
                s, b = 1.0, 0.0
            return float(np.sum(np.square(_residual(problem.output, computed * s + b, limits))[mask]))

        image, kernel = problem.rounded("float32")
        closer = False
        plain = remaining(values)
        for mode in ("truncate", "nearest"):
            tk = transform_kernel(prec.round_tf32(kernel, mode), expl.kernel_transform)
            tf_values, _ = correlate(prec.round_tf32(image, mode), tk, padding=expl.padding, boundary=expl.boundary,
                                     offset=expl.offset, stride=tuple(expl.stride), dilation=tuple(expl.dilation),
                                     groups=problem.groups)
            if remaining(tf_values) < plain:
                closer = True
                break
        if not closer:
            return mask.copy()
    return None


# A Winograd computation's error at each element is a sum of many roundings over the same
# tile transforms, each a fraction of that element's bound: the fraction realised, |error| /
# bound, is alike over the output. On real NNPACK F(6x6,3x3) outputs (1 to 64 channels,
# 12x12 to 36x36, normal, uniform, 8-bit and 1e4-outlier data, 48 outputs) its largest
# value is 8 to 21 times its median. An element far above the
# rest is a corrupted element, not Winograd rounding, whatever the (wide) bound would allow.
_WINOGRAD_PEAK_TO_MEDIAN = 64.0
_WINOGRAD_USERS = {"F(6x6,3x3)": "NNPACK's CPU algorithm for 3x3 kernels",
                   "F(4x4,3x3)": "as GPU libraries such as cuDNN use",
                   "F(2x2,3x3)": "as GPU libraries such as cuDNN use"}
# Each precision's smallest normal number (finfo(...).tiny; bfloat16 has float32's exponent
# range), written out since asking ml_dtypes' finfo costs its 6 ms import: what flushing a
# subnormal result to zero can cost (NNPACK runs with denormals disabled), and where
# subnormal inputs begin.
_SMALLEST_NORMAL = {"float32": 2.0 ** -126, "float64": 2.0 ** -1022, "bfloat16": 2.0 ** -126,
                    "float16": 2.0 ** -14}


def _winograd_precisions(precisions) -> list[str]:
    """The precisions a Winograd candidate may have: those that accumulate in their own format
    (float32, float64); Winograd with transforms stored in half precision is not modelled."""
    return [q for q in precisions if q in ("float64", "float32")]


def _winograd_implausible(residual: np.ndarray, bound: np.ndarray, compared, tile: Optional[str]):
    """For algorithm 'winograd', a mask of the elements that argue against it (None when the
    data agree): every compared element when the residual follows no tile size's error
    pattern (`tile` None, see `_winograd_tile`), else those whose |residual| / bound is above
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


def _winograd_tile(problem: _Problem, expl: Explanation, values: np.ndarray, mags: np.ndarray, compared):
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
    other error. `_pattern_ratio` compares the two spreads: below 1 the residual sides with
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
        ratio = _pattern_ratio(residual, term, mags, mask, winograd.tile_size(tile))
        if ratio < 1.0 and (best is None or ratio < best[0]):
            best = (ratio, tile)
    if best is None:
        return None, np.maximum.reduce(list(terms.values()))
    return best[1], terms[best[1]]


def _pattern_ratio(residual, term, mags, mask, m: int) -> float:
    """How closely |residual| follows the Winograd error pattern `term` (period m) rather than
    the direct magnitudes `mags` (see `_winograd_tile`): the spread (standard deviation of the
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


def _winograd_applies(problem: _Problem, layouts: list[_Layout]) -> list[_Layout]:
    """The layouts a Winograd F(m x m, 3 x 3) computation can have: a 3x3 kernel at stride 1
    and dilation 1 (every transform of a 3x3 kernel is 3x3)."""
    if tuple(problem.kernel.shape[:2]) != (3, 3):
        return []
    return [lay for lay in layouts if tuple(lay.stride) == (1, 1) and tuple(lay.dilation) == (1, 1)]


def _explanation(struct: _Structure, precision: str, scale, bias, base: Explanation,
                 output_precision: Optional[str] = None) -> Explanation:
    """A structure as an explanation; `base` carries the fields every candidate shares (for a
    'constant' boundary the fitted border value comes in the `bias` slot); `output_precision`
    the type the result was stored in, when not the precision's own."""
    if struct.fit == "cval":
        return base.with_(kernel_transform=struct.transform, padding=struct.padding, boundary="constant",
                          offset=struct.offset, precision=precision, stride=tuple(struct.stride),
                          dilation=tuple(struct.dilation), cval=float(bias), output_precision=output_precision)
    kind = _fit_kind(struct.fit)
    return base.with_(kernel_transform=struct.transform, padding=struct.padding, boundary=struct.boundary,
                      offset=struct.offset, precision=precision, stride=tuple(struct.stride),
                      dilation=tuple(struct.dilation),
                      bias=_as_value(bias) if kind in ("bias", "both") else 0.0,
                      scale=_as_value(scale) if kind in ("scale", "both") else 1.0,
                      activation=struct.activation, output_precision=output_precision)


def index_in_user_shape(index, user_shape: tuple, reading: Optional[str] = None) -> tuple[int, ...]:
    """An (n, i, j, channel) index into the canonical (N, Ho, Wo, C_out) output (or an
    (i, j, channel) one) as an index into the caller's own array.

    `reading` names the caller's axes in order ('hwc', 'nchw', 'hw', 'nhw', ...); by
    default it follows the array's rank in channels-last order.
    """
    values = [int(x) for x in index]
    if len(values) == 3:
        values = [0] + values
    by_axis = dict(zip("nhwc", values))
    if reading is None:
        reading = {2: "hw", 3: "hwc", 4: "nhwc"}.get(len(user_shape), "hwc")
    return tuple(by_axis[axis] for axis in reading)


def _where(full: _Full, kernel_hw: tuple[int, int], to_user) -> tuple[str, str]:
    """Where a mismatch sits: (category, detail sentence); `to_user` maps canonical indices.

    Read from reductions of the mask (never an index array per mismatched element)."""
    bad = full.mismatch
    count = full.bad
    total = full.compared or bad.size
    out_h, out_w = bad.shape[1:3]
    band = max(kernel_hw)
    all_on_border = not bad[:, band:out_h - band, band:out_w - band].any()
    where_batch = ""
    if bad.shape[0] > 1:
        hit = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
        where_batch = (f" (in {hit.size} of {bad.shape[0]} samples of the batch"
                       + (f": sample {hit[0]}" if hit.size == 1 else "") + ")")
    if count <= max(3, total // 100) and not all_on_border:
        positions = ", ".join(str(list(to_user(idx))) for idx in _first_true(bad, 5))
        return "a few pixels", (f"{count} of {total} elements differ, at {positions}" + (" ..." if count > 5 else "")
                                + where_batch)
    if all_on_border:
        return "border", f"{count} of {total} elements differ, all within {band} pixels of the edge{where_batch}"
    if count > total // 2:
        return "everywhere", f"{count} of {total} elements differ, across the whole output{where_batch}"
    rows = np.flatnonzero(bad.any(axis=(0, 2, 3)))
    cols = np.flatnonzero(bad.any(axis=(0, 1, 3)))
    return "a region", (f"{count} of {total} elements differ, in rows {rows.min()}-{rows.max()}, "
                        f"columns {cols.min()}-{cols.max()}{where_batch}")


def _first_true(mask: np.ndarray, count: int) -> list:
    """The first `count` indices (in C order) where `mask` is True, reading it a block at a time."""
    found: list = []
    for n in range(mask.shape[0]):
        step = max(1, (1 << 20) // max(1, mask[n, :1].size))
        for r0 in range(0, mask.shape[1], step):
            for idx in np.argwhere(mask[n, r0:r0 + step])[:count - len(found)]:
                found.append((np.int64(n), np.int64(r0 + idx[0]), idx[1], idx[2]))
            if len(found) >= count:
                return found
    return found


def _baseline(inputs, padding: str, stride, dilation, groups) -> Explanation:
    """The expected computation: what the caller declared, the contract's defaults elsewhere."""
    declared_groups = groups if groups is not None else getattr(inputs, "expected_groups", 1)
    return Explanation(padding=padding, stride=tuple(stride), dilation=tuple(dilation), groups=int(declared_groups),
                       output_layout=getattr(inputs, "declared_output_layout", "hwc"),
                       kernel_layout=getattr(inputs, "kernel_layout", "hwio"),
                       kernel_axis=getattr(inputs, "kernel_axis", None))


@single_threaded_blas()  # many small matrix products: BLAS threads cost more than they gain
def diagnose(inputs, *, padding: str = "same", precision: Optional[str] = None, stride=(1, 1),
             dilation=(1, 1), groups: Optional[int] = None, algorithm: str = "direct",
             keep_arrays: bool = False, output_precision: Optional[str] = None) -> Diagnosis:
    """Diagnose `inputs.output` (an `convcheck.inputs.Inputs` with an output) against the reference.

    `padding`, `stride`, `dilation` and `groups` are what the caller expected (the
    baseline; `groups` None: what the kernel layout declares, else 1); `precision` the
    precision it expected the computation to run in (default: the inputs' own);
    `algorithm` how it expected the sums to be computed ('direct', 'fft' or 'winograd');
    `output_precision` the type it expected the result to be stored in (default: the
    precision's own, e.g. 'float32' for a library that sums bfloat16 inputs in float32
    and returns float32). The verdict is `equal` when the expected computation reproduces the output within its rigorous
    bound and with enough evidence, `explained` when the simplest other candidate does,
    else `unexplained`.

    Readings the shapes cannot settle are tried in turn, the first that explains the
    output winning: a 1-D kernel along the rows, then along the columns (`kernel_axis`);
    the output as given, then with its H and W axes swapped (`output_transform`); then
    the kernel's axes in another order and the image's channels reversed (`kernel_layout`,
    `channel_order`: see `_other_readings`).
    """
    options = dict(padding=padding, precision=precision, stride=stride, dilation=dilation, groups=groups,
                   algorithm=algorithm, keep_arrays=keep_arrays, output_precision=output_precision)
    others = None
    if getattr(inputs, "kernel_reading", None) is not None:
        # The declared kernel layout fits no shape: this reading is one of several searched.
        others = _readings_of(inputs)
        options["readings"] = 1 + len(others)
    diagnosis = _diagnose(inputs, **options)
    if inputs.kernel_axis == "rows" and diagnosis.verdict is not Verdict.EQUAL:
        columns = _diagnose(replace(inputs, kernel=np.swapaxes(inputs.kernel, 0, 1), kernel_axis="columns"),
                            **options)
        # The reading that explains with fewer changed fields (a column kernel is not a
        # transposed row kernel); rows on a tie.
        if _rank(columns) < _rank(diagnosis):
            diagnosis = columns
    if diagnosis.verdict is Verdict.UNEXPLAINED and not diagnosis.cannot_decide:
        reading = inputs.output_reading or "nhwc"
        swapped = replace(inputs, output=np.swapaxes(inputs.output, 1, 2),
                          output_reading=reading.translate(str.maketrans("hw", "wh")))
        # A square output fits either way: search its transpose only when it is nearer the
        # expected computation than the output as given (a whole second search otherwise).
        if diagnosis.stats.mismatched is None or _nearer_transposed(swapped, diagnosis, options):
            transposed = _diagnose(swapped, output_transform="transpose", **options)
            if transposed.verdict is not Verdict.UNEXPLAINED:
                diagnosis = transposed
    return _other_readings(inputs, diagnosis, options, others)


def _readings_of(inputs) -> list:
    """The other readings of the kernel's axes and the image's channels (convcheck.inputs.other_readings)."""
    from .inputs import other_readings
    return other_readings(inputs) if getattr(inputs, "raw_kernel", None) is not None else []


def _other_readings(inputs, diagnosis: Diagnosis, options: dict, others: Optional[list] = None) -> Diagnosis:
    """The output explained with the kernel's axes or the image's channels read otherwise
    (CONTRACT section 2, Layout: `kernel_layout`, `channel_order`), when the reading given
    explains nothing; `others` the readings when already listed.

    Tried only when the given reading is unexplained, and not for want of evidence (what
    passes but cannot decide must not become a verdict under another reading). Each reading
    (convcheck.inputs.other_readings: another order of the kernel's axes, OIHW weights
    reshaped into HWIO, the image's channels reversed, or both) is one more whole search, so
    every search counts all of them in the evidence rule's candidate count (`readings`), and
    each searches only the simplest geometry stage with direct summation and single
    boundary rules (`narrow`): a mis-read kernel on top of an undeclared dilation, an FFT or
    a per-axis boundary stays unexplained rather than costing a full search per reading.
    Fewest changed fields win, the likeliest reading on a tie; a reading that passes but
    cannot decide ends the search, as a pass does in `_diagnose`. The statistics before the
    explanation stay those of the reading given (the reference the caller expected), or
    none when the declared layout fits no shape.
    """
    declared = diagnosis
    misread = getattr(inputs, "kernel_reading", None) is not None
    searched = 0
    if diagnosis.verdict is Verdict.UNEXPLAINED and not diagnosis.cannot_decide:
        others = _readings_of(inputs) if others is None else others
        best: Optional[Diagnosis] = None
        nearest: Optional[Diagnosis] = None   # the unexplained reading whose closest candidate misses least
        for reading in others:
            changes = (reading.kernel_reading not in (None, reading.kernel_layout)) + (
                reading.channel_order != "as_given")
            if best is not None and _rank(best)[1] <= changes:
                break  # every reading from here on changes at least as many fields
            found = _diagnose(reading, **{**options, "readings": 1 + len(others), "narrow": True})
            searched += 1
            if found.cannot_decide and best is None:
                best = found
                break
            if found.verdict is not Verdict.UNEXPLAINED and (best is None or _rank(found) < _rank(best)):
                best = found
            elif found.verdict is Verdict.UNEXPLAINED and _misses(found) < min(_misses(nearest), _misses(declared)):
                nearest = found
        if best is not None:
            diagnosis = best
        elif nearest is not None:
            diagnosis = nearest   # unexplained still, but its closest candidate and where it misses say more
    notes = list(diagnosis.notes)
    if misread:
        notes.append(f"the kernel's shape {tuple(inputs.kernel_shape)} fits the image and output only with its axes "
                     f"in another order than the declared {inputs.kernel_layout.upper()}: it was read as "
                     f"{inputs.kernel_reading.upper()} ({_axis_names(inputs.kernel_reading)}) first; pass "
                     f"--kernel-layout {inputs.kernel_reading} (kernel_layout='{inputs.kernel_reading}') "
                     "if that is its layout")
    if diagnosis.verdict is Verdict.UNEXPLAINED and not diagnosis.cannot_decide and searched:
        notes.append(f"{searched} other reading{'s' if searched != 1 else ''} of the kernel's axes and the image's "
                     f"channels (kernel_layout, channel_order) {'were' if searched != 1 else 'was'} searched too; "
                     "none explains the output")
    if diagnosis is declared and not misread:
        return replace(diagnosis, notes=tuple(notes)) if notes != list(diagnosis.notes) else diagnosis
    stats, arrays = diagnosis.stats, diagnosis.arrays
    before = None if misread else declared
    stats = replace(stats, **{name: getattr(before.stats, name) if before is not None else None
                              for name in ("max_abs_diff", "max_rel_diff", "mismatched", "worst_index",
                                           "worst_output", "worst_reference")})
    if arrays is not None:
        # Plots show one sample, chosen per diagnosis: the declared reference only when there is one.
        kept = before is not None and before.arrays is not None and inputs.output.shape[0] == 1
        arrays = replace(arrays, reference=before.arrays.reference if kept else None,
                         bound_before=before.arrays.bound_before if kept else None)
    return replace(diagnosis, stats=stats, arrays=arrays, notes=tuple(notes))


def _misses(diagnosis: Optional[Diagnosis]) -> float:
    """How many elements an unexplained diagnosis's closest candidate leaves beyond the bound."""
    after = diagnosis.stats.mismatched_after if diagnosis is not None and diagnosis.closest is not None else None
    return float("inf") if after is None else after


def _axis_names(layout: str) -> str:
    from .inputs import axis_names
    return axis_names(layout)


def _nearer_transposed(swapped, diagnosis: Diagnosis, options: dict) -> bool:
    """Whether the transposed output has fewer elements beyond the expected computation's bound."""
    quick = {k: v for k, v in options.items() if k in ("padding", "precision", "stride", "dilation", "groups",
                                                      "algorithm", "output_precision")}
    problem = _Problem(swapped, _baseline(swapped, quick["padding"], geometry_pair(quick["stride"], "stride"),
                                          geometry_pair(quick["dilation"], "dilation"), quick["groups"])
                       .with_(algorithm=quick["algorithm"], output_precision=quick["output_precision"]),
                       quick["precision"], quick["output_precision"])
    expected = _Layout("identity", problem.baseline.padding, problem.baseline.stride, problem.baseline.dilation)
    if expected not in _layouts(problem, problem.baseline):
        return False
    full, _ = _evaluate_full(problem, problem.baseline.with_(groups=problem.groups), "none",
                             needed=ev.needed_bits(1), keep_values=False)
    return full.bad < diagnosis.stats.mismatched


def _rank(diagnosis: Diagnosis) -> tuple:
    order = {Verdict.EQUAL: 0, Verdict.EXPLAINED: 1, Verdict.UNEXPLAINED: 2}[diagnosis.verdict]
    changed = len(diagnosis.explanation.changed_fields(diagnosis.baseline)) if diagnosis.explanation else 0
    return order, changed


def _diagnose(inputs, *, padding: str = "same", precision: Optional[str] = None, stride=(1, 1),
              dilation=(1, 1), groups: Optional[int] = None, algorithm: str = "direct",
              keep_arrays: bool = False, output_transform: str = "identity", readings: int = 1,
              narrow: bool = False, output_precision: Optional[str] = None) -> Diagnosis:
    """`diagnose` for one reading of the kernel and output (see there).

    `readings` is how many readings of the kernel and image the whole diagnosis searches
    (each is one more search: the evidence rule's candidate count grows by that factor);
    `narrow` searches only the simplest geometry stage and the first pass (see
    `_other_readings`)."""
    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    if padding not in PADDINGS:
        raise InputError(f"padding {padding!r} is not one of {', '.join(PADDINGS)}")
    if precision is not None and precision not in prec.SIGNIFICAND_BITS:
        raise InputError(f"precision {precision!r} is not one of {', '.join(prec.SIGNIFICAND_BITS)}; "
                         "pass one of them, or None for the inputs' own precision")
    if output_precision is not None and output_precision not in OUTPUT_PRECISIONS:
        raise InputError(f"output_precision {output_precision!r} is not one of {', '.join(OUTPUT_PRECISIONS)}; "
                         "pass one of them, or None for the precision's own")
    stride, dilation = geometry_pair(stride, "stride"), geometry_pair(dilation, "dilation")
    problem = _Problem(inputs, _baseline(inputs, padding, stride, dilation, groups)
                       .with_(algorithm=algorithm, output_precision=output_precision), precision, output_precision)
    if algorithm == "winograd" and (tuple(problem.kernel.shape[:2]) != (3, 3) or stride != (1, 1)
                                    or dilation != (1, 1)):
        raise InputError(f"algorithm 'winograd' (Winograd F(m x m, 3 x 3)) applies only to 3x3 kernels at stride 1 "
                         f"and dilation 1, not a {tuple(problem.kernel.shape[:2])} kernel at stride {list(stride)}, "
                         f"dilation {list(dilation)}; use algorithm 'direct' or 'fft'")
    baseline = problem.baseline
    shared = baseline.with_(groups=problem.groups, output_layout=getattr(inputs, "output_layout", "hwc"),
                            output_transform=output_transform,
                            kernel_layout=getattr(inputs, "kernel_reading", None) or baseline.kernel_layout,
                            channel_order=getattr(inputs, "channel_order", "as_given"))
    fixed = len(shared.changed_fields(baseline))
    kernel_hw = problem.kernel.shape[:2]
    total = int(problem.output.size)
    reading = getattr(inputs, "output_reading", None)
    output_shape = inputs.output_shape or problem.output.shape

    def to_user(index):
        return index_in_user_shape(index, tuple(output_shape), reading)

    layouts = _layouts(problem, baseline)
    if not layouts:
        h, w = problem.image_hw
        sizes = ", ".join(f"{pad} {output_size(pad, h, w, *kernel_hw, stride, dilation)}" for pad in PADDINGS)
        reason = (f"output shape {tuple(problem.output.shape[1:3])} fits no padding, stride or dilation of a "
                  f"{(h, w)} image with a {tuple(kernel_hw)} kernel ({sizes}); was it cropped?")
        stats = Stats(None, None, None, total, None, None, None)
        return Diagnosis(Verdict.UNEXPLAINED, None, (), stats, baseline, reason=reason)

    # "Before" statistics: the reference of the output's own size, at the expected precision.
    identity = [lay for lay in layouts if lay.transform == "identity"]
    expected = _Layout("identity", padding, stride, dilation)
    stats_layout = expected if expected in identity else (
        min(identity, key=lambda lay: _geometry_changes(lay, baseline) + (lay.padding != padding))
        if identity else None)
    before: Optional[_Full] = None
    reference = None
    if stats_layout is not None:
        start = shared.with_(padding=stats_layout.padding, stride=stats_layout.stride, dilation=stats_layout.dilation)
        before, values = _evaluate_full(problem, start, "none", needed=ev.needed_bits(1), keep_arrays=keep_arrays)
        geometry = dict(padding=stats_layout.padding, stride=stats_layout.stride, dilation=stats_layout.dilation,
                        groups=problem.groups)
        reference = values if problem.rounding_is_exact(baseline.precision) else (
            correlate(problem.image, problem.kernel, **geometry)[0] if keep_arrays else _Differences.of(
                problem.output, ((n, i0, v) for n, i0, v, _ in correlate_blocks(problem.image, problem.kernel,
                                                                                **geometry))))
        del values

    accepted: Optional[_Full] = None
    undecided: Optional[_Full] = None   # passes the bound, but with too little evidence
    alternatives: list[Explanation] = []
    closest: Optional[_Full] = None
    tried_full: list[_Full] = [before] if before is not None else []
    search = _Search(problem, [lay for lay in layouts if _geometry_changes(lay, baseline) == 0] or layouts)
    # The expected computation stores its result in its own precision: an output that
    # precision cannot hold was stored otherwise (see _Problem.wide_storage), whatever the bound.
    if before is not None and before.ok and stats_layout == expected and baseline.precision not in problem.wide_storage:
        _control(search, before, _Structure("identity", padding, "zero", (0, 0), "none", stride, dilation))
        if before.evidence.decisive and fixed == 0:
            accepted = before
        elif not before.evidence.decisive:
            undecided = before
    best_rejected = None
    stages = sorted({_geometry_changes(lay, baseline) for lay in layouts})
    # An output of a small integer type (uint8, int8, uint16, int16): rounded and saturated
    # to its type first (on a tie that reading wins: a narrower float's rounding can mimic an
    # integer's), then, as a rival, computed exactly, which wins only when strictly simpler.
    storages = [problem.integer_output] if problem.declared_storage else \
        [problem.integer_output, None] if problem.integer_output else [None]
    passes = _algorithm_passes(problem, baseline, layouts, storages)
    all_precisions = problem.precisions
    if narrow:
        passes, stages = passes[:1], stages[:1]
    previous_boundaries = None
    for index, (algorithm_pass, boundaries, storage) in enumerate(passes):
        rival = accepted is not None and storage is None and boundaries is previous_boundaries \
            and len(accepted.explanation.changed_fields(baseline)) > fixed
        previous_boundaries = boundaries
        if (accepted is not None and not rival) or (index > 0 and undecided is not None):
            # A candidate that already passes but cannot decide is the answer's best case: a
            # later pass's smaller search must not turn the same data into a verdict.
            break
        if boundaries[0] != BOUNDARIES[0] and not _border_only(tried_full, kernel_hw):
            continue  # a per-axis rule changes only the border: it cannot mend anything else
        problem.algorithm, problem.boundaries = algorithm_pass, boundaries
        problem.precisions, pass_layouts = all_precisions, layouts
        if algorithm_pass == "winograd":
            problem.precisions = _winograd_precisions(all_precisions)
            pass_layouts = _winograd_applies(problem, layouts)
        problem.set_storage(storage)
        shared = shared.with_(algorithm=algorithm_pass)
        fixed = len(shared.changed_fields(baseline))
        for stage in stages:
            if accepted is not None and len(accepted.explanation.changed_fields(baseline)) <= stage + fixed:
                break  # every candidate of this stage changes at least as many fields
            stage_layouts = [lay for lay in pass_layouts if _geometry_changes(lay, baseline) == stage]
            if not stage_layouts or not problem.precisions:
                continue
            search = _Search(problem, stage_layouts)
            # Every pass may run before a verdict (each only when the ones before found
            # nothing), so the verdict is chosen among the candidates of all of them.
            needed = ev.needed_bits(search.size * len(stages) * readings * len(passes))
            survivors, rejected = search.structures()
            best_rejected = best_rejected or (rejected and (search, rejected, storage))
            candidates = sorted(((_complexity(struct, q, baseline, fixed, problem.storage[q], search.outs), struct, q)
                                 for struct in survivors for q in problem.precisions), key=lambda item: item[0])
            full_checks = tie_checks = 0
            budget = max(_MAX_FULL_CHECKS, min(256, _FULL_CHECK_ELEMENTS // max(1, problem.output.size)))
            for key, struct, q in candidates:
                if accepted is not None and key[0] > len(accepted.explanation.changed_fields(baseline)):
                    break
                if full_checks >= budget or tie_checks >= budget:
                    break
                ok, scale, bias, _ = search.sampled_check(struct, q)
                if not ok:
                    continue
                expl = _explanation(struct, q, scale, bias, shared, problem.storage[q])
                if accepted is not None and key[0] < len(accepted.explanation.changed_fields(baseline)):
                    # A rival pass's strictly simpler candidate: it replaces the answer if it holds.
                    full, _ = _evaluate_full(problem, expl, struct.fit, needed=needed, keep_arrays=keep_arrays,
                                             keep_values=False)
                    full_checks += 1
                    if full.ok:
                        _control(search, full, struct)
                        if full.evidence.decisive:
                            accepted, alternatives = full, []
                    continue
                if accepted is not None:
                    if accepted.explanation == expl or expl.changed_fields(accepted.explanation) == ("precision",):
                        continue  # the answer itself, or at another precision: implied, not a rival
                    # As simple as the answer: a tie when it reproduces the output too.
                    if _same_computation(problem, expl, accepted.explanation):
                        alternatives.append(expl)
                        continue
                    tie, _ = _evaluate_full(problem, expl, struct.fit, needed=needed, keep_values=False)
                    tie_checks += 1
                    if tie.ok:
                        _control(search, tie, struct)
                    if tie.ok and tie.evidence.decisive:
                        alternatives.append(tie.explanation)
                    continue
                full, _ = _evaluate_full(problem, expl, struct.fit, needed=needed, keep_arrays=keep_arrays,
                                         keep_values=False)
                full_checks += 1
                tried_full.append(full)
                if full.ok:
                    _control(search, full, struct)
                    if full.evidence.decisive:
                        accepted = full
                    elif undecided is None:
                        undecided = full
    problem.precisions = all_precisions
    if accepted is not None and accepted is not before and baseline.algorithm == "direct" and not narrow:
        unfitted = _prefer_unfitted(problem, accepted, baseline, keep_arrays)
        if unfitted is not None:
            alternatives, accepted = [accepted.explanation], unfitted
    if accepted is None and undecided is None:
        if best_rejected and not any(f is not before for f in tried_full):
            # The structure nearest on the samples (from the first, direct pass), at the
            # precision that fits most of them.
            problem.algorithm, problem.boundaries = baseline.algorithm, BOUNDARIES
            shared = shared.with_(algorithm=baseline.algorithm)
            search, (struct, _, _), storage = best_rejected
            problem.set_storage(storage)
            fractions = {q: search.sampled_check(struct, q) for q in problem.precisions}
            q = max(problem.precisions, key=lambda name: fractions[name][3])
            _, s, b, _ = fractions[q]
            tried_full.append(_evaluate_full(problem, _explanation(struct, q, s, b, shared, problem.storage[q]),
                                             struct.fit, needed=ev.needed_bits(1), keep_arrays=keep_arrays,
                                             keep_values=False)[0])
        if tried_full:
            # Fewest elements beyond the bound; then the simplest (an FFT's looser bound
            # would otherwise look closer than the expected computation itself).
            closest = min(tried_full, key=lambda f: (f.bad, len(f.explanation.changed_fields(baseline)),
                                                     f.worst_ratio))

    verdict = (Verdict.EQUAL if accepted is before and accepted is not None
               else Verdict.EXPLAINED if accepted is not None else Verdict.UNEXPLAINED)
    after = accepted if accepted is not None else undecided if undecided is not None else closest
    stats = _stats(problem, reference, before, after, to_user)
    where = reason = None
    notes: list[str] = []
    if undecided is not None and accepted is None:
        candidate = ("the expected computation" if undecided is before
                     else describe(undecided.explanation, baseline))
        reason = ev.cannot_decide_reason(undecided.evidence, candidate, undecided.explanation.precision,
                                         subnormal=problem.has_subnormals(undecided.explanation.precision))
    elif verdict is Verdict.UNEXPLAINED and _all_clipped(problem, storages):
        reason = (f"cannot decide: every element of the output sits at {_all_clipped(problem, storages)}, which "
                  "an activation or the integer type gives for any sums beyond it: the output says nothing about "
                  "the computation (a verdict needs at least "
                  f"{100 * ev.MIN_UNCLIPPED_FRACTION:.0f}% of the output unclipped).")
    elif verdict is Verdict.UNEXPLAINED and after is not None:
        where, detail = _where(after, kernel_hw, to_user)
        notes.append(detail)
    if verdict is Verdict.UNEXPLAINED and problem.has_subnormals(baseline.precision):
        notes.append(f"the inputs hold subnormal {baseline.precision} values (nonzero, below its smallest "
                     "normal number): TensorFlow on CPU and many GPU kernels flush them to zero (FTZ/DAZ), "
                     "which changes results there; rescale the data, or compare in float64")
    if inputs.kernel_axis is not None:
        notes.append(f"the 1-D kernel was read along the {inputs.kernel_axis} (as a "
                     f"{'(1, k)' if inputs.kernel_axis == 'rows' else '(k, 1)'} kernel)"
                     + (", which explains it more simply than along the rows" if inputs.kernel_axis == "columns"
                        else ""))
    if after is not None and after.clipped and (verdict is not Verdict.UNEXPLAINED or undecided is not None):
        notes.append(_clipping_note(after))
    if problem.output.shape[0] > 1 and verdict is not Verdict.UNEXPLAINED:
        notes.append(f"one computation explains all {problem.output.shape[0]} samples of the batch")
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
    if accepted is not None and accepted.detail:
        notes.append(accepted.detail)
    arrays = None
    if keep_arrays:
        # Plots show one image: the sample of the batch where the output is worst.
        worst = after if after is not None else before
        sample = int(np.argmax(worst.mismatch.reshape(worst.mismatch.shape[0], -1).sum(axis=1))) \
            if worst is not None else 0

        def one(array):
            return None if array is None else array[sample]

        arrays = DiagnosisArrays(np.asarray(problem.output[sample], dtype=np.float64), one(reference),
                                 one(before.bound if before is not None else None),
                                 one(after.prediction if after is not None else None),
                                 one(after.bound if after is not None else None))
    return Diagnosis(verdict, explanation, causes, stats, baseline,
                     closest=closest.explanation if (closest is not None and verdict is Verdict.UNEXPLAINED) else None,
                     alternatives=tuple(alternatives), where=where, reason=reason, notes=tuple(notes),
                     arrays=arrays, cannot_decide=reason is not None,
                     evidence=after.evidence.to_dict() if after is not None and after.evidence else None)


def _all_clipped(problem: _Problem, storages) -> Optional[str]:
    """The limits ('0', '0 or 6', '0 or 255', ...) at which every output element sits, when some
    activation or integer type the search tried clips them all; else None."""
    for storage in storages:
        for activation in problem.activations_for(storage):
            limits = _limits(activation, storage)
            clipped = _clipped(problem.output, limits)
            if clipped is not None and clipped.all():
                values = sorted({float(v) for v in np.unique(problem.output)})
                return " or ".join(f"{v:g}" for v in values)
    return None


def _clipping_note(full: _Full) -> str:
    """How much of the output a verdict with clipped elements rests on."""
    expl = full.explanation
    what = []
    if expl.activation != "linear":
        what.append("clipped by the " + {"relu": "ReLU (to 0)", "relu6": "ReLU6 (to 0 or 6)"}[expl.activation])
    if expl.output_precision in prec.INTEGER_RANGES:
        low, high = prec.INTEGER_RANGES[expl.output_precision]
        what.append(f"saturated to {expl.output_precision}'s range [{low}, {high}]")
    compared = full.compared or 1
    kept = compared - full.clipped
    return (f"{full.clipped} of {compared} elements are {' or '.join(what)}: each says only that its sum lay "
            f"beyond the limit (checked within the bound), so the verdict rests on the other {kept} "
            f"({100 * kept / compared:.1f}% of the output)")


def _algorithm_passes(problem: _Problem, baseline: Explanation, layouts: list[_Layout], storages) -> list[tuple]:
    """The (algorithm, boundary rules, output storage) passes of the search, in order.

    Direct summation first. When nothing direct explains the output: Winograd for a 3x3
    kernel at stride 1 (what cuDNN and NNPACK pick for such kernels; its componentwise
    bound is tried before the FFT's normwise one, which would also cover its errors), then
    an FFT. Then a different boundary rule per axis, and a constant border, when no single
    rule explains it. A declared Winograd computation is searched with zero padding only
    (no library pads its tiles otherwise). `storages` are the output types the direct
    passes read the output in, in turn (see `_diagnose`); the other passes, its own.
    """
    if baseline.algorithm == "winograd":
        return [("winograd", ("zero",), None)]
    passes = [(baseline.algorithm, BOUNDARIES, storage) for storage in storages]
    if baseline.algorithm == "direct":
        if _winograd_applies(problem, layouts) and _winograd_precisions(problem.precisions):
            passes.append(("winograd", ("zero",), None))
        passes.append(("fft", ("zero",), None))
    passes += [(baseline.algorithm, _BOUNDARY_PAIRS, storage) for storage in storages]
    passes.append((baseline.algorithm, ("constant",), None))
    return passes


def _prefer_unfitted(problem: _Problem, accepted: _Full, baseline: Explanation,
                     keep_arrays: bool = False) -> Optional[_Full]:
    """The answer without its fitted bias or scale, computed by Winograd or an FFT, when that
    reproduces the output too (with enough evidence and the negative control): a structural
    cause, which fits nothing, is preferred to a fitted one that changes as many fields (see
    `_complexity`). The direct pass runs first, and a bias of a few units in the last place
    can absorb an algorithm's rounding where the direct bound is only just exceeded."""
    expl = accepted.explanation
    if (expl.bias == 0.0 and expl.scale == 1.0) or expl.algorithm != "direct" or expl.boundary != "zero":
        return None
    # Only a fitted parameter at the level of rounding may give way: without it the direct
    # computation must still come within twice its bound at every element (|y - d| <=
    # |y - (d + b)| + |b|, and |b| within the bound where the parameter is only rounding).
    # A larger bias or scale is data the direct bound resolves, and an FFT's loose normwise
    # bound must not absorb it (fuzz case 1270: a bias of -0.364 on a 3x10 output; 1609: a
    # bias of -0.187 below one unit in the last place of the largest float16 outputs but
    # six times the bound of the small ones, both claimed as 'algorithm fft').
    plain = expl.with_(bias=0.0, scale=1.0)
    direct, _ = _evaluate_full(problem, plain, "none", needed=accepted.evidence.needed)
    if not direct.worst_ratio <= 2.0:
        return None
    layout = _Layout(expl.kernel_transform, expl.padding, tuple(expl.stride), tuple(expl.dilation))
    saved = problem.algorithm, problem.boundaries
    try:
        for algorithm in ("winograd", "fft"):
            if algorithm == "winograd" and (expl.offset != (0, 0) or not _winograd_applies(problem, [layout])
                                            or expl.precision not in _winograd_precisions([expl.precision])):
                continue
            candidate = plain.with_(algorithm=algorithm)
            if len(candidate.changed_fields(baseline)) > len(expl.changed_fields(baseline)):
                continue
            problem.algorithm, problem.boundaries = algorithm, ("zero",)
            full, _ = _evaluate_full(problem, candidate, "none", needed=accepted.evidence.needed,
                                     keep_arrays=keep_arrays, keep_values=False)
            if full.ok:
                _control(_Search(problem, [layout]), full, _Structure(
                    expl.kernel_transform, expl.padding, "zero", tuple(expl.offset), "none", tuple(expl.stride),
                    tuple(expl.dilation)))
                if full.evidence.decisive:
                    return full
    finally:
        problem.algorithm, problem.boundaries = saved
    return None


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
    out_h, out_w = problem.output.shape[1:3]
    origin = window_origin(a.padding, ka.shape[:2], a.offset, problem.image_hw, a.stride, a.dilation)
    span = ((out_h - 1) * a.stride[0] + 1, (out_w - 1) * a.stride[1] + 1)
    wide = ((ka.shape[0] - 1) * a.dilation[0] + 1, (ka.shape[1] - 1) * a.dilation[1] + 1)
    return all(np.array_equal(extended_image(sample, a.boundary, origin, span, wide),
                              extended_image(sample, b.boundary, origin, span, wide)) for sample in image)


def _stats(problem: _Problem, reference, before: Optional[_Full], after: Optional[_Full], to_user) -> Stats:
    """The numbers of a diagnosis; for a batch, the worst element over all samples."""
    total = int(problem.output.size)
    max_abs = max_rel = mismatched = worst = worst_out = worst_ref = None
    if reference is not None and before is not None:
        differences = reference if isinstance(reference, _Differences) else _Differences.of(problem.output, reference)
        max_abs = differences.max_abs
        max_rel = float(np.max(differences.relative)) if differences.relative else None
        mismatched = before.bad
        worst = to_user(differences.index)
        worst_out = float(problem.output[differences.index])
        worst_ref = differences.reference_at
    residual_after = error_bound = ratio = bad_after = unclipped = None
    if after is not None:
        residual_after, error_bound = after.max_residual, after.max_bound
        ratio, bad_after = after.worst_ratio, after.bad
        if after.clipped and after.compared:
            unclipped = (after.compared - after.clipped) / after.compared
    return Stats(max_abs, max_rel, mismatched, total, worst, residual_after, error_bound,
                 bound_ratio=ratio, worst_output=worst_out, worst_reference=worst_ref,
                 mismatched_after=bad_after, unclipped_fraction=unclipped)


def explain(image, kernel, output, *, padding: str = "same", precision: Optional[str] = None,
            stride=(1, 1), dilation=(1, 1), groups: Optional[int] = None, layout: str = "nhwc",
            kernel_layout: Optional[str] = None, algorithm: str = "direct", keep_arrays: bool = False,
            output_precision: Optional[str] = None) -> Diagnosis:
    """Which computation produced `output` from `image` and `kernel`? Returns a `Diagnosis`.

    Layouts (CONTRACT section 1): image (H, W), (H, W, C) or a batch (N, H, W, C), or with
    `layout="nchw"` (C, H, W) / (N, C, H, W); kernel (kh, kw), HWIO (kh, kw, C_in / groups,
    C_out), OIHW with `kernel_layout="oihw"` (the default with layout "nchw"), or
    (kh, kw, C, multiplier) with `kernel_layout="depthwise"`, or any other order of the letters
    h, w, i, o (e.g. "ohwi"); output in the image's layout
    with its own sizes (a batch of one and a single channel may drop their axes).
    `padding`, `stride`, `dilation` and `groups` are what you expected; `precision` the
    precision you expected (default: the inputs' own, e.g. float64 for float64 data);
    `algorithm` 'fft' when you know the output came from an FFT convolution, 'winograd' from
    Winograd F(m x m, 3 x 3) tiles (a 3x3 kernel at stride 1 and dilation 1);
    `output_precision` the type you expected the result stored in (default: the precision's own).
    Bad arrays raise `convcheck.InputError`. Never imports TensorFlow.
    """
    from .inputs import prepare_inputs
    inputs = prepare_inputs(image, kernel, output, kernel_layout=kernel_layout, padding=padding, layout=layout)
    return diagnose(inputs, padding=padding, precision=precision, stride=stride, dilation=dilation,
                    groups=groups, algorithm=algorithm, keep_arrays=keep_arrays, output_precision=output_precision)
