"""The vocabulary of explanations (CONTRACT section 2) and the sentences that go with it.

Pure Python: importing this module must not import numpy, so the CLI's option
choices can be built from it without paying for the numeric stack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any, Optional


class Verdict(str, enum.Enum):
    """CONTRACT section 3. The string value is what JSON and tests see."""

    EQUAL = "equal"
    EXPLAINED = "explained"
    UNEXPLAINED = "unexplained"

    def __str__(self) -> str:  # so f"{verdict}" prints "equal", not "Verdict.EQUAL"
        return self.value


from .choices import (ACTIVATIONS, ALGORITHMS, BOUNDARIES, DTYPES, FIELDS, INTEGER_OUTPUTS,  # noqa: F401
                      KERNEL_LAYOUTS, KERNEL_TRANSFORMS, LAYOUTS, OUTPUT_PRECISIONS, PADDINGS, PRECISIONS)
from .choices import CHANNEL_ORDERS, KERNEL_AXIS_ORDERS as _ORDERS, KERNEL_LAYOUT_VALUES  # noqa: F401


@dataclass(frozen=True)
class Explanation:
    """One combination of the contract's fields: the computation that reproduces an output.

    `precision` has no universal default: the baseline is the inputs' own precision,
    which the engine decides from the data (see `convcheck.precision.native_precision`).
    `bias` and `scale` are one number, or a tuple with one number per output channel when
    the channels differ.
    """

    kernel_transform: str = "identity"
    padding: Any = "same"   # a convention's name, or explicit ((top, bottom), (left, right))
    boundary: str = "zero"
    offset: tuple[int, int] = (0, 0)
    precision: str = "float64"
    bias: Any = 0.0       # float, or tuple[float, ...] per output channel
    scale: Any = 1.0
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    output_layout: str = "hwc"
    kernel_layout: str = "hwio"
    # Contract version 2 fields convcheck reports at their default ("no difference"):
    cval: float = 0.0
    kernel_axis: Optional[str] = None
    output_transform: str = "identity"
    channel_order: str = "as_given"
    output_precision: Optional[str] = None   # None: the same as `precision` (float32 for tfloat32)
    activation: str = "linear"
    algorithm: str = "direct"

    def to_dict(self) -> dict[str, Any]:
        """The CONTRACT section 5 `explanation` object: every section 2 field, in contract order."""
        d = {name: getattr(self, name) for name in FIELDS}   # every value is immutable: no asdict copy
        for name in ("offset", "stride", "dilation"):
            d[name] = [int(v) for v in getattr(self, name)]
        if not isinstance(self.padding, str):
            d["padding"] = [[int(v) for v in pair] for pair in self.padding]   # [[top, bottom], [left, right]]
        if not isinstance(self.boundary, str):
            d["boundary"] = list(self.boundary)   # [rows, columns] when the two axes differ
        d["bias"] = _number_or_list(self.bias)
        d["scale"] = _number_or_list(self.scale)
        d["cval"] = float(self.cval)
        d["groups"] = int(self.groups)
        if self.output_precision is None:
            d["output_precision"] = "float32" if self.precision == "tfloat32" else self.precision
        return {name: d[name] for name in FIELDS}

    def changed_fields(self, baseline: "Explanation") -> tuple[str, ...]:
        """The fields whose value differs from `baseline`, in contract order."""
        return tuple(name for name in FIELDS if getattr(self, name) != getattr(baseline, name))

    def with_(self, **changes: Any) -> "Explanation":
        """A copy with some fields replaced."""
        return replace(self, **changes)


def per_channel(value: Any) -> bool:
    """True for a bias or scale given per output channel (a tuple), False for one number."""
    return isinstance(value, (tuple, list))


def _number_or_list(value: Any) -> Any:
    return [float(v) for v in value] if per_channel(value) else float(value)


@dataclass(frozen=True)
class Cause:
    """One changed field of an explanation, said in plain words with its fix."""

    field: str
    value: Any
    summary: str
    fix: str
    why: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The CONTRACT section 5 `causes` entry (plus `why`, the sentence behind the cause)."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"field": self.field, "value": value, "summary": self.summary, "fix": self.fix, "why": self.why}


# One sentence per distinct cause saying *why*: printed once below a table.
_WHY = {
    "kernel_transform": ("Deep-learning 'convolutions' (TensorFlow, Keras, PyTorch) are "
                         "cross-correlations: they slide the kernel without flipping it, while "
                         "scipy.signal.convolve2d and textbook convolution flip it 180 degrees."),
    "padding": ("Each library sizes its output differently: 'same' keeps the image size, "
                "'valid' uses only positions where the kernel fits, 'full' every overlap "
                "(scipy.signal's default)."),
    "boundary": ("Libraries fill the area outside the image differently: TensorFlow and Keras "
                 "use zeros, scipy.ndimage mirrors by default, OpenCV reflects without "
                 "repeating the edge."),
    "offset": ("With an even-sized kernel there is no centre pixel: TensorFlow puts the extra "
               "row/column of 'same' padding at the bottom/right, scipy.signal and "
               "scipy.ndimage centre it one pixel differently."),
    "precision": ("Rounding the inputs to a narrower float type (Keras's float32 dtype policy, "
                  "mixed precision, TF32 on NVIDIA tensor cores) changes results in the last "
                  "digits that type can hold."),
    "bias": ("A constant added to every output is a bias term, usually a layer's use_bias=True: "
             "one number per output channel (filter), so the channels may differ."),
    "stride": ("A stride keeps every s-th window only; the output's size already says which stride "
               "(ceil(H / s) rows for 'same'), and TensorFlow's SAME pads a stride differently from "
               "PyTorch's symmetric padding."),
    "dilation": ("A dilated (atrous) kernel has its taps spread apart (dilation_rate in Keras, "
                 "dilation in PyTorch); with 'same' padding the output size does not show it, "
                 "only the values do."),
    "groups": ("A grouped convolution splits the channels into groups that never mix (groups= in "
               "PyTorch and Keras; depthwise when every channel is its own group); the kernel's and "
               "the output's channel counts say which grouping fits."),
    "cval": ("A 'constant' boundary fills the outside of the image with one value (cval): only the "
             "outputs whose windows reach past the edge show it."),
    "output_transform": ("An output saved as (W, H) instead of (H, W), or a transpose somewhere in the "
                         "pipeline, swaps rows and columns; with a square output only the values show it."),
    "algorithm": ("An FFT convolution (scipy.signal.fftconvolve, convolve(method='fft'), OpenCV's DFT path "
                  "for large kernels) rounds normwise: each element's error is relative to the largest "
                  "values, so small outputs next to large ones carry relatively large errors."),
    "algorithm:winograd": ("Winograd's minimal filtering (cuDNN and NNPACK for 3x3 kernels at stride 1) "
                           "computes each tile through transforms with large coefficients (up to 32 in "
                           "F(6x6,3x3)) that amplify rounding errors: each element's error is relative to its "
                           "whole tile's values, and larger at the tile's corners."),
    "output_layout": ("PyTorch stores activations channels-first (N, C, H, W), TensorFlow and Keras "
                      "channels-last (N, H, W, C); the output's shape says which it is."),
    "scale": ("A constant factor on every output usually means the kernel was normalised "
              "(e.g. divided by its sum) or the output rescaled; a factor per output channel, a bank of "
              "filters each normalised on its own or a batch normalisation folded into the weights."),
    "activation": ("Keras layers apply their activation inside the layer (Conv2D(activation='relu')) and "
                   "inference engines fuse conv + ReLU, so the saved output is already clipped: an element "
                   "clipped to 0 (or 6) only says the sum was beyond the limit, so the verdict rests on the "
                   "unclipped elements."),
    "output_precision": ("The type a result is stored in is a choice of its own: JAX and tensor cores can "
                         "accumulate half-precision products in float32 and keep the float32 sum "
                         "(preferred_element_type), and OpenCV gives an 8-bit image back for an 8-bit image "
                         "(ddepth=-1), rounded and saturated to its range."),
    "kernel_layout": ("Frameworks store convolution weights with their axes in different orders (TensorFlow "
                      "and Keras HWIO, PyTorch OIHW, PyTorch's ConvTranspose2d IOHW, TFLite OHWI): porting "
                      "weights needs a transpose, and a reshape or a wrong permutation keeps a plausible "
                      "shape while moving every value to the wrong tap or channel."),
    "channel_order": ("OpenCV loads and saves images as BGR while most models and libraries expect RGB: "
                      "an image fed in the other order gives plausible but wrong outputs, one channel's "
                      "weights applied to another's values."),
}

# Where a kernel layout comes from, for the causes that name it.
_LAYOUT_ORIGINS = {"hwio": "TensorFlow/Keras", "oihw": "PyTorch", "iohw": "PyTorch ConvTranspose2d",
                   "hwoi": "tf.nn.conv2d_transpose", "ohwi": "TFLite"}


def _axes_text(layout: str) -> str:
    names = {"h": "kh", "w": "kw", "i": "C_in", "o": "C_out"}
    origin = _LAYOUT_ORIGINS.get(layout)
    return f"{layout.upper()} ({', '.join(names[a] for a in layout)}{', ' + origin if origin else ''})"


def _kernel_layout_text(value: str, declared: str) -> tuple[str, str]:
    """(summary, fix) of a kernel read in layout `value` where `declared` was expected."""
    if value == "oihw-reshaped":
        return ("the kernel and the one the output was computed with are PyTorch OIHW weights and their HWIO form "
                "made with reshape instead of transpose (one way or the other: the shape is right, but every "
                "value sits at the wrong tap and channel)",
                "convert PyTorch weights with np.transpose(w, (2, 3, 1, 0)) (weights.permute(2, 3, 1, 0) in "
                "PyTorch), not w.reshape(kh, kw, C_in, C_out), and Keras weights back with "
                "np.transpose(w, (3, 2, 0, 1)), not w.reshape(C_out, C_in, kh, kw)")
    if value == "depthwise-reshaped":
        return ("the kernel and the one the output was computed with are a PyTorch depthwise kernel (C, 1, kh, kw) "
                "and its Keras DepthwiseConv2D form (kh, kw, C, 1) made with reshape instead of transpose (one way "
                "or the other): every value sits at the wrong tap and channel",
                "convert with np.transpose(w, (2, 3, 0, 1)) (PyTorch to Keras) or np.transpose(w, (2, 3, 0, 1)) "
                "back (Keras to PyTorch), not reshape")
    if declared not in _ORDERS:
        return (f"the kernel's axes are in {_axes_text(value)} order",
                f"pass --kernel-layout {value} (kernel_layout='{value}') if that is the order of its axes")
    swap = value == declared.translate(str.maketrans("io", "oi"))
    summary = (f"the kernel's axes are in {_axes_text(value)} order, not {_axes_text(declared)}"
               + (": its input and output channel axes are swapped" if swap else ""))
    order = tuple(value.index(axis) for axis in declared)
    fix = (f"put its axes in {declared.upper()} order: np.transpose(w, {order}) (weights.permute{order} in "
           f"PyTorch, tf.transpose(w, {list(order)}) in TensorFlow), or pass --kernel-layout {value} "
           f"(kernel_layout='{value}') if this is the layout you mean")
    return summary, fix

_TRANSFORM_TEXT = {
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

_PADDING_TEXT = {
    "same": ("the output has the image's size ('same' padding)",
             "pass padding='same' (mode='same' in scipy.signal)"),
    "valid": ("the output uses only positions where the kernel fits inside the image ('valid': "
              "Keras's default)",
              "pass padding='same' to keep the image size (mode='same' in scipy.signal)"),
    "full": ("the output covers every overlap of kernel and image ('full': scipy.signal's default mode)",
             "pass mode='same' (or 'valid') to scipy.signal.convolve2d/correlate2d"),
}

_PRECISION_TEXT = {
    "float64": ("the computation ran in float64", "nothing to fix"),
    "float32": ("the inputs were rounded to float32 before the convolution (e.g. Keras's default "
                "float32 dtype policy casting float64 data)",
                "compute in float64: give the layer dtype='float64' (or "
                "keras.config.set_floatx('float64')), or cast your reference to float32 too"),
    "tfloat32": ("the inputs were rounded to TF32 (10-bit mantissa) and accumulated in float32, "
                 "as NVIDIA tensor cores do for float32 convolutions",
                 "turn TF32 off with tf.config.experimental.enable_tensor_float_32_execution(False) "
                 "(torch.backends.cudnn.allow_tf32 = False in PyTorch)"),
    "bfloat16": ("the inputs were rounded to bfloat16 (8-bit mantissa): a mixed-precision policy "
                 "such as 'mixed_bfloat16'",
                 "compute this layer in float32: dtype='float32', or "
                 "keras.mixed_precision.set_global_policy('float32')"),
    "float16": ("the inputs were rounded to float16: a mixed-precision policy such as 'mixed_float16'",
                "compute this layer in float32: dtype='float32', or "
                "keras.mixed_precision.set_global_policy('float32')"),
}


def _pads(value) -> str:
    (top, bottom), (left, right) = value
    return f"[[{top}, {bottom}], [{left}, {right}]]"


def _explicit_padding_text(value, baseline: Explanation) -> tuple[str, str]:
    """(summary, fix) of an output whose size and windows only explicit pads give."""
    (top, bottom), (left, right) = value
    expected = (f"'{baseline.padding}'" if isinstance(baseline.padding, str)
                else f"the declared {_pads(baseline.padding)}")
    summary = (f"the input was padded by {top} rows at the top, {bottom} at the bottom, {left} columns on the left "
               f"and {right} on the right (explicit pads {_pads(value)}, as PyTorch's padding= or ONNX's pads "
               f"give them), not {expected}")
    fix = (f"declare these pads (--padding {top},{bottom},{left},{right}; padding=(({top}, {bottom}), ({left}, "
           f"{right})) in Python) if the layer pads so, or pad the layer as expected (PyTorch padding=, ONNX "
           "pads [top, left, bottom, right], F.pad / ZeroPadding2D before a 'valid' convolution)")
    return summary, fix


def _num(x: Any) -> str:
    if per_channel(x):
        return "[" + ", ".join(f"{float(v):.6g}" for v in x) + "]"
    return f"{x:.6g}"


_ACTIVATION_TEXT = {
    "relu": ("the output went through a ReLU, max(x, 0), after the bias: negative sums were clipped to 0 "
             "(Keras Conv2D(activation='relu'), a fused conv + ReLU)",
             "compare the pre-activation output: build the layer with activation=None (Keras) or take the "
             "output of conv2d before F.relu / torch.relu (PyTorch), or apply the same ReLU to your reference"),
    "relu6": ("the output went through a ReLU6, min(max(x, 0), 6), after the bias: sums were clipped to "
              "[0, 6] (Keras Conv2D(activation='relu6'), MobileNet's fused conv + ReLU6)",
              "compare the pre-activation output: build the layer with activation=None (Keras) or take the "
              "output of conv2d before F.relu6 (PyTorch), or apply the same ReLU6 to your reference"),
    # A declared activation (CONTRACT 2a: a layer that declares a ReLU) that the output does not have.
    "linear": ("the output went through no activation: negative sums were kept, where the declared computation "
               "applies its activation (a ReLU left out, or another activation applied after the output)",
               "apply the declared activation (Keras activation='relu' or a ReLU layer, torch.relu), or declare "
               "activation linear if the layer has none"),
}
_INTEGER_RANGES = {"uint8": "[0, 255]", "int8": "[-128, 127]", "uint16": "[0, 65535]", "int16": "[-32768, 32767]"}
_CV_DEPTHS = {"uint8": "cv2.CV_8U", "int8": "cv2.CV_8S", "uint16": "cv2.CV_16U", "int16": "cv2.CV_16S"}


def _output_precision_text(value: str, explanation: Optional[Explanation]) -> tuple[str, str]:
    if value in _INTEGER_RANGES:
        return (f"the result was rounded to the nearest integer and saturated to {value}'s range "
                f"{_INTEGER_RANGES[value]} (OpenCV's saturate_cast: cv2.filter2D(image, -1, kernel) on a "
                f"{value} image keeps its type, ddepth=-1 = {_CV_DEPTHS[value]})",
                "pass ddepth=cv2.CV_32F to cv2.filter2D (or convert the image with image.astype(np.float32) "
                "first) to keep the unrounded result, or round and clip your reference the same way")
    precision = explanation.precision if explanation is not None else "bfloat16"
    return (f"the {precision} products were accumulated and stored in {value}, not rounded back to "
            f"{precision} (jax.lax.conv_general_dilated(..., preferred_element_type=jnp.{value}), "
            "tensor-core convolutions with a wide output)",
            f"drop preferred_element_type=jnp.{value} from jax.lax.conv_general_dilated (or cast its output "
            f"with .astype(jnp.{precision})) for a {precision} result, or expect the more accurate {value} sum")


def cause_for(field_name: str, value: Any, baseline: Explanation,
              explanation: Optional[Explanation] = None) -> Cause:
    """The plain-words `Cause` for one changed field of an explanation (the whole
    `explanation`, when given, lets a cause say how it combines with the others)."""
    why = _WHY.get(f"{field_name}:{value}", _WHY[field_name]) if isinstance(value, str) else _WHY[field_name]
    if field_name == "kernel_transform":
        summary, fix = _TRANSFORM_TEXT[value]
    elif field_name == "padding" and not isinstance(value, str):
        summary, fix = _explicit_padding_text(value, baseline)
    elif field_name == "padding":
        summary, fix = _PADDING_TEXT[value]
        if baseline.padding != value and isinstance(baseline.padding, str):
            fix = (f"pass padding='{baseline.padding}' (mode='{baseline.padding}' in scipy.signal), "
                   f"or compare against a '{value}' reference")
    elif field_name == "boundary" and not isinstance(value, str):
        rows, cols = value
        summary = (f"the rows and the columns were extended by different rules: rows {rows} "
                   f"({_BOUNDARY_TEXT[rows][0]}), columns {cols} ({_BOUNDARY_TEXT[cols][0]})")
        fix = ("use one boundary rule on both axes (scipy.ndimage takes mode= per axis in separable "
               "filters: pass a single mode)")
    elif field_name == "boundary":
        summary, fix = _BOUNDARY_TEXT[value]
    elif field_name == "offset":
        dy, dx = value
        stride = tuple(explanation.stride) if explanation is not None else (1, 1)
        if stride != (1, 1):
            summary = (f"every window starts [{dy}, {dx}] input pixels from TensorFlow SAME's at stride "
                       f"[{stride[0]}, {stride[1]}] (PyTorch's symmetric padding=1 at stride 2 on an even size "
                       "starts one pixel earlier)")
            fix = ("pad as TensorFlow does (the extra row/column at the bottom/right), e.g. "
                   "F.pad(x, (0, 1, 0, 1)) then padding=0 in PyTorch, or padding='valid' on an explicitly "
                   "padded input in TensorFlow/Keras")
        else:
            summary = (f"the output is shifted by [{dy}, {dx}]: output[i, j] == reference[i{dy:+d}, j{dx:+d}]"
                       " (an even kernel centred differently from TensorFlow's 'same')")
            fix = ("centre the kernel as TensorFlow does (extra padding at the bottom/right), e.g. use "
                   "correlate2d(..., mode='full') and crop, or shift scipy.ndimage with origin=")
    elif field_name == "precision":
        summary, fix = _PRECISION_TEXT[value]
        if value == "float64":
            summary = f"the computation ran in float64, not {baseline.precision}"
            fix = f"compute in {baseline.precision} to reproduce the expected rounding"
    elif field_name in ("stride", "dilation"):
        was = getattr(baseline, field_name)
        what = "every window steps" if field_name == "stride" else "the kernel taps are"
        summary = (f"the convolution ran with {field_name} [{value[0]}, {value[1]}], not "
                   f"[{was[0]}, {was[1]}]: {what} {value[0]} rows and {value[1]} columns apart")
        option = "strides" if field_name == "stride" else "dilation_rate"
        fix = (f"pass {field_name}=[{value[0]}, {value[1]}] to convcheck (--{field_name} "
               f"{value[0]},{value[1]}) if intended, or {option}={tuple(was)} to the layer")
    elif field_name == "groups":
        summary = (f"the channels were convolved in {value} separate groups"
                   + (" (a depthwise convolution: each channel on its own)" if value > 1 else "")
                   + f", not {baseline.groups}")
        fix = (f"pass groups={value} to convcheck (--groups {value}) if intended, or check the layer's "
               "groups / depthwise setting and the kernel's shape")
    elif field_name == "cval":
        summary = f"the border value was {_num(value)}, not {_num(baseline.cval)}"
        fix = f"pass cval={_num(baseline.cval)} (value= for OpenCV), or expect a border of {_num(value)}"
    elif field_name == "output_transform":
        summary = "the output's H and W axes are swapped (the output was transposed)"
        fix = "transpose it back: output.swapaxes(0, 1) (output.swapaxes(-2, -1) for (C, H, W) arrays)"
    elif field_name == "algorithm" and value == "winograd":
        summary = ("the sums were computed with Winograd's minimal filtering (F(m x m, 3 x 3) tiles, as cuDNN "
                   "and NNPACK do for 3x3 kernels), whose transforms amplify rounding beyond a direct sum's")
        fix = ("for a direct sum, keep Winograd out: in PyTorch on CPU leave oneDNN on (torch.backends.mkldnn) or "
               "turn NNPACK off (torch.backends.nnpack.set_flags(False)); on GPU torch.backends.cudnn.enabled = "
               "False; or judge it by Winograd's bound (explain --algorithm winograd)")
    elif field_name == "algorithm":
        summary = (f"the sums were computed through the FFT ({value}), whose rounding error is normwise "
                   "(spread over the whole output), not by direct summation")
        fix = ("use scipy.signal.correlate2d / convolve2d or convolve(..., method='direct') for elementwise "
               "accuracy, or expect errors relative to the output's largest values")
    elif field_name == "output_layout":
        summary = (f"the output is stored channels-{'first (C, H, W)' if value == 'chw' else 'last (H, W, C)'}"
                   f", not channels-{'first' if baseline.output_layout == 'chw' else 'last'}")
        fix = ("transpose it: output.transpose(1, 2, 0) for (C, H, W) -> (H, W, C), or pass --layout "
               f"{'nchw' if value == 'chw' else 'nhwc'}")
    elif field_name == "bias" and per_channel(value):
        summary = (f"a constant was added to each output channel, one per channel: {_num(value)} "
                   "(a layer's bias vector: Conv2D(use_bias=True), nn.Conv2d(bias=True))")
        fix = ("pass use_bias=False (bias=False in PyTorch), or add the layer's bias (layer.bias, one value per "
               "output channel) to your reference before comparing")
    elif field_name == "bias":
        summary = f"a constant {_num(value)} was added to every output element (a bias term)"
        fix = "pass use_bias=False, or subtract the layer's bias before comparing"
    elif field_name == "scale" and per_channel(value):
        summary = (f"each output channel was multiplied by its own factor: {_num(value)} "
                   "(each filter normalised on its own, or a batch normalisation folded into the weights)")
        fix = ("multiply each channel of your reference by its factor, or stop normalising the filters one by "
               "one (kernel / kernel.sum(axis=(0, 1, 2)))")
    elif field_name == "kernel_layout":
        summary, fix = _kernel_layout_text(value, baseline.kernel_layout)
    elif field_name == "channel_order":
        summary = ("the image's channels were used in reverse order (BGR read as RGB, or RGB as BGR: e.g. an "
                   "image loaded with cv2.imread fed to a model trained on RGB)")
        fix = ("reverse the channels before the convolution: "
               + ("x.flip(1) in PyTorch (image[:, ::-1] for an (N, C, H, W) array), or "
                  "cv2.cvtColor(image, cv2.COLOR_BGR2RGB) before moving the channels first"
                  if baseline.output_layout == "chw" else
                  "image[..., ::-1], or cv2.cvtColor(image, cv2.COLOR_BGR2RGB) (COLOR_RGB2BGR the other way)"))
    elif field_name == "scale":
        summary = (f"every output element was multiplied by {_num(value)} "
                   "(e.g. a kernel normalised to sum 1)")
        fix = (f"multiply the reference by {_num(value)}, or stop normalising the kernel "
               "(kernel / kernel.sum())")
    elif field_name == "activation":
        summary, fix = _ACTIVATION_TEXT[value]
    elif field_name == "output_precision":
        summary, fix = _output_precision_text(value, explanation)
    else:
        raise ValueError(f"unknown explanation field {field_name!r}")
    return Cause(field=field_name, value=value, summary=summary, fix=fix, why=why)


def causes_for(explanation: Explanation, baseline: Explanation) -> tuple[Cause, ...]:
    """Every changed field of `explanation` against `baseline`, as causes in contract order."""
    return tuple(cause_for(name, getattr(explanation, name), baseline, explanation)
                 for name in explanation.changed_fields(baseline))


def describe(explanation: Explanation, baseline: Explanation) -> str:
    """A short plain-words phrase for table cells, e.g. 'kernel rot180 + offset [-1, -1]'."""
    parts = []
    for name in explanation.changed_fields(baseline):
        value = getattr(explanation, name)
        if name == "kernel_transform":
            parts.append(f"kernel {value}")
        elif name in ("offset", "stride", "dilation"):
            parts.append(f"{name} [{value[0]}, {value[1]}]")
        elif name == "padding" and not isinstance(value, str):
            parts.append(f"padding {_pads(value)}")
        elif name in ("bias", "scale"):
            parts.append(f"{name} {'per channel ' if per_channel(value) else ''}{_num(value)}")
        else:
            parts.append(f"{name} {value}")
    return " + ".join(parts) if parts else "matches the reference"


# Short labels for the most visible lines (table rows, check headlines, GitHub titles),
# where a reader should not need the field names; JSON and detail lines keep those.
_PLAIN_LABELS = {
    "kernel_transform": {"identity": "kernel as given", "rot180": "kernel flipped 180° (true convolution)",
                         "transpose": "kernel transposed", "anti_transpose": "kernel transposed and flipped",
                         "flip_ud": "kernel flipped upside down", "flip_lr": "kernel flipped left to right",
                         "rot90": "kernel rotated 90°", "rot270": "kernel rotated 270°"},
    "padding": {"same": "'same' padding", "valid": "'valid' padding (no border)",
                "full": "'full' padding (output grown by the kernel)"},
    "boundary": {"zero": "zero border", "reflect": "image mirrored at its edges (reflect)",
                 "symmetric": "image mirrored at its edges, edge pixel repeated (symmetric)",
                 "wrap": "image wrapped around at its edges", "edge": "edge pixels repeated outwards",
                 "constant": "constant border"},
    "precision": {"float64": "float64 computation", "float32": "float32 rounding",
                  "tfloat32": "TF32 rounding (tensor cores)", "bfloat16": "bfloat16 rounding",
                  "float16": "float16 rounding"},
    "activation": {"relu": "ReLU applied (negatives clipped to 0)", "relu6": "ReLU6 applied (clipped to [0, 6])",
                   "linear": "no activation applied (negatives kept)"},
    "output_precision": {"float64": "result kept in float64", "float32": "result kept in float32",
                         "uint8": "rounded and saturated to uint8", "int8": "rounded and saturated to int8",
                         "uint16": "rounded and saturated to uint16", "int16": "rounded and saturated to int16"},
}


def plain_label(field_name: str, value: Any) -> str:
    """A cause in plain words: 'kernel flipped 180° (true convolution)', 'output shifted by [-1, -1]'.

    Any field or value without a label of its own reads '<field> <value>'.
    """
    label = _PLAIN_LABELS.get(field_name, {}).get(value) if isinstance(value, str) else None
    if label is not None:
        return label
    if field_name == "offset":
        return f"output shifted by [{value[0]}, {value[1]}]"
    if field_name == "padding" and not isinstance(value, str):
        return f"explicit pads {_pads(value)}"
    if field_name == "bias" and isinstance(value, (int, float)):
        return f"{_num(value)} added (a bias)"
    if field_name == "scale" and isinstance(value, (int, float)):
        return f"scaled by {_num(value)}"
    if field_name == "bias" and per_channel(value):
        return f"a bias per channel {_num(value)}"
    if field_name == "scale" and per_channel(value):
        return f"scaled per channel by {_num(value)}"
    if field_name == "kernel_layout":
        if value == "depthwise-reshaped":
            return "depthwise kernel reshaped instead of transposed"
        return ("kernel reshaped from OIHW instead of transposed" if value == "oihw-reshaped"
                else f"kernel axes in {str(value).upper()} order")
    if field_name == "channel_order" and value == "reversed":
        return "image channels reversed (RGB/BGR)"
    return f"{field_name.replace('_', ' ')} {value}"


def describe_plain(explanation: Explanation, baseline: Explanation) -> str:
    """`describe` in plain words, for the most visible lines: 'kernel flipped 180° (true convolution)
    + float32 rounding'."""
    parts = [plain_label(name, getattr(explanation, name)) for name in explanation.changed_fields(baseline)]
    return " + ".join(parts) if parts else "matches the reference"
