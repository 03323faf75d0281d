"""The validated inputs of one diagnosis (`Inputs`): the image, kernel and optional output read
from `.npy` files (`load_inputs`) or taken from memory (`prepare_inputs`), checked alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..choices import KERNEL_AXIS_ORDERS
from ..errors import InputError
from .arrays import (check_image_layout, check_kernel_layout, image_array, kernel_array, option_text,
                     output_array, to_array)
from .files import DEFAULT_MAX_ELEMENTS, read_npy
from .pairs import check_padding, check_pair, pair_label, read_output, resolve_kernel
from .readings import alternative_layouts, axis_names

@dataclass(frozen=True, eq=False)
class Inputs:
    """The validated image, kernel and optional output that `compare` and `explain` work on.

    Canonical layouts: `image` (N, H, W, C); `kernel` grouped HWIO (kh, kw, C / groups,
    C_out); `output` (N, Ho, Wo, C_out). Arrays keep the dtype they were given (never
    converted) and may be views of the caller's arrays. The `*_shape` fields are the
    shapes as the user gave them; `output_reading` names the user's output axes ('hwc',
    'nchw', ...), for indexing back. `groups` is what the shapes say; `expected_groups`
    what the layout declares (a depthwise or 2-D-per-channel kernel), else 1.
    `declared_output_layout` is what --layout implies, `output_layout` how the output
    was actually laid out. `*_name` fields are the file paths, or 'image' / 'kernel' /
    'output' for in-memory arrays.
    """

    image: np.ndarray = field(repr=False)
    kernel: np.ndarray = field(repr=False)
    output: np.ndarray | None = field(repr=False)
    image_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | None
    image_name: str
    kernel_name: str
    output_name: str | None
    groups: int = 1
    expected_groups: int = 1
    layout: str = "nhwc"
    kernel_layout: str = "hwio"
    output_reading: str | None = None
    declared_output_layout: str = "hwc"
    output_layout: str = "hwc"
    kernel_axis: str | None = None   # a 1-D kernel read as a (1, k) row ('rows') or (k, 1) column
    # How the kernel's axes and the image's channels were read when not as declared (see
    # `other_readings`): `kernel_reading` None means in `kernel_layout`. `raw_kernel` is the
    # kernel as given (a view), for reading it otherwise.
    kernel_reading: str | None = None
    channel_order: str = "as_given"
    raw_kernel: np.ndarray | None = field(default=None, repr=False)


def _bundle(raw_image, raw_kernel, raw_output, *, image_label, kernel_label, output_label, names,
            kernel_layout, layout, padding, from_file) -> Inputs:
    """Validate and bring the three arrays to the canonical layouts (see `Inputs`).

    A 1-D kernel (k,) is read as a (1, k) row first (`kernel_axis` 'rows'); `explain`
    tries it as a (k, 1) column too (CONTRACT section 1). A 4-D kernel whose shape fits
    the image and output only with its axes in another order than `kernel_layout` is read
    in the first order that fits (`kernel_reading`; `explain` reports it as a
    `kernel_layout` cause and tries the others); without an output that is an error
    naming the order that fits.
    """
    options = dict(image_label=image_label, kernel_label=kernel_label, output_label=output_label, names=names,
                   kernel_layout=kernel_layout, layout=layout, padding=padding, from_file=from_file)
    try:
        return _bundle_as(raw_image, raw_kernel, raw_output, reading=None, **options)
    except InputError as exc:
        if np.ndim(raw_kernel) != 4 or kernel_layout not in KERNEL_AXIS_ORDERS:
            raise
        error = exc
    for reading in alternative_layouts(kernel_layout):
        if reading == "oihw-reshaped":
            continue  # the declared shape itself: it fits exactly where the declared reading does
        try:
            inputs = _bundle_as(raw_image, raw_kernel, raw_output, reading=reading, **options)
        except InputError:
            continue
        if raw_output is not None:
            return inputs
        option = option_text("--kernel-layout" if from_file else "kernel_layout=", reading)
        raise InputError(f"{error}; read as {reading.upper()} ({axis_names(reading)}) its shape fits: "
                         f"pass {option} if that is the order of its axes") from None
    raise error


def _bundle_as(raw_image, raw_kernel, raw_output, *, image_label, kernel_label, output_label, names,
               kernel_layout, layout, padding, from_file, reading) -> Inputs:
    """`_bundle` with the kernel's axes read in `reading` (None: in `kernel_layout`)."""
    kernel_axis = None
    if np.ndim(raw_kernel) == 1 and np.size(raw_kernel) > 0:
        raw_kernel, kernel_axis = np.asarray(raw_kernel)[np.newaxis, :], "rows"
    image = image_array(raw_image, image_label, from_file=from_file, layout=layout)
    kernel = kernel_array(raw_kernel, kernel_label, reading or kernel_layout,
                     "--kernel-layout" if from_file else "kernel_layout=", from_file=from_file)
    check_pair(image, kernel if np.ndim(raw_kernel) != 2 else raw_kernel, padding,
               image_name=names[0], kernel_name=names[1])
    raw_ndim = np.ndim(raw_kernel)
    output = output_reading = None
    allowed = None
    if raw_output is not None:
        raw_output = output_array(raw_output, output_label, from_file=from_file)
        channels = image.shape[-1]
        kh, kw, c_in, c_out = kernel.shape
        allowed = (channels,) if (raw_ndim == 2 and channels > 1) else \
            (c_in * c_out,) if (reading or kernel_layout) == "depthwise" else \
            tuple(dict.fromkeys((c_out, c_in * c_out) if (c_in == channels and channels > 1) else (c_out,)))
        output, output_reading, count = read_output(raw_output, output_label, layout, image.shape[0], allowed)
        allowed = (count,)
    kernel, groups, expected_groups, _ = resolve_kernel(image, kernel, raw_ndim, reading or kernel_layout, allowed,
                                                        pair_label("image", names[0]),
                                                        pair_label("kernel", names[1]))
    if output is not None and output.shape[-1] != kernel.shape[-1]:
        raise InputError(f"{pair_label('output', names[2])} has {output.shape[-1]} channels but "
                         f"{pair_label('kernel', names[1])} has {kernel.shape[-1]} output channels (C_out); "
                         "give the output this kernel produced, or check the kernel layout")
    declared = "chw" if layout == "nchw" else "hwc"
    actual = declared if output_reading is None else (
        "chw" if "c" in output_reading and output_reading.index("c") < output_reading.index("h")
        else declared if "c" not in output_reading else "hwc")
    return Inputs(image=image, kernel=kernel, output=output,
                  image_shape=tuple(np.shape(raw_image)), kernel_shape=tuple(np.shape(raw_kernel)),
                  output_shape=tuple(np.shape(raw_output)) if raw_output is not None else None,
                  image_name=names[0], kernel_name=names[1], output_name=names[2], groups=groups,
                  expected_groups=expected_groups, layout=layout, kernel_layout=kernel_layout,
                  output_reading=output_reading, declared_output_layout=declared, output_layout=actual,
                  kernel_axis=kernel_axis, kernel_reading=reading, raw_kernel=np.asarray(raw_kernel))


def load_inputs(image_path, kernel_path, output_path=None, *, kernel_layout=None, padding="same",
                max_elements=DEFAULT_MAX_ELEMENTS, layout="nhwc") -> Inputs:
    """Read and validate the image, kernel and optional output `.npy` files.

    Options are checked before any file is opened, then each file in turn (see
    `read_npy`, `as_image`, `as_kernel`, `check_pair`, `read_output`). `layout` 'nchw'
    reads images and outputs channels-first and makes OIHW the default kernel layout.
    An output's size is not checked against the padding, but its batch and channels must
    fit. Raises `InputError` with one line naming the file for every problem.
    """
    check_padding(padding)
    layout = check_image_layout(layout, "--layout")
    kernel_layout = check_kernel_layout(kernel_layout or ("oihw" if layout == "nchw" else "hwio"), "--kernel-layout")
    raw_image = read_npy(image_path, "image", max_elements)
    raw_kernel = read_npy(kernel_path, "kernel", max_elements)
    raw_output = read_npy(output_path, "output", max_elements) if output_path is not None else None
    names = (os.fspath(image_path), os.fspath(kernel_path),
             os.fspath(output_path) if output_path is not None else None)
    return _bundle(raw_image, raw_kernel, raw_output, image_label=f"image file '{names[0]}'",
                   kernel_label=f"kernel file '{names[1]}'", output_label=f"output file '{names[2]}'",
                   names=names, kernel_layout=kernel_layout, layout=layout, padding=padding, from_file=True)


def prepare_inputs(image, kernel, output=None, *, kernel_layout=None, padding="same", layout="nhwc") -> Inputs:
    """Validate in-memory arrays (the Python API) exactly as `load_inputs` validates files.

    Accepts anything `np.asarray` accepts, with the same dtype rules (plus ml_dtypes
    bfloat16). Messages start with the argument name ('image', 'kernel', 'output');
    `Inputs.*_name` are those names.
    """
    check_padding(padding)
    layout = check_image_layout(layout, "layout=")
    kernel_layout = check_kernel_layout(kernel_layout or ("oihw" if layout == "nchw" else "hwio"), "kernel_layout=")
    raw_image = to_array(image, "image")
    raw_kernel = to_array(kernel, "kernel")
    raw_output = to_array(output, "output") if output is not None else None
    return _bundle(raw_image, raw_kernel, raw_output, image_label="image", kernel_label="kernel",
                   output_label="output", names=("image", "kernel", "output" if output is not None else None),
                   kernel_layout=kernel_layout, layout=layout, padding=padding, from_file=False)
