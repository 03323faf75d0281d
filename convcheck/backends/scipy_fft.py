"""`scipy.signal.fftconvolve` as a backend: a true convolution computed through FFTs.

Behaviours checked on scipy 1.17:
- a convolution (the kernel flipped 180 degrees), default mode='full'. convcheck runs it as
  it is, unflipped, exactly as it runs scipy.signal.convolve2d: its row shows the flip
  (kernel_transform rot180), the library's semantics, not a pre-flipped cross-correlation.
- mode='same' centres the output on the full one with start (k - 1) // 2, which for an
  even kernel is one pixel up/left of TensorFlow 'SAME' (as convolve2d's 'same'); convcheck
  computes 'full' and crops the 'same' part itself, so only the flip remains.
- `axes=(0, 1)` convolves only H and W and broadcasts the channel axes, so one call
  does every (input, output) channel pair; the pairs are then summed over input channels.
- float32 runs single-precision FFTs, float64 double; float16 is computed in float32
  (scipy.fft upcasts it); bfloat16 is not a type scipy knows.
- the rounding error of an FFT is normwise (relative to the largest values), not
  elementwise: outputs much smaller than the largest may carry relatively large errors.
"""

from __future__ import annotations

import time

import numpy as np

from .base import Backend, BackendRun, cast_inputs, dtype_name, pad_amounts


class ScipyFFTConvolve(Backend):
    """`scipy.signal.fftconvolve(image[..., None], kernel, axes=(0, 1))`, summed over C_in: a true
    convolution (the kernel flipped 180 degrees), shown as such."""

    name = "scipy.signal.fftconvolve"
    module = "scipy"
    package = "scipy"

    def warm_up(self) -> None:
        import scipy.signal  # noqa: F401

    def _run(self, image, kernel, *, padding, dtype, library_defaults):
        import scipy.signal

        notes: list[str] = []
        kh, kw = kernel.shape[:2]
        if library_defaults:
            used_padding = "full"
            image_in, kernel_in = image, kernel
            if dtype_name(image.dtype) == "bfloat16" or dtype_name(kernel.dtype) == "bfloat16":
                image_in, kernel_in = image.astype(np.float32), kernel.astype(np.float32)
            notes.append(f"library defaults: mode='full', a true convolution (the kernel "
                         f"flipped), inputs as loaded ({dtype_name(image.dtype)} image, "
                         f"{dtype_name(kernel.dtype)} kernel)")
            crop = None
        else:
            used_padding = padding
            image_in, kernel_in, cast_notes = cast_inputs(image, kernel, dtype)
            notes.extend(cast_notes)
            if dtype in ("float16", "bfloat16"):
                image_in = image_in.astype(np.float32)
                kernel_in = kernel_in.astype(np.float32)
                notes.append(f"scipy.fft has no {dtype}: inputs rounded to {dtype}, "
                             f"computed in float32")
            notes.append("fftconvolve is a true convolution: it flips the kernel 180 degrees (called with the "
                         "kernel as given, as convolve2d is)")
            top, bottom, left, right = pad_amounts(kh, kw, padding)
            # Output (i, j) of 'full' has its window (of the flipped kernel) at (i - (kh - 1), j - (kw - 1)).
            rows = image.shape[0] + top + bottom - kh + 1
            cols = image.shape[1] + left + right - kw + 1
            crop = (slice(kh - 1 - top, kh - 1 - top + rows),
                    slice(kw - 1 - left, kw - 1 - left + cols))
            if padding == "same" and (kh % 2 == 0 or kw % 2 == 0):
                notes.append("computed with mode='full' and cropped to 'same' by convcheck (fftconvolve's own "
                             "'same', like convolve2d's, centres an even kernel one pixel up/left of TensorFlow "
                             "'SAME')")

        start = time.perf_counter()
        # (H, W, C, 1) with (kh, kw, C, O): every channel pair in one call.
        pairs = scipy.signal.fftconvolve(image_in[:, :, :, None], kernel_in, mode="full",
                                         axes=(0, 1))
        output = pairs.sum(axis=2, dtype=pairs.dtype)
        seconds = time.perf_counter() - start
        if crop is not None:
            output = np.ascontiguousarray(output[crop])
        channels_in = kernel.shape[2]
        if channels_in > 1:
            notes.append(f"channel pairs broadcast in one call (axes=(0, 1)), summed over "
                         f"{channels_in} input channels")
        notes.append("computed through FFTs: the rounding error is normwise (relative to the "
                     "largest values), so the row is judged against the FFT's normwise error bound "
                     "(algorithm 'fft'), not a direct sum's elementwise one")
        return BackendRun(output=output, compute_dtype=dtype_name(output.dtype),
                          padding=used_padding, seconds=seconds, notes=tuple(notes),
                          algorithm="fft")
