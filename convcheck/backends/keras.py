"""`keras.layers.Conv2D` (Keras 3) as a backend: a cross-correlation, like tf.nn.conv2d.

Behaviours checked on keras 3.15 with the TensorFlow backend: `dtype='float16'` /
'bfloat16' / 'float64' give a layer whose variables and compute dtype are that type
('mixed_float16' keeps float32 variables but computes in float16); the layer casts float
inputs to its compute dtype itself, but raises on integer inputs; padding is only 'same'
or 'valid' (default 'valid'); without `dtype=` the global policy applies (float32).

Geometry (checked on keras 3.15 with the TensorFlow, JAX and PyTorch backends): Conv2D
takes `strides`, `dilation_rate` and `groups`, and `padding='same'` at strides > 1 is
TensorFlow's SAME (the contract's) on all three; but Conv2D raises ValueError ("`strides > 1`
not supported in conjunction with `dilation_rate > 1`"), so there the layer runs at
stride 1 and every stride-th output is kept (the row's notes say so). For groups = C_in
`DepthwiseConv2D(depth_multiplier=M)` runs (its kernel (kh, kw, C_in, M), output channel
c * M + m), strides with dilations included.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .base import (STRIDE_EMULATED, Backend, BackendRun, cast_inputs, dtype_name, geometry_pads, imported_once,
                   numpy_dtype, one_line, output_shape, quiet_loggers, quiet_stderr, zero_pad)
from .tensorflow import import_tensorflow

# Keras 3 runs on whichever framework KERAS_BACKEND names; convcheck defaults it to TF.
# (module, convcheck extra) of each framework Keras 3 can run on.
BACKEND_MODULES = {
    "tensorflow": ("tensorflow", "tensorflow"),
    "jax": ("jax", "jax"),
    "torch": ("torch", "torch"),
    "numpy": ("numpy", None),
}


@imported_once
def import_keras():
    """Import Keras 3 on the TensorFlow backend unless the user chose another one."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if os.environ["KERAS_BACKEND"] == "tensorflow":
        import_tensorflow()  # silences TF's C++ logs before Keras imports it
    with quiet_stderr():
        import keras
        quiet_loggers("absl", "jax._src.xla_bridge")
    return keras


class KerasConv2D(Backend):
    """`keras.layers.Conv2D(filters, kernel_size, padding, use_bias=False, dtype=...)`."""

    name = "keras.layers.Conv2D"
    module = "keras"
    package = "keras"
    extra = "tensorflow"  # Keras comes with the tensorflow extra
    native_geometry = True

    def required_modules(self) -> tuple[tuple[str, str | None], ...]:
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        framework = BACKEND_MODULES.get(backend)
        return ((self.module, self.extra),) + ((framework,) if framework else ())

    def warm_up(self) -> None:
        import_keras()

    def _run(self, image, kernel, *, padding, dtype, library_defaults, stride=(1, 1), dilation=(1, 1),
             groups=1):
        keras = import_keras()
        kh, kw, channels_in, channels_out = kernel.shape
        height, width, channels = image.shape
        stride, dilation = tuple(stride), tuple(dilation)
        depthwise = groups > 1 and groups == channels
        pads = geometry_pads(padding, height, width, kh, kw, stride, dilation)

        def make_layer(run_stride, **kwargs):
            geometry = {"strides": run_stride, "dilation_rate": dilation}
            if depthwise:
                return keras.layers.DepthwiseConv2D(kernel_size=(kh, kw), depth_multiplier=channels_out // channels,
                                                    use_bias=False, **geometry, **kwargs)
            if groups > 1:
                geometry["groups"] = groups
            return keras.layers.Conv2D(filters=channels_out, kernel_size=(kh, kw), use_bias=False,
                                       **geometry, **kwargs)

        emulate_stride = False
        if stride != (1, 1) and dilation != (1, 1):
            # Keras 3's Conv2D raises ValueError for strides > 1 with dilation_rate > 1.
            try:
                make_layer(stride)
            except ValueError:
                emulate_stride = True

        def attempt(emulate_stride, why):
            notes: list[str] = []
            run_stride = (1, 1) if emulate_stride else stride
            if library_defaults:
                used_padding = layer_padding = "valid"  # Conv2D's default padding
                image_in, kernel_in = image, kernel
                if emulate_stride:
                    raise ValueError(f"`strides > 1` not supported in conjunction with `dilation_rate > 1` "
                                     f"(keras.layers.Conv2D; strides={stride}, dilation_rate={dilation})")
                layer = make_layer(run_stride)
                notes.append(f"library defaults: Keras {layer.dtype_policy.name} dtype policy, "
                             f"padding='valid'")
                if image.dtype.kind in "iub":
                    # Keras autocasts float inputs only; an integer input makes the call raise.
                    image_in = image.astype(numpy_dtype(layer.compute_dtype))
                    notes.append(f"the {dtype_name(image.dtype)} image was cast to "
                                 f"{layer.compute_dtype} first: Keras layers do not cast integer inputs")
                elif dtype_name(image.dtype) != layer.compute_dtype:
                    notes.append(f"Keras cast the {dtype_name(image.dtype)} image to "
                                 f"{layer.compute_dtype} (its dtype policy)")
            else:
                used_padding = padding
                image_in, kernel_in, cast_notes = cast_inputs(image, kernel, dtype)
                notes.extend(cast_notes)
                layer_padding = padding
                if emulate_stride:
                    image_in = zero_pad(image_in, pads)
                    layer_padding = "valid"
                    notes.append(f"{why}; " + STRIDE_EMULATED)
                elif padding == "full":
                    # Conv2D only knows 'same' and 'valid': zero-pad by hand, then 'valid'.
                    image_in = zero_pad(image_in, pads)
                    layer_padding = "valid"
                    notes.append(f"Keras Conv2D has no 'full' padding: the input was zero-padded by "
                                 f"{pads[0]} rows and {pads[2]} columns on each side and run with "
                                 f"padding='valid'")
                layer = make_layer(run_stride, padding=layer_padding, dtype=dtype)
            if depthwise:
                kernel_in = kernel_in.reshape(kh, kw, channels, channels_out // channels)
                notes.append("groups = C_in: ran keras.layers.DepthwiseConv2D with the kernel as "
                             "(kh, kw, C_in, depth_multiplier)")
            elif groups > 1:
                notes.append(f"groups = {groups}: keras.layers.Conv2D(groups={groups})")

            layer.build((None,) + image_in.shape)
            variable_dtype = dtype_name(layer.kernel.dtype)
            if dtype_name(kernel_in.dtype) != variable_dtype and library_defaults:
                notes.append(f"the {dtype_name(kernel_in.dtype)} kernel was stored as "
                             f"{variable_dtype} (the layer's variable dtype)")
            layer.set_weights([kernel_in.astype(numpy_dtype(variable_dtype))])

            backend = keras.backend.backend()
            batch = image_in[None]
            start = time.perf_counter()
            y = layer(batch)
            # Fetching the values waits for the result (asynchronous on a GPU). On TF, use the
            # tensor's own .numpy(): keras.ops.convert_to_numpy goes through np.array(tensor),
            # which raises a numpy 2 DeprecationWarning (no copy= keyword) for bfloat16.
            values = y.numpy() if backend == "tensorflow" else keras.ops.convert_to_numpy(y)
            output = values[0]
            seconds = time.perf_counter() - start
            if emulate_stride:
                out_h, out_w = output_shape(padding, height, width, kh, kw, stride, dilation)
                output = np.ascontiguousarray(output[::stride[0], ::stride[1]][:out_h, :out_w])

            if backend != "tensorflow":
                notes.append(f"Keras ran on its {backend} backend (KERAS_BACKEND={backend})")
            return BackendRun(output=output, compute_dtype=layer.compute_dtype, padding=used_padding,
                              seconds=seconds, notes=tuple(notes))

        if emulate_stride or library_defaults or not depthwise or stride == (1, 1):
            return attempt(emulate_stride, "keras.layers.Conv2D raises ValueError for strides > 1 with "
                                           "dilation_rate > 1")
        try:
            return attempt(False, "")
        except Exception as exc:
            # DepthwiseConv2D on TensorFlow's CPU kernel refuses unequal row/column strides.
            return attempt(True, f"keras.layers.DepthwiseConv2D raised {type(exc).__name__} at "
                                 f"strides={stride} ({one_line(exc, 120)})")
