"""Floating-point precisions: rounding inputs to them, and the rigorous error bound of a candidate.

The bound follows the standard analysis of a sum of n products computed in a
floating-point format with unit roundoff u, in any order, with or without FMA
(Higham, *Accuracy and Stability of Numerical Algorithms*, section 3.1):

    |fl(sum x_i k_i) - sum x_i k_i| <= gamma_n(u) * sum |x_i| |k_i|,   gamma_n = n u / (1 - n u)

`A = |x| (*) |k|` (the correlation of magnitudes) is exactly that sum per output element,
so every bound here is elementwise and derived from the data, never a fixed tolerance.

Half precisions are modelled as frameworks compute them: TensorFlow, Keras, PyTorch, JAX,
cuDNN and tensor cores round the *inputs* to float16/bfloat16, form each product exactly
in float32 (11 x 11 or 8 x 8 significand bits fit in float32's 24) and accumulate in
float32, then round the result once to the storage format. The bound below is rigorous
for that computation. An output that only accumulation in half precision itself could
explain is therefore `unexplained`: the safe direction, since the fully-half bound
(gamma_n(2^-11), gamma_n(2^-8)) exceeds 1 already at n = 144 bfloat16 products and
would then accept any output, zeros included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .vocabulary import PRECISIONS

U64 = 2.0 ** -53

# Significand bits (with the implicit bit): orders the precisions from widest to narrowest.
SIGNIFICAND_BITS = {"float64": 53, "float32": 24, "tfloat32": 11, "float16": 11, "bfloat16": 8}
# Unit roundoff of the *accumulation*: float32 for TF32 and the half precisions (see above).
ACCUMULATION_U = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "tfloat32": 2.0 ** -24,
                  "bfloat16": 2.0 ** -24, "float16": 2.0 ** -24}
# Unit roundoff of the format a precision's values are stored in (inputs and result).
STORAGE_U = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "tfloat32": 2.0 ** -24,
             "bfloat16": 2.0 ** -8, "float16": 2.0 ** -11}
# Half the smallest subnormal of the accumulation format: the absolute error an
# underflowing product or sum can add.
UNDERFLOW = {"float64": 2.0 ** -1074, "float32": 2.0 ** -150, "tfloat32": 2.0 ** -150,
             "bfloat16": 2.0 ** -150, "float16": 2.0 ** -150}
# Half the smallest subnormal of the storage format: what storing a tiny result can cost.
STORAGE_UNDERFLOW = {"float64": 2.0 ** -1074, "float32": 2.0 ** -150, "tfloat32": 2.0 ** -150,
                     "bfloat16": 2.0 ** -134, "float16": 2.0 ** -25}
# Spacing of subnormals (what flushing or double-rounding a tiny input can cost, absolutely).
SUBNORMAL_SPACING = {"float64": 2.0 ** -1074, "float32": 2.0 ** -149, "tfloat32": 2.0 ** -126,
                     "bfloat16": 2.0 ** -133, "float16": 2.0 ** -24}
# The integer types a result may be stored in (CONTRACT section 2 `output_precision`):
# rounded to nearest and saturated to this range, as OpenCV's saturate_cast does.
INTEGER_RANGES = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767)}
# Storage formats, for the "values are exactly representable" evidence.
_STORAGE = {"float64": np.float64, "float32": np.float32, "tfloat32": np.float32, "float16": np.float16}


def storage_type(precision: str):
    """The numpy dtype that stores values of `precision` (bfloat16 from ml_dtypes)."""
    if precision == "bfloat16":
        import ml_dtypes
        return ml_dtypes.bfloat16
    return _STORAGE[precision]


def dtype_precision(dtype) -> str | None:
    """The precision name of a numpy dtype, or None for integers."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        return None
    if dtype.name == "bfloat16":
        return "bfloat16"
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return {2: "float16", 4: "float32", 8: "float64"}[dtype.itemsize]
    raise ValueError(f"unsupported dtype {dtype}")


def native_precision(*inputs) -> str:
    """The precision the inputs themselves carry: the widest of what each one needs.

    Each of `inputs` is an array or a dtype. A float input needs its own precision. An
    integer input needs the narrowest float holding its values exactly: judged from the
    values when an array is given (a uint16 image holding 65535 needs float32, since it
    overflows float16), from the type's range otherwise. Integer inputs alone count as at
    least float32 (what `compare` computes them in by default); float16 with bfloat16
    gives float32, the narrowest type holding both exactly.
    """
    names = set()
    integers_only = True
    for item in inputs:
        is_array = isinstance(item, np.ndarray)
        dtype = item.dtype if is_array else np.dtype(item)
        name = dtype_precision(dtype)
        if name is not None:
            integers_only = False
        elif is_array:
            name = next((p for p in ("float16", "float32") if representable(item, p)), "float64")
        else:
            name = "float16" if dtype.itemsize == 1 else "float32" if dtype.itemsize == 2 else "float64"
        names.add(name)
    if "float64" in names:
        return "float64"
    if "float32" in names or integers_only or names == {"float16", "bfloat16"}:
        return "float32"
    return names.pop()


def narrower_precisions(baseline: str) -> tuple[str, ...]:
    """Precisions with fewer significand bits than `baseline`, widest first."""
    return tuple(p for p in PRECISIONS if SIGNIFICAND_BITS[p] < SIGNIFICAND_BITS[baseline])


def round_to(values: np.ndarray, precision: str) -> np.ndarray:
    """`values` rounded to nearest in `precision`, returned as float64.

    tfloat32 rounds to float32 only: the TF32 step's rounding mode differs between
    hardware paths, so it is covered by the bound (`input_slack`) instead of modelled.
    """
    values = np.asarray(values)
    if precision == "float64":
        return values.astype(np.float64, copy=False)
    with np.errstate(over="ignore"):
        return values.astype(storage_type(precision)).astype(np.float64)


def rounder(precision: str):
    """A function rounding a float64 array to `precision` in place (what `round_to` gives),
    through a buffer of the storage type kept between calls, one per thread (blocks may be
    rounded by two at once: reference.map_blocks): rounding block after block allocates
    nothing."""
    import threading
    storage = np.dtype(storage_type(precision))
    own = threading.local()

    def round_in_place(values: np.ndarray) -> np.ndarray:
        buffer = getattr(own, "buffer", None)
        if buffer is None or buffer.size < values.size:
            buffer = own.buffer = np.empty(values.size, dtype=storage)
        stored = buffer[:values.size].reshape(values.shape)
        with np.errstate(over="ignore"):
            np.copyto(stored, values, casting="unsafe")
        np.copyto(values, stored, casting="unsafe")
        return values

    return round_in_place


def representable(values: np.ndarray, precision: str) -> bool:
    """True when every value is stored exactly in `precision` (evidence for or against it).

    Read in blocks (no copy of a large array); a float array whose own format the
    precision's holds (float32 values in float32, float16 in float32) is stored exactly
    unless it holds a NaN, which equals nothing, itself included.
    """
    values = np.asarray(values)
    if precision == "float64":
        return True
    if precision == "bfloat16" and values.dtype == np.float32 and values.size:
        # bfloat16 values are the float32 values whose low 16 bits are 0 (NaN aside, which
        # is never stored): one such bit in a first block settles it without ml_dtypes'
        # import (6 ms); otherwise the rounding below decides.
        first = np.ascontiguousarray(next(blocks(values, 4096, _CHUNK)))
        if np.any(first.view(np.uint32) & np.uint32(0xFFFF)):
            return False
    storage = np.dtype(storage_type(precision))
    if values.dtype.kind == "f" and values.dtype.itemsize <= storage.itemsize and storage.kind == "f":
        return not (values.size and bool(np.isnan(np.max(values))))
    with np.errstate(over="ignore", invalid="ignore"):
        # A small block first: most arrays that are not representable show it at once.
        for chunk in blocks(values, 4096, _CHUNK):
            chunk = np.asarray(chunk, dtype=np.float64)
            if not np.array_equal(round_to(chunk, precision), chunk):
                return False
        return True


_CHUNK = 1 << 20


def blocks(array: np.ndarray, first: int = _CHUNK, size: int = _CHUNK):
    """Views of `array` along its leading axes, the first about `first` elements and the rest
    about `size` each (a reduction over them needs no array-sized temporary, and no copy
    of a non-contiguous array either)."""
    array = np.asarray(array)
    if array.ndim == 0 or array.size <= first:
        yield array
        return
    if array[0].size > size:
        for index, sub in enumerate(array):
            yield from blocks(sub, first if index == 0 else size, size)
        return
    step = max(1, size // max(1, array[0].size))
    head = max(1, first // max(1, array[0].size))
    yield array[:head]
    for start in range(head, len(array), step):
        yield array[start:start + step]


def gamma(n: int, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u): the relative error bound of an n-term dot product."""
    nu = n * u
    if nu >= 1:
        return float("inf")
    return nu / (1.0 - nu)


@dataclass(frozen=True)
class PrecisionModel:
    """How a computation "at precision p" rounds, for one set of inputs.

    `input_slack` is the relative error allowed on each input beyond our own
    round-to-nearest (0 where we reproduce the rounding exactly): 2^-10 for TF32
    (truncation or rounding of the float32 significand to 10 bits), 2u for half
    precisions reached from float64 (a framework may round twice, through float32).
    `storage_u` / `storage_underflow` describe the format the result is stored in
    (float16 for float16; float32 for TF32; another with `output_precision`), and
    `storage_abs` the absolute rounding of storing it in an integer type (half a unit).
    """

    name: str
    accumulation_u: float
    input_slack: float
    input_abs_slack: float
    underflow: float
    storage_u: float = 0.0
    storage_underflow: float = 0.0
    storage_abs: float = 0.0

    @classmethod
    def for_inputs(cls, precision: str, input_dtypes, output_precision: str | None = None) -> "PrecisionModel":
        """The model of computing at `precision` from inputs of the given dtypes, the result
        stored in `output_precision` (None: the precision's own storage format).

        A float `output_precision` replaces the final rounding: bfloat16 products
        accumulated in float32 and stored in float32 (JAX `preferred_element_type`) round
        only in the accumulation. An integer one (uint8, int8, uint16, int16) rounds the
        accumulated value to the nearest integer, |error| <= 1/2 exactly, after which
        values past the type's range are saturated (handled by the caller as clipping).
        """
        if precision not in SIGNIFICAND_BITS:
            raise ValueError(f"unknown precision {precision!r}")
        slack, abs_slack = 0.0, 0.0
        if precision == "tfloat32":
            slack, abs_slack = 2.0 ** -10, SUBNORMAL_SPACING["tfloat32"]
        elif precision in ("float16", "bfloat16") and any(np.dtype(d) == np.float64 for d in input_dtypes):
            # A framework may round float64 -> float32 -> half: at most one half-precision
            # ulp (2u relative) away from our direct rounding.
            slack, abs_slack = 2 * STORAGE_U[precision], SUBNORMAL_SPACING[precision]
        if output_precision in INTEGER_RANGES:
            return cls(precision, ACCUMULATION_U[precision], slack, abs_slack, UNDERFLOW[precision], 0.0, 0.0, 0.5)
        storage = output_precision or precision
        if storage not in STORAGE_U:
            raise ValueError(f"unknown output precision {output_precision!r}")
        return cls(precision, ACCUMULATION_U[precision], slack, abs_slack, UNDERFLOW[precision],
                   STORAGE_U[storage], STORAGE_UNDERFLOW[storage])

    def relative_coefficient(self, n: int, scaled: bool) -> float:
        """c such that |error| <= c * A for the products and sums (before output rounding).

        Terms: each product's inputs may be off by `input_slack` (2d + d^2), the n-term
        sum rounds in the accumulation format (gamma_n, on the perturbed magnitudes),
        our float64 reproduction rounds too (gamma_n(2^-53)), and a kernel scaled in the
        working precision rounds once more (u).
        """
        d = self.input_slack
        c = 2 * d + d * d + gamma(n, self.accumulation_u) * (1 + d) ** 2 + gamma(n + 2, U64)
        if scaled:
            c += self.accumulation_u * (1 + c)
        return c


def error_bound(magnitude: np.ndarray, predicted: np.ndarray, *, n: int, model: PrecisionModel,
                output_u: float, output_underflow: float = 0.0, scale: float = 1.0, has_bias: bool = False,
                max_input: float = 0.0, max_kernel: float = 0.0, out=None, scratch=None) -> np.ndarray:
    """Elementwise rigorous bound on |output - predicted| for a candidate computation.

    `magnitude` is |x| (*) |k| for the candidate's (rounded) inputs, `predicted` the
    candidate's float64 value (after scale and bias), `output_u` the unit roundoff of the
    dtype the output array holds and `output_underflow` its half smallest subnormal
    (0 for integer outputs, which are exact). The result is first stored in the
    precision's own format (`model.storage_u`: float16 for a float16 computation), then
    possibly converted to the array's dtype: both roundings are counted when they differ.
    `max_input`/`max_kernel` bound the absolute terms of subnormal input rounding. The
    result is inflated by (1 + 8 n 2^-53) so that rounding in computing `magnitude` and
    the bound itself cannot make it too small.
    """
    abs_scale = np.abs(scale)   # a number, or one per output channel (the last axis)
    c = model.relative_coefficient(n, scaled=bool(np.any(np.not_equal(scale, 1.0))))
    absolute = abs_scale * n * (model.underflow + model.input_abs_slack * (max_input + max_kernel))
    stored = output_rounding(model, output_u)
    # Storing (or adding the bias) rounds the computed value y once more: |fl(y) - y| <= u |y|
    # with |y| <= |predicted| + (error before storage).
    out_round = stored + (model.accumulation_u if has_bias else 0.0)
    # Keras adds the bias after the convolution, in the compute dtype: a result stored in a
    # narrower format than it was accumulated in (float16, bfloat16) is rounded once before
    # the bias too, |error| <= u_storage |conv| <= u_storage |s| A (Higham, eq. 2.4).
    before_bias = model.storage_u if has_bias and model.storage_u > model.accumulation_u else 0.0
    inflate = 1.0 + 8 * n * U64
    # `out` and `scratch` (float64 arrays of the result's shape), when given, hold the
    # result and its second term: the same operations, no new arrays.
    bound = np.multiply(magnitude, abs_scale * (c * (1.0 + out_round) + before_bias * (1.0 + c)) * inflate, out=out)
    tail = np.abs(predicted, dtype=np.float64, out=scratch)   # `predicted` may be the output in its own type
    tail *= out_round * inflate
    bound += tail
    # An integer result is rounded to the nearest integer: exactly half a unit more (storage_abs).
    bound += (absolute * (1.0 + out_round) + output_underflow + model.storage_underflow + model.storage_abs
              + (model.underflow if has_bias else 0.0) + 4 * UNDERFLOW["float64"]) * inflate
    return bound


def output_rounding(model: PrecisionModel, output_u: float) -> float:
    """The relative rounding of storing a result of `model` in an array of unit roundoff `output_u`."""
    store = model.storage_u
    return store if store == output_u else store + output_u + store * output_u


def fft_relative_error(lengths, u: float) -> float:
    """epsilon: a bound on ||fl(F x) - F x||_2 / ||F x||_2 for one multi-dimensional FFT.

    Higham, *Accuracy and Stability of Numerical Algorithms* (2nd ed., 2002), Theorem
    24.2: a radix-2 Cooley-Tukey FFT of length 2^t with twiddle factors accurate to mu
    satisfies ||y_hat - y||_2 / ||y||_2 <= t eta / (1 - t eta), eta = mu + gamma_4 (sqrt(2) + mu).
    A multi-dimensional FFT is one such transform per axis, so the stages add up. Real
    libraries (pocketfft in scipy and numpy) use mixed radices on lengths padded to a
    fast size below twice the need: we count ceil(log2(n)) + 1 stages per axis and double
    eta (with mu = u, as pocketfft computes its twiddles to working precision) to cover
    radix-3/4/5 butterflies, whose per-stage error is within twice a radix-2 stage's.
    """
    stages = sum(math.ceil(math.log2(n)) + 1 for n in lengths if n > 1)
    eta = 2.0 * (u + gamma(4, u) * (math.sqrt(2.0) + u))
    t_eta = stages * eta
    return float("inf") if t_eta >= 1 else t_eta / (1.0 - t_eta)


def fft_convolution_bound(image_norms: np.ndarray, kernel_norms: np.ndarray, lengths, u: float) -> np.ndarray:
    """A bound on max_i |fl(z)_i - z_i| for z = x (*) k computed as F^-1(F x . F k), per output.

    `image_norms` is (N, C, 2): ||x_nc||_1 and ||x_nc||_2 of each sample and input
    channel; `kernel_norms` (C, O, 2) the same for each (input, output) channel pair of
    the dense kernel. Returns (N, O): the sum over input channels of the per-pair bound.

    Derivation (unnormalised F, ||F||_2 = sqrt(P) for P points, F^-1 = F* / P): with
    X^ = F x + e1, K^ = F k + e2, ||e1|| <= eps ||F x|| = eps sqrt(P) ||x||_2 (same for
    e2), the pointwise product rounding |delta| <= sqrt(2) gamma_2 (complex multiply) and
    the inverse transform's own eps; using ||F k||_inf <= ||k||_1 and ||F x||_inf <= ||x||_1,
        ||z^ - z||_2 <= (2 eps + 3u) (1 + eps)^2 ||x||_2 ||k||_1 + eps (1 + eps) ||x||_1 ||k||_2
                    + eps^2 sqrt(P) ||x||_2 ||k||_2        (the e1 . e2 term)
    with P at most twice the product of `lengths` per axis (fast sizes), and a factor 1.01
    for the remaining products of u and eps. Every element's error is at most that 2-norm.
    The final sum over input channels is bounded elementwise by the caller.
    """
    eps = fft_relative_error(lengths, u)
    points = math.prod(2 * n for n in lengths)
    x1, x2 = image_norms[..., 0], image_norms[..., 1]            # (N, C)
    k1, k2 = kernel_norms[..., 0], kernel_norms[..., 1]           # (C, O)
    first = (2 * eps + 3 * u) * (1 + eps) ** 2 * (x2 @ k1)
    second = eps * (1 + eps) * (x1 @ k2)
    third = eps * eps * math.sqrt(points) * (x2 @ k2)
    return 1.01 * (first + second + third)


def round_tf32(values: np.ndarray, mode: str) -> np.ndarray:
    """float32 values with the significand cut to TF32's 10 bits, as float64: 'truncate' or
    'nearest' (ties away from zero), the two roundings tensor-core paths are known to use."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32)
    if mode == "nearest":
        bits = bits + np.uint32(0x1000)
    return (bits & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)
