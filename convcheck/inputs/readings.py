"""The other readings of validated inputs that `explain` tries when the declared one explains
nothing: the kernel's axes in another order, and the image's channels reversed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..choices import KERNEL_AXIS_ORDERS
from ..errors import InputError
from .arrays import read_kernel_as
from .pairs import resolve_kernel

if TYPE_CHECKING:
    from .bundle import Inputs

_AXIS_NAMES = {"h": "kh", "w": "kw", "i": "C_in", "o": "C_out"}
_COLOUR_CHANNELS = 4


def axis_names(layout: str) -> str:
    """'C_out, C_in, kh, kw' for 'oihw': a kernel layout's axes in words."""
    if layout == "oihw-reshaped":
        return "OIHW weights reshaped to kh, kw, C_in, C_out"
    if layout == "depthwise-reshaped":
        return "depthwise (C, 1, kh, kw) weights reshaped to kh, kw, C, 1"
    return ", ".join(_AXIS_NAMES[axis] for axis in layout)


def alternative_layouts(declared: str) -> list[str]:
    """The kernel layouts `explain` tries besides a declared axis order, likeliest first: the
    other framework's layout (HWIO <-> OIHW), the input and output axes swapped, OIHW weights
    reshaped into HWIO, then every other order (for a kernel declared 'oihw-reshaped', the
    array as given, HWIO, then HWIO's). Orders that differ from one of these only by
    swapping kh and kw are left out: that is the kernel_transform 'transpose', already
    searched on every reading."""
    if declared == "oihw-reshaped":   # declared reshaped: the array as it is (HWIO) first
        return ["hwio"] + [name for name in alternative_layouts("hwio") if name != declared]
    if declared not in KERNEL_AXIS_ORDERS:
        return []
    swapped = declared.translate(str.maketrans("io", "oi"))
    first = [{"hwio": "oihw", "oihw": "hwio"}.get(declared, "hwio"), swapped]
    if declared == "hwio":
        first.append("oihw-reshaped")
    h_first = declared.index("h") < declared.index("w")
    orders = [order for order in KERNEL_AXIS_ORDERS if (order.index("h") < order.index("w")) == h_first]
    return [name for name in dict.fromkeys(first + orders)
            if name != declared and (name == "oihw-reshaped" or (name.index("h") < name.index("w")) == h_first)]


def _reshaped(inputs: Inputs) -> list[tuple[str, np.ndarray]]:
    """The kernel as a port that reshaped weights instead of transposing them computes with
    it, both ways (CONTRACT section 2, kernel_layout; issue 21): given the original's
    weights and the port's output, or the port's weights and the original's output. As
    grouped HWIO: 'oihw-reshaped', PyTorch OIHW weights reshaped into Keras's HWIO shape (and
    the inverse, HWIO reshaped into OIHW); 'depthwise-reshaped', a PyTorch depthwise
    (C, 1, kh, kw) kernel reshaped into Keras DepthwiseConv2D's (kh, kw, C, 1) (and back)."""
    kernel = np.asarray(inputs.kernel)
    kh, kw, per_group, outs = kernel.shape
    if inputs.groups == 1:
        return [("oihw-reshaped", kernel.transpose(3, 2, 0, 1).reshape(kernel.shape)),
                ("oihw-reshaped", kernel.reshape(outs, per_group, kh, kw).transpose(2, 3, 1, 0))]
    if per_group == 1 and inputs.groups == outs:
        return [("depthwise-reshaped", kernel.transpose(3, 2, 0, 1).reshape(kernel.shape)),
                ("depthwise-reshaped", kernel.reshape(outs, 1, kh, kw).transpose(2, 3, 1, 0))]
    return []


def other_readings(inputs: Inputs) -> list[Inputs]:
    """The other ways `inputs`' kernel and image could have been read whose shapes fit its
    image and output, fewest changes first (CONTRACT section 2, Layout).

    Each differs from `inputs` in `kernel_reading` (the raw 4-D kernel's axes in another
    order, or OIHW weights reshaped into HWIO: `alternative_layouts`), in `channel_order`
    ('reversed': the image's channels used last to first, for images of 2 to 4 channels),
    or in both. A reading whose arrays equal those of `inputs` or of an earlier reading
    computes the same thing and is left out. None for a 2-D, 1-D or depthwise kernel's
    layout. Needs an output.
    """
    current = inputs.kernel_reading or inputs.kernel_layout
    out_channels = inputs.output.shape[-1]
    kernels: list[Inputs] = []
    raw = inputs.raw_kernel
    if raw is not None and raw.ndim == 4 and inputs.kernel_axis is None:
        seen = [inputs.kernel]
        for name in alternative_layouts(inputs.kernel_layout):
            if name == current:
                continue
            try:
                kernel = read_kernel_as(raw, name)
                kernel, groups, _, _ = resolve_kernel(inputs.image, kernel, 4, name, (out_channels,), "image", "kernel")
            except (InputError, ValueError):
                continue
            if kernel.shape[-1] != out_channels or any(
                    k.shape == kernel.shape and np.array_equal(k, kernel) for k in seen):
                continue
            seen.append(kernel)
            kernels.append(replace(inputs, kernel=kernel, groups=groups, kernel_reading=name))
        # A reshape of a kernel declared reshaped is the array as given: the 'hwio' reading.
        for name, kernel in _reshaped(inputs) if inputs.kernel_layout != "oihw-reshaped" else ():
            if not any(k.shape == kernel.shape and np.array_equal(k, kernel) for k in seen):
                seen.append(kernel)
                kernels.append(replace(inputs, kernel=kernel, kernel_reading=name))
    image = inputs.image
    reversed_image = image[..., ::-1]
    # Colour images only (RGB/BGR, with alpha): reversing many feature channels is no known
    # mix-up, and each reading costs a whole search.
    if inputs.channel_order != "as_given" or not 1 < image.shape[-1] <= _COLOUR_CHANNELS \
            or np.array_equal(image, reversed_image):
        return kernels
    flipped = [replace(reading, image=reversed_image, channel_order="reversed") for reading in kernels]
    return kernels + [replace(inputs, image=reversed_image, channel_order="reversed")] + flipped
