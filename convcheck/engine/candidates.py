"""Candidates: the structures the search enumerates and the order it ranks them in.

A *structure* is a kernel transform, padding, boundary, offset, stride, dilation,
activation and kind of scale/bias fit (`Structure`); a *layout* the part of it that the
output's shape decides (`Layout`, `layouts_for`). `complexity` orders candidates: fewest
changed fields first (CONTRACT section 3: the simplest combination is the explanation).
`as_explanation` turns a structure at a precision into the contract's `Explanation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..geometry import axis_layout, axis_padding, is_explicit, pad_before, transform_kernel
from ..vocabulary import ACTIVATIONS, BOUNDARIES, Explanation, KERNEL_TRANSFORMS, PADDINGS


FITS = ("none", "bias", "scale", "both", "channel_bias", "channel_scale", "channel_both")


@dataclass(frozen=True)
class Structure:
    """A candidate's structural fields (`padding` a convention's name or explicit amounts)."""

    transform: str
    padding: object
    boundary: str
    offset: tuple[int, int]
    fit: str
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    activation: str = "linear"


def expected_structure(baseline: Explanation) -> Structure:
    """The structure of the expected computation: what the caller declared (a 'constant'
    boundary's declared value is its border value, fitted like any candidate's)."""
    return Structure(baseline.kernel_transform, baseline.padding, baseline.boundary, tuple(baseline.offset),
                     "cval" if baseline.boundary == "constant" else "none", tuple(baseline.stride),
                     tuple(baseline.dilation), baseline.activation)


def per_channel_fit(fit: str) -> bool:
    """True for a scale/bias fitted per output channel."""
    return fit.startswith("channel_")


def fit_kind(fit: str) -> str:
    """'none', 'bias', 'scale', 'both' or 'cval', whether per channel or not."""
    return fit[len("channel_"):] if per_channel_fit(fit) else fit


def fit_fields(fit: str) -> int:
    """How many contract fields a fit changes (bias, scale; 'cval': a 'constant' boundary's value)."""
    kind = fit_kind(fit)
    return (kind in ("bias", "both")) + (kind in ("scale", "both")) + (kind == "cval")


def fitted_count(fit: str, outs: int = 1) -> int:
    """How many parameters a fit draws from the output itself: one per field, or one per
    field and output channel for a per-channel fit."""
    return fit_fields(fit) * (outs if per_channel_fit(fit) else 1)


def as_value(x):
    """A fitted scale or bias as the contract reports it: a float, or a tuple per channel."""
    array = np.asarray(x, dtype=np.float64)
    return float(array) if array.ndim == 0 else tuple(float(v) for v in array.ravel())


def complexity(struct: "Structure", precision: str, baseline: Explanation, fixed: int = 0,
                output_precision: Optional[str] = None, outs: int = 1) -> tuple:
    """Sort key: fewest changed fields first; among those, fewest fitted parameters (a
    structural cause, which fits nothing to the output, beats a bias or scale that
    reproduces it equally well, one number beats one per channel); then the contract's
    order of values. `fixed` counts the changed fields every candidate shares (groups,
    output layout read from the shapes); `output_precision` is the candidate's, if it
    changes that field."""
    fitted = fitted_count(struct.fit, outs)
    folded = folds_offset(struct.padding, baseline)
    changed = ((struct.transform != baseline.kernel_transform) + (struct.padding != baseline.padding)
               + (struct.boundary != baseline.boundary)
               + (tuple(struct.offset) != tuple(baseline.offset) and not folded)
               + (tuple(struct.stride) != tuple(baseline.stride))
               + (tuple(struct.dilation) != tuple(baseline.dilation))
               + (precision != baseline.precision) + fit_fields(struct.fit) + fixed
               + (struct.activation != baseline.activation)
               + (output_precision is not None and output_precision != baseline.output_precision))
    return (changed, fitted, ACTIVATIONS.index(struct.activation), KERNEL_TRANSFORMS.index(struct.transform),
            struct.padding != baseline.padding,
            PADDINGS.index(struct.padding) if isinstance(struct.padding, str) else len(PADDINGS),
            boundary_rank(struct.boundary),
            abs(struct.offset[0]) + abs(struct.offset[1]), struct.offset,
            precision != baseline.precision, PRECISION_PREFERENCE.index(precision),
            FITS.index(struct.fit) if struct.fit in FITS else len(FITS))


# A different rule on each axis ([rows, columns], as scipy.ndimage's per-axis modes in
# separable filters): tried only when no single rule explains the output.
BOUNDARY_PAIRS = tuple((rows, cols) for rows in BOUNDARIES for cols in BOUNDARIES if rows != cols)


def boundary_rank(boundary) -> int:
    if boundary == "constant":
        return len(BOUNDARIES) + len(BOUNDARY_PAIRS)
    return BOUNDARIES.index(boundary) if isinstance(boundary, str) else len(BOUNDARIES) + BOUNDARY_PAIRS.index(
        tuple(boundary))


# Among narrower precisions, what the output's values point to first (see Problem).
PRECISION_PREFERENCE = ("float64", "float32", "bfloat16", "float16", "tfloat32")


def folds_offset(padding, baseline: Explanation) -> bool:
    """True for explicit pads the caller did not declare: found because no named padding
    gives the output's size (CONTRACT section 2a). A shift of their windows is the same
    computation as other pads of the same total, so it is folded into the pads (see
    `as_explanation`) and compares every element, never an `offset` of its own."""
    return is_explicit(padding) and padding != baseline.padding


@dataclass(frozen=True)
class Layout:
    """A kernel transform and geometry whose output has the output's size."""

    transform: str
    padding: object
    stride: tuple[int, int]
    dilation: tuple[int, int]


_MAX_STRIDE = 16
MAX_DILATION = 4
# Explicit pads nobody declared are searched up to the dilated kernel's span on each side:
# a window starting further out reads nothing but padding (ONNX pads of 3 with a 3x3 kernel
# give such a ring); more is an output grown by rows no convolution reads, not a padding.
MAX_PAD_SPANS = 1


def layouts_for(problem, baseline: Explanation) -> list[Layout]:
    """Every (transform, padding, stride, dilation) that gives the output's (Ho, Wo): free
    evidence from the shapes. Dilation is searched up to 4 (the same on both axes unless
    declared otherwise) while the dilated kernel fits in the image; stride as far as the
    sizes allow, but not along an axis with a single output (one window: any stride gives it).
    """
    height, width = problem.image_hw
    out_h, out_w = problem.output.shape[1:3]
    # The same shapes give the same layouts (a suite asks again for every case): cached.
    key = (height, width, out_h, out_w, problem.kernel.shape[:2], tuple(baseline.stride), tuple(baseline.dilation),
           baseline.padding)
    if key not in _LAYOUTS:
        if len(_LAYOUTS) > 256:
            _LAYOUTS.clear()
        _LAYOUTS[key] = _all_layouts(problem, baseline)
    return list(_LAYOUTS[key])


_LAYOUTS: dict = {}


def _all_layouts(problem, baseline: Explanation) -> list[Layout]:
    """`layouts_for`, computed: the named paddings and explicit pads the caller declared;
    when none of them gives the output's size at the declared stride and dilation, explicit
    pads that do (`_explicit_pads`, CONTRACT section 2a: pads are named only for such an
    output). A named padding at another stride does not count: PyTorch's padding=1 at stride
    2 on 9 rows with a 4-row kernel (4 outputs) is neither 'same' nor 'valid' at stride 2,
    while 'full' at stride 3 gives 4 rows too, and the pads were never tried (a hunt)."""
    paddings = list(PADDINGS) + ([baseline.padding] if is_explicit(baseline.padding) else [])
    found = _fitting(problem, baseline, paddings)
    if not any(tuple(lay.dilation) == tuple(baseline.dilation) and tuple(lay.stride) == tuple(baseline.stride)
               for lay in found):
        found += _fitting(problem, baseline, None, [tuple(baseline.dilation)])
    return _distinct_windows(found, baseline, problem.image_hw, problem.kernel)


def _distinct_windows(layouts: list[Layout], baseline: Explanation, image_hw, kernel) -> list[Layout]:
    """`layouts` less those with a named padding whose windows the declared explicit pads
    already give (PyTorch padding=1 with a 3x3 kernel at stride 1 is 'same'): one search of
    the same windows, under the name the caller used."""
    if not is_explicit(baseline.padding):
        return layouts
    declared = {(lay.transform, tuple(lay.stride), tuple(lay.dilation)) for lay in layouts
                if lay.padding == baseline.padding}

    def same_windows(lay: Layout) -> bool:
        if isinstance(lay.padding, str) and (lay.transform, tuple(lay.stride), tuple(lay.dilation)) in declared:
            kh, kw = transform_kernel(kernel, lay.transform).shape[:2]
            return pad_before(lay.padding, kh, kw, *image_hw, lay.stride, lay.dilation) == pad_before(
                baseline.padding, kh, kw, *image_hw, lay.stride, lay.dilation)
        return False

    return [lay for lay in layouts if not same_windows(lay)]


def _fitting(problem, baseline: Explanation, paddings, dilations=None) -> list[Layout]:
    """The layouts with one of `paddings` (None: the explicit pads of `_explicit_pads`) whose
    output has the output's size, over every kernel transform, dilation (up to MAX_DILATION,
    or `dilations`) and stride."""
    height, width = problem.image_hw
    out_h, out_w = problem.output.shape[1:3]
    if dilations is None:
        dilations = sorted({(d, d) for d in range(1, MAX_DILATION + 1)} | {tuple(baseline.dilation)})
    found = []
    for transform in KERNEL_TRANSFORMS:
        tkh, tkw = transform_kernel(problem.kernel, transform).shape[:2]
        for padding in paddings if paddings is not None else [None]:
            for dilation in dilations:
                if dilation != tuple(baseline.dilation) and (
                        (tkh - 1) * dilation[0] + 1 > max(height, 1) or (tkw - 1) * dilation[1] + 1 > max(width, 1)):
                    continue
                found += _strides(transform, padding, dilation, (tkh, tkw), (height, width), (out_h, out_w), baseline)
    return found


def _strides(transform, padding, dilation, kernel_hw, image_hw, out_hw, baseline) -> list[Layout]:
    """The layouts of one transform, padding and dilation over the strides that give `out_hw`
    (`padding` None: for each stride, the explicit pads that give it)."""
    per_axis = []
    for axis in (0, 1):
        size, k, out = image_hw[axis], kernel_hw[axis], out_hw[axis]
        fits = {}
        for s in range(1, min(max(size, 1), _MAX_STRIDE) + 1):
            pads = _explicit_pads(size, k, s, dilation[axis], out) if padding is None else axis_padding(padding, axis)
            if pads is not None and axis_layout(pads, size, k, s, dilation[axis])[0] == out:
                fits[s] = pads
        strides = _single_window(list(fits), out, baseline.stride[axis])
        per_axis.append([(s, fits[s]) for s in strides])
    layouts = []
    for sy, rows in per_axis[0]:
        for sx, cols in per_axis[1]:
            pads = padding if padding is not None else (rows, cols)
            layouts.append(Layout(transform, pads, (sy, sx), dilation))
    return layouts


def _explicit_pads(size: int, k: int, stride: int, dilation: int, out: int):
    """(before, after) zero padding giving `out` outputs along an axis at this stride: of the
    totals that do (at strides above 1 the last rows may go unread), the largest even one,
    split evenly as PyTorch's padding= and most ONNX exporters pad, else the largest, its odd
    row at the end. Other splits are the same windows shifted: the search's offsets reach
    them, folded into the pads (`folds_offset`). None when no padding gives `out` with at most
    the kernel's span on each side (`MAX_PAD_SPANS`)."""
    span = (k - 1) * dilation + 1
    totals = [t for t in range(max((out - 1) * stride + span - size, 0), (out - 1) * stride + span - size + stride)
              if t >= 0 and size + t >= span and (size + t - span) // stride + 1 == out and t <= 2 * MAX_PAD_SPANS * span]
    if not totals:
        return None
    even = [t for t in totals if t % 2 == 0]
    total = max(even) if even else max(totals)
    return total // 2, total - total // 2


def _single_window(strides: list[int], out: int, declared: int) -> list[int]:
    """With one output along an axis every fitting stride gives the same window: keep one
    (the declared stride if it fits, else the smallest)."""
    if out != 1 or len(strides) <= 1:
        return strides
    return [declared] if declared in strides else strides[:1]


def geometry_changes(layout: Layout, baseline: Explanation) -> int:
    return (tuple(layout.stride) != tuple(baseline.stride)) + (tuple(layout.dilation) != tuple(baseline.dilation))


def winograd_precisions(precisions) -> list[str]:
    """The precisions a Winograd candidate may have: those that accumulate in their own format
    (float32, float64); Winograd with transforms stored in half precision is not modelled."""
    return [q for q in precisions if q in ("float64", "float32")]


def winograd_layouts(problem, layouts: list[Layout]) -> list[Layout]:
    """The layouts a Winograd F(m x m, 3 x 3) computation can have: a 3x3 kernel at stride 1
    and dilation 1 (every transform of a 3x3 kernel is 3x3)."""
    if tuple(problem.kernel.shape[:2]) != (3, 3):
        return []
    return [lay for lay in layouts if tuple(lay.stride) == (1, 1) and tuple(lay.dilation) == (1, 1)]


def as_explanation(struct: Structure, precision: str, scale, bias, base: Explanation,
                   output_precision: Optional[str] = None) -> Explanation:
    """A structure as an explanation; `base` carries the fields every candidate shares and
    the declared ones (a bias or scale the structure does not fit stays as declared; for a
    'constant' boundary the fitted border value comes in the `bias` slot); `output_precision`
    the type the result was stored in, when not the precision's own. The offset of explicit
    pads nobody declared is folded into them (`folds_offset`)."""
    padding, offset = struct.padding, tuple(struct.offset)
    if folds_offset(padding, base):
        (top, bottom), (left, right) = padding
        padding = ((top - offset[0], bottom + offset[0]), (left - offset[1], right + offset[1]))
        offset = (0, 0)
    common = dict(kernel_transform=struct.transform, padding=padding, offset=offset, precision=precision,
                  stride=tuple(struct.stride), dilation=tuple(struct.dilation), output_precision=output_precision)
    if struct.fit == "cval":
        return base.with_(boundary="constant", cval=float(bias), **common)
    kind = fit_kind(struct.fit)
    return base.with_(boundary=struct.boundary, activation=struct.activation,
                      bias=as_value(bias) if kind in ("bias", "both") else base.bias,
                      scale=as_value(scale) if kind in ("scale", "both") else base.scale, **common)
