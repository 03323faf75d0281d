"""The sizes and paddings of CONTRACT section 1, and the kernel reshapes every part shares.

The output size of each padding convention at a stride and dilation, the padding amounts
that give it, and a grouped or dilated kernel as the dense one a plain correlation uses.
Inputs, backends, `compare` and the engine all read these rules from here, so they agree.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .vocabulary import KERNEL_TRANSFORMS


def axis_layout(padding: str, size: int, k: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(output size, padding before) along one axis, CONTRACT section 1.

    The dilated kernel spans e = (k - 1) * dilation + 1. 'same' is TensorFlow's SAME at
    every stride and dilation: ceil(size / stride) outputs, total padding
    max((out - 1) * stride + e - size, 0), of which total // 2 before (an uneven total's
    extra row at the bottom). 'valid' pads nothing; 'full' pads e - 1 on both sides.
    """
    span = (k - 1) * dilation + 1
    if padding == "same":
        out = -(-size // stride)
        return out, max((out - 1) * stride + span - size, 0) // 2
    if padding == "valid":
        return (max(size - span, -1) // stride + 1 if size >= span else 0), 0
    if padding == "full":
        return (size + span - 2) // stride + 1, span - 1
    raise ValueError(f"unknown padding {padding!r}")


def padding_amounts(padding: str, height: int, width: int, kh: int, kw: int, stride=(1, 1),
                    dilation=(1, 1)) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding of CONTRACT section 1 at a stride and dilation
    (what a library needs to be given explicitly to compute the reference's windows)."""
    amounts = []
    for size, k, s, d in ((height, kh, stride[0], dilation[0]), (width, kw, stride[1], dilation[1])):
        out, before = axis_layout(padding, size, k, s, d)
        amounts += [before, max((out - 1) * s + (k - 1) * d + 1 - size - before, 0)]
    return amounts[0], amounts[1], amounts[2], amounts[3]


def geometry_pair(value, label: str) -> tuple[int, int]:
    """A stride or dilation as a (rows, columns) pair of positive ints (one int means both);
    anything else is an `InputError` naming `label`."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        raise InputError(f"{label} must be a positive integer or a pair of them, e.g. {label}=2 or "
                         f"{label}=(2, 1); got {value!r}") from None
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in pair):
        raise InputError(f"{label} must be a positive integer or a pair of them, e.g. {label}=2 or "
                         f"{label}=(2, 1); got {value!r}")
    return int(pair[0]), int(pair[1])


def pad_before(padding: str, kh: int, kw: int, height: int = 0, width: int = 0,
               stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """(top, left) padding of a convention: TF 'SAME' puts an uneven total's extra row/column last.

    At stride 1 the image size does not matter; at other strides SAME's padding depends on it.
    """
    return (axis_layout(padding, height, kh, stride[0], dilation[0])[1],
            axis_layout(padding, width, kw, stride[1], dilation[1])[1])


def output_size(padding: str, height: int, width: int, kh: int, kw: int,
                stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """The (Ho, Wo) of a padding convention at a stride and dilation."""
    return (axis_layout(padding, height, kh, stride[0], dilation[0])[0],
            axis_layout(padding, width, kw, stride[1], dilation[1])[0])


def dilate_kernel(kernel: np.ndarray, dilation: tuple[int, int]) -> np.ndarray:
    """An HWIO kernel with dilation - 1 zero rows/columns between taps (exact: the zeros add nothing)."""
    dy, dx = dilation
    if (dy, dx) == (1, 1):
        return kernel
    kh, kw = kernel.shape[:2]
    out = np.zeros(((kh - 1) * dy + 1, (kw - 1) * dx + 1) + kernel.shape[2:], dtype=kernel.dtype)
    out[::dy, ::dx] = kernel
    return out


def dense_kernel(kernel: np.ndarray, groups: int) -> np.ndarray:
    """A grouped HWIO kernel (kh, kw, C_in / G, C_out) as the dense (kh, kw, C_in, C_out) one:
    output channel o sees only its group's input channels, zeros elsewhere (exact)."""
    if groups == 1:
        return kernel
    kh, kw, per_group, outs = kernel.shape
    per_out = outs // groups
    dense = np.zeros((kh, kw, per_group * groups, outs), dtype=kernel.dtype)
    for g in range(groups):
        dense[:, :, g * per_group:(g + 1) * per_group, g * per_out:(g + 1) * per_out] = \
            kernel[:, :, :, g * per_out:(g + 1) * per_out]
    return dense


def transform_kernel(kernel: np.ndarray, name: str) -> np.ndarray:
    """`T(kernel)` on the (kh, kw) axes of an HWIO kernel, as CONTRACT section 2 defines T."""
    if name == "identity":
        return kernel
    if name == "rot180":
        return kernel[::-1, ::-1]
    if name == "transpose":
        return kernel.swapaxes(0, 1)
    if name == "anti_transpose":
        return kernel[::-1, ::-1].swapaxes(0, 1)
    if name == "flip_ud":
        return kernel[::-1, :]
    if name == "flip_lr":
        return kernel[:, ::-1]
    if name == "rot90":
        return np.rot90(kernel, 1, axes=(0, 1))
    if name == "rot270":
        return np.rot90(kernel, -1, axes=(0, 1))
    raise ValueError(f"unknown kernel transform {name!r}; expected one of {KERNEL_TRANSFORMS}")
