"""`scipy.signal.convolve2d` and `scipy.signal.correlate2d` as backends.

Both are single-channel 2-D functions: a multi-channel HWIO kernel is run as one 2-D call
per (input channel, output channel) pair, summed over input channels, which is what every
deep-learning framework's conv does.

Behaviours checked on scipy 1.17:
- float16 and bfloat16 are not supported: `_sigtools._convolve2d` raises
  "ValueError: convolve2d not available for this type" when both inputs are (it promotes
  with numpy rules, so float16 with a float64 kernel silently computes in float64).
- integers compute in their own integer type (int8 in, int8 out, wrapping on overflow).
- mode='same' with an even kernel: correlate2d matches TensorFlow 'SAME' (extra row/column
  at the bottom/right); convolve2d equals correlate2d with the flipped kernel shifted by one
  pixel on each even axis (output[i, j] == reference_rot180[i - 1, j - 1] for 4x4).
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import BackendError
from .base import Backend, BackendRun, cast_inputs, dtype_name


class _ScipySignal2D(Backend):
    """Shared runner for the two scipy.signal 2-D functions (`function` names which)."""

    module = "scipy"
    package = "scipy"
    function: str

    def warm_up(self) -> None:
        import scipy.signal  # noqa: F401

    def _run(self, image, kernel, *, padding, dtype, library_defaults):
        import scipy.signal

        notes: list[str] = []
        if library_defaults:
            mode = "full"  # scipy.signal's default mode
            image_in, kernel_in = image, kernel
            notes.append(f"library defaults: scipy.signal mode='full', inputs as loaded "
                         f"({dtype_name(image.dtype)} image, {dtype_name(kernel.dtype)} kernel, "
                         f"numpy type promotion)")
        else:
            mode = padding
            image_in, kernel_in, cast_notes = cast_inputs(image, kernel, dtype)
            notes.extend(cast_notes)
            if dtype in ("float16", "bfloat16"):
                # scipy.signal's C loop has no float16/bfloat16 (it raises "convolve2d not
                # available for this type"), so the rounding to dtype is all we can honour.
                image_in = image_in.astype(np.float32)
                kernel_in = kernel_in.astype(np.float32)
                notes.append(f"scipy.signal has no {dtype}: inputs rounded to {dtype}, "
                             f"computed in float32")

        function = getattr(scipy.signal, self.function)
        channels_in, channels_out = kernel_in.shape[2], kernel_in.shape[3]
        planes = [np.ascontiguousarray(image_in[:, :, c]) for c in range(channels_in)]
        kernels = [[np.ascontiguousarray(kernel_in[:, :, c, o]) for c in range(channels_in)]
                   for o in range(channels_out)]

        seconds = 0.0
        columns = []
        for o in range(channels_out):
            total = None
            for c in range(channels_in):
                start = time.perf_counter()
                try:
                    part = function(planes[c], kernels[o][c], mode=mode)
                except ValueError as exc:
                    if "not available for this type" in str(exc):
                        promoted = dtype_name(np.result_type(planes[c].dtype, kernels[o][c].dtype))
                        raise BackendError(
                            self.name,
                            f"scipy.signal cannot compute in {promoted} (ValueError: {exc}); "
                            f"cast the inputs to float32 first") from exc
                    raise
                seconds += time.perf_counter() - start
                # Summing in the part's own dtype keeps scipy's arithmetic (ints wrap).
                total = part if total is None else total + part
            columns.append(total)
        output = np.stack(columns, axis=-1)

        if channels_in > 1:
            notes.append(f"per-channel 2-D calls summed over {channels_in} input channels")
        if output.dtype.kind in "iu":
            notes.append(f"computed in integer arithmetic ({output.dtype.name}), which wraps "
                         f"around silently on overflow")
        return BackendRun(output=output, compute_dtype=dtype_name(output.dtype), padding=mode,
                          seconds=seconds, notes=tuple(notes))


class ScipyConvolve2D(_ScipySignal2D):
    """`scipy.signal.convolve2d`: a true convolution (the kernel is flipped 180 degrees)."""

    name = "scipy.signal.convolve2d"
    function = "convolve2d"


class ScipyCorrelate2D(_ScipySignal2D):
    """`scipy.signal.correlate2d`: a cross-correlation, the deep-learning convention."""

    name = "scipy.signal.correlate2d"
    function = "correlate2d"
