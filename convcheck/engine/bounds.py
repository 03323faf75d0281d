"""The rigorous error bound of each algorithm: direct summation and FFT (Winograd's is in
`convcheck.engine.winograd`, with its tiles).

Direct: the standard analysis of a sum of n products computed in a floating-point format
with unit roundoff u, in any order, with or without FMA (Higham, *Accuracy and Stability
of Numerical Algorithms*, section 3.1):

    |fl(sum x_i k_i) - sum x_i k_i| <= gamma_n(u) * sum |x_i| |k_i|,   gamma_n = n u / (1 - n u)

`A = |x| (*) |k|` (the correlation of magnitudes) is exactly that sum per output element,
so every bound here is elementwise and derived from the data, never a fixed tolerance.
Half precisions (see `convcheck.engine.precision`) are bounded as frameworks compute them.
An output that only accumulation in half precision itself could explain is therefore
`unexplained`: the safe direction, since the fully-half bound (gamma_n(2^-11),
gamma_n(2^-8)) exceeds 1 already at n = 144 bfloat16 products and would then accept any
output, zeros included.

FFT: a normwise bound (Higham, Theorem 24.2) carried through F^-1(F x . F k), added to
every element (`fft_convolution_bound`).
"""

from __future__ import annotations

import math

import numpy as np

from .precision import PrecisionModel, U64, UNDERFLOW, gamma


def error_bound(magnitude: np.ndarray, predicted: np.ndarray, *, n: int, model: PrecisionModel,
                output_u: float, output_underflow: float = 0.0, scale: float = 1.0, has_bias: bool = False,
                max_input: float = 0.0, max_kernel: float = 0.0, out=None, scratch=None,
                unbiased=None, bias=None) -> np.ndarray:
    """Elementwise rigorous bound on |output - predicted| for a candidate computation.

    `magnitude` is |x| (*) |k| for the candidate's (rounded) inputs, `predicted` the
    candidate's float64 value (after scale and bias), `output_u` the unit roundoff of the
    dtype the output array holds and `output_underflow` its half smallest subnormal
    (0 for integer outputs, which are exact). The result is first stored in the
    precision's own format (`model.storage_u`: float16 for a float16 computation), then
    possibly converted to the array's dtype: both roundings are counted when they differ.
    `max_input`/`max_kernel` bound the absolute terms of subnormal input rounding.
    `unbiased` is the candidate's value before its bias (scale * sums), for the rounding of
    a result stored before the bias is added and for a bias summed first (see below). The
    result is inflated by (1 + 8 n 2^-53) so that rounding in computing `magnitude` and the
    bound itself cannot make it too small.

    A bias may be the accumulator's first value rather than a last addition (TFLite's
    depthwise kernels start each sum from it, XNNPACK's micro-kernels load it as the
    accumulator): then every one of the n additions rounds a partial sum that holds it, and
    the sum of n + 1 terms in any order is within gamma_n(u) of the sum of their magnitudes
    (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 4.4): beyond the
    products' gamma_n A, gamma_n |b| for the bias (`bias_first`). A faithful TFLite depthwise
    conv with a bias of -300 was 3 ulps beyond the bound without it (a hunt for false causes).
    |b| = |predicted - unbiased| where `unbiased` is given, else at most |predicted| + |s| A (1 + c).

    `bias` (a number or one per output channel), given where the candidate's value was
    computed by convcheck as fl(fl(s v) + b) from a declared bias (`evaluation._Held`): the
    bias-first term then takes |b| itself, and convcheck's own float64 arithmetic is added,
    u64 (|fl(s v)| + |predicted|) (`fits.evaluation_error`) with |fl(s v)| <= (1 + u64)
    |predicted| + |b| (predicted = (fl(s v) + b)(1 + d), |d| <= u64), taken as
    2.0000001 u64 |predicted| + 1.0000001 u64 |b|: no pass over s v or predicted - b.
    `unbiased` may then be a function giving it, called only where a result stored before
    the bias needs it (a half format's storage).
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
    # the bias too (Higham, eq. 2.4): |error| <= u_storage |conv|, and the computed conv is
    # within c |s| A of the candidate's value before the bias, so |conv| <= |s v| + c |s| A
    # (`unbiased` = s v); without it, |conv| <= (1 + c) |s| A.
    before_bias = model.storage_u if has_bias and model.storage_u > model.accumulation_u else 0.0
    if callable(unbiased):
        unbiased = unbiased() if before_bias else None
    inflate = 1.0 + 8 * n * U64
    # `out` and `scratch` (float64 arrays of the result's shape), when given, hold the
    # result and its second term: the same operations, no new arrays.
    stored_sum = before_bias * (1.0 + c) if unbiased is None else before_bias * c
    bound = np.multiply(magnitude, abs_scale * (c * (1.0 + out_round) + stored_sum) * inflate, out=out)
    tail = np.abs(predicted, dtype=np.float64, out=scratch)   # `predicted` may be the output in its own type
    tail *= out_round * inflate + (2.0000001 * U64 if bias is not None else 0.0)
    bound += tail
    if before_bias and unbiased is not None:
        bound += before_bias * inflate * np.abs(unbiased)
    per_channel = 0.0   # terms of |b|: one per output channel (the last axis)
    if bias is not None:
        per_channel = 1.0000001 * U64 * np.abs(bias)
    if has_bias:
        bias_first = gamma(n, model.accumulation_u) * inflate
        if bias is not None:
            per_channel = per_channel + bias_first * np.abs(bias)
        elif unbiased is not None:
            with np.errstate(invalid="ignore"):   # inf - inf where the value overflowed: its bound is inf
                bound += bias_first * np.fmax(np.abs(np.subtract(predicted, unbiased, dtype=np.float64)), 0.0)
        else:
            bound += bias_first * (np.abs(predicted) + abs_scale * (1.0 + c) * magnitude)
    # An integer result is rounded to the nearest integer: exactly half a unit more (storage_abs).
    bound += (absolute * (1.0 + out_round) + output_underflow + model.storage_underflow + model.storage_abs
              + (model.underflow if has_bias else 0.0) + 4 * UNDERFLOW["float64"]) * inflate + per_channel
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
