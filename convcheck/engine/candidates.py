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

from ..geometry import axis_layout, transform_kernel
from ..vocabulary import ACTIVATIONS, BOUNDARIES, Explanation, KERNEL_TRANSFORMS, PADDINGS


FITS = ("none", "bias", "scale", "both", "channel_bias", "channel_scale", "channel_both")


@dataclass(frozen=True)
class Structure:
    transform: str
    padding: str
    boundary: str
    offset: tuple[int, int]
    fit: str
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    activation: str = "linear"


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
    changed = ((struct.transform != "identity") + (struct.padding != baseline.padding)
               + (struct.boundary != "zero") + (struct.offset != (0, 0))
               + (tuple(struct.stride) != tuple(baseline.stride))
               + (tuple(struct.dilation) != tuple(baseline.dilation))
               + (precision != baseline.precision) + fit_fields(struct.fit) + fixed
               + (struct.activation != "linear") + (output_precision is not None))
    return (changed, fitted, ACTIVATIONS.index(struct.activation), KERNEL_TRANSFORMS.index(struct.transform),
            struct.padding != baseline.padding, PADDINGS.index(struct.padding),
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


@dataclass(frozen=True)
class Layout:
    """A kernel transform and geometry whose output has the output's size."""

    transform: str
    padding: str
    stride: tuple[int, int]
    dilation: tuple[int, int]


_MAX_STRIDE = 16


MAX_DILATION = 4


def layouts_for(problem, baseline: Explanation) -> list[Layout]:
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


def _all_layouts(problem, baseline: Explanation) -> list[Layout]:
    """`layouts_for`, computed."""
    height, width = problem.image_hw
    out_h, out_w = problem.output.shape[1:3]
    dilations = sorted({(d, d) for d in range(1, MAX_DILATION + 1)} | {tuple(baseline.dilation)})
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
                found += [Layout(transform, padding, (sy, sx), dilation) for sy in rows for sx in cols]
    return found


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
    """A structure as an explanation; `base` carries the fields every candidate shares (for a
    'constant' boundary the fitted border value comes in the `bias` slot); `output_precision`
    the type the result was stored in, when not the precision's own."""
    if struct.fit == "cval":
        return base.with_(kernel_transform=struct.transform, padding=struct.padding, boundary="constant",
                          offset=struct.offset, precision=precision, stride=tuple(struct.stride),
                          dilation=tuple(struct.dilation), cval=float(bias), output_precision=output_precision)
    kind = fit_kind(struct.fit)
    return base.with_(kernel_transform=struct.transform, padding=struct.padding, boundary=struct.boundary,
                      offset=struct.offset, precision=precision, stride=tuple(struct.stride),
                      dilation=tuple(struct.dilation),
                      bias=as_value(bias) if kind in ("bias", "both") else 0.0,
                      scale=as_value(scale) if kind in ("scale", "both") else 1.0,
                      activation=struct.activation, output_precision=output_precision)
