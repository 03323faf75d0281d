"""`jax.lax.conv_general_dilated` as a backend (NHWC, HWIO, NHWC), a cross-correlation.

Behaviours checked on jax 0.10 (CPU):
- without x64 (JAX's default) every float64 array becomes float32 when it enters JAX,
  silently; `jax.config.update('jax_enable_x64', True)` keeps float64. convcheck turns
  x64 on only around a float64 run and restores the previous setting after.
- float16 and bfloat16 run natively and return their own dtype;
  `precision=Precision.HIGHEST` keeps float32 at float32 on TPUs/GPUs (no bf16 passes).
- padding 'SAME' is TensorFlow's (extra at the bottom/right); 'full' is explicit
  (kh - 1, kh - 1) pairs.
- window_strides=, rhs_dilation= and feature_group_count= run natively (strides with
  dilations included); at any other geometry than stride/dilation 1 and dense channels
  the padding goes as explicit (before, after) pairs with TF SAME's exact amounts.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from ..geometry import is_explicit
from .base import (Backend, BackendRun, cast_inputs, dtype_name, geometry_pads, imported_once, quiet_loggers,
                   quiet_stderr)


@imported_once
def import_jax():
    """Import jax quietly and initialise its platform (where the 'no GPU' warning is printed)."""
    with quiet_stderr():
        quiet_loggers("jax._src.xla_bridge", "absl")
        import jax
        jax.devices()
    return jax


@contextlib.contextmanager
def x64(enabled: bool):
    """JAX's x64 mode set to `enabled` meanwhile, restored after."""
    import jax
    before = bool(jax.config.jax_enable_x64)
    if before == enabled:
        yield
        return
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


class JaxConvGeneralDilated(Backend):
    """`lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))`."""

    name = "jax.lax.conv_general_dilated"
    module = "jax"
    package = "jax"
    extra = "jax"
    native_geometry = True

    def warm_up(self) -> None:
        import_jax()

    def _run(self, image, kernel, *, padding, dtype, library_defaults, stride=(1, 1), dilation=(1, 1),
             groups=1):
        jax = import_jax()
        import jax.numpy as jnp
        from jax import lax

        notes: list[str] = []
        kh, kw = kernel.shape[:2]
        if library_defaults:
            # conv_general_dilated has no default padding: keep the asked one, like tf.nn.conv2d.
            used_padding = padding
            enable_x64 = bool(jax.config.jax_enable_x64)
            image_in, kernel_in = image, kernel
            if image.dtype.kind in "iub":
                image_in, kernel_in = image.astype(np.float32), kernel.astype(np.float32)
                notes.append(f"library defaults: the {dtype_name(image.dtype)} inputs were cast "
                             f"to float32 (lax convolutions take floats)")
            else:
                kernel_in = kernel.astype(image.dtype)
                note = "library defaults: inputs passed as loaded"
                if image.dtype == np.float64 and not enable_x64:
                    note += (" (x64 is off, JAX's default: the float64 arrays became float32 "
                             "on entering JAX)")
                notes.append(note)
        else:
            used_padding = padding
            image_in, kernel_in, cast_notes = cast_inputs(image, kernel, dtype)
            notes.extend(cast_notes)
            enable_x64 = dtype == "float64"
            if enable_x64 and not jax.config.jax_enable_x64:
                notes.append("jax_enable_x64 was turned on for this float64 run (JAX computes "
                             "float64 as float32 without it) and restored after")

        stride, dilation = tuple(stride), tuple(dilation)
        if is_explicit(padding):
            lax_padding = [tuple(padding[0]), tuple(padding[1])]
            if groups != 1:
                notes.append(f"feature_group_count={groups}")
        elif stride != (1, 1) or dilation != (1, 1) or groups != 1:
            top, bottom, left, right = geometry_pads(padding, image.shape[0], image.shape[1], kh, kw,
                                                     stride, dilation)
            lax_padding = [(top, bottom), (left, right)]
            if groups != 1:
                notes.append(f"feature_group_count={groups}")
        elif padding == "full":
            lax_padding = [(kh - 1, kh - 1), (kw - 1, kw - 1)]
            notes.append(f"'full' padding passed as explicit pairs "
                         f"[({kh - 1}, {kh - 1}), ({kw - 1}, {kw - 1})]")
        else:
            lax_padding = padding.upper()

        with x64(enable_x64):
            x = jnp.asarray(image_in[None])
            w = jnp.asarray(kernel_in)
            start = time.perf_counter()
            y = lax.conv_general_dilated(x, w, window_strides=stride, padding=lax_padding,
                                         rhs_dilation=dilation, feature_group_count=groups,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                         precision=lax.Precision.HIGHEST)
            y.block_until_ready()  # asynchronous dispatch: wait for the result
            output = np.asarray(y)[0]
            seconds = time.perf_counter() - start
        return BackendRun(output=output, compute_dtype=dtype_name(y.dtype), padding=used_padding,
                          seconds=seconds, notes=tuple(notes))
