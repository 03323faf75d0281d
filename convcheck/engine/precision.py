"""Floating-point precisions: their unit roundoffs, rounding values to them, and how a
computation "at precision p" rounds (`PrecisionModel`). The bounds built on them are in
`convcheck.engine.bounds`.

Half precisions are modelled as frameworks compute them: TensorFlow, Keras, PyTorch, JAX,
cuDNN and tensor cores round the *inputs* to float16/bfloat16, form each product exactly
in float32 (11 x 11 or 8 x 8 significand bits fit in float32's 24) and accumulate in
float32, then round the result once to the storage format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..vocabulary import PRECISIONS


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


# bfloat16: float32's 8 exponent bits, 7 fraction bits. Its largest finite value, and the
# spacing of its subnormals (those of float32's exponent range: 2^-126 x 2^-7).
_BF16_MAX = float.fromhex("0x1.fep127")
_BF16_TINY_STEP = 2.0 ** -133


def round_bfloat16(values: np.ndarray) -> np.ndarray:
    """`values` (any float type) rounded to nearest, ties to even, in bfloat16, as float64:
    bit for bit what `values.astype(ml_dtypes.bfloat16)` gives (one rounding from float64,
    overflow to +-inf, gradual underflow, NaN kept), without ml_dtypes' import (0.6 s on
    this machine, before the first bfloat16 candidate could be tried).

    Normal range (|x| >= 2^-126): the float64 bits rounded to 7 fraction bits, ties to even
    (add 2^44 - 1 plus the kept last bit, then clear the 45 low bits: a carry moves into the
    exponent as rounding up to the next binade does); beyond the largest finite bfloat16, inf.
    Below 2^-126 the representable values are the multiples of 2^-133: x * 2^133 (exact, a
    power of two) rounded half to even by np.rint, scaled back.
    """
    given = np.asarray(values, dtype=np.float64)
    x = np.array(given.reshape(-1), copy=True)
    given = given.reshape(-1)
    size = np.abs(x)
    bits = x.view(np.uint64)
    keep = bits >> np.uint64(45)
    keep &= np.uint64(1)
    bits += keep
    bits += np.uint64((1 << 44) - 1)
    bits &= np.uint64(~((1 << 45) - 1) & 0xFFFFFFFFFFFFFFFF)
    small = size < 2.0 ** -126
    if small.any():
        x[small] = np.rint(given[small] / _BF16_TINY_STEP) * _BF16_TINY_STEP
    np.abs(x, out=size)
    # Rounded beyond the largest finite value, inf, or NaN (whose rounded bits may carry into
    # the sign and leave a finite number): +-inf, or NaN as given.
    odd = ~(size <= _BF16_MAX)
    odd |= np.isnan(given)
    if odd.any():
        x[odd] = np.copysign(np.where(np.isnan(given[odd]), np.nan, np.inf), given[odd])
    return x.reshape(np.shape(values))


def _rounded64(values: np.ndarray, precision: str) -> np.ndarray:
    """`values` rounded to `precision`, as float64 (bfloat16 by `round_bfloat16`)."""
    if precision == "bfloat16":
        return round_bfloat16(values)
    return np.asarray(values).astype(storage_type(precision)).astype(np.float64)


def round_to(values: np.ndarray, precision: str, via: Optional[str] = None) -> np.ndarray:
    """`values` rounded to nearest in `precision`, returned as float64; with `via`, through
    that format first (float64 -> float32 -> bfloat16: what PyTorch's casts do, a double
    rounding that differs from the direct one where a value lies next to a midpoint).

    tfloat32 rounds to float32 only: the TF32 step's rounding mode differs between
    hardware paths, so it is covered by the bound (`input_slack`) instead of modelled.
    """
    values = np.asarray(values)
    if precision == "float64":
        return values.astype(np.float64, copy=False)
    with np.errstate(over="ignore"):
        if via is not None:
            values = _rounded64(values, via)
        return _rounded64(values, precision)


def rounder(precision: str, via: Optional[str] = None):
    """A function rounding a float64 array to `precision` in place (what `round_to` gives,
    through `via` first when given), through buffers of the storage types kept between
    calls, one per thread (blocks may be rounded by two at once: reference.map_blocks):
    rounding block after block allocates nothing, save bfloat16's (`round_bfloat16`'s
    temporaries)."""
    import threading
    if precision == "bfloat16" or via == "bfloat16":
        def round_bfloat16_in_place(values: np.ndarray) -> np.ndarray:
            values[...] = round_to(values, precision, via)
            return values

        return round_bfloat16_in_place
    storage = np.dtype(storage_type(precision))
    middle = None if via is None else np.dtype(storage_type(via))
    own = threading.local()

    def round_in_place(values: np.ndarray) -> np.ndarray:
        buffer = getattr(own, "buffer", None)
        if buffer is None or buffer.size < values.size:
            buffer = own.buffer = np.empty(values.size, dtype=storage)
            own.middle = None if middle is None else np.empty(values.size, dtype=middle)
        stored = buffer[:values.size].reshape(values.shape)
        with np.errstate(over="ignore"):
            if middle is not None:
                between = own.middle[:values.size].reshape(values.shape)
                np.copyto(between, values, casting="unsafe")
                np.copyto(stored, between, casting="unsafe")
            else:
                np.copyto(stored, values, casting="unsafe")
        np.copyto(values, stored, casting="unsafe")
        return values

    return round_in_place


def stored_in(precision: str, output_precision: Optional[str]) -> str:
    """The format a candidate stores its result in: its output precision, else its own
    precision's format (TF32 results are float32 values)."""
    return output_precision or ("float32" if precision == "tfloat32" else precision)


def on_a_grid(values: np.ndarray, precision: str) -> bool:
    """True when every value is an integer multiple of one power of two s with max|v| / s at
    most 2^b, b the significand bits of `precision` (float16: 11, bfloat16: 8): a fixed-point
    grid (a fake-quantised output, small integers, one binade) whose values are `precision`'s
    because of the grid, not because they were stored in it. Such values are no evidence of
    that precision (a hunt: a float32 conv fake-quantised with a step of 2^-6 read as stored
    in bfloat16). A float result stored in a half format spans several binades: its small
    values carry finer steps. Zero values (and an all-zero array) count as on the grid."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    flat = flat[(flat != 0) & np.isfinite(flat)]
    if flat.size == 0:
        return True
    mantissa, exponent = np.frexp(np.abs(flat))                    # |v| = m 2^e, m in [0.5, 1)
    bits = (mantissa * 2.0 ** 53).astype(np.int64)                  # exact: m has at most 53 bits
    lowest = np.frexp((bits & -bits).astype(np.float64))[1] - 1     # log2 of the lowest set bit
    step = int(np.min(exponent - 53 + lowest))                      # log2 s: the finest step used
    top = int(np.max(exponent))                                     # max|v| < 2^top
    return top - step <= SIGNIFICAND_BITS[precision]


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
    if precision != "bfloat16" and values.dtype.kind == "f" \
            and values.dtype.itemsize <= np.dtype(storage_type(precision)).itemsize:
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
    if array[0].size > first:
        # The first block inside the first item (a batch of one: the whole array otherwise).
        yield from blocks(array[0], first, size)
        head = 1
    else:
        head = first // max(1, array[0].size)
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
    (truncation or rounding of the float32 significand to 10 bits). Half precisions reached
    from float64 are rounded directly or through float32, each modelled exactly (the
    engine tries both where they differ), so they need none.
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
            # From float64 a framework rounds directly or through float32 (PyTorch's casts): the
            # engine models both exactly (Problem.roundings), so no relative slack; a subnormal
            # result may still be flushed, at most one subnormal spacing away.
            abs_slack = SUBNORMAL_SPACING[precision]
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


TF32_ROUNDINGS = ("truncate", "nearest", "nearest-even")


def round_tf32(values: np.ndarray, mode: str) -> np.ndarray:
    """float32 values with the significand cut to TF32's 10 bits, as float64: 'truncate' (what
    the tensor cores do with float32 operands left unrounded), 'nearest' (ties away from
    zero: CUTLASS's round_half_ulp_truncate) or 'nearest-even' (IEEE round to nearest, as
    PyTorch documents TF32's input rounding)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32)
    if mode == "nearest":
        bits = bits + np.uint32(0x1000)
    elif mode == "nearest-even":
        bits = bits + np.uint32(0xFFF) + ((bits >> np.uint32(13)) & np.uint32(1))
    return (bits & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)


# Each precision's smallest normal number (finfo(...).tiny; bfloat16 has float32's exponent
# range), written out since asking ml_dtypes' finfo costs its 6 ms import: what flushing a
# subnormal result to zero can cost (NNPACK runs with denormals disabled), and where
# subnormal inputs begin.
SMALLEST_NORMAL = {"float32": 2.0 ** -126, "float64": 2.0 ** -1022, "bfloat16": 2.0 ** -126,
                    "float16": 2.0 ** -14}
