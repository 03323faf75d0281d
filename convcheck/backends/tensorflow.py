"""`tf.nn.conv2d` as a backend (NHWC input, HWIO filter: the layouts convcheck uses).

Behaviours checked on tensorflow-cpu 2.21: the CPU Conv2D kernel accepts half, bfloat16,
float, double and int32 (int64 and the 8/16-bit integers raise InvalidArgumentError), and
both operands must have the same dtype (a float64 image with a float32 filter raises).

Geometry (checked on tensorflow-cpu 2.21, oneDNN on and off): `tf.nn.conv2d` takes
strides, dilations and grouped filters (C_in / G input channels) natively on the CPU,
strides > 1 together with dilations > 1 included, and matches CONTRACT section 1 (SAME at
stride > 1 is the contract's SAME). `tf.nn.depthwise_conv2d` (used for groups = C_in)
raises on unequal row/column strides, and with strides > 1 and dilations > 1 it only
warns ("all values of strides must be 1") and returns wrong values: there convcheck runs
it at stride 1 and keeps every stride-th output, and the row's notes say so.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from ..geometry import is_explicit, padding_text
from .base import (STRIDE_EMULATED, Backend, BackendRun, cast_inputs, dtype_name, geometry_pads, imported_once,
                   output_shape, quiet_loggers, quiet_stderr, zero_pad)

# The CPU-only wheel is the right hint on x86-64 (it is what convcheck depends on there);
# elsewhere (aarch64, macOS arm64) only the plain 'tensorflow' wheel exists.
TENSORFLOW_PACKAGE = ("tensorflow-cpu" if platform.machine().lower() in ("x86_64", "amd64")
                      else "tensorflow")
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos",
                            "tensorflow-intel", "tf-nightly", "tf-nightly-cpu")


@imported_once
def import_tensorflow():
    """Import TensorFlow with its start-up chatter silenced (stdout carries JSON).

    TF_CPP_MIN_LOG_LEVEL does not stop the oneDNN / absl lines TensorFlow prints from C++
    before its logging is set up, so fd 2 goes to /dev/null for the import itself.
    TF_ENABLE_ONEDNN_OPTS is left alone: it changes the numbers (see `onednn_note`).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import tensorflow as tf
        quiet_loggers("tensorflow", "absl")
    return tf


def onednn_enabled() -> bool:
    """Whether TensorFlow's oneDNN (MKL) kernels run, as its own start-up line would say."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false", "off"):
        return False
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # a private API: when it is gone, say nothing rather than guess
        return False


ONEDNN_NOTE = ("TensorFlow ran its oneDNN CPU kernels (its default here): they sum in another "
               "order than the plain loop, so the last bits may differ from other backends; "
               "TF_ENABLE_ONEDNN_OPTS=0 turns them off")


class TensorFlowConv2D(Backend):
    """`tf.nn.conv2d(x[None], kernel, strides=1, padding=...)`, a cross-correlation."""

    name = "tf.nn.conv2d"
    module = "tensorflow"
    package = TENSORFLOW_PACKAGE
    extra = "tensorflow"
    distributions = TENSORFLOW_DISTRIBUTIONS
    native_geometry = True

    def warm_up(self) -> None:
        import_tensorflow()

    def _run(self, image, kernel, *, padding, dtype, library_defaults, stride=(1, 1), dilation=(1, 1),
             groups=1):
        tf = import_tensorflow()
        notes: list[str] = []
        image_in, kernel_in = _operands(image, kernel, padding=padding, dtype=dtype,
                                        library_defaults=library_defaults, notes=notes)
        kh, kw = kernel.shape[:2]
        height, width, channels = image.shape
        depthwise = groups > 1 and groups == channels
        if depthwise:
            # Grouped HWIO (kh, kw, 1, C * M) is depthwise_conv2d's (kh, kw, C, M): output c * M + m.
            kernel_in = kernel_in.reshape(kh, kw, channels, kernel.shape[3] // channels)
            notes.append("groups = C_in: ran tf.nn.depthwise_conv2d with the kernel as (kh, kw, C_in, multiplier)")
        elif groups > 1:
            notes.append(f"groups = {groups}: tf.nn.conv2d with a (kh, kw, C_in / {groups}, C_out) filter "
                         f"(a grouped convolution)")
        plain_stride = stride == (1, 1)
        # depthwise_conv2d: unequal strides raise; strides > 1 with dilations > 1 are silently wrong.
        emulate_stride = depthwise and not plain_stride and (dilation != (1, 1) or stride[0] != stride[1])
        pads = geometry_pads(padding, height, width, kh, kw, stride, dilation)
        if emulate_stride:
            image_in = zero_pad(image_in, pads)
            tf_padding = "VALID"
        elif padding == "full":
            # TF has no 'full' padding string; explicit zero padding of (k - 1) * d on every
            # side gives the same output.
            tf_padding = [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]]
            notes.append(f"'full' padding passed as explicit padding "
                         f"[[0, 0], [{pads[0]}, {pads[1]}], [{pads[2]}, {pads[3]}], [0, 0]]")
        elif is_explicit(padding):
            (top, bottom), (left, right) = padding
            tf_padding = [[0, 0], [top, bottom], [left, right], [0, 0]]
        else:
            tf_padding = padding.upper()

        y, output, seconds, emulate_stride = _convolve(tf, image_in, kernel_in, depthwise=depthwise,
                                                       emulate_stride=emulate_stride, stride=stride,
                                                       dilation=dilation, tf_padding=tf_padding, pads=pads,
                                                       notes=notes)
        if emulate_stride:
            out_h, out_w = output_shape(padding, height, width, kh, kw, stride, dilation)
            output = np.ascontiguousarray(output[::stride[0], ::stride[1]][:out_h, :out_w])
        if emulate_stride and depthwise:
            notes.append("tf.nn.depthwise_conv2d " + ("rejects unequal strides" if stride[0] != stride[1] else
                         "computes strides > 1 with dilations > 1 wrongly (it only warns)") + "; "
                         + STRIDE_EMULATED)
        notes.extend(_device_notes(tf, y))
        return BackendRun(output=output, compute_dtype=y.dtype.name, padding=padding,
                          seconds=seconds, notes=tuple(notes))


def _padding_text(padding) -> str:
    """padding='same', or padding=[[1, 1], [1, 1]] for explicit amounts, as the notes say it."""
    return f"'{padding}'" if isinstance(padding, str) else padding_text(padding)


def _operands(image, kernel, *, padding, dtype, library_defaults, notes: list[str]):
    """(image, kernel) as tf.nn.conv2d gets them: cast to `dtype`, or with the library's
    defaults as TensorFlow users pass them (both in one dtype, which Conv2D needs)."""
    if not library_defaults:
        image_in, kernel_in, cast_notes = cast_inputs(image, kernel, dtype)
        notes.extend(cast_notes)
        return image_in, kernel_in
    # padding is a required argument of tf.nn.conv2d: there is no default to use.
    if image.dtype.kind in "iub":
        # Users tf.cast integer images to float32 first: the CPU kernel has no
        # int64/uint8 input, and an integer filter is rarely what anyone means.
        notes.append(f"library defaults: tf.nn.conv2d has no default padding "
                     f"(padding={_padding_text(padding)} kept); the {dtype_name(image.dtype)} inputs "
                     f"were cast to float32, as TensorFlow users do")
        return image.astype(np.float32), kernel.astype(np.float32)
    # Conv2D needs both operands in one dtype; users cast the filter to the image's.
    kernel_in = kernel.astype(image.dtype)
    note = (f"library defaults: tf.nn.conv2d has no default padding "
            f"(padding={_padding_text(padding)} kept); inputs passed as loaded "
            f"({dtype_name(image.dtype)})")
    if kernel.dtype != image.dtype:
        note += (f", the {dtype_name(kernel.dtype)} kernel cast to "
                 f"{dtype_name(image.dtype)} to match")
    notes.append(note)
    return image, kernel_in


def _convolve(tf, image_in, kernel_in, *, depthwise, emulate_stride, stride, dilation, tf_padding, pads,
              notes: list[str]):
    """(result tensor, its values (Ho, Wo, C_out), seconds, emulate_stride): tf.nn.conv2d, or
    depthwise_conv2d, on one image; at stride 1 on the zero-padded image (`emulate_stride`
    comes back true, the caller keeping every stride-th output) where a build refuses strides
    > 1 with dilations > 1."""
    plain_stride = stride == (1, 1)
    x = tf.constant(image_in[None])
    w = tf.constant(kernel_in)
    start = time.perf_counter()
    if depthwise:
        run_stride = (1, 1) if emulate_stride else stride
        y = tf.nn.depthwise_conv2d(x, w, strides=[1, run_stride[0], run_stride[1], 1],
                                   dilations=list(dilation), padding=tf_padding)
    else:
        try:
            y = tf.nn.conv2d(x, w, strides=[1, stride[0], stride[1], 1], dilations=list(dilation),
                             padding=tf_padding)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
            # Some builds (older CPU kernels, some GPUs) refuse strides > 1 with dilations > 1.
            if plain_stride or dilation == (1, 1):
                raise
            emulate_stride = True
            notes.append(f"tf.nn.conv2d refused strides > 1 with dilations > 1 here "
                         f"({type(exc).__name__}); " + STRIDE_EMULATED)
            x = tf.constant(zero_pad(image_in, pads)[None])
            start = time.perf_counter()
            y = tf.nn.conv2d(x, w, strides=1, dilations=list(dilation), padding="VALID")
    # .numpy() waits for the result: on a GPU the op returns before it has run.
    output = y.numpy()[0]
    return y, output, time.perf_counter() - start, emulate_stride


def _device_notes(tf, y) -> list[str]:
    """What the device the result came from may have done to it: TF32 on a GPU, oneDNN on a CPU."""
    notes = []
    if ("GPU" in (y.device or "") and y.dtype.name == "float32"
            and tf.config.experimental.tensor_float_32_execution_enabled()):
        notes.append("ran on a GPU with TensorFloat-32 enabled: float32 convolutions may "
                     "round their inputs to tfloat32 (10-bit mantissa)")
    if "GPU" not in (y.device or "") and onednn_enabled():
        notes.append(ONEDNN_NOTE)
    return notes
