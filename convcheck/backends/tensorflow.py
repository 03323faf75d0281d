"""`tf.nn.conv2d` as a backend (NHWC input, HWIO filter: the layouts convcheck uses).

Behaviours checked on tensorflow-cpu 2.21: the CPU Conv2D kernel accepts half, bfloat16,
float, double and int32 (int64 and the 8/16-bit integers raise InvalidArgumentError), and
both operands must have the same dtype (a float64 image with a float32 filter raises).
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from .base import Backend, BackendRun, cast_inputs, dtype_name, quiet_loggers, quiet_stderr

# The CPU-only wheel is the right hint on x86-64 (it is what convcheck depends on there);
# elsewhere (aarch64, macOS arm64) only the plain 'tensorflow' wheel exists.
TENSORFLOW_PACKAGE = ("tensorflow-cpu" if platform.machine().lower() in ("x86_64", "amd64")
                      else "tensorflow")
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos",
                            "tensorflow-intel", "tf-nightly", "tf-nightly-cpu")


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

    def warm_up(self) -> None:
        import_tensorflow()

    def _run(self, image, kernel, *, padding, dtype, library_defaults):
        tf = import_tensorflow()
        notes: list[str] = []
        if library_defaults:
            # padding is a required argument of tf.nn.conv2d: there is no default to use.
            if image.dtype.kind in "iub":
                # Users tf.cast integer images to float32 first: the CPU kernel has no
                # int64/uint8 input, and an integer filter is rarely what anyone means.
                image_in, kernel_in = image.astype(np.float32), kernel.astype(np.float32)
                notes.append(f"library defaults: tf.nn.conv2d has no default padding "
                             f"(padding='{padding}' kept); the {dtype_name(image.dtype)} inputs "
                             f"were cast to float32, as TensorFlow users do")
            else:
                image_in = image
                # Conv2D needs both operands in one dtype; users cast the filter to the image's.
                kernel_in = kernel.astype(image.dtype)
                note = (f"library defaults: tf.nn.conv2d has no default padding "
                        f"(padding='{padding}' kept); inputs passed as loaded "
                        f"({dtype_name(image.dtype)})")
                if kernel.dtype != image.dtype:
                    note += (f", the {dtype_name(kernel.dtype)} kernel cast to "
                             f"{dtype_name(image.dtype)} to match")
                notes.append(note)
        else:
            image_in, kernel_in, cast_notes = cast_inputs(image, kernel, dtype)
            notes.extend(cast_notes)

        kh, kw = kernel.shape[:2]
        if padding == "full":
            # TF has no 'full' padding string; explicit zero padding of kh-1 / kw-1 on
            # every side gives the same output.
            tf_padding = [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]]
            notes.append(f"'full' padding passed as explicit padding "
                         f"[[0, 0], [{kh - 1}, {kh - 1}], [{kw - 1}, {kw - 1}], [0, 0]]")
        else:
            tf_padding = padding.upper()

        x = tf.constant(image_in[None])
        w = tf.constant(kernel_in)
        start = time.perf_counter()
        y = tf.nn.conv2d(x, w, strides=1, padding=tf_padding)
        # .numpy() waits for the result: on a GPU the op returns before it has run.
        output = y.numpy()[0]
        seconds = time.perf_counter() - start

        compute_dtype = y.dtype.name
        if ("GPU" in (y.device or "") and compute_dtype == "float32"
                and tf.config.experimental.tensor_float_32_execution_enabled()):
            notes.append("ran on a GPU with TensorFloat-32 enabled: float32 convolutions may "
                         "round their inputs to tfloat32 (10-bit mantissa)")
        if "GPU" not in (y.device or "") and onednn_enabled():
            notes.append(ONEDNN_NOTE)
        return BackendRun(output=output, compute_dtype=compute_dtype, padding=padding,
                          seconds=seconds, notes=tuple(notes))
