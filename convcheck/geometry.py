"""The sizes and paddings of CONTRACT section 1, and the kernel reshapes every part shares.

The output size of each padding convention at a stride and dilation, the padding amounts
that give it, and a grouped or dilated kernel as the dense one a plain correlation uses.
Inputs, backends, `compare` and the engine all read these rules from here, so they agree.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .vocabulary import KERNEL_TRANSFORMS, PADDINGS


def normalize_padding(value, label: str = "padding"):
    """A padding as every part of convcheck keeps it: 'same', 'valid', 'full', or explicit
    amounts ((top, bottom), (left, right)) (CONTRACT section 1, version 3).

    Accepts a convention's name in any case (TensorFlow's 'SAME'), one non-negative integer
    P (PyTorch padding=P: ((P, P), (P, P))), a pair (PH, PW), four amounts (top, bottom,
    left, right) or a pair of pairs ((top, bottom), (left, right)); ONNX's pads [t, l, b, r]
    are ((t, b), (l, r)). Anything else is an `InputError` naming `label`.
    """
    if isinstance(value, str):
        if value.lower() in PADDINGS:
            return value.lower()
        raise InputError(f"{label} {value!r} is not one of {', '.join(PADDINGS)} nor amounts such as 1, "
                         "(1, 2) or (top, bottom, left, right)")
    amounts = _padding_amounts_of(value)
    if amounts is None:
        raise InputError(f"{label} must be one of {', '.join(PADDINGS)}, a non-negative integer (PyTorch "
                         "padding=1), a pair (rows, columns), four amounts (top, bottom, left, right) or "
                         f"((top, bottom), (left, right)); got {value!r}")
    return amounts


def _padding_amounts_of(value):
    """((top, bottom), (left, right)) from the forms `normalize_padding` accepts, or None."""
    def amount(v):
        return int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 else None

    if amount(value) is not None:
        return ((amount(value),) * 2,) * 2
    try:
        items = list(value)
    except TypeError:
        return None
    if len(items) == 2 and all(amount(v) is not None for v in items):
        return ((amount(items[0]),) * 2, (amount(items[1]),) * 2)
    if len(items) == 4 and all(amount(v) is not None for v in items):
        top, bottom, left, right = (amount(v) for v in items)
        return ((top, bottom), (left, right))
    if len(items) == 2:
        pairs = [_pair_of(v, amount) for v in items]
        if all(p is not None for p in pairs):
            return pairs[0], pairs[1]
    return None


def _pair_of(value, amount):
    try:
        items = list(value)
    except TypeError:
        return None
    if len(items) != 2 or any(amount(v) is None for v in items):
        return None
    return amount(items[0]), amount(items[1])


def is_explicit(padding) -> bool:
    """True for explicit amounts ((top, bottom), (left, right)), False for a convention's name."""
    return not isinstance(padding, str)


def axis_padding(padding, axis: int):
    """One axis's part of a padding (0: rows, 1: columns): the convention's name, or its
    (before, after) amounts."""
    return padding if isinstance(padding, str) else tuple(padding[axis])


def padding_text(padding) -> str:
    """'same', or '[[1, 1], [1, 1]]' for explicit amounts (as JSON writes them)."""
    if isinstance(padding, str):
        return padding
    (top, bottom), (left, right) = padding
    return f"[[{top}, {bottom}], [{left}, {right}]]"


def axis_layout(padding, size: int, k: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(output size, padding before) along one axis, CONTRACT section 1.

    The dilated kernel spans e = (k - 1) * dilation + 1. 'same' is TensorFlow's SAME at
    every stride and dilation: ceil(size / stride) outputs, total padding
    max((out - 1) * stride + e - size, 0), of which total // 2 before (an uneven total's
    extra row at the bottom). 'valid' pads nothing; 'full' pads e - 1 on both sides.
    Explicit (before, after) amounts give floor((size + before + after - e) / stride) + 1
    outputs (none when the padded size is below e), `before` before.
    """
    span = (k - 1) * dilation + 1
    if not isinstance(padding, str):
        before, after = padding
        padded = size + before + after
        return ((padded - span) // stride + 1 if padded >= span else 0), before
    if padding == "same":
        out = -(-size // stride)
        return out, max((out - 1) * stride + span - size, 0) // 2
    if padding == "valid":
        return (max(size - span, -1) // stride + 1 if size >= span else 0), 0
    if padding == "full":
        return (size + span - 2) // stride + 1, span - 1
    raise ValueError(f"unknown padding {padding!r}")


def padding_amounts(padding, height: int, width: int, kh: int, kw: int, stride=(1, 1),
                    dilation=(1, 1)) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding of CONTRACT section 1 at a stride and dilation
    (what a library needs to be given explicitly to compute the reference's windows; for
    explicit amounts, `bottom` and `right` are what the last window reads, at most those given)."""
    amounts = []
    for axis, (size, k, s, d) in enumerate(((height, kh, stride[0], dilation[0]), (width, kw, stride[1], dilation[1]))):
        out, before = axis_layout(axis_padding(padding, axis), size, k, s, d)
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


def pad_before(padding, kh: int, kw: int, height: int = 0, width: int = 0,
               stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """(top, left) padding of a convention: TF 'SAME' puts an uneven total's extra row/column last.

    At stride 1 the image size does not matter; at other strides SAME's padding depends on it.
    """
    return (axis_layout(axis_padding(padding, 0), height, kh, stride[0], dilation[0])[1],
            axis_layout(axis_padding(padding, 1), width, kw, stride[1], dilation[1])[1])


def output_size(padding, height: int, width: int, kh: int, kw: int,
                stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """The (Ho, Wo) of a padding convention at a stride and dilation."""
    return (axis_layout(axis_padding(padding, 0), height, kh, stride[0], dilation[0])[0],
            axis_layout(axis_padding(padding, 1), width, kw, stride[1], dilation[1])[0])


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
