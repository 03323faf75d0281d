"""Near-miss mode of the soundness fuzzer (issue 20): true computations plus perturbations
just OUTSIDE the vocabulary, each judged by an oracle that never trusts the engine.

Case i is drawn from `numpy.random.default_rng([NEAR_SEED, i])` and its kind is `KINDS[i % 5]`,
so case i is the same arrays on every run (torch runs single-threaded; its kernels may still
round differently on another CPU), and a failure names the index to replay:

    python -m tests.fuzz_nearmiss 123            # replay case 123 (its near miss and its control)
    python -m tests.fuzz_nearmiss 0 2000 -j2 --log=runs.jsonl   # a range: counts per kind and family

Kinds (each a family of cases made with real library calls, 8x8 to 64x64, 1-16 channels):
- nudge:    a real torch bfloat16/float16 conv (inputs in that dtype); a few elements moved by
            3-500x their own rounding bound (never within it), or a constant of a few ulps
            added to only some elements.
- tap:      the output computed with one kernel tap changed by 0.01-1 % or with an int8
            fake-quantised kernel (round(k / s) * s), in float64, float32, bfloat16, float16,
            or torch bfloat16 from float64 data; the engine is given the original kernel.
- corrupt:  three elements moved by 10x the largest rounding bound of a float64, float32,
            bfloat16 or float16 torch conv, a TF32-like one (inputs truncated to 10 mantissa
            bits, summed in float32 by torch), scipy.signal.fftconvolve (float64/float32), or
            NNPACK's Winograd F(6x6,3x3) (torch on CPU, oneDNN off, a batch of 16).
- rounding: np.floor / np.ceil / np.trunc instead of round-to-nearest to an integer type.
- other:    output channels permuted; leaky ReLU 0.01, ELU, GELU or hardswish instead of
            ReLU; np.roll by one row/column with the wrapped one replaced by large values;
            a stride-2 output taken at the wrong phase; per-channel scales 0.999-1.001 on a
            float32 output with one corrupted element.

Every case also has its CONTROL: the same computation unperturbed (for the activations, the
same conv with a ReLU), whose truth is in the vocabulary.

The oracle (`check_claim`), independent of the engine's code: a claimed computation is
reproduced here in float64 (tests/fuzz.py's `reproduce`, the inputs rounded to the claimed
precision directly and, for half precisions from float64, through float32) and held, element
by element, to a rigorous bound written here from the data. For a direct sum of n products
accumulated with unit roundoff u (2^-24 for float32, TF32 and half inputs, 2^-53 for float64;
Higham, Accuracy and Stability of Numerical Algorithms, section 3.1)

    |output - claim| <= gamma_n(u) (|x| (*) |k|) |scale| + u_out max(|output|, |claim| + B) + ...,

gamma_n = n u / (1 - n u), u_out the storage type's unit roundoff (half a unit for rounding to
an integer type, a whole one for floor/ceil), plus 2d + d^2 per product for TF32's input
truncation (d = 2^-10), gamma_{n+2}(2^-53) for our own float64 sums, u |scale| (|x| (*) |k|)
for the scaling, u (|sum| + |bias|) for the bias addition, every operation's underflow, and,
where a bias or scale meets a half-precision output, the sum stored before them (the double
rounding issue 20 item 2 allows: the stored sum's rounding bounded by the sum). ReLU/ReLU6 and
saturation are 1-Lipschitz, so they pass the bound through. `algorithm fft` is held to the
normwise bound of an FFT convolution (`fft_bound`: Higham Theorem 24.2 through the pointwise
product and the inverse transform) and `winograd` to gamma_K times the sum of |terms| over
F(m x m, 3 x 3) tiles (`winograd_terms`, the matrices built here by Toom-Cook from their
points; m = 2, 4, 6). Causes the computation does not have are false even where the numbers
fit: an FFT or Winograd claim on a case that is not one, a TF32 claim on a computation that is
not TF32, a bias on a floor/ceil/trunc output (the rounding offset), and a fitted bias or scale
the truth lacks that the output does not need or the data cannot tell from its default
(`_needless`). Every listed alternative is checked the same way.

Outcomes, per call of `convcheck.explain` (the plain call, and where the truth has a
geometry/precision/algorithm to declare, the call with it declared):
- crash:          any exception (no near miss is bad input, so InputError included)
- false verdict:  `equal`/`explained` whose claim or any alternative does not reproduce the
                  output within its bound, or names a cause the computation does not have
- false alarm:    a control called `unexplained` without "cannot decide"
- silent:         a claim that leaves out elements wildly off the reference without saying so
                  (issue 20 item 7)
- cannot decide:  counted apart; ok otherwise.
"""

from __future__ import annotations

import math
import re
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import numpy as np

import convcheck
from convcheck.vocabulary import Explanation, Verdict
from tests import fuzz

NEAR_SEED = 20261206
KINDS = ("nudge", "tap", "corrupt", "rounding", "other")
BF16 = fuzz.BF16
_DTYPES = {"float64": np.dtype(np.float64), "float32": np.dtype(np.float32), "float16": np.dtype(np.float16),
           "bfloat16": BF16}
_U = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "tfloat32": 2.0 ** -24, "bfloat16": 2.0 ** -24,
      "float16": 2.0 ** -24}                                          # accumulation unit roundoff
_STORAGE_U = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "bfloat16": 2.0 ** -8, "float16": 2.0 ** -11}
_TINY = {"float64": 2.0 ** -1022, "float32": 2.0 ** -126, "bfloat16": 2.0 ** -126, "float16": 2.0 ** -14}
_TF32_SLACK = 2.0 ** -10
_INTEGERS = fuzz._INTEGERS
FAILURES = ("crash", "false verdict", "false alarm", "silent")


# ----------------------------------------------------------------------------- the oracle's bound


def gamma(n: int, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u)."""
    return math.inf if n * u >= 1 else n * u / (1 - n * u)


def _round(values, precision: str, via32: bool = False) -> np.ndarray:
    """float64 values rounded to nearest in `precision` (through float32 first with `via32`)."""
    values = np.asarray(values, dtype=np.float64)
    if precision == "float64":
        return values
    store = np.float32 if precision == "tfloat32" else _DTYPES[precision]
    with np.errstate(over="ignore", invalid="ignore"):
        if via32:
            values = values.astype(np.float32)
        return values.astype(store).astype(np.float64)


class _Unverifiable(Exception):
    """A claim the oracle cannot reproduce (a field or value it does not know)."""


class _Forbidden(Exception):
    """A claim naming a cause the computation does not have."""


class _Mismatch(Exception):
    """A claim whose reproduction cannot even have the output's shape."""


def _full_kernel(kernel: np.ndarray, groups: int, channels: int) -> np.ndarray:
    """An HWIO kernel of `groups` groups as the equivalent dense (kh, kw, C, O) kernel."""
    kh, kw, per_group, outs = kernel.shape
    if groups == 1 and per_group == channels:
        return kernel
    if per_group * groups != channels or outs % groups:
        raise _Mismatch(f"groups {groups} do not fit {channels} channels and a {kernel.shape} kernel")
    full = np.zeros((kh, kw, channels, outs))
    step = outs // groups
    for g in range(groups):
        block = kernel[:, :, :, g * step:(g + 1) * step]
        full[:, :, g * per_group:(g + 1) * per_group, g * step:(g + 1) * step] = block
    return full


def _read_kernels(kernel: np.ndarray, layout: Optional[str]) -> list:
    """The HWIO kernels that a claimed kernel layout means for the HWIO array we gave: its axes
    really in `layout`'s order, or (`oihw-reshaped`) PyTorch OIHW weights and their HWIO form
    made with reshape instead of transpose, one way or the other."""
    if layout in (None, "hwio"):
        return [kernel]
    kh, kw, ci, co = kernel.shape
    if layout == "oihw-reshaped":
        return [np.transpose(kernel.reshape(co, ci, kh, kw), (2, 3, 1, 0)),    # we gave the reshaped one
                np.transpose(kernel, (3, 2, 0, 1)).reshape(kh, kw, ci, co)]   # the computation used it
    if sorted(layout) != sorted("hwio"):
        raise _Unverifiable(f"kernel layout {layout!r}")
    return [np.transpose(kernel, [layout.index(axis) for axis in "hwio"])]


def _pad_axis(padding, axis):
    return padding if isinstance(padding, str) else tuple(padding[axis])


# Winograd F(m x m, 3 x 3) by Toom-Cook from its interpolation points (one more at infinity):
# A^T[y, i] = p_i^y, G[i, a] = p_i^a / prod_{j != i} (p_i - p_j), and B^T solved exactly from
# the identity y_t = sum_a d_{t+a} g_a. The bound's sum of |terms| does not change when the
# rows are rescaled between A, G and B, so every library's matrices with these points give it.
_WINOGRAD_POINTS = {2: ["0", "1", "-1"], 4: ["0", "1", "-1", "2", "-2"],
                    6: ["0", "1", "-1", "2", "-2", "1/2", "-1/2"]}
_WINOGRAD_CACHE: dict = {}


def winograd_matrices(m: int):
    """(A^T, G, B^T) of F(m, 3) with `_WINOGRAD_POINTS[m]`, exact rationals as float64."""
    if m in _WINOGRAD_CACHE:
        return _WINOGRAD_CACHE[m]
    points = [Fraction(p) for p in _WINOGRAD_POINTS[m]]
    alpha, r = m + 2, 3
    at = [[p ** y for p in points] + [Fraction(int(y == m - 1))] for y in range(m)]
    g = []
    for i, p in enumerate(points):
        f = Fraction(1)
        for j, q in enumerate(points):
            if j != i:
                f *= p - q
        g.append([p ** a / f for a in range(r)])
    g.append([Fraction(int(a == r - 1)) for a in range(r)])
    rows = [(t, a) for t in range(m) for a in range(r)]
    coeff = [[at[t][i] * g[i][a] for i in range(alpha)] for t, a in rows]
    columns = [_solve(coeff, [Fraction(int(p == t + a)) for t, a in rows], alpha) for p in range(alpha)]
    bt = [[columns[p][i] for p in range(alpha)] for i in range(alpha)]
    result = tuple(np.array([[float(v) for v in row] for row in mat]) for mat in (at, g, bt))
    _WINOGRAD_CACHE[m] = result
    return result


def _solve(a, b, n):
    """An exact solution x of the consistent rational system a x = b (Gauss-Jordan)."""
    rows = [list(r) + [v] for r, v in zip(a, b)]
    pivots, row = [], 0
    for col in range(n):
        piv = next((i for i in range(row, len(rows)) if rows[i][col] != 0), None)
        if piv is None:
            continue
        rows[row], rows[piv] = rows[piv], rows[row]
        inv = 1 / rows[row][col]
        rows[row] = [v * inv for v in rows[row]]
        for i in range(len(rows)):
            if i != row and rows[i][col] != 0:
                f = rows[i][col]
                rows[i] = [vi - f * vr for vi, vr in zip(rows[i], rows[row])]
        pivots.append(col)
        row += 1
    if any(all(v == 0 for v in r[:n]) and r[n] != 0 for r in rows):
        raise ValueError("inconsistent Winograd system")
    x = [Fraction(0)] * n
    for i, col in enumerate(pivots):
        x[col] = rows[i][n]
    return x


def winograd_terms(image: np.ndarray, kernel: np.ndarray, padding, out_shape, m: int) -> np.ndarray:
    """E = sum_c |A^T| ((|G| |g_c| |G^T|) (.) (|B^T| |d_c| |B|)) |A| for each output element,
    over F(m x m, 3 x 3) tiles from the output's origin (input beyond the image read as 0)."""
    at, g, bt = (np.abs(mat) for mat in winograd_matrices(m))
    out_h, out_w, outs = out_shape
    top = fuzz._axis(_pad_axis(padding, 0), image.shape[0], 3, 1, 1)[1]
    left = fuzz._axis(_pad_axis(padding, 1), image.shape[1], 3, 1, 1)[1]
    tiles_h, tiles_w, alpha = -(-out_h // m), -(-out_w // m), m + 2
    canvas = np.zeros((tiles_h * m + 2 + top, tiles_w * m + 2 + left, image.shape[2]))
    rows, cols = min(image.shape[0], canvas.shape[0] - top), min(image.shape[1], canvas.shape[1] - left)
    canvas[top:top + rows, left:left + cols] = np.abs(image[:rows, :cols])
    u_abs = np.einsum("ia,abco,jb->ijco", g, np.abs(kernel), g)
    e = np.zeros((tiles_h * m, tiles_w * m, outs))
    for ty in range(tiles_h):
        tiles = np.stack([canvas[ty * m:ty * m + alpha, tx * m:tx * m + alpha] for tx in range(tiles_w)])
        v_abs = np.einsum("ip,tpqc,jq->tijc", bt, tiles, bt)
        y = np.einsum("yi,tijo,xj->tyxo", at, np.einsum("tijc,ijco->tijo", v_abs, u_abs), at)
        e[ty * m:(ty + 1) * m] = np.concatenate(list(y), axis=1)
    return e[:out_h, :out_w]


def fft_bound(image: np.ndarray, kernel: np.ndarray, u: float) -> np.ndarray:
    """Normwise bound, per output channel, of a 2-D FFT correlation summed over the input
    channels. Per channel pair, with a = ||x||_2, a1 = ||x||_1, b = ||k||_2, b1 = ||k||_1,
    transform length N, L = log2 N rounded up (plus 2 for mixed radices): each computed
    transform errs by at most eps * sqrt(N) * ||input||_2, eps = L eta / (1 - L eta),
    eta = 7u (Higham, Theorem 24.2, twiddles within u); |FFT(x)| <= a1 and |FFT(k)| <= b1
    elementwise; the pointwise product rounds by 2 sqrt(2) u; the inverse transform by eps
    again; so ||y^ - y||_inf <= ||y^ - y||_2 <= eps (2 a b1 + a1 b) + 4u a b1 + O(u^2),
    taken as 2 (2 eps + 5u)(a b1 + a1 b)."""
    h, w = image.shape[:2]
    kh, kw = kernel.shape[:2]
    big_l = math.ceil(math.log2(h + kh)) + math.ceil(math.log2(w + kw)) + 2
    eta = 7 * u
    eps = big_l * eta / (1 - big_l * eta)
    a = np.sqrt(np.sum(image ** 2, axis=(0, 1)))
    a1 = np.sum(np.abs(image), axis=(0, 1))
    b = np.sqrt(np.sum(kernel ** 2, axis=(0, 1)))
    b1 = np.sum(np.abs(kernel), axis=(0, 1))
    return (2 * (2 * eps + 5 * u) * (a[:, None] * b1 + a1[:, None] * b)).sum(axis=0)


@dataclass
class Reproduction:
    """One way the claimed computation may have run, held to its bound element by element."""
    values: np.ndarray     # the claimed value (after the activation, before storage), float64
    bound: np.ndarray      # its rigorous bound before the final storage rounding
    storage: str
    rounding: str
    compared: np.ndarray   # the elements the contract compares


_KNOWN = {"kernel_transform", "padding", "boundary", "offset", "precision", "bias", "scale", "stride",
          "dilation", "groups", "output_layout", "kernel_layout", "cval", "kernel_axis", "output_transform",
          "channel_order", "output_precision", "activation", "algorithm", "output_rounding"}
_ROUNDINGS = {"nearest": np.rint, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "truncate": np.trunc,
              "down": np.floor, "up": np.ceil, "toward_zero": np.trunc}


def _check_storage(storage: str, rounding: str) -> None:
    if storage in _INTEGERS:
        if rounding not in _ROUNDINGS:
            raise _Unverifiable(f"output rounding {rounding!r}")
    elif rounding not in ("nearest", None):
        raise _Unverifiable(f"output rounding {rounding!r} to a float type")


def _activate(values: np.ndarray, activation: str) -> np.ndarray:
    if activation == "linear":
        return values
    if activation == "relu":
        return np.maximum(values, 0.0)
    if activation == "relu6":
        return np.clip(values, 0.0, 6.0)
    raise _Unverifiable(f"activation {activation!r}")


def _compared(shape, expl) -> np.ndarray:
    """CONTRACT section 2's offset rule as tests/fuzz.py applies it: only a one-pixel offset on
    an axis of at least 8 outputs leaves out the windows the reference does not have."""
    (sy, sx), (dy, dx) = tuple(expl.stride), tuple(expl.offset)
    h, w = shape[0], shape[1]
    rows, cols = np.arange(h) * sy + dy, np.arange(w) * sx + dx
    row_in = ((rows >= 0) & (rows <= (h - 1) * sy)) | (not fuzz._leaves_out(dy, h))
    col_in = ((cols >= 0) & (cols <= (w - 1) * sx)) | (not fuzz._leaves_out(dx, w))
    return np.broadcast_to(row_in[:, None, None] & col_in[None, :, None], shape)


def reproductions(image, kernel, expl: Explanation, out_shape, *, algorithms=("direct",),
                  tiles=(2, 4, 6)) -> list:
    """Every way the claimed computation `expl` may have run, as `Reproduction`s: the inputs
    rounded directly or (half precisions from float64) through float32, a bias added before
    or after the sum is stored, Winograd tiles of each size. Raises `_Unverifiable`,
    `_Mismatch` or `_Forbidden` (an FFT/Winograd claim where `algorithms` does not allow it)."""
    for name in getattr(expl, "__dataclass_fields__", {}):
        if name not in _KNOWN:
            raise _Unverifiable(f"field {name}={getattr(expl, name)!r}")
    if expl.kernel_axis is not None:
        raise _Unverifiable(f"kernel_axis {expl.kernel_axis!r} on a 2-D kernel")
    if expl.channel_order not in ("as_given", "reversed"):
        raise _Unverifiable(f"channel_order {expl.channel_order!r}")
    precision = expl.precision
    if precision not in _U:
        raise _Unverifiable(f"precision {precision!r}")
    if expl.algorithm not in ("direct", "fft", "winograd"):
        raise _Unverifiable(f"algorithm {expl.algorithm!r}")
    if expl.algorithm not in algorithms:
        raise _Forbidden(f"algorithm {expl.algorithm} on a computation that is not one")
    image, kernel = np.asarray(image), np.asarray(kernel)
    x = np.asarray(image, dtype=np.float64)
    if expl.channel_order == "reversed":
        x = x[..., ::-1]
    kernels = [_full_kernel(read, int(expl.groups), x.shape[2])
               for read in _read_kernels(np.asarray(kernel, dtype=np.float64), expl.kernel_layout)]
    k = kernels[0]
    storage = expl.output_precision or ("float32" if precision == "tfloat32" else precision)
    if storage not in _STORAGE_U and storage not in _INTEGERS:
        raise _Unverifiable(f"output precision {storage!r}")
    rounding = getattr(expl, "output_rounding", None) or "nearest"
    _check_storage(storage, rounding)
    u, slack = _U[precision], (_TF32_SLACK if precision == "tfloat32" else 0.0)
    scale, bias = np.asarray(expl.scale, dtype=np.float64), np.asarray(expl.bias, dtype=np.float64)
    geometry = dict(kernel_transform=expl.kernel_transform, padding=expl.padding, boundary=expl.boundary,
                    offset=tuple(expl.offset), stride=tuple(expl.stride), dilation=tuple(expl.dilation),
                    cval=float(expl.cval), precision="float64")
    n = k.shape[0] * k.shape[1] * k.shape[2]
    c_sum = 2 * slack + slack * slack + gamma(n, u) * (1 + slack) ** 2 + gamma(n + 2, 2.0 ** -53)
    underflow = (2 * n + 4) * (2.0 ** -1022 if precision == "float64" else 2.0 ** -126)
    routes = [False]
    if precision in ("bfloat16", "float16") and np.float64 in (image.dtype, kernel.dtype):
        routes.append(True)                       # from float64: directly, or through float32
    results = []
    for via32, k in ((via32, k) for via32 in routes for k in kernels):
        xr, kr = _round(x, precision, via32), _round(k, precision, via32)
        values, mags = fuzz.reproduce(xr, kr, **geometry)
        if expl.output_transform == "transpose":
            values, mags = values.swapaxes(0, 1), mags.swapaxes(0, 1)
        elif expl.output_transform != "identity":
            raise _Unverifiable(f"output_transform {expl.output_transform!r}")
        if expl.output_layout == "chw":
            values, mags = values.transpose(2, 0, 1), mags.transpose(2, 0, 1)
        elif expl.output_layout != "hwc":
            raise _Unverifiable(f"output_layout {expl.output_layout!r}")
        if values.shape != tuple(out_shape):
            raise _Mismatch(f"the claim gives shape {values.shape}, the output has {tuple(out_shape)}")
        if expl.algorithm == "direct":
            sum_bounds = [c_sum * mags]
        elif expl.algorithm == "fft":
            if geometry["boundary"] != "zero" or geometry["stride"] != (1, 1) or geometry["dilation"] != (1, 1):
                raise _Unverifiable("an FFT claim with a boundary, a stride or a dilation")
            kk = fuzz.transformed_kernel(kr, expl.kernel_transform)
            rest = (gamma(n + 2, 2.0 ** -53) + gamma(k.shape[2] + 1, u)) * mags    # ours, the channel sum
            sum_bounds = [fft_bound(xr, kk, u)[None, None, :] + rest]
        else:
            kk = fuzz.transformed_kernel(kr, expl.kernel_transform)
            if kk.shape[:2] != (3, 3) or geometry["stride"] != (1, 1) or geometry["dilation"] != (1, 1) \
                    or geometry["offset"] != (0, 0) or geometry["boundary"] != "zero":
                raise _Unverifiable("a Winograd claim off a 3x3, stride-1, zero-padded, unshifted conv")
            # At most 6 (alpha + 2) roundings along any path through the six 1-D transform
            # passes of F(m x m, 3 x 3) (alpha <= 8 terms and two constants each), the
            # channel sum, the product and a bias: K = 6 * 10 + C + 2.
            big_k = 6 * 10 + kk.shape[2] + 2
            sum_bounds = [gamma(big_k, u) * winograd_terms(xr, kk, expl.padding, values.shape, m) + c_sum * mags
                          for m in tiles]
        compared = _compared(values.shape, expl)
        for bsum in sum_bounds:
            bsum = bsum + underflow
            scaled = values * scale
            bound = bsum * np.abs(scale)
            if np.any(scale != 1.0):       # the kernel or the sum scaled: one rounding more
                bound = bound + u * np.abs(scale) * mags * (1 + c_sum)
            claimed = scaled + bias
            adding = u * (np.abs(scaled) + np.abs(bias) + bound) if np.any(bias != 0) else 0.0
            pipelines = [bound + adding]
            if (np.any(bias != 0) or np.any(scale != 1.0)) and storage in ("bfloat16", "float16"):
                # Double rounding (issue 20 item 2): the scaled sum stored first, then the bias
                # added; or the plain sum stored, then scaled and biased; each stored again.
                us, tiny = _STORAGE_U[storage], _TINY[storage]
                first = bound + us * (np.abs(scaled) + bound) + us * tiny
                pipelines.append(first + u * (np.abs(claimed) + first))
                first = (bsum + us * (np.abs(values) + bsum) + us * tiny) * np.abs(scale)
                if np.any(scale != 1.0):
                    first = first + u * np.abs(scale) * (np.abs(values) + bsum)
                pipelines.append(first + u * (np.abs(claimed) + first))
            for b in pipelines:
                results.append(Reproduction(_activate(claimed, expl.activation), b, storage, rounding, compared))
    return results


def _half_width(rep: Reproduction) -> np.ndarray:
    """How far storing may move a value: what the generators size their perturbations by."""
    if rep.storage in _INTEGERS:
        return np.full(rep.values.shape, 0.5 if rep.rounding == "nearest" else 1.0)
    if rep.storage == "float64":
        return np.abs(rep.values) * 2.0 ** -53
    return np.abs(rep.values) * _STORAGE_U[rep.storage] + _TINY[rep.storage]


def storage_term(rep: Reproduction, output: np.ndarray, array: Optional[str] = None) -> np.ndarray:
    """The final storage rounding's bound (Higham's standard model, either form: fl(y) = y(1 + d)
    or y / (1 + d), |d| <= u): u * max(|output|, |value| + bound), plus gradual underflow;
    half a unit rounding to nearest to an integer type, a whole one rounding down or up.

    `array`: the float type the output array holds, when it is not the claim's storage (a
    float16 result cast to a bfloat16 array, as the engine reads precision float16 on a
    bfloat16 output): two roundings, |fl_a(fl_s(y)) - y| <= (u_s + u_a + u_s u_a) |y|, and in
    the other form u_a |output| + u_s (1 + u_a) |output|: the same factor either way."""
    if rep.storage in _INTEGERS:
        return np.full(rep.values.shape, 0.5 if rep.rounding == "nearest" else 1.0)
    u = 2.0 ** -53 if rep.storage == "float64" else _STORAGE_U[rep.storage]
    tiny = 2.0 ** -1022 if rep.storage == "float64" else _TINY[rep.storage]
    if array in _STORAGE_U and array != rep.storage:
        u, tiny = u + _STORAGE_U[array] + u * _STORAGE_U[array], tiny + _TINY[array]
    return u * np.maximum(np.abs(output), np.abs(rep.values) + rep.bound) + u * tiny


def reproduces(output, reps: list) -> tuple[bool, float]:
    """(whether some reproduction holds every compared element within its bound, the
    smallest over them of max |output - claim| / bound)."""
    array = np.dtype(output.dtype).name if hasattr(output, "dtype") else None
    out = np.asarray(output, dtype=np.float64)
    holds, best = False, math.inf
    for rep in reps:
        values = rep.values
        if rep.storage in _INTEGERS:                  # saturation: clip is 1-Lipschitz
            values = np.clip(values, *fuzz.limits("linear", rep.storage))
        tol = rep.bound + storage_term(rep, out, array)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(out - values)
            inside = diff <= tol
            if rep.storage not in _INTEGERS:      # a subnormal result flushed to zero
                inside |= (out == 0) & (np.abs(values) <= rep.bound + _TINY.get(rep.storage, 2.0 ** -1022))
            ratio = np.where(rep.compared, np.where(inside, np.minimum(diff / tol, 1.0), diff / tol), 0.0)
        ok = bool(np.all(inside | ~rep.compared))
        ratio = float(np.nanmax(ratio)) if ratio.size else 0.0
        ratio = ratio if np.isfinite(ratio) or not ok else 0.0
        holds, best = holds or ok, min(best, ratio)
    return holds, best


# ----------------------------------------------------------------------------- the cases


@dataclass
class NearCase:
    index: int
    kind: str
    family: str
    image: np.ndarray
    kernel: np.ndarray
    output: np.ndarray             # the near miss
    control: np.ndarray            # the same computation, unperturbed
    precision: str                 # the computation's precision
    truth: dict                    # the control's fields that differ from the plain call's defaults
    declared: Optional[dict] = None   # explain() keywords declaring the truth's geometry/precision/algorithm
    algorithms: tuple = ("direct",)   # the algorithms a claim may name
    tf32: bool = False             # whether a TF32 claim may hold
    bias_forbidden: bool = False   # a floor/ceil/trunc output: a bias is the rounding offset, no cause
    how: str = ""                  # how the near miss was made
    skipped: str = ""              # why no case could be made here (e.g. no NNPACK)

    def truth_explanation(self) -> Explanation:
        fields = {k: v for k, v in self.truth.items()}
        fields.setdefault("precision", self.precision)
        return Explanation(**fields)


def _log_int(rng, low: int, high: int) -> int:
    return int(np.floor(np.exp(rng.uniform(np.log(low), np.log(high + 1)))))


def _shape(rng, *, square_kernel=None, odd=False, min_outs=1):
    h = _log_int(rng, 8, 64)
    w = h if rng.random() < 0.7 else _log_int(rng, 8, 64)
    c, o = _log_int(rng, 1, 16), max(min_outs, _log_int(rng, 1, 16))
    kh = int(rng.choice([1, 3, 3, 3, 5] if odd else [1, 2, 3, 3, 3, 5]))
    kw = kh if (square_kernel or rng.random() < 0.8) else int(rng.choice([1, 3, 5] if odd else [1, 2, 3, 5]))
    return h, w, c, o, kh, kw


def _data(rng, shape) -> np.ndarray:
    style = rng.choice(["normal", "positive", "scaled"], p=[0.6, 0.25, 0.15])
    if style == "normal":
        return rng.standard_normal(shape)
    if style == "positive":
        return rng.uniform(0.0, 1.0, shape)
    return rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2)


_TORCH = {}


def _torch():
    if not _TORCH:
        import torch
        torch.set_num_threads(1)          # one summation order, and no second core taken
        _TORCH["torch"] = torch
    return _TORCH["torch"]


def torch_conv(x, k, dtype: str, *, stride=1, padding="same", bias=None, winograd=False) -> np.ndarray:
    """A real torch.nn.functional.conv2d of HWC x and HWIO k, the inputs cast by torch from their
    float64 values to `dtype`, computed in it; the result as float64 (HWC)."""
    torch = _torch()
    tdt = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16,
           "float16": torch.float16}[dtype]
    xt = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float64).transpose(2, 0, 1)))[None].to(tdt)
    kt = torch.from_numpy(np.ascontiguousarray(np.asarray(k, dtype=np.float64).transpose(3, 2, 0, 1))).to(tdt)
    bt = None if bias is None else torch.from_numpy(np.asarray(bias, dtype=np.float64)).to(tdt)
    with warnings.catch_warnings():   # torch's notes on 'same' with even kernels, oneDNN's TF32
        warnings.simplefilter("ignore")
        if winograd:     # NNPACK's Winograd F(6x6,3x3): oneDNN off, a batch large enough for NNPACK
            with torch.backends.mkldnn.flags(enabled=False):
                y = torch.nn.functional.conv2d(xt.repeat(16, 1, 1, 1), kt, bt, stride=stride, padding=padding)[:1]
        else:
            y = torch.nn.functional.conv2d(xt, kt, bt, stride=stride, padding=padding)
    return y[0].permute(1, 2, 0).to(torch.float64).numpy()


def torch_windows(x, k, dtype: str, row0: int, col0: int, stride: int, out_h: int, out_w: int) -> np.ndarray:
    """torch conv2d whose output[i, j] is the window starting at input (row0 + i*s, col0 + j*s)."""
    kh, kw = k.shape[:2]
    h, w = x.shape[:2]
    top, left = max(0, -row0), max(0, -col0)
    bottom = max(0, row0 + (out_h - 1) * stride + kh - h)
    right = max(0, col0 + (out_w - 1) * stride + kw - w)
    padded = np.pad(np.asarray(x, dtype=np.float64), ((top, bottom), (left, right), (0, 0)))
    view = padded[row0 + top:, col0 + left:]
    return torch_conv(view, k, dtype, stride=stride, padding=0)[:out_h, :out_w]


def fft_conv(x, k, dtype: str) -> np.ndarray:
    """scipy.signal.fftconvolve, channel pair by channel pair (the kernel flipped: a
    cross-correlation, mode 'same'), summed over the input channels in `dtype`."""
    from scipy.signal import fftconvolve
    xd, kd = np.asarray(x, dtype=dtype), np.asarray(k, dtype=dtype)
    out = np.zeros(xd.shape[:2] + (kd.shape[3],), dtype=dtype)
    for o in range(kd.shape[3]):
        acc = np.zeros(xd.shape[:2], dtype=dtype)
        for c in range(xd.shape[2]):
            acc = (acc + fftconvolve(xd[:, :, c], kd[::-1, ::-1, c, o], mode="same")).astype(dtype)
        out[:, :, o] = acc
    return out.astype(np.float64)


def _store_as(values: np.ndarray, dtype) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float64).astype(dtype)


def _truth_bound(case: NearCase, output=None, tiles=(6,)) -> tuple[np.ndarray, np.ndarray]:
    """(value, rounding bound) of the true computation at every element: the oracle's own
    bound before storage plus half an ulp of storage."""
    out = case.control if output is None else output
    rep = reproductions(case.image, case.kernel, case.truth_explanation(), out.shape,
                        algorithms=case.algorithms, tiles=tiles)[0]
    return rep.values, rep.bound + _half_width(rep)


def _move(rng, output: np.ndarray, values: np.ndarray, bound: np.ndarray, at, step: np.ndarray,
          at_least: float = 3.0) -> np.ndarray:
    """`output` with the flat elements `at` moved by `step` (signed) and stored in its dtype, each
    pushed further until it lies at least `at_least` bounds from its true value."""
    flat = output.astype(np.float64).ravel().copy()
    values, bound = values.ravel(), bound.ravel()
    for i, s in zip(at, step):
        for _ in range(60):
            new = float(_store_as(flat[i] + s, output.dtype))
            if abs(new - values[i]) >= at_least * bound[i] and np.isfinite(new):
                break
            s *= 1.5
        flat[i] = new
    return _store_as(flat.reshape(output.shape), output.dtype)


def _ulp(value: float, dtype) -> float:
    bits = {np.dtype(np.float16): 11, BF16: 8, np.dtype(np.float32): 24}[np.dtype(dtype)]
    return 2.0 ** (math.floor(math.log2(abs(value))) - (bits - 1)) if value else 2.0 ** -24


def _make_nudge(index, rng) -> NearCase:
    dtype = str(rng.choice(["bfloat16", "float16"]))
    h, w, c, o, kh, kw = _shape(rng)
    x = _store_as(_data(rng, (h, w, c)), _DTYPES[dtype])
    k = _store_as(_data(rng, (kh, kw, c, o)), _DTYPES[dtype])
    y = _store_as(torch_conv(x, k, dtype), _DTYPES[dtype])
    case = NearCase(index, "nudge", "", x, k, y, y, dtype, {})
    values, bound = _truth_bound(case)
    if rng.random() < 0.5:
        count = int(rng.integers(1, 6))
        mags = np.abs(values).ravel()
        pool = np.argsort(mags)[:max(count, mags.size // 4)] if rng.random() < 0.5 else np.arange(mags.size)
        at = rng.choice(pool, size=min(count, pool.size), replace=False)
        factor = np.exp(rng.uniform(np.log(3), np.log(500), at.size))
        step = factor * bound.ravel()[at] * rng.choice([-1.0, 1.0], at.size)
        case.output = _move(rng, y, values, bound, at, step)
        case.family, case.how = f"elements/{dtype}", f"{at.size} element(s) {sorted(int(a) for a in at)} moved by " \
            f"{', '.join(f'{f:.3g}' for f in factor)}x their bound"
    else:
        ulps = int(rng.integers(2, 9))
        median = float(np.median(np.abs(y.astype(np.float64)))) or 1.0
        constant = float(rng.choice([-1.0, 1.0])) * ulps * _ulp(median, y.dtype)
        some = rng.random(y.shape) < rng.uniform(0.1, 0.6)
        for _ in range(12):
            moved = _store_as(y.astype(np.float64) + constant * some, y.dtype)
            if np.sum(np.abs(moved.astype(np.float64) - values) >= 3 * bound) >= 3:
                break
            constant *= 2
        case.output = moved
        grown = abs(constant) / (ulps * _ulp(median, y.dtype))
        case.family = f"some-ulps/{dtype}"
        case.how = f"{constant:.3g} ({ulps} ulps of the median, x{grown:.3g}) added to {int(some.sum())} of " \
            f"{some.size} elements"
    return case


def _make_tap(index, rng) -> NearCase:
    family = str(rng.choice(["float64", "float32", "bfloat16", "float16", "bf16-from-float64"]))
    change = str(rng.choice(["one-tap", "int8"]))
    compute = "bfloat16" if family == "bf16-from-float64" else family
    data = np.float64 if family == "bf16-from-float64" else _DTYPES[family]
    h, w, c, o, kh, kw = _shape(rng)
    if family in ("float32", "float64") and rng.random() < 0.2:
        x = rng.integers(0, 256, (h, w, c)).astype(np.uint8)
    else:
        x = _store_as(_data(rng, (h, w, c)), data)
    k = _store_as(_data(rng, (kh, kw, c, o)), data)
    kf = k.astype(np.float64)
    if change == "one-tap":
        how = ""
        for _ in range(20):
            at = tuple(int(rng.integers(s)) for s in k.shape)
            delta = float(np.exp(rng.uniform(np.log(1e-4), np.log(1e-2)))) * float(rng.choice([-1.0, 1.0]))
            if kf[at] == 0:
                continue
            while True:
                changed = kf.copy()
                changed[at] = kf[at] * (1 + delta)
                if _round(changed, compute)[at] != _round(kf, compute)[at] or abs(delta) >= 1e-2:
                    break
                delta = float(np.sign(delta) * min(abs(delta) * 1.5, 1e-2))
            if _round(changed, compute)[at] != _round(kf, compute)[at]:
                how = f"tap {at} changed by {delta:+.3g} (relative)"
                break
        if not how:
            changed, how = kf, "no tap change survives rounding (a control twice)"
    else:
        per_channel = rng.random() < 0.5
        s = (np.max(np.abs(kf), axis=(0, 1, 2), keepdims=True) if per_channel else np.max(np.abs(kf))) / 127
        s = np.where(s == 0, 1.0, s)
        changed = np.round(kf / s) * s
        how = f"int8 fake-quantised kernel ({'per output channel' if per_channel else 'per tensor'})"
    out_dtype = _DTYPES[compute]
    y = _store_as(torch_conv(x, kf, compute), out_dtype)
    near = _store_as(torch_conv(x, changed, compute), out_dtype)
    truth = {"precision": "bfloat16"} if family == "bf16-from-float64" else {}
    declared = {"precision": "bfloat16"} if family == "bf16-from-float64" else None
    return NearCase(index, "tap", f"{change}/{family}", x, k, near, y, compute, truth, declared, how=how)


def _make_corrupt(index, rng) -> NearCase:
    family = str(rng.choice(["float64", "float32", "bfloat16", "float16", "tf32", "fft64", "fft32", "winograd"]))
    h, w, c, o, kh, kw = _shape(rng, odd=family.startswith("fft"))
    if family == "winograd":
        kh = kw = 3
    data = {"fft64": np.float64, "fft32": np.float32, "tf32": np.float32, "winograd": np.float32}.get(family)
    data = _DTYPES[family] if data is None else np.dtype(data)
    x = _store_as(_data(rng, (h, w, c)), data)
    k = _store_as(_data(rng, (kh, kw, c, o)), data)
    precision = {"fft64": "float64", "fft32": "float32", "tf32": "float32", "winograd": "float32"}.get(family, family)
    truth, declared, algorithms, tf32 = {}, None, ("direct",), False
    skipped = ""
    if family == "tf32":
        cut = lambda a: (a.astype(np.float32).view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)  # noqa: E731
        y = torch_conv(cut(x), cut(k), "float32")
        truth, declared, tf32 = {"precision": "tfloat32"}, {"precision": "tfloat32"}, True
    elif family.startswith("fft"):
        y = fft_conv(x, k, data)
        truth, declared, algorithms = {"algorithm": "fft"}, {"algorithm": "fft"}, ("direct", "fft")
    elif family == "winograd":
        torch = _torch()
        y = torch_conv(x, k, "float32", winograd=True)
        if not torch._nnpack_available() or np.array_equal(y, torch_conv(x, k, "float32")):
            skipped = "NNPACK's Winograd did not run here (the output equals the direct one)"
        truth, declared, algorithms = {"algorithm": "winograd"}, {"algorithm": "winograd"}, ("direct", "winograd")
    else:
        y = torch_conv(x, k, family)
    y = _store_as(y, data)
    case = NearCase(index, "corrupt", family, x, k, y, y, precision, truth, declared, algorithms, tf32,
                    skipped=skipped)
    values, bound = _truth_bound(case)
    at = rng.choice(y.size, size=min(3, y.size), replace=False)
    step = 10 * float(np.max(bound)) * rng.choice([-1.0, 1.0], at.size)
    case.output = _move(rng, y, values, bound, at, step)
    case.how = f"elements {sorted(int(a) for a in at)} moved by 10x the largest bound ({np.max(bound):.3g})"
    return case


def _make_rounding(index, rng) -> NearCase:
    kind = str(rng.choice(["uint8", "uint8", "uint8", "int8", "uint16", "int16"]))
    mode = str(rng.choice(["floor", "ceil", "trunc"]))
    h, w, c, o, kh, kw = _shape(rng)
    if kind in ("uint8", "uint16"):
        top = 255 if kind == "uint8" else 20000
        x = rng.integers(0, top + 1, (h, w, c)).astype(np.uint8 if kind == "uint8" else np.uint16)
        k = rng.uniform(0.0, 1.0, (kh, kw, c, o))
        k = k / k.sum(axis=(0, 1, 2), keepdims=True) * rng.uniform(0.5, 1.2)
    else:
        top = 127 if kind == "int8" else 3000
        x = rng.integers(-top - 1, top + 1, (h, w, c)).astype(np.int8 if kind == "int8" else np.int16)
        k = rng.standard_normal((kh, kw, c, o))
        k = k / np.abs(k).sum(axis=(0, 1, 2), keepdims=True) * rng.uniform(0.5, 1.0)
    precision = "float32" if rng.random() < 0.7 else "float64"
    k = _store_as(k, _DTYPES[precision])
    v = torch_conv(x, k, precision)
    low, high = fuzz.limits("linear", kind)
    fn = {"floor": np.floor, "ceil": np.ceil, "trunc": np.trunc}[mode]
    near = np.clip(fn(v), low, high).astype(_INTEGERS[kind])
    control = np.clip(np.rint(v), low, high).astype(_INTEGERS[kind])
    return NearCase(index, "rounding", f"{mode}/{kind}", x, k, near, control, precision, {"output_precision": kind},
                    {"output_precision": kind}, bias_forbidden=True,
                    how=f"np.{mode} instead of round-to-nearest, {int(np.sum(near != control))} of {near.size} differ")


def _make_other(index, rng) -> NearCase:
    family = str(rng.choice(["shuffle", "leaky_relu", "elu", "gelu", "hardswish", "roll", "phase", "channel-scale"]))
    min_outs = 2 if family in ("shuffle", "channel-scale") else 1
    h, w, c, o, kh, kw = _shape(rng, min_outs=min_outs, odd=family == "phase")
    x = _store_as(_data(rng, (h, w, c)), np.float32)
    k = _store_as(_data(rng, (kh, kw, c, o)), np.float32)
    y = _store_as(torch_conv(x, k, "float32"), np.float32)
    case = NearCase(index, "other", family, x, k, y, y, "float32", {})
    if family == "shuffle":
        perm = rng.permutation(o)
        while np.array_equal(perm, np.arange(o)):
            perm = rng.permutation(o)
        case.output, case.how = np.ascontiguousarray(y[..., perm]), f"output channels permuted {perm.tolist()}"
    elif family in ("leaky_relu", "elu", "gelu", "hardswish"):
        torch = _torch()
        bias = None
        if rng.random() < 0.5:
            bias = _store_as(np.round(rng.uniform(-1, 1, o), 3), np.float32).astype(np.float64)
        pre = torch_conv(x, k, "float32", bias=bias)
        t = torch.from_numpy(pre.astype(np.float32))
        act = {"leaky_relu": lambda a: torch.nn.functional.leaky_relu(a, 0.01), "elu": torch.nn.functional.elu,
               "gelu": torch.nn.functional.gelu, "hardswish": torch.nn.functional.hardswish}[family]
        case.output = act(t).numpy().astype(np.float32)
        case.control = torch.nn.functional.relu(t).numpy().astype(np.float32)
        case.truth = {"activation": "relu"}
        if bias is not None:
            case.truth["bias"] = tuple(float(b) for b in bias) if o > 1 else float(bias[0])
        case.how = f"{family} instead of ReLU" + (f", bias {bias.tolist()}" if bias is not None else "")
    elif family == "roll":
        axis, shift = int(rng.integers(2)), int(rng.choice([-1, 1]))
        rolled = np.roll(y, shift, axis=axis).astype(np.float64)
        wrapped = [slice(None)] * 3
        wrapped[axis] = 0 if shift == 1 else -1
        big = 1e3 * max(1.0, float(np.max(np.abs(y))))
        rolled[tuple(wrapped)] = rng.uniform(0.5, 2.0, rolled[tuple(wrapped)].shape) * big * \
            rng.choice([-1.0, 1.0], rolled[tuple(wrapped)].shape)
        case.output = rolled.astype(np.float32)
        case.how = f"np.roll by {shift} along axis {axis}, the wrapped {'row' if axis == 0 else 'column'} ~{big:.3g}"
    elif family == "phase":
        out_h, top = fuzz._axis("same", h, kh, 2, 1)
        out_w, left = fuzz._axis("same", w, kw, 2, 1)
        dy, dx = 0, 0
        while (dy, dx) == (0, 0):
            dy, dx = (int(v) for v in rng.integers(-1, 2, 2))
        case.control = _store_as(torch_windows(x, k, "float32", -top, -left, 2, out_h, out_w), np.float32)
        case.output = _store_as(torch_windows(x, k, "float32", -top + dy, -left + dx, 2, out_h, out_w), np.float32)
        case.truth, case.declared = {"stride": (2, 2)}, {"stride": (2, 2)}
        case.how = f"stride 2 taken at the wrong phase: windows shifted by ({dy}, {dx}) input pixels"
    else:   # channel-scale
        s = _store_as(1 + rng.uniform(-1e-3, 1e-3, o), np.float32)
        scaled = (y * s).astype(np.float32)
        case.control = scaled
        case.truth = {"scale": tuple(float(v) for v in s)}
        values, bound = _truth_bound(case)
        at = rng.choice(y.size, size=1)
        factor = float(np.exp(rng.uniform(np.log(10), np.log(100))))
        step = [factor * float(np.max(bound)) * float(rng.choice([-1, 1]))]
        case.output = _move(rng, scaled, values, bound, at, step)
        case.how = f"scales {np.round(s.astype(float), 6).tolist()}, element {int(at[0])} moved by " \
            f"{factor:.3g}x the largest bound"
    return case


_MAKERS = {"nudge": _make_nudge, "tap": _make_tap, "corrupt": _make_corrupt, "rounding": _make_rounding,
           "other": _make_other}


def make_case(index: int) -> NearCase:
    """Near-miss case `index` (kind KINDS[index % 5]): the same arrays on every run."""
    rng = np.random.default_rng([NEAR_SEED, index])
    return _MAKERS[KINDS[index % len(KINDS)]](index, rng)


# ----------------------------------------------------------------------------- judging


_SEVERITY = ("crash", "false verdict", "false alarm", "silent", "cannot decide", "ok")
_LEFT_OUT_WORDS = re.compile(r"left out|leaves? out|not compared|excluded|uncompared|ignored", re.I)


def _changes(diagnosis, expl) -> dict:
    return {f: getattr(expl, f) for f in expl.changed_fields(diagnosis.baseline)}


def check_claim(case: NearCase, output: np.ndarray, expl: Explanation) -> tuple[bool, float, str]:
    """(holds, ratio, why not): does the claimed computation reproduce `output` within the
    oracle's own bound (ratio: the largest |output - claim| / bound), naming no cause the
    case's computation does not have?"""
    forbidden = ""
    if expl.precision == "tfloat32" and not case.tf32:
        forbidden = "precision tfloat32 on a computation that is not TF32"
    elif case.bias_forbidden and np.any(np.asarray(expl.bias, dtype=float) != 0):
        forbidden = f"a bias of {expl.bias} on a {case.family} output: the rounding offset, not a cause"
    try:
        reps = reproductions(case.image, case.kernel, expl, output.shape, algorithms=case.algorithms)
    except _Forbidden as exc:
        forbidden = str(exc)
        try:   # how far it is off by its own bound, for the report
            reps = reproductions(case.image, case.kernel, expl, output.shape, algorithms=("direct", "fft", "winograd"))
        except (_Unverifiable, _Mismatch):
            return False, math.nan, forbidden
    except _Mismatch as exc:
        return False, math.inf, str(exc)
    except _Unverifiable as exc:
        return False, math.nan, f"the oracle cannot reproduce {exc}"
    holds, ratio = reproduces(output, reps)
    if forbidden:
        within = f"within its bound ({ratio:.3g}x)" if holds else f"{ratio:.3g}x its bound"
        return False, ratio, f"{forbidden} (|output - claim| {within})"
    return holds, ratio, "" if holds else f"|output - claim| reaches {ratio:.3g}x its bound"


def _needless(case: NearCase, output, expl) -> str:
    """A fitted bias or scale the truth does not have (issue 20 item 2: a fitted parameter must
    earn its place) that is no cause: the claim holds without it (within half its bound), or
    the data cannot tell it from its default: its largest effect (|bias|, or |scale - 1| times
    the rms claimed value) is within 3 * (median element bound) / sqrt(N compared)."""
    for name, default in (("bias", 0.0), ("scale", 1.0)):
        value = np.asarray(getattr(expl, name), dtype=float)
        if name in case.truth or np.all(value == default):
            continue
        holds, ratio, _ = check_claim(case, output, expl.with_(**{name: default}))
        if holds and ratio <= 0.5:
            return (f"names {name} {getattr(expl, name)}, which the output does not need (without it: "
                    f"{ratio:.3g}x the bound)")
        try:
            rep = reproductions(case.image, case.kernel, expl, output.shape, algorithms=case.algorithms)[0]
        except (_Unverifiable, _Mismatch, _Forbidden):
            continue
        out = np.asarray(output, dtype=np.float64)
        tol = (rep.bound + storage_term(rep, out, np.dtype(output.dtype).name))[rep.compared]
        count = max(int(tol.size), 1)
        noise = 3 * float(np.median(tol)) / math.sqrt(count) if tol.size else math.inf
        values = rep.values[rep.compared]
        size = 1.0 if name == "bias" else float(np.sqrt(np.mean(values ** 2))) if values.size else 0.0
        effect = float(np.max(np.abs(value - default))) * size
        if effect <= noise:
            return (f"names {name} {getattr(expl, name)}, which the data cannot tell from {default:g} (its effect "
                    f"{effect:.3g} <= 3 x the median bound / sqrt({count}) = {noise:.3g})")
    return ""


def _silent(case: NearCase, output, diagnosis) -> str:
    """Elements a claim leaves out, wildly off the reproduction, that the verdict never mentions."""
    expl = diagnosis.explanation
    compared = _compared(output.shape, expl)
    if np.all(compared):
        return ""
    try:
        rep = reproductions(case.image, case.kernel, expl, output.shape, algorithms=case.algorithms)[0]
    except (_Unverifiable, _Mismatch, _Forbidden):
        return ""
    out = np.asarray(output, dtype=np.float64)
    scale = float(np.max(np.abs(rep.values[compared]))) if np.any(compared) else 1.0
    wild = ~compared & (np.abs(out - rep.values) > 100 * max(scale, 1e-30))
    if not np.any(wild):
        return ""
    text = " ".join(str(t) for t in (diagnosis.reason or "", diagnosis.where or "", *diagnosis.notes))
    stats = diagnosis.stats
    counted = any(("left" in name or "excluded" in name or "uncompared" in name) and getattr(stats, name)
                  for name in getattr(stats, "__dataclass_fields__", {}))
    if _LEFT_OUT_WORDS.search(text) or counted:
        return ""
    return (f"{int(np.sum(~compared))} elements left out in silence, {int(np.sum(wild))} of them over 100x "
            f"the compared values (up to {float(np.max(np.abs(out[wild]))):.3g})")


def judge_call(case: NearCase, control: bool, declared: bool) -> tuple[str, str]:
    """One call of convcheck.explain on the near miss (or its control), judged."""
    output = case.control if control else case.output
    kwargs = dict(case.declared) if declared else {}
    try:
        d = convcheck.explain(case.image, case.kernel, output, **kwargs)
    except Exception as exc:  # noqa: BLE001 - nothing here is bad input: any exception is a bug
        return "crash", f"{type(exc).__name__}: {exc}"
    if d.verdict is Verdict.UNEXPLAINED:
        if d.cannot_decide:
            return "cannot decide", d.reason or ""
        if control:
            closest = _changes(d, d.closest) if d.closest is not None else None
            return "false alarm", f"control called unexplained (closest {closest}; {d.where})"
        return "ok", "unexplained"
    problems = []
    for role, expl in [("claim", d.explanation)] + [("alternative", a) for a in d.alternatives]:
        holds, ratio, why = check_claim(case, output, expl)
        if not holds:
            problems.append(f"{d.verdict} {role} {_changes(d, expl)}: {why}")
        else:
            needless = _needless(case, output, expl)
            if needless:
                problems.append(f"{d.verdict} {role} {_changes(d, expl)}: {needless}")
    if problems:
        return "false verdict", "; ".join(problems)
    if control and not fuzz._matches_truth(d, case.truth) and len(_changes(d, d.explanation)) > len(case.truth):
        return "false verdict", f"control {d.verdict} as {_changes(d, d.explanation)}, truth {case.truth}"
    silent = _silent(case, output, d)
    if silent:
        return "silent", f"{d.verdict} {_changes(d, d.explanation)}: {silent}"
    return "ok", f"{d.verdict} {_changes(d, d.explanation)} (holds)"


def judge(case: NearCase, control: bool = False) -> tuple[str, str]:
    """The near miss (or its control) through the plain call and, where the case has one, the
    declared call: the worst outcome of the two, with what each said."""
    results = [("plain",) + judge_call(case, control, False)]
    if case.declared:
        results.append((f"declared {case.declared}",) + judge_call(case, control, True))
    worst = min(results, key=lambda r: _SEVERITY.index(r[1]))
    detail = "; ".join(f"[{label}] {outcome}: {text}" for label, outcome, text in results if outcome == worst[1])
    return worst[1], detail


def _judge_index(index: int) -> list:
    import time
    case = make_case(index)
    if case.skipped:
        return [(index, case.kind, case.family, "near miss", "skipped", case.skipped, 0.0)]
    rows = []
    for control in (False, True):
        start = time.perf_counter()
        outcome, detail = judge(case, control)
        rows.append((index, case.kind, case.family, "control" if control else "near miss", outcome,
                     detail if control else f"{case.how}: {detail}", time.perf_counter() - start))
    return rows


def run(indices, jobs: int = 1, verbose: bool = True, log: Optional[str] = None) -> Counter:
    """Judge every case's near miss and control; returns the counts (overall, 'near miss:outcome',
    'control:outcome', 'kind K:outcome', 'family K/F:outcome') and prints the failures with
    their indices; `log` names a file that gets one JSON line per judged output."""
    import json
    indices = list(indices)
    sink = open(log, "a") if log else None
    rows = []
    if jobs > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            chunks = pool.imap(_judge_index, indices)
            for chunk in chunks:
                rows.extend(chunk)
                for r in chunk if sink else ():
                    sink.write(json.dumps(r) + "\n")
                    sink.flush()
    else:
        for i in indices:
            chunk = _judge_index(i)
            rows.extend(chunk)
            for r in chunk if sink else ():
                sink.write(json.dumps(r) + "\n")
                sink.flush()
    if sink:
        sink.close()
    counts: Counter = Counter()
    for index, kind, family, which, outcome, detail, seconds in rows:
        counts[outcome] += 1
        counts[f"{which}:{outcome}"] += 1
        counts[f"kind {kind}:{outcome}"] += 1
        counts[f"family {kind}/{family}:{outcome}"] += 1
        counts["seconds"] += seconds
        if verbose and outcome in FAILURES:
            print(f"FAIL case {index} ({kind} {family}, {which}): {outcome}: {detail}")
    counts["seconds"] = round(counts["seconds"])
    return counts


def _print_counts(counts: Counter) -> None:
    plain = {k: v for k, v in counts.items() if not k.startswith(("kind ", "family "))}
    print(dict(sorted(plain.items())))
    for prefix in ("kind ", "family "):
        groups: dict = {}
        for key, value in counts.items():
            if key.startswith(prefix):
                name, outcome = key[len(prefix):].rsplit(":", 1)
                groups.setdefault(name, {})[outcome] = value
        for name in sorted(groups):
            print(f"  {prefix}{name}: {dict(sorted(groups[name].items()))}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    jobs = next((int(a[2:] or 2) for a in sys.argv[1:] if a.startswith("-j")), 1)
    log = next((a[len("--log="):] for a in sys.argv[1:] if a.startswith("--log=")), None)
    if len(args) == 1:
        case = make_case(int(args[0]))
        print(case.kind, case.family, case.how, "| truth", case.truth, "| declared", case.declared, "|",
              case.image.dtype, case.image.shape, case.kernel.dtype, case.kernel.shape, case.output.dtype,
              case.output.shape, case.skipped)
        if not case.skipped:
            print("near miss:", judge(case))
            print("control:  ", judge(case, control=True))
    else:
        _print_counts(run(range(int(args[0]), int(args[1])), jobs, log=log))
