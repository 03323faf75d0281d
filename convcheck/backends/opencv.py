"""`cv2.filter2D` as a backend: an image filter, a cross-correlation of each channel.

Behaviours checked on OpenCV 5.0 (opencv-python-headless):
- filter2D correlates (no kernel flip) every channel of the image with one 2-D kernel
  and returns an image of the same size: no 'valid'/'full', no sum over channels.
- the kernel's anchor (x, y) is the tap that lands on the output pixel; the default
  (-1, -1) is the centre (kw // 2, kh // 2), one pixel below/right of TensorFlow 'SAME'
  on an even axis, whose first tap is ((kw - 1) // 2, (kh - 1) // 2).
- the border is BORDER_REFLECT_101 (dcb|abcd|cba) unless told otherwise.
- float16/bfloat16 images raise ("Unsupported combination of source format"); uint8
  images with ddepth=-1 give a uint8 image (rounded, saturated).
- kernels of 11x11 and larger go through a DFT, whose rounding is normwise.
"""

from __future__ import annotations


import numpy as np

from .base import (Backend, BackendRun, cast_inputs, dtype_name, imported_once, pad_amounts, quiet_stderr,
                   sum_over_channels)

# OpenCV switches filter2D to its DFT path from about this kernel area on.
_DFT_AREA = 11 * 11


@imported_once
def import_cv2():
    with quiet_stderr():
        import cv2
    return cv2


class OpenCVFilter2D(Backend):
    """`cv2.filter2D(plane, -1, kernel, anchor=..., borderType=...)`, one call per channel pair."""

    name = "cv2.filter2D"
    module = "cv2"
    package = "opencv-python-headless"
    extra = "opencv"
    distributions = ("opencv-python-headless", "opencv-python", "opencv-contrib-python",
                     "opencv-contrib-python-headless")

    def warm_up(self) -> None:
        import_cv2()

    def _run(self, image, kernel, *, padding, dtype, library_defaults):
        cv2 = import_cv2()
        notes: list[str] = []
        kh, kw, channels_in, _ = kernel.shape

        if library_defaults:
            used_padding = "same"  # filter2D's output is always the image's size
            border = cv2.BORDER_DEFAULT  # BORDER_REFLECT_101
            anchor = (-1, -1)
            if image.dtype == np.uint8:
                image_in = image
                note = "uint8 image kept (ddepth=-1: a uint8 result, rounded and saturated)"
            else:
                image_in = image.astype(np.float32)
                note = f"the {dtype_name(image.dtype)} image converted to float32, as OpenCV users do"
            kernel_in = kernel.astype(np.float32)
            compute = "float32"
            notes.append(f"library defaults: borderType=BORDER_DEFAULT (reflect-101), "
                         f"anchor=(-1, -1) (the kernel's centre), same-size output; {note}")
            crop = None
        else:
            used_padding = padding
            image_in, kernel_in, cast_notes = cast_inputs(image, kernel, dtype)
            notes.extend(cast_notes)
            compute = dtype
            if dtype in ("float16", "bfloat16"):
                image_in = image_in.astype(np.float32)
                kernel_in = kernel_in.astype(np.float32)
                compute = "float32"
                notes.append(f"filter2D has no {dtype}: inputs rounded to {dtype}, "
                             f"computed in float32")
            border = cv2.BORDER_CONSTANT  # value 0: zero padding
            top, bottom, left, right = pad_amounts(kh, kw, padding)
            if padding == "same":
                # The tap that lands on the output pixel: TF 'SAME' puts the extra row/column
                # of an even kernel at the bottom/right, so the anchor is (k - 1) // 2.
                anchor = (left, top)
                crop = None
                if (left, top) != (kw // 2, kh // 2):
                    notes.append(f"anchor=({left}, {top}) to place the even kernel as "
                                 f"TensorFlow 'SAME' does (OpenCV's default is its centre, "
                                 f"({kw // 2}, {kh // 2}))")
            else:
                # filter2D only makes same-size images: zero-pad by hand, anchor at the
                # kernel's first tap, then keep the rows/columns the convention defines.
                image_in = np.pad(image_in, ((top, bottom), (left, right), (0, 0)))
                anchor = (0, 0)
                crop = (image.shape[0] + top + bottom - kh + 1,
                        image.shape[1] + left + right - kw + 1)
                notes.append(f"filter2D has no '{padding}' padding: the image was zero-padded "
                             f"by hand ({top} rows, {left} columns on each side), filtered "
                             f"with anchor=(0, 0) and cropped to the '{padding}' size")

        # filter2D keeps uint8 as uint8: summed in float32, which holds every such sum exactly.
        output, seconds = sum_over_channels(
            image_in, kernel_in, lambda plane, taps: cv2.filter2D(plane, -1, taps, anchor=anchor, borderType=border),
            crop=None if crop is None else (slice(0, crop[0]), slice(0, crop[1])), wide=np.float32)

        if channels_in > 1:
            notes.append(f"filter2D filters each channel on its own: one call per (input, "
                         f"output) channel pair, summed over {channels_in} input channels")
        if kh * kw >= _DFT_AREA:
            notes.append(f"a {kh}x{kw} kernel is large enough for OpenCV to filter through a "
                         f"DFT (rounding spread over the whole image)")
        return BackendRun(output=output, compute_dtype=compute, padding=used_padding,
                          seconds=seconds, notes=tuple(notes))
