"""The numeric problem one diagnosis works on: float64 views of the inputs, the precisions
and activations the data allow, rounded inputs (cached), and the bound of a candidate."""

from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np

from . import precision as prec
from . import bounds
from ..geometry import dense_kernel, dilate_kernel, transform_kernel
from ..vocabulary import BOUNDARIES, Explanation
from .candidates import MAX_DILATION, PRECISION_PREFERENCE, folds_offset, winograd_precisions
from .clipping import clip_limits
from .precision import SMALLEST_NORMAL
from .windows import extended_image, window_origin


def leaves_out(shift, size: int):
    """Whether an offset of `shift` input pixels leaves out the elements whose shifted window
    the reference lacks (CONTRACT section 2), along an axis of `size` outputs.

    Only a shift of one pixel on an axis of at least 8 outputs does: the one row or column
    by which an np.roll, PyTorch's padding at stride 2 or scipy's even-kernel centring moves
    a real output. Every other offset compares every element, the windows past the edge
    read through its boundary rule: a left-out element could hide a corrupted one.
    """
    return (np.abs(shift) == 1) & (size >= 8)


class Problem:
    """The numeric problem: float64 views of the inputs plus everything bounds need.

    Canonical layouts: image (N, H, W, C), kernel HWIO (kh, kw, C / groups, C_out),
    output (N, Ho, Wo, C_out).
    """

    def __init__(self, inputs, baseline: Explanation, precision: Optional[str],
                 output_precision: Optional[str] = None, declared_uncertainty: Optional[dict] = None):
        self.inputs = inputs
        self._held_values: dict[tuple[str, str], bool] = {}   # see `holds`
        # Converted to float64 in C order (NHWC, HWIO: what the products read row by row; an
        # NCHW array's transposed view kept its order, and every reshape of it was a gather);
        # float64 arrays as given (no copy of a large image).
        self.image, self.kernel = (a if a.dtype == np.float64 else np.asarray(a, dtype=np.float64, order="C")
                                   for a in (np.asarray(inputs.image), np.asarray(inputs.kernel)))
        self._read_output(inputs)
        self.groups = int(getattr(inputs, "groups", 1))
        self.input_dtypes = (np.dtype(inputs.image.dtype), np.dtype(inputs.kernel.dtype))
        kh, kw, per_group, _ = self.kernel.shape
        self.n = kh * kw * per_group
        native = prec.native_precision(inputs.image, inputs.kernel)
        base_precision = precision or native
        self.baseline = baseline.with_(precision=base_precision)
        self._rounded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._exact: dict = {}
        self._extent: dict[str, tuple[float, float]] = {}
        self._raw_extent: Optional[tuple[float, float]] = None
        self._fft: dict[str, np.ndarray] = {}
        self._winograd: dict[tuple, dict[str, np.ndarray]] = {}   # the last candidate's only: output-sized
        self._models: dict[tuple, prec.PrecisionModel] = {}
        self._declared: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._roundings: dict[str, tuple] = {}
        self.via: Optional[str] = None   # the inputs' rounding: direct (None) or through this format
        self.algorithm = self.baseline.algorithm   # how the sums are modelled; the search may try others too
        self.boundaries = BOUNDARIES               # the boundary rules the search tries in this pass
        self._allow_precisions(base_precision, output_precision, native)
        self.storage: dict[str, Optional[str]] = {}   # output_precision of this pass's candidates
        self.set_storage(None)
        self._allow_activations()
        self._declare(declared_uncertainty)

    def _read_output(self, inputs) -> None:
        """The output as the bound reads it: its own float type (every float32 or float16 value
        is a float64 value; arithmetic with float64 promotes exactly: no output-sized copy),
        its unit roundoff, and whether it may be an integer type's rounding and saturation."""
        output = np.asarray(inputs.output)
        self.output = output if output.dtype.kind == "f" else np.asarray(output, dtype=np.float64)
        self.output_dtype = np.dtype(inputs.output.dtype)
        self.integer_output = self.output_dtype.name if self.output_dtype.name in prec.INTEGER_RANGES else None
        out_precision = prec.dtype_precision(inputs.output.dtype)
        if out_precision is None:  # integer outputs are exact
            self.output_u, self.output_underflow = 0.0, 0.0
        else:
            storage = "float32" if out_precision == "tfloat32" else out_precision
            self.output_u = prec.STORAGE_U[storage]
            self.output_underflow = prec.STORAGE_UNDERFLOW[storage]

    def _allow_precisions(self, base_precision: str, output_precision: Optional[str], native: str) -> None:
        """The precisions the output's values allow (`precisions`), and the format each stores
        its result in when that is not its own (`wide_storage`, `declared_storage`).

        Those narrower than the expected one; where a precision narrower than the inputs'
        own (`native`) is declared, also those from the inputs' own down to it: a float32
        layer declared bfloat16 ran in float32 (hunt 4: it was unexplained, `precision
        float32` never tried)."""
        narrower = [p for p in PRECISION_PREFERENCE if p != base_precision and (
            p in prec.narrower_precisions(base_precision) or p == native or p in prec.narrower_precisions(native))]
        if self.integer_output or self.output_dtype.kind in "iu":
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
        wide_output = output_precision is None and self.output_dtype in (np.float32, np.float64)
        # Values on a fixed-point grid (a fake-quantised output, small integers) are a half
        # format's because of the grid: no evidence for it (`precision.on_a_grid`).
        self.precisions = [base_precision] + [
            p for p in narrower if (self.holds("float32" if p == "tfloat32" else p)
                                    and not (p in half and self.output_dtype.itemsize > 2 and self.holds(p, grid=True)))
            or (wide_output and base_precision in half and p in half)]
        self.all_precisions = list(self.precisions)   # a pass may search fewer (Winograd)
        # Half-precision inputs whose float32 (float64) output bfloat16/float16 cannot hold:
        # the result was not stored in that precision (free evidence from the values), but
        # kept in the wider format it was accumulated in (JAX preferred_element_type).
        self.wide_storage: dict[str, str] = {}
        self.declared_storage = output_precision   # what the caller expects the result stored in
        if output_precision in prec.INTEGER_RANGES:
            self.integer_output = output_precision
        for p in self.precisions:
            if wide_output and p in half and not self.holds(p):
                self.wide_storage[p] = "float32" if self.holds("float32") else "float64"
        # Float inputs rounded to a half precision, summed in float32 and kept wide (JAX
        # preferred_element_type, TPU default precision, tensor cores with a wide output):
        # the output need not be representable in the half precision, so they are searched
        # in a pass of their own when nothing else explains it (passes.algorithm_passes).
        self.wide_halves: list[str] = []
        if wide_output and not self.integer_output and base_precision in ("float32", "float64"):
            self.wide_halves = [p for p in ("bfloat16", "float16") if p not in self.precisions]
            for p in self.wide_halves:
                self.wide_storage[p] = self.output_dtype.name

    def _allow_activations(self) -> None:
        """Activations the values allow: a ReLU never gives a negative and clips to 0; a ReLU6
        also never exceeds 6 and clips to it. Otherwise the linear reading is the only one,
        besides a declared activation (judged like any other: an output it cannot give fails)."""
        self.activations = ["linear"]
        chunks = list(prec.blocks(self.output))   # reductions a block at a time: no output-sized copy
        if self.output.size and all(bool(np.isfinite(c).all()) for c in chunks) \
                and min(float(np.min(c)) for c in chunks) >= 0:
            if any(bool(np.any(c == 0)) for c in chunks):
                self.activations.append("relu")
            if max(float(np.max(c)) for c in chunks) <= 6 and any(bool(np.any(c == 6)) for c in chunks):
                self.activations.append("relu6")
        if self.baseline.activation not in self.activations:
            self.activations.append(self.baseline.activation)

    def _declare(self, uncertainty: Optional[dict]) -> None:
        """The declared scale and bias (CONTRACT section 2a: applied as given, never fitted),
        one number or one per output channel, and how far a runtime's own values of them may
        be from the declared ones (`declared_uncertainty`: a relative one for the scale, an
        absolute one for the bias, e.g. BatchNorm factors a converter folded in its own
        precision)."""
        outs = self.kernel.shape[3]
        self.declared_scale = _channel_values(self.baseline.scale, outs)
        self.declared_bias = _channel_values(self.baseline.bias, outs)
        self.declares_values = bool(np.any(self.declared_scale != 1.0) or np.any(self.declared_bias != 0.0))
        uncertainty = uncertainty or {}
        self.scale_uncertainty = _channel_values(uncertainty.get("scale", 0.0), outs)
        self.bias_uncertainty = _channel_values(uncertainty.get("bias", 0.0), outs)

    def declared_values(self, precision: str) -> tuple[np.ndarray, np.ndarray]:
        """(scale, bias) as declared, rounded to `precision`'s storage format (a runtime keeps
        its parameters in the precision it computes in): arrays of shape () or (C_out,)."""
        if precision not in self._declared:
            storage = "float32" if precision == "tfloat32" else precision
            self._declared[precision] = (prec.round_to(self.declared_scale, storage),
                                         prec.round_to(self.declared_bias, storage))
        return self._declared[precision]

    def uncertainty_term(self, magnitude: np.ndarray, precision: str, kind: str, scale,
                         channels: Optional[np.ndarray] = None, values: Optional[np.ndarray] = None
                         ) -> Optional[np.ndarray]:
        """What the declared parameters' own uncertainty adds to a candidate's bound (None when
        nothing). With y = s' c' + t' computed by a runtime from s', t' near the declared s, t:
        |s' c' - s c'| <= |s' - s| |c'|, and |c'| <= (1 + gamma_n(u)) A (A = |x| (*) |k| the
        magnitudes of the rounded inputs, u the accumulation's unit roundoff; Higham eq. 3.5),
        so |s| r (1 + gamma_n(u)) A for the relative uncertainty r of a scale not fitted, plus
        the absolute uncertainty of a bias not fitted. `kind` is the candidate's fit ('none',
        'bias', 'scale', 'both'); `channels` the output channels `magnitude` holds (all).

        At a half precision the declared values are applied rounded to it (`declared_values`:
        a conv's bias cast to the compute dtype), but a runtime may also keep them in float32
        (Keras and PyTorch autocast run BatchNorm in float32 on a half conv's stored result):
        |s - round(s)| |c'| + |t - round(t)| covers that too, with |c'| <= (1 + u_h)(|v| + c A)
        when the sums `values` (v) are given (c the sums' relative bound, u_h the half format's
        storage: the conv may be stored before the factors apply), (1 + u_h)(1 + gamma_n(u)) A
        otherwise."""
        rel = self.scale_uncertainty if kind in ("none", "bias") else np.zeros(())
        absolute = self.bias_uncertainty if kind in ("none", "scale") else np.zeros(())
        kept = self._kept_wide(precision, kind)
        if channels is not None:
            rel, absolute = (a if a.ndim == 0 else a[channels] for a in (rel, absolute))
            kept = tuple(a if a.ndim == 0 else a[channels] for a in kept)
        if not np.any(rel) and not np.any(absolute) and not any(np.any(a) for a in kept):
            return None
        growth = 1.0 + prec.gamma(self.n, prec.ACCUMULATION_U[precision])
        term = np.abs(scale) * rel * growth * magnitude + absolute
        if any(np.any(a) for a in kept):
            store = 1.0 + prec.STORAGE_U[precision]
            model = self.model(precision, None)
            conv = store * (np.abs(values) + model.relative_coefficient(self.n, scaled=False) * magnitude) \
                if values is not None else store * growth * magnitude
            term = term + kept[0] * conv + kept[1]
        return term

    def _kept_wide(self, precision: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(|s - round(s)|, |t - round(t)|) of the declared scale and bias not fitted by `kind`,
        at a half precision (zeros otherwise): see `uncertainty_term`."""
        zero = np.zeros(())
        if precision not in ("float16", "bfloat16") or not self.declares_values:
            return zero, zero
        scale, bias = self.declared_values(precision)
        return (np.abs(scale - self.declared_scale) if kind in ("none", "bias") else zero,
                np.abs(bias - self.declared_bias) if kind in ("none", "scale") else zero)

    def set_storage(self, integer: Optional[str]) -> None:
        """The output precision this pass's candidates are stored in: an integer type for
        every precision, or (None) each precision's own format, save `wide_storage`."""
        self.storage = {q: integer if integer is not None else self.declared_storage or self.wide_storage.get(q)
                        for q in self.all_precisions + self.wide_halves}

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
                if a == "linear" or clip_limits(a, output_precision) != clip_limits("linear", output_precision)]

    @property
    def image_hw(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[2]

    def wide_kernel(self, kernel: np.ndarray, dilation) -> np.ndarray:
        """A (transformed) grouped kernel as the dense, dilated HWIO kernel the correlation uses."""
        return dilate_kernel(dense_kernel(kernel, self.groups), dilation)

    def holds(self, precision: str, grid: bool = False) -> bool:
        """Whether every output value is stored exactly in `precision` (`precision.representable`),
        or with `grid` lies on a fixed-point grid of its bits (`precision.on_a_grid`); cached: the
        precisions allowed, the wide storage and the stored-value evidence ask the same."""
        key = (precision, "grid" if grid else "values")
        if key not in self._held_values:
            test = prec.on_a_grid if grid else prec.representable
            self._held_values[key] = test(self.output, precision)
        return self._held_values[key]

    def has_subnormals(self, precision: str) -> bool:
        """True when an input holds nonzero values below `precision`'s smallest normal number."""
        tiny = SMALLEST_NORMAL["float32" if precision == "tfloat32" else precision]
        return any(bool(np.any((chunk != 0) & (np.abs(chunk) < tiny)))
                   for a in (self.image, self.kernel) for chunk in prec.blocks(a))

    def rounding_is_exact(self, precision: str) -> bool:
        """True when rounding both inputs to `precision` changes nothing (cached): at once when
        both were given in a format it holds (float16 or bfloat16 values in float32; finite,
        as every input is), else by rounding them."""
        if precision not in self._exact:
            held = _HOLDS.get(precision, ())
            self._exact[precision] = all(d.name in held for d in self.input_dtypes) or all(
                prec.representable(a, precision) for a in (self.image, self.kernel))
        return self._exact[precision]

    def roundings(self, precision: str) -> tuple:
        """The ways the inputs may have been rounded to `precision`, each modelled exactly:
        directly (None), and for a half precision from float64 inputs also through float32
        (`via`), where the two differ for some input (a value next to a midpoint). A
        candidate holds when one of them reproduces the output (cached)."""
        if precision not in self._roundings:
            ways: tuple = (None,)
            if precision in ("bfloat16", "float16") and np.float64 in self.input_dtypes \
                    and not self.rounding_is_exact(precision):
                differ = any(not np.array_equal(prec.round_to(a, precision), prec.round_to(a, precision, "float32"))
                             for a in (self.image, self.kernel))
                ways = (None, "float32") if differ else (None,)
            self._roundings[precision] = ways
        return self._roundings[precision]

    @contextlib.contextmanager
    def rounded_via(self, via: Optional[str]):
        """Within the block, the inputs are rounded through `via` (see `roundings`)."""
        before, self.via = self.via, via
        try:
            yield
        finally:
            self.via = before

    def rounded_kernel(self, precision: str) -> np.ndarray:
        """The kernel rounded to `precision`, as float64 (what `rounded` holds, without the image)."""
        return self.kernel if self.rounding_is_exact(precision) else prec.round_to(self.kernel, precision, self.via)

    def rounding(self, precision: str):
        """None when the image's values are exact in `precision`, else a function rounding a
        float64 block of them in place (rounding is elementwise: a block rounded is the
        rounded image's block)."""
        key = ("image", precision)
        if key not in self._exact:
            self._exact[key] = self.rounding_is_exact(precision) or prec.representable(self.image, precision)
        return None if self._exact[key] else prec.rounder(precision, self.via)

    def rounded(self, precision: str) -> tuple[np.ndarray, np.ndarray]:
        """(image, kernel) rounded to `precision`, as float64 (cached). Whole-image copies:
        the searches and `_evaluate_blocks` round blocks instead (`rounding`)."""
        key = (precision, self.via)
        if key not in self._rounded:
            if self.rounding_is_exact(precision):
                self._rounded[key] = (self.image, self.kernel)  # already exact: share memory
            else:
                self._rounded[key] = (prec.round_to(self.image, precision, self.via),
                                      prec.round_to(self.kernel, precision, self.via))
        return self._rounded[key]

    def bound(self, magnitude, predicted, precision, scale, has_bias, samples=None, extra=None,
              output_precision="pass", out=None, scratch=None, unbiased=None, direct=False, bias=None):
        """The rigorous elementwise bound of a candidate at `precision` (see precision.error_bound),
        its result stored in `output_precision` ('pass': what this pass's candidates use).

        With `algorithm` 'fft' the FFT's normwise error (precision.fft_convolution_bound) is
        added to every element of its sample and output channel; `samples` names the sample
        of each row when `magnitude` is (n, C_out) rows of sampled positions. `extra` (shaped
        like `magnitude`) is an algorithm's own elementwise error, added too (`winograd_term`).
        `scale` is a number or one per output channel. `out` and `scratch` lend buffers, and
        `unbiased` is the value before the bias, and `bias` a declared bias convcheck added
        itself (see bounds.error_bound). `direct` leaves the FFT's term out: the bound of the
        same candidate summed directly.
        """
        if output_precision == "pass":
            output_precision = self.storage[precision]
        max_input, max_kernel = self.extent(precision)
        bound = bounds.error_bound(magnitude, predicted, n=self.n, model=self.model(precision, output_precision),
                                 output_u=self.output_u, output_underflow=self.output_underflow,
                                 scale=scale, has_bias=has_bias, max_input=max_input, max_kernel=max_kernel,
                                 out=out, scratch=scratch, unbiased=unbiased, bias=bias)
        if self.algorithm == "fft" and not direct:
            term = self.fft_term(precision)
            bound += np.abs(scale) * (term[:, None, None, :] if samples is None else term[samples])
        if extra is not None:
            bound += np.abs(scale) * extra
        return bound

    def extent(self, precision: str) -> tuple[float, float]:
        """(max |image|, max |kernel|) of the inputs rounded to `precision` (cached)."""
        key = (precision, self.via)
        if key not in self._extent:
            # Rounding to nearest is monotone and symmetric: max |round(x)| = round(max |x|).
            self._extent[key] = tuple(float(prec.round_to(np.array([e]), precision, self.via)[0])
                                      for e in self.raw_extent())
        return self._extent[key]

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
        key = (precision, self.via)
        if key not in self._fft:
            image, kernel = self.rounded(precision)
            dense = dense_kernel(kernel, self.groups)
            images = np.stack([np.abs(image).sum(axis=(1, 2)), np.sqrt(np.square(image).sum(axis=(1, 2)))], -1)
            kernels = np.stack([np.abs(dense).sum(axis=(0, 1)), np.sqrt(np.square(dense).sum(axis=(0, 1)))], -1)
            kh, kw = dense.shape[:2]
            lengths = (self.image_hw[0] + (kh - 1) * MAX_DILATION, self.image_hw[1] + (kw - 1) * MAX_DILATION)
            self._fft[key] = bounds.fft_convolution_bound(images, kernels, lengths,
                                                              prec.ACCUMULATION_U[precision])
        return self._fft[key]

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
        key = (precision, transform, padding, self.via)
        if key not in self._winograd:
            self._winograd = {key: self._winograd_bounds(precision, transform, padding, None, None)}
        return self._winograd[key]

    def _winograd_bounds(self, precision, transform, padding, positions, kernel):
        if precision is None:
            image, own = self.image, self.kernel
            u = max(prec.ACCUMULATION_U[q] for q in winograd_precisions(self.precisions))
        else:
            image, own = self.rounded(precision)
            u = prec.ACCUMULATION_U[precision]
        dense = dense_kernel(transform_kernel(own if kernel is None else kernel, transform), self.groups)
        out_hw = tuple(self.output.shape[1:3])
        origin = window_origin(padding, (3, 3), (0, 0), self.image_hw)
        regions = np.stack([extended_image(sample, "zero", origin, out_hw, (3, 3)) for sample in image])
        tiny = SMALLEST_NORMAL["float32" if u > prec.U64 else "float64"]
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
        See `leaves_out` for when an offset may leave any out at all; none is left out under
        explicit pads the offset folds into (`folds_offset`)."""
        (sy, sx), (dy, dx) = struct.stride, struct.offset
        if folds_offset(struct.padding, self.baseline):
            dy = dx = 0
        row_ok = (rows * sy + dy >= 0) & (rows * sy + dy <= (out_hw[0] - 1) * sy) | ~leaves_out(dy, out_hw[0])
        col_ok = (cols * sx + dx >= 0) & (cols * sx + dx <= (out_hw[1] - 1) * sx) | ~leaves_out(dx, out_hw[1])
        return row_ok, col_ok


# The input dtypes (by name: no ml_dtypes import) each precision's format holds exactly
# (`Problem.rounding_is_exact`).
_HOLDS = {"float32": ("float32", "float16", "bfloat16"), "float16": ("float16",), "bfloat16": ("bfloat16",)}


def _channel_values(value, outs: int) -> np.ndarray:
    """A declared number or per-channel list as a float64 array of shape () or (outs,)."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return array
    return array.reshape(outs)
