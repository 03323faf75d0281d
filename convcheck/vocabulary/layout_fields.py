"""The rows of CONTRACT section 2's Layout fields: how arrays were stored or read.

output_layout, output_transform, kernel_layout and channel_order, each its sentences, its
(summary, fix) function and its `Field` row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..choices import CHANNEL_ORDERS, KERNEL_AXIS_ORDERS, KERNEL_LAYOUT_VALUES, OUTPUT_LAYOUTS, OUTPUT_TRANSFORMS
from .row import Field, label_of

if TYPE_CHECKING:
    from . import Explanation


# --- output_layout and output_transform


def _output_layout_cause(value, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    summary = (f"the output is stored channels-{'first (C, H, W)' if value == 'chw' else 'last (H, W, C)'}"
               f", not channels-{'first' if baseline.output_layout == 'chw' else 'last'}")
    fix = ("transpose it: output.transpose(1, 2, 0) for (C, H, W) -> (H, W, C), or pass --layout "
           f"{'nchw' if value == 'chw' else 'nhwc'}")
    return summary, fix


_OUTPUT_LAYOUT = Field(
    "output_layout", "layout", OUTPUT_LAYOUTS, "hwc",
    enumerated="read from the output's shape against the declared layout (not searched)",
    written="choice",
    why=("PyTorch stores activations channels-first (N, C, H, W), TensorFlow and Keras "
         "channels-last (N, H, W, C); the output's shape says which it is."),
    cause=_output_layout_cause,
    label=label_of("output_layout"))

_OUTPUT_TRANSFORM_TEXT = {
    "identity": ("the output's H and W axes are in their order (the output was not transposed)",
                 "transpose the output as you expect, or expect it as computed"),
    "transpose": ("the output's H and W axes are swapped (the output was transposed)",
                  "transpose it back: output.swapaxes(0, 1) (output.swapaxes(-2, -1) for (C, H, W) arrays)"),
}

_OUTPUT_TRANSFORM = Field(
    "output_transform", "layout", OUTPUT_TRANSFORMS, "identity",
    enumerated="the output transposed, a second reading when the output as given is unexplained",
    written="name",
    why=("An output saved as (W, H) instead of (H, W), or a transpose somewhere in the "
         "pipeline, swaps rows and columns; with a square output only the values show it."),
    cause=lambda value, baseline, explanation: _OUTPUT_TRANSFORM_TEXT[value],
    label=label_of("output_transform"))

# --- kernel_layout

# Where a kernel layout comes from, for the causes that name it.
_LAYOUT_ORIGINS = {"hwio": "TensorFlow/Keras", "oihw": "PyTorch", "iohw": "PyTorch ConvTranspose2d",
                   "hwoi": "tf.nn.conv2d_transpose", "ohwi": "TFLite"}


def _axes_text(layout: str) -> str:
    names = {"h": "kh", "w": "kw", "i": "C_in", "o": "C_out"}
    origin = _LAYOUT_ORIGINS.get(layout)
    return f"{layout.upper()} ({', '.join(names[a] for a in layout)}{', ' + origin if origin else ''})"


def _kernel_layout_cause(value: str, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    """(summary, fix) of a kernel read in layout `value` where the baseline's was expected."""
    declared = baseline.kernel_layout
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
                "convert with np.transpose(w, (2, 3, 0, 1)), which turns either layout into the other, not reshape")
    if value == "depthwise":
        return ("the kernel is a depthwise kernel (kh, kw, C_in, multiplier), as tf.nn.depthwise_conv2d and "
                "Keras DepthwiseConv2D store it",
                "pass --kernel-layout depthwise (kernel_layout='depthwise') if that is what it is")
    if declared not in KERNEL_AXIS_ORDERS:
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


def _kernel_layout_label(value: Any) -> str:
    if value == "depthwise-reshaped":
        return "depthwise kernel reshaped instead of transposed"
    return ("kernel reshaped from OIHW instead of transposed" if value == "oihw-reshaped"
            else f"kernel axes in {str(value).upper()} order")


_KERNEL_LAYOUT = Field(
    "kernel_layout", "layout", KERNEL_LAYOUT_VALUES, "hwio",
    enumerated=("when the declared layout explains nothing: every other order of a 4-D kernel's axes whose "
                "shape fits, and OIHW weights reshaped into HWIO, each a further reading"),
    written="choice",
    why=("Frameworks store convolution weights with their axes in different orders (TensorFlow "
         "and Keras HWIO, PyTorch OIHW, PyTorch's ConvTranspose2d IOHW, TFLite OHWI): porting "
         "weights needs a transpose, and a reshape or a wrong permutation keeps a plausible "
         "shape while moving every value to the wrong tap or channel."),
    cause=_kernel_layout_cause,
    label=_kernel_layout_label)

# --- channel_order


def _channel_order_cause(value: str, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    if value == "as_given":
        return ("the image's channels were used in the order given",
                "reverse the image's channels as you expect before the convolution, or expect them as given")
    summary = ("the image's channels were used in reverse order (BGR read as RGB, or RGB as BGR: e.g. an "
               "image loaded with cv2.imread fed to a model trained on RGB)")
    fix = ("reverse the channels before the convolution: "
           + ("x.flip(1) in PyTorch (image[:, ::-1] for an (N, C, H, W) array), or "
              "cv2.cvtColor(image, cv2.COLOR_BGR2RGB) before moving the channels first"
              if baseline.output_layout == "chw" else
              "image[..., ::-1], or cv2.cvtColor(image, cv2.COLOR_BGR2RGB) (COLOR_RGB2BGR the other way)"))
    return summary, fix


_CHANNEL_ORDER = Field(
    "channel_order", "layout", CHANNEL_ORDERS, "as_given",
    enumerated="the image's channels reversed (2 to 4 channels), a further reading when the given order explains nothing",
    written="choice",
    why=("OpenCV loads and saves images as BGR while most models and libraries expect RGB: "
         "an image fed in the other order gives plausible but wrong outputs, one channel's "
         "weights applied to another's values."),
    cause=_channel_order_cause,
    label=label_of("channel_order", {"reversed": "image channels reversed (RGB/BGR)"}))


LAYOUT_FIELDS = (_OUTPUT_LAYOUT, _OUTPUT_TRANSFORM, _KERNEL_LAYOUT, _CHANNEL_ORDER)
