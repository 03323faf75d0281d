"""The image, kernel and output read together: a padding and channels that fit, the kernel's
grouping (depthwise, one filter per channel, grouped), and which axes the output's are.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..geometry import normalize_padding
from ..vocabulary import PADDINGS

# How an output array's axes may be read, per declared layout: the declared layout first,
# then the other one (an output_layout cause). n/c may be dropped for a batch of one or a
# single channel (CONTRACT section 1).
_READINGS = {
    "nhwc": ("nhwc", "hwc", "nhw", "hw", "nchw", "chw"),
    "nchw": ("nchw", "chw", "nhw", "hw", "nhwc", "hwc"),
}


def read_output(output: np.ndarray, label: str, layout: str, batch: int, channels: tuple[int, ...]):
    """(canonical (N, Ho, Wo, C_out) output, reading, channels) for an output array.

    `channels` are the output channel counts the kernel allows (more than one when the
    kernel may be read as depthwise). The first reading of `_READINGS[layout]` whose batch
    and channel sizes fit wins; none fitting is an `InputError` naming the readings tried.
    """
    for reading in _READINGS[layout]:
        if len(reading) != output.ndim:
            continue
        size = dict(zip(reading, output.shape))
        if size.get("n", 1) != batch:
            continue
        for count in channels:
            if size.get("c", 1) == count:
                order = [reading.index(axis) for axis in "nhwc" if axis in reading]
                canonical = np.transpose(output, order)
                if "n" not in reading:
                    canonical = canonical[np.newaxis]
                if "c" not in reading:
                    canonical = canonical[..., np.newaxis]
                return canonical, reading, count
    tried = ", ".join(f"({', '.join(r.upper())})" for r in _READINGS[layout] if len(r) == output.ndim)
    raise InputError(f"{label}: shape {output.shape} fits no reading with a batch of {batch} and "
                     f"{' or '.join(str(c) for c in channels)} output channel{'s' if channels != (1,) else ''} "
                     f"(tried {tried or 'none: it needs 2 to 4 dimensions'}); give the output this image and "
                     "kernel produced, or check --layout and --kernel-layout")


def resolve_kernel(image: np.ndarray, kernel: np.ndarray, raw_ndim: int, layout: str, output_channels,
                   image_label: str, kernel_label: str):
    """(grouped HWIO kernel, groups from the shapes, groups the layout declares, allowed output channels).

    `image` is (N, H, W, C) and `kernel` HWIO as `kernel_array` returns it. A 2-D kernel with a
    C-channel image is the same filter on each channel (groups = C, CONTRACT section 1); a
    depthwise (kh, kw, C, M) kernel becomes (kh, kw, 1, C * M) with groups = C (declared with
    layout 'depthwise', or recognised when the output has C * M channels); an HWIO kernel
    with C_in dividing C is grouped with groups = C / C_in. `output_channels` is the
    output's possible channel counts (None when there is no output).
    """
    channels = image.shape[-1]
    kh, kw, c_in, c_out = kernel.shape
    if raw_ndim == 2 and channels > 1:
        return np.broadcast_to(kernel, (kh, kw, 1, channels)), channels, channels, (channels,)
    if layout == "depthwise":
        if c_in != channels:
            raise InputError(f"{kernel_label}: a depthwise kernel (kh, kw, C, multiplier) needs C = {channels} "
                             f"(the image's channels), got {c_in}")
        return kernel.reshape(kh, kw, 1, c_in * c_out), channels, channels, (c_in * c_out,)
    if c_in == channels:
        depthwise = c_in * c_out
        if output_channels is not None and depthwise in output_channels and c_out not in output_channels \
                and channels > 1:
            # Only a depthwise reading gives the output's channels: the shapes declare it
            # (CONTRACT section 2a).
            return kernel.reshape(kh, kw, 1, depthwise), channels, channels, (depthwise,)
        return kernel, 1, 1, (c_out,)
    if c_in and channels % c_in == 0 and c_out % (channels // c_in) == 0:
        # C_in / groups dividing the image's channels admits one grouping only: the shapes
        # declare it (CONTRACT section 2a: a PyTorch depthwise (C, 1, kh, kw) kernel is
        # groups = C, exactly as compare runs it).
        groups = channels // c_in
        return kernel, groups, groups, (c_out,)
    raise InputError(f"{kernel_label} has {c_in} input channel{'s' if c_in != 1 else ''} but "
                     f"{image_label} has {channels}; give a kernel of shape (kh, kw, {channels}, C_out) "
                     "(or C_in dividing the image's channels, for a grouped convolution), or an image with "
                     "as many channels as the kernel's C_in (a PyTorch-layout (C_out, C_in, kh, kw) kernel "
                     "needs --kernel-layout oihw, a depthwise one --kernel-layout depthwise)")


def check_padding(padding):
    """A padding's name as given, or explicit amounts normalised (CONTRACT section 1, version 3);
    a name in the wrong case or an unknown one is an `InputError`."""
    if padding in PADDINGS:
        return padding
    if not isinstance(padding, str):
        return normalize_padding(padding)
    suggestion = ""
    if isinstance(padding, str) and padding.lower() in PADDINGS:
        suggestion = f" (write it in lower case: '{padding.lower()}')"
    raise InputError(f"padding {padding!r} is not one of {', '.join(PADDINGS)}{suggestion}; "
                     "pass one of them")


def pair_label(role: str, name: str) -> str:
    return role if name == role else f"{role} '{name}'"


def check_pair(image, kernel, padding: str, image_name="image", kernel_name="kernel") -> None:
    """Check that an image and a kernel can be convolved with `padding`.

    Takes the arrays as `as_image` / `as_kernel` return them ((N, H, W, C) or (H, W, C),
    and HWIO; 2-D ones are read as single-channel). Refuses an unknown padding, a kernel
    whose C_in fits the image's channels in no grouping, and with 'valid' a kernel larger
    than the image. Names are file paths (or argument names) for the messages.
    """
    padding = check_padding(padding)
    image_label = pair_label("image", image_name)
    kernel_label = pair_label("kernel", kernel_name)
    image_shape = tuple(np.shape(image))
    kernel_shape = tuple(np.shape(kernel))
    if len(image_shape) == 2:
        image_shape += (1,)
    if len(image_shape) == 3:
        image_shape = (1,) + image_shape
    if len(kernel_shape) == 2:
        kernel_shape += (1, 1)
    if len(image_shape) != 4 or len(kernel_shape) != 4:
        raise InputError(f"{image_label} (shape {tuple(np.shape(image))}) and {kernel_label} "
                         f"(shape {tuple(np.shape(kernel))}) are not (N, H, W, C) and (kh, kw, C_in, C_out); "
                         "pass them through as_image and as_kernel first")
    _, height, width, channels = image_shape
    kh, kw, c_in, _ = kernel_shape
    if c_in == 0 or (channels % c_in and not (c_in == 1 and len(np.shape(kernel)) == 2)):
        raise InputError(f"{kernel_label} has {c_in} input channel{'s' if c_in != 1 else ''} but "
                         f"{image_label} has {channels}; give a kernel of shape (kh, kw, {channels}, C_out) "
                         "or an image with as many channels as the kernel's C_in (a PyTorch-layout "
                         "(C_out, C_in, kh, kw) kernel needs --kernel-layout oihw / kernel_layout='oihw')")
    if padding == "valid" and (kh > height or kw > width):
        raise InputError(f"{kernel_label} ({kh}x{kw}) is larger than {image_label} ({height}x{width}), "
                         "so padding 'valid' has no output position; use padding 'same' or 'full', "
                         "or a larger image")
    if not isinstance(padding, str):
        (top, bottom), (left, right) = padding
        if kh > height + top + bottom or kw > width + left + right:
            raise InputError(f"{kernel_label} ({kh}x{kw}) is larger than {image_label} ({height}x{width}) padded by "
                             f"[[{top}, {bottom}], [{left}, {right}]], so that padding has no output position; "
                             "pad more, use padding 'same' or 'full', or a larger image")
