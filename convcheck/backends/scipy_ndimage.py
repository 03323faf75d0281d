"""`scipy.ndimage.correlate` and `scipy.ndimage.convolve` as backends.

Behaviours checked on scipy 1.17:
- both filter an N-D array with an N-D kernel and return the input's size and dtype
  (the sums run in float64 inside); there is no 'valid'/'full' and no sum over channels.
- the default border is mode='reflect' (cba|abcd|dcb, numpy's 'symmetric');
  mode='constant' with cval=0 is zero padding.
- an even kernel is centred at k // 2: one pixel below/right of TensorFlow 'SAME'.
  `origin=-1` on an even axis moves correlate onto TF 'SAME'.
- convolve is a true convolution: convolve(x, k) with origin=0 is the cross-correlation with
  k[::-1, ::-1] placed exactly as TF 'SAME' places it, for odd and even kernels (checked
  against the reference). convcheck runs it as it is, unflipped, exactly as it runs
  scipy.signal.convolve2d: its row shows the flip (kernel_transform rot180).
- float16 raises "array type not supported"; bfloat16 is not a numpy type it knows.
"""

from __future__ import annotations


import numpy as np

from .base import Backend, BackendRun, cast_inputs, dtype_name, pad_amounts, sum_over_channels


class _ScipyNdimage(Backend):
    """Shared runner for ndimage.correlate / ndimage.convolve (`function` names which)."""

    module = "scipy"
    package = "scipy"
    function: str

    def warm_up(self) -> None:
        import scipy.ndimage  # noqa: F401

    def _origins(self, kh: int, kw: int) -> tuple[int, int]:
        """The `origin` that puts the window where TensorFlow 'SAME' puts it."""
        raise NotImplementedError

    def _centre(self, k: int) -> int:
        """How many rows before the output pixel the window starts, at origin=0."""
        raise NotImplementedError

    def _run(self, image, kernel, *, padding, dtype, library_defaults):
        import scipy.ndimage

        function = getattr(scipy.ndimage, self.function)
        notes: list[str] = []
        kh, kw, channels_in, _ = kernel.shape
        crop = None
        if library_defaults:
            used_padding = "same"
            mode, origin = "reflect", (0, 0)
            image_in, kernel_in = image, kernel
            compute = dtype_name(image.dtype)
            if image.dtype.kind not in "fiub" or dtype_name(image.dtype) in ("float16", "bfloat16"):
                image_in = image.astype(np.float32)
                compute = "float32"
                notes.append(f"the {dtype_name(image.dtype)} image was cast to float32 "
                             f"(scipy.ndimage has no {dtype_name(image.dtype)})")
            notes.append(f"library defaults: mode='reflect' (cba|abcd|dcb), origin=0 (an even "
                         f"kernel centred at k // 2), same-size output in the image's dtype "
                         f"({compute}), the kernel as loaded")
        else:
            used_padding = padding
            image_in, kernel_in, cast_notes = cast_inputs(image, kernel, dtype)
            notes.extend(cast_notes)
            compute = dtype
            if dtype in ("float16", "bfloat16"):
                image_in = image_in.astype(np.float32)
                kernel_in = kernel_in.astype(np.float32)
                compute = "float32"
                notes.append(f"scipy.ndimage has no {dtype}: inputs rounded to {dtype}, "
                             f"computed in float32")
            mode = "constant"
            if self.function == "convolve":
                notes.append("ndimage.convolve is a true convolution: it flips the kernel 180 degrees (called "
                             "with the kernel as given, as scipy.signal.convolve2d is)")
            if padding == "same":
                origin = self._origins(kh, kw)
                if origin != (0, 0):
                    notes.append(f"origin={list(origin)} to centre the even kernel as "
                                 f"TensorFlow 'SAME' does")
            else:
                top, bottom, left, right = pad_amounts(kh, kw, padding)
                image_in = np.pad(image_in, ((top, bottom), (left, right), (0, 0)))
                # With origin=0 the window of output (i, j) starts `centre` rows/columns
                # before it: keep the outputs whose window starts inside the padded image.
                origin = (0, 0)
                cy, cx = self._centre(kh), self._centre(kw)
                crop = (slice(cy, cy + image.shape[0] + top + bottom - kh + 1),
                        slice(cx, cx + image.shape[1] + left + right - kw + 1))
                notes.append(f"scipy.ndimage has no '{padding}' padding: the image was "
                             f"zero-padded by hand ({top} rows, {left} columns on each side) "
                             f"and the output cropped to the '{padding}' size")

        output, seconds = sum_over_channels(
            image_in, kernel_in,
            lambda plane, weights: function(plane, weights, mode=mode, cval=0.0, origin=list(origin)), crop=crop)
        if channels_in > 1:
            notes.append(f"scipy.ndimage has no sum over channels: one 2-D call per (input, "
                         f"output) channel pair, summed over {channels_in} input channels")
        return BackendRun(output=output, compute_dtype=compute, padding=used_padding,
                          seconds=seconds, notes=tuple(notes))


class NdimageCorrelate(_ScipyNdimage):
    """`scipy.ndimage.correlate`: a cross-correlation (no flip)."""

    name = "scipy.ndimage.correlate"
    function = "correlate"

    def _origins(self, kh, kw):
        return (-(1 - kh % 2), -(1 - kw % 2))

    def _centre(self, k):
        return k // 2


class NdimageConvolve(_ScipyNdimage):
    """`scipy.ndimage.convolve`: a true convolution (the kernel is flipped 180 degrees), shown as such."""

    name = "scipy.ndimage.convolve"
    function = "convolve"

    def _origins(self, kh, kw):
        return (0, 0)

    def _centre(self, k):
        return (k - 1) // 2  # the flipped kernel's window, at origin=0
