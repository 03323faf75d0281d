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

from ..geometry import is_explicit
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
        call = _LayerCall(import_keras(), image, kernel, padding=padding, dtype=dtype,
                          library_defaults=library_defaults, stride=stride, dilation=dilation, groups=groups)
        # Keras 3's Conv2D raises ValueError for strides > 1 with dilation_rate > 1.
        emulate_stride = call.stride != (1, 1) and call.dilation != (1, 1) and call.refuses_stride()
        if emulate_stride or library_defaults or not call.depthwise or call.stride == (1, 1):
            return call.attempt(emulate_stride, "keras.layers.Conv2D raises ValueError for strides > 1 with "
                                                "dilation_rate > 1")
        try:
            return call.attempt(False, "")
        except Exception as exc:
            # DepthwiseConv2D on TensorFlow's CPU kernel refuses unequal row/column strides.
            return call.attempt(True, f"keras.layers.DepthwiseConv2D raised {type(exc).__name__} at "
                                      f"strides={call.stride} ({one_line(exc, 120)})")


class _LayerCall:
    """One image through a Keras convolution layer: Conv2D, or DepthwiseConv2D for groups = C_in,
    at the layer's own stride or at stride 1 with every stride-th output kept (`emulate_stride`)."""

    def __init__(self, keras, image, kernel, *, padding, dtype, library_defaults, stride, dilation, groups):
        self.keras, self.image, self.kernel = keras, image, kernel
        self.padding, self.dtype, self.library_defaults = padding, dtype, library_defaults
        self.kh, self.kw, _, self.channels_out = kernel.shape
        self.height, self.width, self.channels = image.shape
        self.stride, self.dilation, self.groups = tuple(stride), tuple(dilation), groups
        self.depthwise = groups > 1 and groups == self.channels
        self.pads = geometry_pads(padding, self.height, self.width, self.kh, self.kw, self.stride, self.dilation)

    def make_layer(self, run_stride, **kwargs):
        """The layer (not built) at `run_stride`, with this call's kernel size, dilation and groups."""
        geometry = {"strides": run_stride, "dilation_rate": self.dilation}
        if self.depthwise:
            return self.keras.layers.DepthwiseConv2D(kernel_size=(self.kh, self.kw),
                                                     depth_multiplier=self.channels_out // self.channels,
                                                     use_bias=False, **geometry, **kwargs)
        if self.groups > 1:
            geometry["groups"] = self.groups
        return self.keras.layers.Conv2D(filters=self.channels_out, kernel_size=(self.kh, self.kw), use_bias=False,
                                        **geometry, **kwargs)

    def refuses_stride(self) -> bool:
        """Whether the layer refuses this call's stride (with its dilation) when it is made."""
        try:
            self.make_layer(self.stride)
        except ValueError:
            return True
        return False

    def attempt(self, emulate_stride: bool, why: str) -> BackendRun:
        """Run the layer, at stride 1 with every stride-th output kept when `emulate_stride` (`why`
        says why, in the notes)."""
        notes: list[str] = []
        run_stride = (1, 1) if emulate_stride else self.stride
        if self.library_defaults:
            used_padding = "valid"  # Conv2D's default padding
            image_in, kernel_in, layer = self._with_defaults(emulate_stride, run_stride, notes)
        else:
            used_padding = self.padding
            image_in, kernel_in, layer = self._as_asked(emulate_stride, run_stride, why, notes)
        if self.depthwise:
            kernel_in = kernel_in.reshape(self.kh, self.kw, self.channels, self.channels_out // self.channels)
            notes.append("groups = C_in: ran keras.layers.DepthwiseConv2D with the kernel as "
                         "(kh, kw, C_in, depth_multiplier)")
        elif self.groups > 1:
            notes.append(f"groups = {self.groups}: keras.layers.Conv2D(groups={self.groups})")
        output, seconds = self._call(layer, image_in, kernel_in, notes)
        if emulate_stride:
            stride = self.stride
            out_h, out_w = output_shape(self.padding, self.height, self.width, self.kh, self.kw, stride,
                                        self.dilation)
            output = np.ascontiguousarray(output[::stride[0], ::stride[1]][:out_h, :out_w])

        backend = self.keras.backend.backend()
        if backend != "tensorflow":
            notes.append(f"Keras ran on its {backend} backend (KERAS_BACKEND={backend})")
        return BackendRun(output=output, compute_dtype=layer.compute_dtype, padding=used_padding,
                          seconds=seconds, notes=tuple(notes))

    def _with_defaults(self, emulate_stride: bool, run_stride, notes: list[str]):
        """(image, kernel, layer) for the library's own defaults: Conv2D's 'valid' padding and dtype policy."""
        image, kernel = self.image, self.kernel
        image_in, kernel_in = image, kernel
        if emulate_stride:
            raise ValueError(f"`strides > 1` not supported in conjunction with `dilation_rate > 1` "
                             f"(keras.layers.Conv2D; strides={self.stride}, dilation_rate={self.dilation})")
        layer = self.make_layer(run_stride)
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
        return image_in, kernel_in, layer

    def _as_asked(self, emulate_stride: bool, run_stride, why: str, notes: list[str]):
        """(image, kernel, layer) for the padding and dtype asked for, zero-padding by hand what
        the layer cannot pad itself."""
        pads = self.pads
        image_in, kernel_in, cast_notes = cast_inputs(self.image, self.kernel, self.dtype)
        notes.extend(cast_notes)
        layer_padding = self.padding
        if emulate_stride:
            image_in = zero_pad(image_in, pads)
            layer_padding = "valid"
            notes.append(f"{why}; " + STRIDE_EMULATED)
        elif self.padding == "full":
            # Conv2D only knows 'same' and 'valid': zero-pad by hand, then 'valid'.
            image_in = zero_pad(image_in, pads)
            layer_padding = "valid"
            notes.append(f"Keras Conv2D has no 'full' padding: the input was zero-padded by "
                         f"{pads[0]} rows and {pads[2]} columns on each side and run with "
                         f"padding='valid'")
        elif is_explicit(self.padding):
            # Conv2D takes no amounts: a Keras model pads with ZeroPadding2D(((t, b), (l, r))), which
            # adds exactly these zeros, then runs the conv with padding='valid'.
            (top, bottom), (left, right) = self.padding
            image_in = zero_pad(image_in, (top, bottom, left, right))
            layer_padding = "valid"
            notes.append(f"Keras Conv2D takes no explicit padding: the input was zero-padded as "
                         f"keras.layers.ZeroPadding2D((({top}, {bottom}), ({left}, {right}))) pads it and run "
                         f"with padding='valid'")
        layer = self.make_layer(run_stride, padding=layer_padding, dtype=self.dtype)
        return image_in, kernel_in, layer

    def _call(self, layer, image_in, kernel_in, notes: list[str]):
        """(output, seconds): the layer built with the kernel as its weights, called on the image."""
        layer.build((None,) + image_in.shape)
        variable_dtype = dtype_name(layer.kernel.dtype)
        if dtype_name(kernel_in.dtype) != variable_dtype and self.library_defaults:
            notes.append(f"the {dtype_name(kernel_in.dtype)} kernel was stored as "
                         f"{variable_dtype} (the layer's variable dtype)")
        layer.set_weights([kernel_in.astype(numpy_dtype(variable_dtype))])

        backend = self.keras.backend.backend()
        batch = image_in[None]
        start = time.perf_counter()
        y = layer(batch)
        # Fetching the values waits for the result (asynchronous on a GPU). On TF, use the
        # tensor's own .numpy(): keras.ops.convert_to_numpy goes through np.array(tensor),
        # which raises a numpy 2 DeprecationWarning (no copy= keyword) for bfloat16.
        values = y.numpy() if backend == "tensorflow" else self.keras.ops.convert_to_numpy(y)
        return values[0], time.perf_counter() - start
