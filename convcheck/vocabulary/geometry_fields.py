"""The rows of CONTRACT section 2's Geometry fields: where each output element's window sits.

kernel_transform, padding, stride, dilation, boundary, cval, offset, groups and kernel_axis,
each its sentences, its (summary, fix) function and its `Field` row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..choices import BOUNDARIES, KERNEL_AXES, KERNEL_TRANSFORMS, PADDINGS
from .row import CauseText, Field, label_of, number_text, pads_text

if TYPE_CHECKING:
    from . import Explanation


# --- kernel_transform

_TRANSFORM_TEXT = {
    "identity": ("the kernel was used as given, neither flipped nor transposed",
                 "transform the kernel as you expect before the convolution, or expect it as given"),
    "rot180": ("the kernel was flipped 180 degrees: this is a true convolution, not a cross-correlation",
               "use scipy.signal.correlate2d, or pass kernel[::-1, ::-1]"),
    "transpose": ("the kernel was transposed (rows and columns swapped)",
                  "pass kernel.T (swap the kh and kw axes), or check how the weights were reshaped"),
    "anti_transpose": ("the kernel was transposed and flipped 180 degrees, as convolve2d(image, kernel.T) does",
                       "use scipy.signal.correlate2d(image, kernel), without .T"),
    "flip_ud": ("the kernel is upside down (rows reversed)",
                "pass kernel[::-1, :]"),
    "flip_lr": ("the kernel is mirrored left to right (columns reversed)",
                "pass kernel[:, ::-1]"),
    "rot90": ("the kernel was rotated a quarter turn counter-clockwise (np.rot90(kernel))",
              "pass np.rot90(kernel, -1) to undo it"),
    "rot270": ("the kernel was rotated a quarter turn clockwise (np.rot90(kernel, -1))",
               "pass np.rot90(kernel, 1) to undo it"),
}

_KERNEL_TRANSFORM = Field(
    "kernel_transform", "geometry", KERNEL_TRANSFORMS, "identity",
    enumerated="every transform, each with the paddings, strides and dilations that give the output's size",
    written="choice",
    why=("Deep-learning 'convolutions' (TensorFlow, Keras, PyTorch) are "
         "cross-correlations: they slide the kernel without flipping it, while "
         "scipy.signal.convolve2d and textbook convolution flip it 180 degrees."),
    cause=lambda value, baseline, explanation: _TRANSFORM_TEXT[value],
    label=label_of("kernel_transform", {
        "identity": "kernel as given", "rot180": "kernel flipped 180° (true convolution)",
        "transpose": "kernel transposed", "anti_transpose": "kernel transposed and flipped",
        "flip_ud": "kernel flipped upside down", "flip_lr": "kernel flipped left to right",
        "rot90": "kernel rotated 90°", "rot270": "kernel rotated 270°"}))

# --- padding

_PADDING_TEXT = {
    "same": ("the output has the image's size ('same' padding)",
             "pass padding='same' (mode='same' in scipy.signal)"),
    "valid": ("the output uses only positions where the kernel fits inside the image ('valid': "
              "Keras's default)",
              "pass padding='same' to keep the image size (mode='same' in scipy.signal)"),
    "full": ("the output covers every overlap of kernel and image ('full': scipy.signal's default mode)",
             "pass mode='same' (or 'valid') to scipy.signal.convolve2d/correlate2d"),
}


def _padding_cause(value, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    if not isinstance(value, str):
        return _explicit_padding_cause(value, baseline)
    summary, fix = _PADDING_TEXT[value]
    if baseline.padding != value and isinstance(baseline.padding, str):
        fix = (f"pass padding='{baseline.padding}' (mode='{baseline.padding}' in scipy.signal), "
               f"or compare against a '{value}' reference")
    return summary, fix


def _explicit_padding_cause(value, baseline: Explanation) -> tuple[str, str]:
    """(summary, fix) of an output whose size and windows only explicit pads give (CONTRACT 2a)."""
    (top, bottom), (left, right) = value
    expected = (f"'{baseline.padding}'" if isinstance(baseline.padding, str)
                else f"the declared {pads_text(baseline.padding)}")
    summary = (f"the input was padded by {top} row(s) at the top, {bottom} at the bottom, {left} column(s) on the "
               f"left and {right} on the right (explicit pads {pads_text(value)}, as PyTorch's padding= or ONNX's "
               f"pads give them), not {expected}")
    fix = (f"declare these pads (--padding {top},{bottom},{left},{right}; padding=(({top}, {bottom}), ({left}, "
           f"{right})) in Python) if the layer pads so, or pad the layer as expected (PyTorch padding=, ONNX "
           "pads [top, left, bottom, right], F.pad / ZeroPadding2D before a 'valid' convolution)")
    return summary, fix


def _padding_label(value) -> str:
    if not isinstance(value, str):
        return f"explicit pads {pads_text(value)}"
    return {"same": "'same' padding", "valid": "'valid' padding (no border)",
            "full": "'full' padding (output grown by the kernel)"}.get(value, f"padding {value}")


_PADDING = Field(
    "padding", "geometry", PADDINGS, "same",
    enumerated=("the output's shape: every padding whose output size fits, and explicit pads (declared, or "
                "when no named padding gives the size)"),
    written="choice",
    why=("Each library sizes its output differently: 'same' keeps the image size, "
         "'valid' uses only positions where the kernel fits, 'full' every overlap "
         "(scipy.signal's default)."),
    cause=_padding_cause,
    label=_padding_label)

# --- stride and dilation


def _spacing_cause(name: str) -> CauseText:
    """The (summary, fix) of a stride or dilation other than the baseline's."""
    def cause(value, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
        was = getattr(baseline, name)
        what = "every window steps" if name == "stride" else "the kernel taps are"
        summary = (f"the convolution ran with {name} [{value[0]}, {value[1]}], not "
                   f"[{was[0]}, {was[1]}]: {what} {value[0]} rows and {value[1]} columns apart")
        option = "strides" if name == "stride" else "dilation_rate"
        fix = (f"pass {name}=[{value[0]}, {value[1]}] to convcheck (--{name} "
               f"{value[0]},{value[1]}) if intended, or {option}={tuple(was)} to the layer")
        return summary, fix
    return cause


_STRIDE = Field(
    "stride", "geometry", None, (1, 1),
    enumerated="the output's shape: every stride up to 16 that gives its size (one along an axis with a single output)",
    written="pair",
    why=("A stride keeps every s-th window only; the output's size already says which stride "
         "(ceil(H / s) rows for 'same'), and TensorFlow's SAME pads a stride differently from "
         "PyTorch's symmetric padding."),
    cause=_spacing_cause("stride"),
    label=label_of("stride"))

_DILATION = Field(
    "dilation", "geometry", None, (1, 1),
    enumerated="every dilation up to 4, the same on both axes, while the dilated kernel fits in the image",
    written="pair",
    why=("A dilated (atrous) kernel has its taps spread apart (dilation_rate in Keras, "
         "dilation in PyTorch); with 'same' padding the output size does not show it, "
         "only the values do."),
    cause=_spacing_cause("dilation"),
    label=label_of("dilation"))

# --- boundary and cval

_BOUNDARY_TEXT = {
    "zero": ("the image was padded with zeros",
             "pad with the boundary mode you expect (mode='constant', cval=0 in scipy.ndimage)"),
    "reflect": ("the image was padded by reflection without repeating the edge (dcb|abcd|cba): "
                "OpenCV's default BORDER_REFLECT_101, scipy.ndimage mode='mirror'",
                "use zero padding (cv2.BORDER_CONSTANT, scipy.ndimage mode='constant'), or "
                "np.pad(image, pad, mode='reflect') before a 'valid' convolution"),
    "symmetric": ("the image was padded symmetrically, repeating the edge (cba|abcd|dcb): "
                  "scipy.ndimage's default mode='reflect', scipy.signal boundary='symm'",
                  "pass mode='constant' to scipy.ndimage (boundary='fill' to scipy.signal)"),
    "wrap": ("the image was padded circularly (wrap-around), as an FFT convolution or "
             "boundary='wrap' does",
             "use zero padding: boundary='fill' in scipy.signal, mode='constant' in scipy.ndimage, "
             "or pad the FFT to the full size"),
    "constant": ("the image was padded with a constant value other than zero (scipy.ndimage "
                 "mode='constant' with cval, cv2.BORDER_CONSTANT with a value, np.pad constant_values)",
                 "pad with zeros: cval=0 in scipy.ndimage, value=0 with cv2.BORDER_CONSTANT"),
    "edge": ("the image was padded by repeating its edge pixels (scipy.ndimage mode='nearest', "
             "cv2.BORDER_REPLICATE)",
             "use zero padding (mode='constant' in scipy.ndimage, cv2.BORDER_CONSTANT)"),
}


def _boundary_cause(value, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    if isinstance(value, str):
        return _BOUNDARY_TEXT[value]
    rows, cols = value
    summary = (f"the rows and the columns were extended by different rules: rows {rows} "
               f"({_BOUNDARY_TEXT[rows][0]}), columns {cols} ({_BOUNDARY_TEXT[cols][0]})")
    fix = ("use one boundary rule on both axes (scipy.ndimage takes mode= per axis in separable "
           "filters: pass a single mode)")
    return summary, fix


_BOUNDARY = Field(
    "boundary", "geometry", BOUNDARIES, "zero",
    enumerated=("the search's passes: each rule on both axes, then a different rule on the rows and the columns, "
                "then 'constant' with its cval fitted to the border"),
    written="choice",
    why=("Libraries fill the area outside the image differently: TensorFlow and Keras "
         "use zeros, scipy.ndimage mirrors by default, OpenCV reflects without "
         "repeating the edge."),
    cause=_boundary_cause,
    label=label_of("boundary", {
        "zero": "zero border", "reflect": "image mirrored at its edges (reflect)",
        "symmetric": "image mirrored at its edges, edge pixel repeated (symmetric)",
        "wrap": "image wrapped around at its edges", "edge": "edge pixels repeated outwards",
        "constant": "constant border"}))


def _cval_cause(value, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    return (f"the border value was {number_text(value)}, not {number_text(baseline.cval)}",
            f"pass cval={number_text(baseline.cval)} (value= for OpenCV), or expect a border of {number_text(value)}")


_CVAL = Field(
    "cval", "geometry", None, 0.0,
    enumerated="fitted in closed form to the outputs whose windows reach past the edge, for a 'constant' boundary",
    written="number",
    why=("A 'constant' boundary fills the outside of the image with one value (cval): only the "
         "outputs whose windows reach past the edge show it."),
    cause=_cval_cause,
    label=label_of("cval"))

# --- offset

# Transforms that swap the kernel's rows and columns (so its sizes along the two axes).
_QUARTER_TURNS = ("transpose", "anti_transpose", "rot90", "rot270")


def offset_case(value, explanation: Optional[Explanation], kernel_size: Optional[tuple[int, int]]) -> str:
    """Which reason fits an offset: 'stride' (an axis it moves has a stride above 1: where the
    first window starts depends on the padding at the top/left), 'even' (stride 1, and the
    dilated kernel has an even size along every axis it moves: no centre pixel), 'odd' (stride
    1, an odd size: every library centres it alike, so something else moved it), or 'unknown'
    (the kernel's size is not known, or the axes differ)."""
    stride = tuple(explanation.stride) if explanation is not None else (1, 1)
    dilation = tuple(explanation.dilation) if explanation is not None else (1, 1)
    moved = [axis for axis in (0, 1) if value[axis] != 0]
    if any(stride[axis] > 1 for axis in moved):
        return "stride"
    if kernel_size is None or not moved:
        return "unknown"
    sizes = list(kernel_size)
    if explanation is not None and explanation.kernel_transform in _QUARTER_TURNS:
        sizes.reverse()
    parities = {((sizes[axis] - 1) * dilation[axis] + 1) % 2 for axis in moved}
    return "unknown" if len(parities) > 1 else "even" if parities == {0} else "odd"


def _padding_origin(padding) -> str:
    """Whose windows an offset is counted from (CONTRACT section 2a: the declared top and left)."""
    if not isinstance(padding, str):
        return f"the pads {pads_text(padding)}"
    return {"same": "TensorFlow's SAME", "valid": "'valid' (no padding)"}.get(padding, f"'{padding}' padding")


def _offset_cause(value, baseline: Explanation, explanation: Optional[Explanation], *,
                  kernel_size: Optional[tuple[int, int]] = None) -> tuple[str, str]:
    dy, dx = value
    case = offset_case(value, explanation, kernel_size)
    padding = explanation.padding if explanation is not None else baseline.padding
    if case == "stride":
        stride = tuple(explanation.stride)
        summary = (f"every window starts [{dy}, {dx}] input pixels from those of {_padding_origin(padding)} at "
                   f"stride [{stride[0]}, {stride[1]}]")
        moved = [v for v in value if v != 0]
        if padding == "same" and all(v < 0 for v in moved):
            summary += (" (a symmetric padding such as PyTorch's padding=1 starts one pixel earlier on an even-sized "
                        "input: SAME puts the padding this stride needs at the bottom/right)")
            fix = ("pad as TensorFlow does (the extra row/column at the bottom/right), e.g. F.pad(x, (0, 1, 0, 1)) "
                   "then padding=0 in PyTorch, or padding='valid' on an explicitly padded input in TensorFlow/Keras")
        elif not isinstance(padding, str) and all(v > 0 for v in moved):
            summary += (" (TensorFlow's SAME pads only what the stride needs, at the bottom/right: on an even-sized "
                        "input its windows start later than these pads')")
            (top, bottom), (left, right) = padding
            fix = (f"pad as declared: ZeroPadding2D((({top}, {bottom}), ({left}, {right}))) or tf.pad before a "
                   "padding='valid' convolution in TensorFlow/Keras, not padding='same'")
        else:
            fix = ("pad the input as expected before the convolution (F.pad / tf.pad / ZeroPadding2D, then "
                   "padding='valid'), or declare the pads the layer uses (--padding TOP,BOTTOM,LEFT,RIGHT)")
        return summary, fix
    summary = f"the output is shifted by [{dy}, {dx}]: output[i, j] == reference[i{dy:+d}, j{dx:+d}]"
    if case == "even":
        summary += f" (an even kernel centred differently from {_padding_origin(padding)})"
        fix = ("centre the kernel as TensorFlow does (extra padding at the bottom/right), e.g. use "
               "correlate2d(..., mode='full') and crop, or shift scipy.ndimage with origin=")
    elif case == "odd":
        summary += " (an odd kernel has a centre pixel: something moved the windows or the output)"
        fix = (f"find what moved it by [{dy}, {dx}]: an output cropped, padded or np.roll-ed off by one, "
               "scipy.ndimage's origin=, or asymmetric pads (declare them with --padding TOP,BOTTOM,LEFT,RIGHT "
               "if the layer pads so)")
    else:
        fix = ("centre the kernel as TensorFlow does (extra padding at the bottom/right), e.g. use "
               "correlate2d(..., mode='full') and crop, or shift scipy.ndimage with origin=; with an odd kernel, "
               "look for an output cropped or rolled off by one")
    return summary, fix


_OFFSET_WHY = {
    "stride": ("At a stride above 1, where the first window starts depends on the padding at the top/left, "
               "whatever the kernel's size: TensorFlow's SAME pads only what the stride needs and puts the extra "
               "row/column at the bottom/right (a 3x3 kernel at stride 2 on an even size: none at the top), while "
               "PyTorch's padding=p and symmetric ONNX pads put p on every side."),
    "even": ("With an even-sized kernel there is no centre pixel: TensorFlow puts the extra "
             "row/column of 'same' padding at the bottom/right, scipy.signal and "
             "scipy.ndimage centre it one pixel differently."),
    "odd": ("An odd-sized kernel has a centre pixel, and every library centres its window on the output pixel "
            "alike: at stride 1 a shifted output comes from something else that moved the windows or the output "
            "(scipy.ndimage's origin=, asymmetric pads, a crop, pad or np.roll off by one)."),
    "unknown": ("A shift of every window means the windows were placed differently: with an even-sized kernel "
                "there is no centre pixel (TensorFlow puts the extra row/column of 'same' padding at the "
                "bottom/right, scipy.signal and scipy.ndimage one pixel differently); at a stride above 1 the "
                "padding at the top/left decides where the first window starts (TensorFlow's SAME against "
                "PyTorch's symmetric padding)."),
}

_OFFSET = Field(
    "offset", "geometry", None, (0, 0),
    enumerated="every shift up to R pixels each way (R: half the kernel's larger side plus one, at most 4), at once",
    written="offset",
    why=_OFFSET_WHY["unknown"],
    cause=_offset_cause,
    label=lambda value: f"output shifted by [{value[0]}, {value[1]}]",
    why_of=lambda value, explanation, kernel_size: _OFFSET_WHY[offset_case(value, explanation, kernel_size)],
    kernel_aware=True)

# --- groups


def _groups_cause(value, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    summary = (f"the channels were convolved in {value} separate groups"
               + (" (a depthwise convolution: each channel on its own)" if value > 1 else "")
               + f", not {baseline.groups}")
    fix = (f"pass groups={value} to convcheck (--groups {value}) if intended, or check the layer's "
           "groups / depthwise setting and the kernel's shape")
    return summary, fix


_GROUPS = Field(
    "groups", "geometry", None, 1,
    enumerated="read from the kernel's and the output's channel counts (not searched)",
    written="count",
    why=("A grouped convolution splits the channels into groups that never mix (groups= in "
         "PyTorch and Keras; depthwise when every channel is its own group); the kernel's and "
         "the output's channel counts say which grouping fits."),
    cause=_groups_cause,
    label=label_of("groups"))

# --- kernel_axis

_KERNEL_AXIS_TEXT = {
    None: ("the kernel was used as the 2-D kernel it is",
           "give the kernel the shape it ran with: (1, k) along the rows, (k, 1) along the columns"),
    "rows": ("the 1-D kernel ran along each row, as a (1, k) kernel",
             "pass kernel.reshape(1, -1) to run it along the rows, or kernel.reshape(-1, 1) along the columns"),
    "columns": ("the 1-D kernel ran along each column, as a (k, 1) kernel",
                "pass kernel.reshape(-1, 1) to run it along the columns, or kernel.reshape(1, -1) along the rows"),
}

_KERNEL_AXIS = Field(
    "kernel_axis", "geometry", KERNEL_AXES, None,
    enumerated="a 1-D kernel is read along the rows, then along the columns: two readings",
    written="choice",
    why=("A 1-D kernel has one axis only: a separable filter runs it along the rows or along the columns "
         "(scipy.ndimage.correlate1d's axis=), and the values say which."),
    cause=lambda value, baseline, explanation: _KERNEL_AXIS_TEXT[value],
    label=label_of("kernel_axis"))


GEOMETRY_FIELDS = (_KERNEL_TRANSFORM, _PADDING, _STRIDE, _DILATION, _BOUNDARY, _CVAL, _OFFSET, _GROUPS,
                   _KERNEL_AXIS)
